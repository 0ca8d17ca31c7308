"""Several nodes: the B2BUA sends a member no INVITE before the driver granted its claim."""

from __future__ import annotations

from huntgroup.queue.actions import Claim
from tests.support.b2bua_peers import PILOT, Network, make_config


def claims_of(net: Network) -> list[Claim]:
    return [c for c in net.media if isinstance(c, Claim)]  # Network keeps other outputs there


def test_a_member_is_invited_only_once_its_claim_is_granted() -> None:
    net = Network(make_config("linear", members=2))
    net.b2b.core.claims = True
    m1, m2 = net.phone("m1", 7001, "m1"), net.phone("m2", 7002, "m2")
    caller = net.phone("c", 6000, "0600000001")
    caller.invite(PILOT, rtp=10000)
    (claim,) = claims_of(net)
    assert (claim.member, claim.group, claim.call_waiting) == (
        "sip:m1@127.0.0.1:7001",
        "Support",
        False,
    )
    m1.quiet()  # no INVITE before the answer
    # another node holds m1: the hunt moves on to m2, claimed in turn
    net._route(net.b2b.claim_answered(claim.call_id, claim.member, False, now=net.now))
    m1.quiet()
    second = claims_of(net)[-1]
    assert second.member == "sip:m2@127.0.0.1:7002" and second.call_id == claim.call_id
    m2.quiet()
    net._route(net.b2b.claim_answered(second.call_id, second.member, True, now=net.now))
    invite = m2.request("INVITE")
    assert invite.from_.uri.user == "0600000001"  # type: ignore[union-attr]
