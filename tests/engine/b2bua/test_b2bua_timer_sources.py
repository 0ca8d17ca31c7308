"""B2BUA.get_timer asks the sources that change rarely only after they changed.

The driver asks ``get_timer`` after every input. The registrar, the other nodes'
bindings, the authentication guard, the subscriptions we serve and our watches of
phones change only on REGISTER, SUBSCRIBE, failed digests and their own timers: each
bumps a ``changes`` counter when its answer may change, and the B2BUA keeps their
earliest due time until a counter moves. These tests count the calls with a spy, and
check that the answer is still exact after each kind of change.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from huntgroup.engine.b2bua.facade import B2BUA
from tests.engine.b2bua.test_b2bua_lines import register
from tests.support.b2bua_peers import (
    CALLER_NUMBER,
    LINE_A,
    PASSWORD,
    PILOT,
    Network,
    Phone,
    make_config,
)

QUIET = ("registrar", "shared", "guard", "subscriptions", "watches")


def spy(b2b: B2BUA) -> Counter[str]:
    """Count each quiet source's get_timer calls (the instance's method is wrapped)."""
    asked: Counter[str] = Counter()
    for name in QUIET:
        source = getattr(b2b, name)
        real: Callable[[], Any] = source.get_timer

        def counted(real: Callable[[], Any] = real, name: str = name) -> Any:
            asked[name] += 1
            return real()

        try:
            source.get_timer = counted
        except AttributeError:  # a class with __slots__: wrap it on a subclass
            source.__class__ = type(type(source).__name__, (type(source),), {"__slots__": ()})
            type(source).get_timer = lambda self, c=counted: c()  # type: ignore[method-assign]
    return asked


def world() -> tuple[Network, Phone, Phone, Counter[str]]:
    net = Network(make_config("linear", members=1, member_lines=[LINE_A]))
    alice = net.phone("alice", 7101, LINE_A)
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    net.phone("m1", 7001, "m1")
    net.check_timers = False  # the harness's check would ask the sources the spy counts
    net.b2b.get_timer()  # the first answer is worked out once
    return net, alice, caller, spy(net.b2b)


def test_a_call_asks_none_of_the_quiet_sources() -> None:
    net, _, caller, asked = world()
    m1 = net.phones[("127.0.0.1", 7001)]
    call = caller.invite(PILOT)
    leg = m1.answering(m1.request("INVITE"))
    leg.reply(180)
    leg.reply(200)
    m1.request("ACK")
    call.ack(caller.response(200))
    for _ in range(5):
        assert net.b2b.get_timer() is not None  # the call's own timers
    net.advance(2.0)
    call.bye()
    net.advance(40.0)
    assert asked == Counter()


def test_a_register_is_seen_and_its_expiry_is_the_timer() -> None:
    net, alice, _, asked = world()
    assert register(alice, LINE_A, PASSWORD).status == 200
    net.advance(40.0)  # the REGISTER transactions end; only the binding is left
    assert asked["registrar"] >= 1
    before = sum(asked.values())
    expiry = net.b2b.registrar.get_timer()
    assert expiry is not None
    assert net.b2b.get_timer() == expiry
    assert net.b2b.get_timer() == expiry
    assert sum(asked.values()) == before + 1  # the spy's own call above, nothing else
    net.at(expiry)  # the binding expires: the registrar changed, asked again
    assert net.b2b.registrar.get_timer() is None


@pytest.mark.native_incompatible(
    "wraps AuthGuard in an interpreted subclass: a compiled attribute refuses it"
)
def test_a_failed_digest_arms_the_guard_and_its_end_is_seen() -> None:
    net, alice, _, asked = world()
    assert register(alice, LINE_A, "wrong").status in (401, 403)
    net.advance(40.0)
    forget = net.b2b.guard.get_timer()
    assert forget is not None and asked["guard"] >= 1
    assert net.b2b.get_timer() == forget
    net.at(forget)
    assert net.b2b.guard.get_timer() is None
    assert net.b2b.get_timer() is None
