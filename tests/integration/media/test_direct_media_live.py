"""``server.media.mode: direct`` through the live server: the phones talk to each other.

Hand-written callers dial the pilot of a group whose only member is a
hand-written UAS. A call answered while ringing is bridged with the SDP of
each side handed to the other (no relay, no port kept); a caller who waited
in the queue, hearing music from the engine, is re-INVITEd with the member's
SDP, after which the music stops and the engine's ports are free again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.media_live_harness import (
    LOOPBACK,
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
    sdp_audio,
    sdp_offer,
    start_server,
)
from tests.support.ports import free_port_range

pytestmark = pytest.mark.integration


@dataclass
class Setup:
    server: ServerProcess
    member: SipUA
    rtp_ports: tuple[int, int]


def direct_server(tmp_path: Path, port_count: int) -> Iterator[Setup]:
    member = SipUA("member", ("0.0.0.0", 0))
    ports = free_port_range(port_count)
    config = make_config(
        rtp_ports=ports, members=[{"uri": f"sip:agent@{LOOPBACK}:{member.port}", "position": 1}]
    )
    config["server"]["media"]["mode"] = "direct"
    server = start_server(tmp_path, config)
    member.server = server.sip
    with closing_all(member, server):
        yield Setup(server, member, ports)


@pytest.fixture
def one_pair(tmp_path: Path) -> Iterator[Setup]:
    """RTP ports for one RTP/RTCP pair: in relay mode, room for a single waiting caller."""
    yield from direct_server(tmp_path, 2)


@pytest.fixture
def two_pairs(tmp_path: Path) -> Iterator[Setup]:
    yield from direct_server(tmp_path, 4)


def test_a_call_answered_while_ringing_keeps_no_port_on_the_engine(one_pair: Setup) -> None:
    s = one_pair
    caller, waiting = SipUA("caller", s.server.sip), SipUA("waiting", s.server.sip)
    caller_audio, member_audio, waiting_audio = RtpSocket(), RtpSocket(), RtpSocket()
    with closing_all(caller, waiting, caller_audio, member_audio, waiting_audio):
        call_id = invite_pilot(caller, caller_audio.port, ("PCMU",))
        invite, offered = answer_invite(s.member, member_audio.port)
        assert offered == (LOOPBACK, caller_audio.port), "the member got the caller's RTP"
        call = await_answer(caller, call_id)
        assert call.server_rtp == (LOOPBACK, member_audio.port), "and the caller the member's"
        s.server.wait_log(r"bridged to .* \(media end to end\)")
        # The phones talk to each other; nothing passes through the engine.
        for seq in range(5):
            caller_audio.sendto(rtp(0, seq, 160 * seq, 0xCA11, b"\x7f" * 160), call.server_rtp)
        assert len(member_audio.wait_for(5, timeout=3)) == 5
        assert {a.source for a in member_audio.arrivals} == {(LOOPBACK, caller_audio.port)}
        # The range holds one port pair. In relay mode this call would hold it;
        # here it went back at the bridge, so the next caller can be queued with music.
        waiting_id = invite_pilot(waiting, waiting_audio.port, ("PCMU",))
        queued = await_answer(waiting, waiting_id)
        assert queued.server_rtp == (LOOPBACK, s.rtp_ports[0])
        assert waiting_audio.wait_for(10, timeout=3), "no hold music"
        queued.hang_up()
        call.hang_up()
        answer_bye(s.member, invite.call_id)


def test_a_queued_caller_is_switched_to_the_member_and_the_music_stops(two_pairs: Setup) -> None:
    s = two_pairs
    first_ua, queued_ua = SipUA("first", s.server.sip), SipUA("queued", s.server.sip)
    first_audio, member_audio, queued_audio = RtpSocket(), RtpSocket(), RtpSocket()
    with closing_all(first_ua, queued_ua, first_audio, member_audio, queued_audio):
        first_id = invite_pilot(first_ua, first_audio.port, ("PCMU",))
        first_leg, _ = answer_invite(s.member, member_audio.port)
        first = await_answer(first_ua, first_id)
        # The member is busy: the next caller waits, answered by the engine, with music.
        queued_id = invite_pilot(queued_ua, queued_audio.port, ("PCMU",))
        queued = await_answer(queued_ua, queued_id)
        assert queued.server_rtp[1] in range(s.rtp_ports[0], s.rtp_ports[1] + 1)
        assert queued_audio.wait_for(10, timeout=3), "no hold music"
        first.hang_up()
        answer_bye(s.member, first_leg.call_id)
        # The member is offered the queued caller's own RTP address, and answers.
        invite, offered = answer_invite(s.member, member_audio.port)
        assert offered == (LOOPBACK, queued_audio.port)
        # The caller is re-INVITEd toward the member.
        reinvite = queued_ua.wait(
            lambda m: m.is_request and m.method == "INVITE" and m.call_id == queued_id
        )
        address, port, _ = sdp_audio(reinvite.body)
        assert (address, port) == (LOOPBACK, member_audio.port)
        queued_ua.send(
            queued_ua.response(
                reinvite, 200, "OK", tag=queued.to_tag, body=sdp_offer(queued_audio.port)
            ),
            reinvite.source,
        )
        ack = queued_ua.wait(lambda m: m.is_request and m.method == "ACK")
        assert ack.header("CSeq").split()[0] == reinvite.header("CSeq").split()[0]
        s.server.wait_log(r"media end to end")
        time.sleep(0.1)  # packets already in flight land; then the test checks a silence
        heard = len(queued_audio.arrivals)
        time.sleep(0.3)  # the behaviour: nothing more comes from the engine
        assert len(queued_audio.arrivals) == heard, "the engine still sends to the caller"
        queued.hang_up()
        answer_bye(s.member, invite.call_id)
