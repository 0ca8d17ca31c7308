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

from huntgroup.media.rtp import seq_diff
from tests.integration.media.test_hold_music_live import check_stream
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
    start_server,
    write_tone_wav,
)
from tests.support.ports import free_port, free_port_range
from tests.support.sip_harness import Baresip, baresip_binary

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


def start(tmp_path: Path) -> tuple[ServerProcess, Baresip]:
    baresip_binary()  # fails with the install hint when missing
    ha1 = hashlib.md5(f"{LINE}:{DOMAIN}:{PASSWORD}".encode()).hexdigest()
    config = make_config(
        rtp_ports=free_port_range(8),
        members=[{"line": LINE, "position": 1}],
        music=write_tone_wav(tmp_path / "tones.wav", 8000),
    )
    config["lines"] = [{"number": LINE, "name": "Agent", "ha1_md5": ha1}]
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
                check_stream(heard, payload_type=0)  # one SSRC, +1, +160, every 20 ms
                span = heard[-1].at - heard[0].at
                assert 45 <= (len(heard) - 1) / span <= 55, f"{len(heard)} packets in {span} s"
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
