"""Announcements from the live server, as a queued caller's phone receives them.

The real ``huntgroup serve`` runs a group whose only member is logged out, so a
caller waits in the queue. The group has a greeting, a periodic message every
2 s and the position every 3 s, each a file of a pure tone of its own
frequency, and music of other tones: every RTP payload the caller receives
tells which file it comes from. The caller must hear the greeting first, whole,
then the music; the message about 2 s after entering; "you are caller number"
"1" "in the queue" about 3 s after; the music resuming where it paused; and one
RTP stream throughout (one SSRC, consecutive sequence numbers, +160
timestamps).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from huntgroup.engine.aio.music_library import MusicLibrary
from huntgroup.media.announcements import AnnouncementSource
from huntgroup.media.g711 import Codec
from huntgroup.media.rtp import seq_diff, ts_diff
from tests.support.media_live_harness import (
    LOOPBACK,
    PACKET_INTERVAL,
    Arrival,
    RtpSocket,
    SipUA,
    await_answer,
    closing_all,
    invite_pilot,
    make_config,
    start_server,
    write_tone_wav,
)
from tests.support.ports import free_port_range

pytestmark = pytest.mark.integration

RATE = 8000
FILES = {  # name -> (frequency Hz, seconds); the music's tones are 350 to 1633 Hz
    "greeting": (1000.0, 0.40),
    "busy": (1750.0, 0.30),
    "you-are-caller": (2800.0, 0.13),
    "in-queue": (3200.0, 0.13),
    **{str(d): (1900.0 + 80 * d, 0.13) for d in range(10)},
}
PERIODIC_EVERY = 2.0
POSITION_EVERY = 3.0


def write_pure_tone(path: Path, hz: float, seconds: float) -> Path:
    t = np.arange(round(seconds * RATE)) / RATE
    sf.write(os.fspath(path), 0.3 * np.sin(2 * np.pi * hz * t), RATE, subtype="PCM_16")
    return path


def signatures(paths: dict[str, Path], codec: Codec) -> dict[bytes, str]:
    """Every payload each file can produce, played as an announcement -> the file's name."""
    library = MusicLibrary()
    found: dict[bytes, str] = {}
    for name, path in paths.items():
        source = AnnouncementSource([library.get(path)], codec, None)
        while (frame := source.next_frame()) is not None:
            assert found.setdefault(frame, name) == name, "two files share a frame"
    return found


def runs(labels: list[str]) -> list[tuple[str, int]]:
    """Consecutive equal labels as (label, count)."""
    return [(label, len(list(group))) for label, group in itertools.groupby(labels)]


def test_queued_caller_hears_greeting_then_music_message_and_position(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    paths: dict[str, Path] = {}
    for name, (hz, seconds) in FILES.items():
        folder = tmp_path if name in ("greeting", "busy") else prompts
        paths[name] = write_pure_tone(folder / f"{name}.wav", hz, seconds)
    music = write_tone_wav(tmp_path / "music.wav", RATE)
    cfg = make_config(
        rtp_ports=free_port_range(8),
        music=music,
        members=[{"uri": f"sip:agent@{LOOPBACK}:9", "position": 1, "joined": False}],
    )
    cfg["groups"][0]["queue"]["announcements"] = {
        "greeting": os.fspath(paths["greeting"]),
        "periodic": {"file": os.fspath(paths["busy"]), "every": PERIODIC_EVERY},
        "position": {"prompts": os.fspath(prompts), "every": POSITION_EVERY},
    }
    codec = Codec.PCMU
    known = signatures(paths, codec)

    def label(arrival: Arrival) -> str:
        return known.get(arrival.packet.payload, "music")

    server = start_server(tmp_path, cfg)
    caller = SipUA("caller", server.sip)
    audio = RtpSocket()
    with closing_all(audio, caller, server):
        call_id = invite_pilot(caller, audio.port, (codec.value,))
        call = await_answer(caller, call_id)

        def heard_all(arrivals: list[Arrival]) -> bool:  # the position, then music again
            labels = [label(a) for a in arrivals]
            return "in-queue" in labels and labels[-1] == "music"

        arrivals = audio.wait_until(heard_all, timeout=15)
        call.hang_up()

    labels = [label(a) for a in arrivals]
    assert "in-queue" in labels, f"no position announcement in {runs(labels)}"
    heard = runs(labels)
    library = MusicLibrary()
    frames = {n: -(-library.get(p).samples // 160) for n, p in paths.items()}
    # the greeting first, whole (frames held back before the ACK are not lost; a pacer
    # late by more than its burst on a loaded machine skips a few), then music
    assert heard[0][0] == "greeting" and heard[0][1] >= frames["greeting"] - 3, heard[:3]
    assert heard[1][0] == "music"
    # the message and the position, each whole, in this order, timed from the entry
    start = arrivals[0].at
    first = {name: next(a.at for a in arrivals if label(a) == name) for name in set(labels)}
    assert ("busy", frames["busy"]) in heard
    # timed from the greeting's first packet, which leaves after the ACK: wide margins
    assert PERIODIC_EVERY - 0.5 <= first["busy"] - start <= PERIODIC_EVERY + 1.0
    position = [("you-are-caller", frames["you-are-caller"]), ("1", frames["1"])]
    position.append(("in-queue", frames["in-queue"]))
    at = heard.index(position[0])
    assert heard[at : at + 3] == position, heard
    assert POSITION_EVERY - 0.5 <= first["you-are-caller"] - start <= POSITION_EVERY + 1.0
    # the music resumes on the frame after the last one heard before the message
    tones = library.get(music)
    before = next(i for i in range(len(labels) - 1) if labels[i + 1] == "busy")
    after = next(i for i in range(before + 1, len(labels)) if labels[i] == "music")
    paused = arrivals[before].packet.payload
    candidates = [k for k in range(tones.period_frames) if tones.frame_at(k, codec) == paused]
    assert candidates
    assert any(tones.frame_at(k + 1, codec) == arrivals[after].packet.payload for k in candidates)
    # one RTP stream across every switch
    packets = [a.packet for a in arrivals]
    assert {p.ssrc for p in packets} == {packets[0].ssrc}
    assert {seq_diff(b.sequence, a.sequence) for a, b in itertools.pairwise(packets)} == {1}
    assert {ts_diff(b.timestamp, a.timestamp) for a, b in itertools.pairwise(packets)} == {160}
    gaps = np.diff([a.at for a in arrivals])
    assert abs(float(np.median(gaps)) - PACKET_INTERVAL) < 0.002
