"""Dead calls, RTP part: the relay's ``RtpTimedOut`` ends a bridged call like a BYE would.

The planner says which relays should carry RTP both ways (``StartRelay.watch``:
relay mode, neither side's latest SDP on hold); the media driver hands back
``RtpTimedOut`` when one of them falls silent, and ``B2BUA.media_timed_out``
ends the call: BYE to the caller and to the member, media closed, the member
free for the next call.
"""

from __future__ import annotations

from huntgroup.media.commands import RtpTimedOut
from huntgroup.media.hold import on_hold
from huntgroup.media.sdp import parse_sdp
from tests.support.b2bua_peers import PILOT, Network, UacCall, UasCall, make_config


class World:
    """One member m1, a queue of one: c0 talks to m1, c1 waits."""

    def __init__(self) -> None:
        self.net = Network(make_config("linear", members=1, queue={"max_length": 1}))
        self.m1 = self.net.phone("m1", 7001, "m1")
        self.c0 = self.net.phone("c0", 6000, "0600000000")
        self.c1 = self.net.phone("c1", 6001, "0600000001")

    def bridge(self) -> tuple[UacCall, UasCall]:
        call = self.c0.invite(PILOT, rtp=10000)
        leg = self.m1.answering(self.m1.request("INVITE"))
        leg.reply(200, rtp=27001)
        self.m1.request("ACK")
        call.ack(self.c0.response(200))
        self.c0.drop()
        return call, leg


def held_sdp(port: int, direction: str = "sendonly", host: str = "127.0.0.1") -> bytes:
    return (
        f"v=0\r\no=peer 1 2 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\n"
        f"t=0 0\r\nm=audio {port} RTP/AVP 0\r\na={direction}\r\n"
    ).encode()


def test_a_silent_call_is_ended_on_both_sides_and_the_member_takes_the_next() -> None:
    w = World()
    net = w.net
    call, leg = w.bridge()
    [relay] = net.relays
    assert relay.watch, "a bridged relayed call should carry RTP both ways"
    waiting = w.c1.invite(PILOT, rtp=10002)
    waiting.ack(w.c1.response(200))  # queued with music: m1 is busy
    assert not w.m1.has("INVITE")

    net.advance(60)
    outputs = net.b2b.media_timed_out(RtpTimedOut(relay.session, ("member",), 60.0), now=net.now)
    net._route(outputs)

    bye = w.c0.request("BYE")
    assert bye.call_id == call.call_id
    member_bye = w.m1.request("BYE")
    assert member_bye.call_id == leg.invite.call_id
    assert any(c.session == relay.session for c in net.closes), "the call's ports are released"
    w.c0.respond(bye, 200)
    w.m1.respond(member_bye, 200)
    # m1 is free: the caller who waited is offered to it.
    offered = w.m1.request("INVITE")
    assert offered.from_.uri.user == "0600000001"  # type: ignore[union-attr]
    assert net.b2b.active_calls == 1

    # Said once: the same fact again (or for a session no call has) changes nothing.
    assert net.b2b.media_timed_out(RtpTimedOut(relay.session, ("member",), 60.0), now=net.now) == []
    assert net.b2b.media_timed_out(RtpTimedOut("m999", ("caller",), 60.0), now=net.now) == []


def test_a_call_on_hold_is_not_watched_and_is_again_once_resumed() -> None:
    w = World()
    net = w.net
    call, _leg = w.bridge()
    call.reinvite(held_sdp(10000, "sendonly"))
    call.ack(w.c0.response(200))  # answered here (call hold): the member hears music
    [music] = net.music
    assert music.side == "member" and net.media[-1] is music, "the music replaces the relay"
    w.m1.quiet()

    call.reinvite(held_sdp(10000, "sendrecv"))
    call.ack(w.c0.response(200))
    assert net.relays[-1].watch and net.media[-1] is net.relays[-1], "resumed: watched again"


def test_what_counts_as_hold() -> None:
    assert on_hold(parse_sdp(held_sdp(4000, "sendonly")))
    assert on_hold(parse_sdp(held_sdp(4000, "recvonly")))
    assert on_hold(parse_sdp(held_sdp(4000, "inactive")))
    assert on_hold(parse_sdp(held_sdp(4000, "sendrecv", host="0.0.0.0")))
    assert on_hold(parse_sdp(held_sdp(0, "sendrecv"))), "no audio stream left"
    assert not on_hold(parse_sdp(held_sdp(4000, "sendrecv")))
    assert not on_hold(None)


def test_direct_media_is_not_watched() -> None:
    """Direct mode: the member sends its RTP to the caller, never to the interim relay."""
    net = Network(make_config("linear", members=1, queue={"max_length": 1}), media_mode="direct")
    m1, c0, c1 = (
        net.phone(n, p, u)
        for n, p, u in [("m1", 7001, "m1"), ("c0", 6000, "0600000000"), ("c1", 6001, "0600000001")]
    )
    first = c0.invite(PILOT, rtp=10000)
    m1.answering(m1.request("INVITE")).reply(200, rtp=27001)
    m1.request("ACK")
    first.ack(c0.response(200))
    queued = c1.invite(PILOT, rtp=10002)  # hears our SDP (music): relayed until re-INVITEd
    queued.ack(c1.response(200))
    first.bye()
    c0.response(200, "BYE")
    m1.respond(m1.request("BYE"), 200)
    m1.answering(m1.request("INVITE")).reply(200, rtp=27011)
    m1.request("ACK")
    assert net.relays, "the interim relay of a caller who heard our SDP"
    assert all(not r.watch for r in net.relays)
