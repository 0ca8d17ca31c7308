"""Members join and leave their groups at run time from their phone: *51 and *52."""

from __future__ import annotations

from tests.engine.b2bua.test_b2bua_lines import register
from tests.support.b2bua_peers import (
    CALLER_NUMBER,
    DOMAIN,
    LINE_A,
    PASSWORD,
    PILOT,
    Network,
    Phone,
    UacCall,
    digest_authorization,
    make_config,
    parse_challenge,
)


def dial(phone: Phone, code: str) -> UacCall:
    """Dial a feature code with digest authentication; returns the answered call."""
    first = phone.invite(code)
    challenge = phone.response(407)
    first.ack_failure(challenge)
    value = challenge.headers.get_all("Proxy-Authenticate")[0]
    assert parse_challenge(value)["algorithm"] == "SHA-256"
    auth = digest_authorization(
        value, username=phone.user, password=PASSWORD, method="INVITE", uri=f"sip:{code}@{DOMAIN}"
    )
    return phone.invite(code, extra=[("Proxy-Authorization", auth)])


def world() -> tuple[Network, Phone, Phone]:
    net = Network(make_config("linear", members=0, member_lines=[LINE_A]))
    alice = net.phone("alice", 7101, LINE_A)
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    register(alice, LINE_A, PASSWORD)
    alice.drop()
    return net, alice, caller


def test_star52_logs_the_member_out_and_star51_back_in() -> None:
    net, alice, caller = world()
    call = dial(alice, "*52")
    ok = alice.response(200)
    call.ack(ok)
    bye = alice.request("BYE")  # a short call: done as soon as it was answered
    assert bye.call_id == call.call_id
    assert net.closes, "the feature call's media is released"
    caller.invite(PILOT)
    assert not alice.has("INVITE"), "alice left the group"
    alice.drop()
    call = dial(alice, "*51")
    call.ack(alice.response(200))
    assert alice.request("BYE")
    # joining serves the caller who was waiting in the queue
    assert alice.request("INVITE").from_.uri.user == CALLER_NUMBER  # type: ignore[union-attr]


def test_feature_code_for_one_group_by_pilot_and_unknown_pilot() -> None:
    net, alice, _caller = world()
    call = dial(alice, f"*52{PILOT}")
    call.ack(alice.response(200))
    assert net.b2b.core.is_free("Support", LINE_A, now=net.now) is False
    alice.drop()
    dial(alice, "*510199999999")  # once authenticated: no such group of hers
    alice.response(404)


def test_feature_code_from_a_stranger_is_challenged_then_refused_like_a_line() -> None:
    _net, _alice, caller = world()
    dial(caller, "*52")  # challenged like a line (407), so as not to tell it is none
    caller.response(403)
