"""A request that cannot be delivered (ICMP error, TCP refused) fails its transaction at once."""

from __future__ import annotations

from tests.support.b2bua_peers import PILOT, Network, Phone, make_config


def world() -> tuple[Network, Phone, Phone, Phone]:
    net = Network(make_config("linear", members=2, no_answer_timeout=20))
    m1, m2 = net.phone("m1", 7001, "m1"), net.phone("m2", 7002, "m2")
    caller = net.phone("caller", 6000, "0612345678")
    return net, m1, m2, caller


def test_an_undeliverable_invite_makes_the_member_unreachable_at_once() -> None:
    net, m1, m2, caller = world()
    caller.invite(PILOT)
    sent = m1.log[-1].data
    assert m1.request("INVITE") and not m2.has("INVITE")
    # ICMP quotes only the first ~500 bytes of the datagram.
    net._route(net.b2b.send_failed(sent[:400], m1.peer, now=net.now))
    assert m2.request("INVITE"), "the next member is rung without waiting"
    net.advance(40)  # timer B of the first INVITE would have fired by now
    assert m1.count("INVITE") == 1, "the failed INVITE is not retransmitted"
    assert not m1.has("CANCEL")


def test_undeliverable_responses_acks_and_strangers_change_nothing() -> None:
    net, m1, _m2, caller = world()
    caller.invite(PILOT)
    invite = m1.log[-1].data  # a response quoting the Via of a live transaction
    trying = b"SIP/2.0 100 Trying\r\n" + invite.split(b"\r\n", 1)[1]
    for data in (trying, b"ACK sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n", b"\x00"):
        assert net.b2b.send_failed(data, caller.peer, now=net.now) == []
    assert net.b2b.active_calls == 1
