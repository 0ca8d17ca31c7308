"""The phased pacer through the real MediaEngine, its sockets and its timer.

Many queued callers at once are spread over the pacer's slots, and each one's
packets, as they arrive on the wire, keep RFC 3550 continuity: one SSRC,
sequence +1 and timestamp +160 per packet, the marker bit on the first,
across a bridge and a hold (the music stops, then plays again on the same
stream).
"""

from __future__ import annotations

import asyncio
import gc
from itertools import pairwise

import pytest

from huntgroup.engine.aio.media_io import MediaEngine
from huntgroup.media.commands import CloseMedia, PlayMusic, StartRelay
from huntgroup.media.g711 import Codec
from huntgroup.media.rtp import RtpPacket, seq_diff, ts_diff
from tests.support.media_live_harness import LOOPBACK, RtpSocket, closing_all
from tests.support.ports import free_port_range

pytestmark = pytest.mark.integration

CALLERS = 30


async def _play(music: RtpSocket, member: RtpSocket) -> list[int]:
    loop = asyncio.get_running_loop()
    engine = MediaEngine(loop, LOOPBACK)
    low, _ = free_port_range(2 * CALLERS + 4)
    to_music, to_member = (LOOPBACK, music.port), (LOOPBACK, member.port)
    for i in range(CALLERS):
        engine.execute(PlayMusic(f"c{i}", low + 2 * i, to_music, Codec.PCMU, 0, None))
    sizes = engine.scheduler.slot_sizes()
    await asyncio.sleep(0.3)
    # c0 is bridged (the music stops), then its member holds: the caller hears the music
    # again, on the same stream.
    engine.execute(StartRelay("c0", low, to_music, low + 2 * CALLERS, to_member))
    await asyncio.sleep(0.1)
    engine.execute(PlayMusic("c0", low, to_music, Codec.PCMU, 0, None, side="caller"))
    # c1 is bridged, its caller holds: the member hears the music out of the member's
    # port; then the caller resumes as the member holds: the same stream moves back to
    # the caller's port with no relay in between.
    c1_member = low + 2 * CALLERS + 2
    engine.execute(StartRelay("c1", low + 2, to_music, c1_member, to_member))
    engine.execute(PlayMusic("c1", c1_member, to_member, Codec.PCMU, 0, None, side="member"))
    await asyncio.sleep(0.2)
    engine.execute(PlayMusic("c1", low + 2, to_music, Codec.PCMU, 0, None, side="caller"))
    await asyncio.sleep(0.3)
    for i in range(CALLERS):
        engine.execute(CloseMedia(f"c{i}", ()))
    engine.close_all()
    return sizes


def test_many_callers_are_spread_over_slots_and_each_stream_stays_continuous() -> None:
    music, member = RtpSocket(), RtpSocket()
    gc.collect()
    gc.freeze()  # as the server does after start-up: a full collection of the test
    # process's heap would stall the loop for several ticks (then skipped, by design)
    try:
        with closing_all(music, member):
            sizes = asyncio.run(_play(music, member))
            music.wait_until(lambda arrivals: len(arrivals) >= CALLERS * 20)
            member.wait_until(lambda arrivals: len(arrivals) >= 5)
    finally:
        gc.unfreeze()
    assert sizes == [3] * 10  # 30 callers over the 10 slots of 2 ms
    streams: dict[int, list[tuple[float, RtpPacket]]] = {}
    for arrival in music.arrivals + member.arrivals:
        streams.setdefault(arrival.packet.ssrc, []).append((arrival.at, arrival.packet))
    assert len(streams) == CALLERS  # one SSRC per caller, across bridges and holds
    held = {a.packet.ssrc for a in member.arrivals}
    assert len(held) == 1  # c1's music went to its member while its caller held
    c1 = held.pop()
    assert any(a.packet.ssrc == c1 and a.at > member.arrivals[-1].at for a in music.arrivals)
    marked = []
    for ssrc, timed in streams.items():
        packets = [p for _, p in sorted(timed, key=lambda tp: tp[0])]
        assert len(packets) >= 15
        assert packets[0].marker
        for p, q in pairwise(packets):
            assert seq_diff(q.sequence, p.sequence) == 1, ssrc
            assert ts_diff(q.timestamp, p.timestamp) == 160, ssrc
        assert {p.payload_type for p in packets} == {0}
        marked.append(sum(p.marker for p in packets))
    # c0's and c1's music started again after a pause (the bridge): that packet is marked
    # (c1 twice: its music also moved back to the caller)
    assert sorted(marked) == [1] * (CALLERS - 2) + [2, 3]
