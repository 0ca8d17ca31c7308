"""RTP relay of a bridged call, through the live server.

A hand-written caller dials the pilot; the engine rings the group's only
member, a hand-written UAS that answers 180 then 200 with SDP pointing at its
own RTP socket. Once bridged, the engine relays RTP between the caller's port
and the member's port (symmetric latching). The range of RTP ports holds
exactly two pairs, one call's worth, so a second call only works if the first
one gave its ports back.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.media_live_harness import (
    LOOPBACK,
    CallerCall,
    RtpSocket,
    ServerProcess,
    SipUA,
    answer_bye,
    answer_invite,
    await_answer,
    closing_all,
    invite_pilot,
    make_config,
    rtp,
    start_server,
)
from tests.support.ports import free_port_range
from tests.support.sip_messages import SipMessage

pytestmark = pytest.mark.integration

CALLER_SSRC, MEMBER_SSRC, STRANGER_SSRC = 0x0CA11E12, 0x0E3BE12, 0x05712A9E


@dataclass
class Bridged:
    server: ServerProcess
    member: SipUA
    caller: SipUA
    caller_audio: RtpSocket
    member_audio: RtpSocket
    call: CallerCall
    member_leg: SipMessage
    engine_member_rtp: tuple[str, int]

    def hang_up(self) -> None:
        self.call.hang_up()
        answer_bye(self.member, self.member_leg.call_id)


@dataclass
class Setup:
    server: ServerProcess
    member: SipUA
    rtp_ports: tuple[int, int]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    member = SipUA("member", ("0.0.0.0", 0))
    ports = free_port_range(4)  # two RTP/RTCP pairs: one call (caller side + member side)
    server = start_server(
        tmp_path,
        make_config(
            rtp_ports=ports, members=[{"uri": f"sip:agent@{LOOPBACK}:{member.port}", "position": 1}]
        ),
    )
    member.server = server.sip
    with closing_all(member, server):
        yield Setup(server, member, ports)


def bridge(setup: Setup, name: str = "caller") -> Bridged:
    caller = SipUA(name, setup.server.sip)
    caller_audio, member_audio = RtpSocket(), RtpSocket()
    call_id = invite_pilot(caller, caller_audio.port, ("PCMU",))
    leg, engine_member_rtp = answer_invite(setup.member, member_audio.port, ring_for=0.05)
    call = await_answer(caller, call_id)
    return Bridged(
        setup.server,
        setup.member,
        caller,
        caller_audio,
        member_audio,
        call,
        leg,
        engine_member_rtp,
    )


def talk(b: Bridged, count: int = 20, *, first: int = 0) -> None:
    """Both sides send ``count`` PCMU packets (distinct payloads) through the engine."""
    for i in range(first, first + count):
        b.caller_audio.sendto(
            rtp(0, 100 + i, 160 * i, CALLER_SSRC, bytes([i % 256]) * 160), b.call.server_rtp
        )
        b.member_audio.sendto(
            rtp(0, 900 + i, 320 * i, MEMBER_SSRC, bytes([255 - i % 256]) * 160),
            b.engine_member_rtp,
        )
        time.sleep(0.004)  # the peers talk at a pace, not in one burst


def received(sock: RtpSocket, ssrc: int) -> list[bytes]:
    return [a.packet.payload for a in sock.arrivals if a.packet.ssrc == ssrc]


def dtmf(digit: int, *, end: bool, duration: int) -> bytes:
    """An RFC 4733 telephone-event payload: event, E bit + volume 10, duration."""
    return struct.pack("!BBH", digit, (0x80 if end else 0) | 10, duration)


def test_rtp_and_telephone_events_are_relayed_both_ways(setup: Setup) -> None:
    b = bridge(setup)
    with closing_all(b.caller_audio, b.member_audio, b.caller):
        assert b.engine_member_rtp != b.call.server_rtp, "one port per side of the call"
        talk(b)
        b.member_audio.wait_for(20)
        b.caller_audio.wait_for(20)
        # RFC 4733 events (PT 101): digit 5 from the caller, digit 9 from the member.
        events = [dtmf(5, end=False, duration=160 * k) for k in (1, 2, 3)]
        events += [dtmf(5, end=True, duration=480)] * 3
        for k, payload in enumerate(events):
            b.caller_audio.sendto(
                rtp(101, 200 + k, 160 * 40, CALLER_SSRC, payload, marker=k == 0),
                b.call.server_rtp,
            )
            b.member_audio.sendto(
                rtp(101, 950 + k, 320 * 40, MEMBER_SSRC, payload.replace(b"\x05", b"\x09", 1)),
                b.engine_member_rtp,
            )
            time.sleep(0.004)  # events at a phone's pace
        b.member_audio.wait_for(26)
        b.caller_audio.wait_for(26)
        b.hang_up()

    # Voice: every payload arrives, in order, on the other side only.
    assert received(b.member_audio, CALLER_SSRC)[:20] == [bytes([i]) * 160 for i in range(20)]
    assert received(b.caller_audio, MEMBER_SSRC)[:20] == [bytes([255 - i]) * 160 for i in range(20)]
    assert not received(b.caller_audio, CALLER_SSRC), "the caller's own audio came back"
    # Relayed packets reach each side from the engine's port of that side.
    assert {a.source for a in b.member_audio.arrivals} == {b.engine_member_rtp}
    assert {a.source for a in b.caller_audio.arrivals} == {b.call.server_rtp}
    # Telephone events: PT, marker, timestamp and payload intact.
    to_member = [a.packet for a in b.member_audio.arrivals if a.packet.payload_type == 101]
    assert [p.payload for p in to_member] == events
    assert [p.marker for p in to_member] == [True] + [False] * 5
    assert {p.timestamp for p in to_member} == {160 * 40}
    to_caller = [a.packet for a in b.caller_audio.arrivals if a.packet.payload_type == 101]
    assert [p.payload[0] for p in to_caller] == [9] * 6


def test_strangers_and_non_rtp_datagrams_are_dropped(setup: Setup) -> None:
    b = bridge(setup)
    stranger = RtpSocket()
    with closing_all(stranger, b.caller_audio, b.member_audio, b.caller):
        talk(b, 5)  # both sides latch on their first packets
        b.member_audio.wait_for(5)
        b.caller_audio.wait_for(5)
        for i in range(10):
            # From an address the engine did not latch, on both of the call's ports.
            stranger.sendto(rtp(0, i, 160 * i, STRANGER_SSRC, b"\x00" * 160), b.call.server_rtp)
            stranger.sendto(rtp(0, i, 160 * i, STRANGER_SSRC, b"\x00" * 160), b.engine_member_rtp)
        # Not RTP, from the latched addresses themselves.
        for junk in (b"hello", b"\x00" * 40, b"\x40" + b"\x00" * 20, b"\r\n\r\n"):
            b.caller_audio.sendto(junk, b.call.server_rtp)
            b.member_audio.sendto(junk, b.engine_member_rtp)
        talk(b, 5, first=5)  # the latched peers still get through afterwards
        b.member_audio.wait_for(10)
        b.caller_audio.wait_for(10)
        time.sleep(0.1)  # a stranger's packet in flight lands, or not: a silence
        b.hang_up()

    assert received(b.member_audio, CALLER_SSRC) == [bytes([i]) * 160 for i in range(10)]
    assert received(b.caller_audio, MEMBER_SSRC) == [bytes([255 - i]) * 160 for i in range(10)]
    assert not received(b.member_audio, STRANGER_SSRC), "a stranger's packets reached the member"
    assert not received(b.caller_audio, STRANGER_SSRC), "a stranger's packets reached the caller"
    assert not b.member_audio.junk and not b.caller_audio.junk, "non-RTP datagrams were relayed"
    assert not stranger.arrivals, "the engine answered the stranger"


def test_ports_are_freed_after_bye_and_the_next_call_reuses_them(setup: Setup) -> None:
    first = bridge(setup, "first")
    with closing_all(first.caller_audio, first.member_audio, first.caller):
        talk(first, 5)
        first.member_audio.wait_for(5)
        first.hang_up()
    used = {first.call.server_rtp[1], first.engine_member_rtp[1]}
    assert used == {setup.rtp_ports[0], setup.rtp_ports[0] + 2}
    # The server keeps its RTP sockets bound between calls (no bind/close per call):
    # "freed" means back in its allocator, which the second call below proves.

    # The range holds one call: a second call works only with the same two ports.
    second = bridge(setup, "second")
    with closing_all(second.caller_audio, second.member_audio, second.caller):
        talk(second, 10)
        second.member_audio.wait_for(10)
        second.caller_audio.wait_for(10)
        second.hang_up()
    assert {second.call.server_rtp[1], second.engine_member_rtp[1]} == used
    assert received(second.member_audio, CALLER_SSRC) == [bytes([i]) * 160 for i in range(10)]
    assert received(second.caller_audio, MEMBER_SSRC) == [bytes([255 - i]) * 160 for i in range(10)]
    assert "Traceback" not in setup.server.log()
