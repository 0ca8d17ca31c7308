"""Hold music from the live server, as a queued caller's phone receives it.

The real ``huntgroup serve`` runs as a subprocess; a hand-written SIP caller
dials the pilot of a group whose only member cannot take the call, so the
caller is queued, answered 200 with SDP, and hears the group's music file (a
WAV of known tones written by the test). The RTP stream is checked as a
phone's jitter buffer and ear would: one SSRC, consecutive sequence numbers,
timestamps +160 per packet, regular arrival, and audio equal to the file.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pytest

from huntgroup.engine.aio.music_library import MusicLibrary
from huntgroup.media import g711
from huntgroup.media.g711 import Codec
from huntgroup.media.music import FRAME_SAMPLES
from huntgroup.media.rtp import seq_diff, ts_diff
from tests.support.media_live_harness import (
    LOOPBACK,
    PACKET_INTERVAL,
    Arrival,
    RtpSocket,
    SipUA,
    answer_bye,
    answer_invite,
    await_answer,
    closing_all,
    invite_pilot,
    make_config,
    rtp,
    start_server,
    tone_sequence,
    write_tone_wav,
)

pytestmark = pytest.mark.integration

LISTEN_SECONDS = 3.0


def check_stream(arrivals: list[Arrival], payload_type: int) -> None:
    """One SSRC, consecutive sequence numbers, +160 timestamps, paced every 20 ms."""
    assert arrivals, "no RTP received"
    packets = [a.packet for a in arrivals]
    assert {p.ssrc for p in packets} == {packets[0].ssrc}, "the music changed SSRC"
    assert {p.payload_type for p in packets} == {payload_type}
    assert all(len(p.payload) == FRAME_SAMPLES for p in packets), "not 20 ms G.711 frames"
    seq_steps = [seq_diff(b.sequence, a.sequence) for a, b in itertools.pairwise(packets)]
    assert set(seq_steps) == {1}, f"sequence numbers not consecutive: {sorted(set(seq_steps))}"
    ts_steps = [ts_diff(b.timestamp, a.timestamp) for a, b in itertools.pairwise(packets)]
    assert set(ts_steps) == {FRAME_SAMPLES}, f"timestamp steps: {sorted(set(ts_steps))}"
    assert packets[0].marker, "the first packet of the music starts a talkspurt (marker bit)"
    gaps = np.diff([a.at for a in arrivals])
    # The pacer's clock is absolute: a tick that runs late is caught up by the
    # next ones. A loaded machine delays the server's timer now and then (gaps
    # of 40 to 49 ms, one to three per 3 s stream, with two CPU burners on two
    # cores): rare late ticks are tolerated, a slow, drifting or bursty pacer is not.
    late = [(i, round(g * 1000, 1)) for i, g in enumerate(gaps) if g > 2 * PACKET_INTERVAL]
    assert len(late) <= len(gaps) // 50, f"gaps longer than two packet intervals (ms): {late}"
    assert max(gaps) < 5 * PACKET_INTERVAL, f"a gap of {max(gaps) * 1000:.1f} ms"
    assert abs(float(np.median(gaps)) - PACKET_INTERVAL) < 0.002


@pytest.mark.parametrize(
    ("codec", "file_rate"),
    [(Codec.PCMU, 8000), (Codec.PCMA, 16000)],
    ids=["PCMU-8kHz-file", "PCMA-16kHz-file"],
)
def test_queued_caller_hears_the_group_music(tmp_path: Path, codec: Codec, file_rate: int) -> None:
    wav = write_tone_wav(tmp_path / "tones.wav", file_rate)
    cfg = make_config(
        rtp_ports=_ports(),
        music=wav,
        # the only member is logged out: every caller waits in the queue
        members=[{"uri": f"sip:agent@{LOOPBACK}:9", "position": 1, "joined": False}],
    )
    server = start_server(tmp_path, cfg)
    caller = SipUA("caller", server.sip)
    audio = RtpSocket()
    with closing_all(audio, caller, server):
        call_id = invite_pilot(caller, audio.port, (codec.value,))
        call = await_answer(caller, call_id)
        assert call.payload_types[0] == codec.payload_type
        time.sleep(LISTEN_SECONDS)  # the behaviour: music streams in real time
        arrivals = list(audio.arrivals)
        call.hang_up()
        bye_answered = time.time()
        time.sleep(0.4)  # the behaviour: the music stops (judged below)
        # Judged on the kernel's receive times, not on when the recording thread
        # got to each packet (it may lag on a loaded machine): a stream still
        # running would put a packet every 20 ms past the first 0.2 s.
        late = [a for a in audio.arrivals if a.at > bye_answered + 0.2]
        assert not late, f"music still sent after BYE: {len(late)} packet(s)"

    assert len(arrivals) >= (LISTEN_SECONDS - 0.5) / PACKET_INTERVAL
    assert {a.source for a in arrivals} == {call.server_rtp}, "music not sent from our SDP port"
    check_stream(arrivals, codec.payload_type)

    # Bit-exact: the frames are the G.711 encoding of the file, frame after frame,
    # from some position of the loop (the shared position of the queue).
    music = MusicLibrary().get(wav)
    packets = [a.packet for a in arrivals]
    first = packets[0]
    candidates = [
        k for k in range(music.period_frames) if music.frame_at(k, codec) == first.payload
    ]
    assert candidates, "the first frame is not a frame of the music file"

    def matches(k0: int) -> bool:
        return all(
            p.payload == music.frame_at(k0 + ts_diff(p.timestamp, first.timestamp) // 160, codec)
            for p in packets
        )

    matching = [k for k in candidates if matches(k)]
    assert matching, "a frame differs from the encoded music file"

    # The ear's check: decoded audio against the tones as written (SNR after alignment).
    decoded = np.concatenate([g711.decode(p.payload, codec) for p in packets]) / 32768.0
    reference = tone_sequence(8000)
    assert music.samples == reference.size
    snr, offset = _snr_after_alignment(decoded, reference)
    assert snr > 30.0, f"SNR {snr:.1f} dB"
    # the alignment found by ear is the position found by the bit-exact comparison
    assert offset in {(k * FRAME_SAMPLES) % music.samples for k in matching}, offset


def test_music_continues_while_a_member_rings_then_relays(tmp_path: Path) -> None:
    """Queued -> ringing -> answered: the music stream stays continuous, then RTP is relayed."""
    member = SipUA("member", ("0.0.0.0", 0))
    cfg = make_config(
        rtp_ports=_ports(),
        members=[{"uri": f"sip:agent@{LOOPBACK}:{member.port}", "position": 1}],
    )
    server = start_server(tmp_path, cfg)
    member.server = server.sip
    first, second = SipUA("first", server.sip), SipUA("second", server.sip)
    first_audio, second_audio, member_audio = RtpSocket(), RtpSocket(), RtpSocket()
    with closing_all(first_audio, second_audio, member_audio, first, second, member, server):
        # The first caller takes the only member: the member is busy.
        call_a = invite_pilot(first, first_audio.port, ("PCMU",))
        leg_a, _ = answer_invite(member, member_audio.port)
        a = await_answer(first, call_a)
        # The second caller waits in the queue, answered, with music.
        call_b = invite_pilot(second, second_audio.port, ("PCMU",))
        b = await_answer(second, call_b)
        time.sleep(1.0)  # the behaviour: the queued caller hears music
        # The first call ends: the member is free, the queued caller is offered to it.
        a.hang_up()
        answer_bye(member, leg_a.call_id)
        ring_started = time.time()
        leg_b, engine_member_rtp = answer_invite(member, member_audio.port, ring_for=0.6)
        answered = time.time()
        # The member talks; the waiting caller must now hear it, not the music.
        member_ssrc = 0x4D454D42
        for i in range(25):
            member_audio.sendto(
                rtp(0, 1000 + i, 5000 + 160 * i, member_ssrc, bytes([i]) * 160),
                engine_member_rtp,
            )
            second_audio.sendto(
                rtp(0, 7000 + i, 9000 + 160 * i, 0xCA11, bytes([200 - i]) * 160), b.server_rtp
            )
            time.sleep(PACKET_INTERVAL)  # the caller talks at the RTP pace
        heard_by_member = member_audio.wait_for(25)
        # the member's 25 packets relayed to the waiting caller, before it hangs up
        second_audio.wait_until(lambda got: sum(x.packet.ssrc == member_ssrc for x in got) >= 25)
        b.hang_up()
        answer_bye(member, leg_b.call_id)

    music = [x for x in second_audio.arrivals if x.packet.ssrc != member_ssrc]
    relayed = [x for x in second_audio.arrivals if x.packet.ssrc == member_ssrc]
    assert music and relayed
    check_stream(music, 0)
    ringing = [x for x in music if ring_started + 0.05 < x.at < answered - 0.05]
    assert len(ringing) >= 0.4 / PACKET_INTERVAL, "the music stopped while the member rang"
    assert max(x.at for x in music) < min(x.at for x in relayed) + 2 * PACKET_INTERVAL, (
        "music still sent after the member's audio started"
    )
    assert [x.packet.payload for x in relayed] == [bytes([i]) * 160 for i in range(25)]
    from_caller = [x for x in heard_by_member if x.packet.ssrc == 0xCA11]
    assert [x.packet.payload for x in from_caller] == [bytes([200 - i]) * 160 for i in range(25)]


def _ports() -> tuple[int, int]:
    from tests.support.ports import free_port_range

    return free_port_range(8)


def _snr_after_alignment(decoded: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    """SNR (dB) of ``decoded`` against the looped ``reference`` at the best circular offset."""
    n = reference.size
    head = decoded[:n]
    corr = np.fft.irfft(np.conj(np.fft.rfft(head, n)) * np.fft.rfft(reference, n), n)
    offset = int(np.argmax(corr))
    expected = np.resize(np.roll(reference, -offset), decoded.size)
    noise = float(np.sum((decoded - expected) ** 2))
    return 10 * np.log10(float(np.sum(expected**2)) / max(noise, 1e-20)), offset


def test_callers_queued_at_different_times_hear_the_same_position(tmp_path: Path) -> None:
    """The queue has one shared music clock: a caller who joins later hears the same music."""
    wav = write_tone_wav(tmp_path / "tones.wav", 8000)
    cfg = make_config(
        rtp_ports=_ports(),
        music=wav,
        members=[{"uri": f"sip:agent@{LOOPBACK}:9", "position": 1, "joined": False}],
    )
    server = start_server(tmp_path, cfg)
    early, late = SipUA("early", server.sip), SipUA("late", server.sip)
    early_audio, late_audio = RtpSocket(), RtpSocket()
    with closing_all(early_audio, late_audio, early, late, server):
        a = await_answer(early, invite_pilot(early, early_audio.port, ("PCMU",)))
        time.sleep(0.51)  # join mid-file, off the 20 ms grid
        b = await_answer(late, invite_pilot(late, late_audio.port, ("PCMU",)))
        time.sleep(1.0)  # the behaviour: both hear the music a while
        a.hang_up()
        b.hang_up()
    pairs = []
    for x in late_audio.arrivals:
        nearest = min(early_audio.arrivals, key=lambda y: abs(y.at - x.at))
        if abs(nearest.at - x.at) < PACKET_INTERVAL / 4:
            pairs.append((nearest.packet.payload, x.packet.payload))
    assert len(pairs) >= 0.8 / PACKET_INTERVAL
    music = MusicLibrary().get(wav)
    shift = {
        next(k for k in range(music.period_frames) if music.frame_at(k, Codec.PCMU) == q)
        - next(k for k in range(music.period_frames) if music.frame_at(k, Codec.PCMU) == p)
        for p, q in pairs[:5]
    }
    # A caller who joins mid-file starts at the queue's current position (not at the
    # start of the file, which would be 25 frames off). The exact same frame is the
    # invariant; it is pinned down without timing luck in test_music_position_live.py.
    assert len(shift) == 1 and abs(next(iter(shift))) <= 1, f"{shift} frame(s) off"
