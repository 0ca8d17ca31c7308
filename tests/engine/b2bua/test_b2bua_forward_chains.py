"""Forwards through our own pilots on the server: the group core follows the chain.

The same chains run in the simulator (``tests/simulations/test_sim_forwards.py``):
a group whose linear pass ends forwards to the next group's pilot; the call goes
on there, and a chain past ``server.limits.max_internal_forwards`` gets 483.
"""

from __future__ import annotations

import logging

import pytest

from huntgroup.config.models import Config, GroupConfig, MemberConfig
from tests.support.b2bua_peers import CALLER_NUMBER, PILOT, Network, Phone, UacCall, member_uri

B_PILOT, C_PILOT = "0150000000", "0160000000"


def chain(limit: int) -> Config:
    """A (m1) -> B (m2) -> C (m3): each group forwards to the next after its linear pass."""

    def group(name: str, pilot: str, i: int, forward_to: str | None) -> GroupConfig:
        return GroupConfig(
            name=name,
            pilot=pilot,
            algorithm="linear",
            members=(MemberConfig(uri=member_uri(i), position=1),),
            no_answer={"forward_to": forward_to},  # type: ignore[arg-type]
        )

    config = Config(
        groups=(
            group("A", PILOT, 1, B_PILOT),
            group("B", B_PILOT, 2, C_PILOT),
            group("C", C_PILOT, 3, None),
        )
    )
    limits = config.server.limits.model_copy(update={"max_internal_forwards": limit})
    return config.model_copy(update={"server": config.server.model_copy(update={"limits": limits})})


def refuse(member: Phone) -> None:
    member.answering(member.request("INVITE")).reply(486)


def forwarded_to_b_and_answered(net: Network) -> tuple[Phone, Phone, Phone, UacCall]:
    """A call to A's pilot: m1 refuses it, A forwards it to B's pilot, m2 answers there.
    Returns the caller, m1, m2 and the call."""
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    m1, m2 = net.phone("m1", 7001, "m1"), net.phone("m2", 7002, "m2")
    call = caller.invite(PILOT)
    refuse(m1)
    leg = m2.answering(m2.request("INVITE"))
    leg.reply(200)
    m2.request("ACK")
    call.ack(caller.response(200))
    return caller, m1, m2, call


def test_a_group_forwarding_to_our_pilot_hands_the_call_to_that_group(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="huntgroup.calls")
    net = Network(chain(5))
    forwarded_to_b_and_answered(net)
    assert net.b2b.active_calls == 1
    assert f"forwarded to {B_PILOT} (no_answer)" in caplog.text
    assert f"{CALLER_NUMBER} -> group B ({B_PILOT})" in caplog.text


def test_a_chain_of_pilots_past_max_internal_forwards_gets_483(
    caplog: pytest.LogCaptureFixture,
) -> None:
    net = Network(chain(1))
    caller = net.phone("caller", 6000, CALLER_NUMBER)
    m1, m2, m3 = (net.phone(f"m{i}", 7000 + i, f"m{i}") for i in (1, 2, 3))
    call = caller.invite(PILOT)
    refuse(m1)
    refuse(m2)
    call.ack_failure(caller.response(483))
    m3.quiet()  # C is never rung
    assert f"forward loop {PILOT} -> {B_PILOT} -> {C_PILOT}: ended (483)" in caplog.text
    net.advance(64 * 0.5)
    assert net.b2b.active_calls == 0
