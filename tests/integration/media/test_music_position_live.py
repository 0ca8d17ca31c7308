"""The shared music position, through the real MediaEngine, its sockets and its pacing timer.

``huntgroup.media.music`` promises that every queued caller hears the same
music at the same position: packets sent in the same tick carry the same
frame. Here two callers start within microseconds of each other, half a frame
after the engine's music epoch, so the result does not depend on timing luck.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from huntgroup.engine.aio.media_io import MediaEngine
from huntgroup.engine.aio.music_library import MusicLibrary
from huntgroup.media.commands import CloseMedia, PlayMusic
from huntgroup.media.g711 import Codec
from huntgroup.media.music import FRAME_SECONDS
from tests.support.media_live_harness import (
    LOOPBACK,
    Arrival,
    RtpSocket,
    closing_all,
    write_tone_wav,
)
from tests.support.ports import free_port_range

pytestmark = pytest.mark.integration


async def _two_callers(wav: Path, first: RtpSocket, second: RtpSocket) -> None:
    loop = asyncio.get_running_loop()
    engine = MediaEngine(loop, LOOPBACK, library=MusicLibrary())
    low, _ = free_port_range(4)
    # Half a frame after the music epoch: the phase at which a new stream's first
    # scheduler tick falls in the next frame of the shared clock.
    await asyncio.sleep(FRAME_SECONDS / 2)
    engine.execute(PlayMusic("a", low, (LOOPBACK, first.port), Codec.PCMU, 0, str(wav)))
    engine.execute(PlayMusic("b", low + 2, (LOOPBACK, second.port), Codec.PCMU, 0, str(wav)))
    await asyncio.sleep(0.3)  # the behaviour: both streams play a while
    engine.execute(CloseMedia("a", (low,)))
    engine.execute(CloseMedia("b", (low + 2,)))
    engine.close_all()


def test_callers_started_together_get_the_same_frame_each_tick(tmp_path: Path) -> None:
    wav = write_tone_wav(tmp_path / "tones.wav", 8000)
    first, second = RtpSocket(), RtpSocket()

    def tick_pairs(arrivals: list[Arrival]) -> list[tuple[bytes, bytes]]:
        """The packets sent by the same tick of the pacing timer (same arrival time)."""
        pairs = []
        for x in arrivals:
            if not first.arrivals:
                break
            y = min(first.arrivals, key=lambda y: abs(y.at - x.at))
            if abs(y.at - x.at) < FRAME_SECONDS / 4:
                pairs.append((y.packet.payload, x.packet.payload))
        return pairs

    with closing_all(first, second):
        asyncio.run(_two_callers(wav, first, second))
        # the recording threads may lag behind the kernel on a loaded machine
        second.wait_until(lambda arrivals: len(tick_pairs(arrivals)) >= 10)
    pairs = tick_pairs(second.arrivals)
    assert len(pairs) >= 10
    assert all(p == q for p, q in pairs), "the two callers hear different frames in one tick"
