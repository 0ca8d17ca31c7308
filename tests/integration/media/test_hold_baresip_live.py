"""Music on hold with a real phone: baresip answers a group call, holds it, resumes it.

The real ``huntgroup serve`` runs as a subprocess (relay mode); baresip 1.0
registers as the group's only member line and answers at once; a hand-written
SIP caller dials the pilot and records every RTP packet it receives. baresip's
``hold`` command (ctrl_tcp) sends a re-INVITE with ``a=sendonly``: the server
answers it itself and the caller hears the group's music out of the very port
it talked to, as one stream (one SSRC, consecutive sequence numbers, timestamps
+160 per packet, a packet every 20 ms). ``resume`` brings baresip's own audio
back (its SSRC, relayed) and the music stops.
"""

from __future__ import annotations

import hashlib
import threading
from itertools import pairwise
from pathlib import Path

import pytest

from huntgroup.media.rtp import seq_diff, ts_diff
from tests.support.media_live_harness import (
    PACKET_INTERVAL,
    Arrival,
    RtpSocket,
    ServerProcess,
    SipUA,
    await_answer,
    closing_all,
    invite_pilot,
    make_config,
    rtp,
    sdp_audio,
    sdp_offer,
    start_server,
    write_tone_wav,
)
from tests.support.ports import free_port, free_port_range
from tests.support.sip_harness import Baresip, baresip_binary
from tests.support.sip_messages import SipMessage

pytestmark = pytest.mark.integration

LINE = "0102030405"
PASSWORD = "s3cret"
DOMAIN = "test.invalid"
MUSIC_PACKETS = 150  # 3 s of music


class Talker:
    """The caller's voice: an RTP packet every 20 ms to the server until stopped."""

    def __init__(self, sock: RtpSocket, to: tuple[str, int]) -> None:
        self.sock, self.to = sock, to
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        seq = 0
        while not self.done.wait(PACKET_INTERVAL):  # the RTP pace is the behaviour
            self.sock.sendto(rtp(0, seq, seq * 160, 0xCA11E4, b"\xff" * 160), self.to)
            seq += 1

    def close(self) -> None:
        self.done.set()
        self.thread.join(timeout=2)


def start(tmp_path: Path, *, mode: str = "relay") -> tuple[ServerProcess, Baresip]:
    baresip_binary()  # fails with the install hint when missing
    ha1 = hashlib.md5(f"{LINE}:{DOMAIN}:{PASSWORD}".encode()).hexdigest()
    config = make_config(
        rtp_ports=free_port_range(8),
        members=[{"line": LINE, "position": 1}],
        music=write_tone_wav(tmp_path / "tones.wav", 8000),
    )
    config["lines"] = [{"number": LINE, "name": "Agent", "ha1_md5": ha1}]
    config["server"]["media"]["mode"] = mode
    server = start_server(tmp_path, config)
    phone = Baresip(
        workdir=tmp_path / "baresip",
        number=LINE,
        password=PASSWORD,
        registrar_port=server.sip[1],
        sip_port=free_port(),
        domain=DOMAIN,
        ctrl_port=free_port(),
        audio_source="ausine,440",  # its own voice (aubridge's echo stops after a hold)
    )
    return server, phone


def check_music(heard: list[Arrival]) -> None:
    """The music as a phone's jitter buffer takes it: one SSRC, PCMU 20 ms frames,
    sequence numbers +1, timestamps +160 per packet, the first one marked, about 50
    packets a second. A tick the server's timer was more than 3 ticks late for is
    skipped, not sent in a burst (media/rtp.py): its timestamp step is then 320 with
    the sequence still +1. Two such skips at most: this machine is shared."""
    packets = [a.packet for a in heard]
    assert {p.ssrc for p in packets} == {packets[0].ssrc}, "the music changed SSRC"
    assert {p.payload_type for p in packets} == {0}
    assert all(len(p.payload) == 160 for p in packets), "not 20 ms G.711 frames"
    assert packets[0].marker, "the music starts a talkspurt (marker bit)"
    seq_steps = {seq_diff(b.sequence, a.sequence) for a, b in pairwise(packets)}
    assert seq_steps == {1}, f"sequence numbers not consecutive: {sorted(seq_steps)}"
    ts_steps = [ts_diff(b.timestamp, a.timestamp) for a, b in pairwise(packets)]
    skips = [step for step in ts_steps if step != 160]
    assert all(step % 160 == 0 and step > 0 for step in skips), f"timestamp steps {skips}"
    assert len(skips) <= 2, f"timestamp steps other than 160: {skips}"
    span = heard[-1].at - heard[0].at
    assert 45 <= (len(heard) - 1) / span <= 55, f"{len(heard)} packets in {span:.2f} s"
    gaps = sorted(b.at - a.at for a, b in pairwise(heard))
    assert abs(gaps[len(gaps) // 2] - PACKET_INTERVAL) < 0.002, "not paced every 20 ms"


def ssrcs(arrivals: list[Arrival]) -> set[int]:
    return {a.packet.ssrc for a in arrivals}


def test_baresip_holds_the_caller_hears_the_music_then_baresip_again(tmp_path: Path) -> None:
    server, phone = start(tmp_path)
    caller = SipUA("caller", server.sip)
    media = RtpSocket()
    with closing_all(caller, media, server):
        try:
            phone.start()
            phone.wait_registered()
            call = await_answer(caller, invite_pilot(caller, media.port, ("PCMU",)), timeout=15)
            talker = Talker(media, call.server_rtp)
            with closing_all(talker):
                # Bridged: baresip's audio (its SSRC) comes relayed from the server's port.
                media.wait_until(lambda a: len(a) >= 25, timeout=15)
                assert {a.source for a in media.arrivals} == {call.server_rtp}
                phone_ssrcs = ssrcs(media.arrivals)

                before = len(media.arrivals)
                phone.command("hold")
                server.wait_log(r"call \S+: put on hold by the member \(music \S+tones\.wav\)")

                def music(arrivals: list[Arrival]) -> list[Arrival]:
                    return [a for a in arrivals[before:] if a.packet.ssrc not in phone_ssrcs]

                media.wait_until(lambda a: len(music(a)) >= MUSIC_PACKETS, timeout=20)
                heard = music(media.arrivals)[:MUSIC_PACKETS]
                assert len(heard) == MUSIC_PACKETS, "no hold music"
                assert {a.source for a in heard} == {call.server_rtp}, "from the caller's port"
                check_music(heard)
                during = media.arrivals[media.arrivals.index(heard[5]) :]
                assert ssrcs(during) == {heard[0].packet.ssrc}, "the phone is not relayed"

                resumed = len(media.arrivals)
                phone.command("resume")
                server.wait_log(r"call \S+: resumed by the member")
                media.wait_until(
                    lambda a: len([x for x in a[resumed:] if x.packet.ssrc in phone_ssrcs]) >= 25,
                    timeout=15,
                )
                after = media.arrivals[resumed:]
                back = [a for a in after if a.packet.ssrc in phone_ssrcs]
                assert len(back) >= 25, "baresip's audio is not relayed again"
                music_ssrc = heard[0].packet.ssrc
                late = [a for a in after if a.packet.ssrc == music_ssrc and a.at > back[0].at]
                assert not late, "the music goes on after the resume"
                tail = [a for a in media.arrivals if a.packet.ssrc == music_ssrc]
                steps = {seq_diff(b.packet.sequence, a.packet.sequence) for a, b in pairwise(tail)}
                assert steps == {1}, "the music stream lost or repeated packets"
            call.hang_up()
        finally:
            phone.stop()


def answer_reinvite(ua: SipUA, call_id: str, rtp_port: int, direction: str) -> SipMessage:
    """The caller's side of a re-INVITE from the server: 200 with its SDP (``direction``),
    then the ACK; returns the re-INVITE."""
    invite = ua.wait(
        lambda m: m.is_request and m.method == "INVITE" and m.call_id == call_id, timeout=15
    )
    body = sdp_offer(rtp_port).replace(b"a=sendrecv", f"a={direction}".encode())
    ua.send(ua.response(invite, 200, "OK", tag="ft", body=body), invite.source)
    cseq = invite.cseq
    ua.wait(lambda m: m.is_request and m.method == "ACK" and m.cseq[0] == cseq[0], timeout=15)
    return invite


def test_direct_media_baresip_holds_the_caller_is_moved_onto_the_music_and_back(
    tmp_path: Path,
) -> None:
    """server.media.mode: direct. The phones talk end to end; baresip's hold brings the
    caller onto a port of the server by re-INVITE, for the music; the resume gives it
    baresip's own SDP again, and the audio flows end to end once more."""
    server, phone = start(tmp_path, mode="direct")
    caller = SipUA("caller", server.sip)
    media = RtpSocket()
    with closing_all(caller, media, server):
        try:
            phone.start()
            phone.wait_registered()
            call = await_answer(caller, invite_pilot(caller, media.port, ("PCMU",)), timeout=15)
            direct = call.server_rtp  # in direct mode: baresip's own SDP address
            talker = Talker(media, direct)

            def from_phone(arrival: Arrival) -> bool:  # it names eth0, sends from loopback
                return arrival.source[1] == direct[1]

            with closing_all(talker):
                media.wait_until(lambda a: len(a) >= 25, timeout=15)
                assert all(from_phone(a) for a in media.arrivals), "end to end"
                phone_ssrcs = ssrcs(media.arrivals)

                before = len(media.arrivals)
                phone.command("hold")
                moved = answer_reinvite(caller, call.call_id, media.port, "recvonly")
                address, port, _ = sdp_audio(moved.body)
                assert "a=sendonly" in moved.body and (address, port) != direct
                server.wait_log(r"call \S+: put on hold by the member")

                def music(arrivals: list[Arrival]) -> list[Arrival]:
                    return [a for a in arrivals[before:] if a.source == (address, port)]

                media.wait_until(lambda a: len(music(a)) >= MUSIC_PACKETS, timeout=20)
                heard = music(media.arrivals)[:MUSIC_PACKETS]
                assert len(heard) == MUSIC_PACKETS, "no hold music"
                check_music(heard)

                resumed = len(media.arrivals)
                phone.command("resume")
                back_to = answer_reinvite(caller, call.call_id, media.port, "sendrecv")
                assert sdp_audio(back_to.body)[:2] == direct, "baresip's own SDP again"
                server.wait_log(r"call \S+: resumed by the member; media end to end")
                media.wait_until(
                    lambda a: len([x for x in a[resumed:] if from_phone(x)]) >= 25,
                    timeout=15,
                )
                after = media.arrivals[resumed:]
                back = [a for a in after if from_phone(a)]
                assert len(back) >= 25, "baresip's audio does not come back end to end"
                assert ssrcs(back) == phone_ssrcs
                late = [a for a in after if a.source == (address, port) and a.at > back[-1].at]
                assert not late, "the music goes on after the resume"
            call.hang_up()
        finally:
            phone.stop()
