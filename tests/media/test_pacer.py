"""The phased pacer: packet-level continuity, phase spreading, bounded catch-up and work
(time scripted: no clock, no sockets)."""

from __future__ import annotations

import random
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from huntgroup.media import music as music_module
from huntgroup.media.g711 import Codec
from huntgroup.media.music import HoldMusic, MusicCursor
from huntgroup.media.pacer import PhasedPacer
from huntgroup.media.rtp import RtpPacket, RtpStream, seq_diff, ts_diff

INTERVAL = 0.020


class Frames:
    """Numbered frames (the tick a frame was made for is readable from its payload)."""

    def __init__(self) -> None:
        self.position = 0

    def next_frame(self) -> bytes:
        self.position += 1
        return (self.position - 1).to_bytes(4, "big")

    def skip(self, count: int) -> None:
        self.position += count


Sent = dict[str, list[tuple[float, RtpPacket]]]


def _drain(
    pacer: PhasedPacer[str, None], now: float, sent: Sent, per_stream: dict[str, int] | None = None
) -> int:
    """One driver call at ``now``: every packet due, parsed, per stream; returns the
    largest number of packets one stream got (counted in ``per_stream``)."""
    per_stream = {} if per_stream is None else per_stream
    for batch in pacer.take_due(now):
        for paced in batch.streams:
            if paced.stream.write_into(paced.buffer):
                sent.setdefault(paced.key, []).append((now, RtpPacket.parse(paced.buffer)))
                per_stream[paced.key] = per_stream.get(paced.key, 0) + 1
    return max(per_stream.values(), default=0)


def _stream(seed: int) -> RtpStream:
    return RtpStream(Frames(), payload_type=0, rng=random.Random(seed))


def test_streams_are_spread_over_the_interval_and_sent_on_their_slot() -> None:
    pacer: PhasedPacer[str, None] = PhasedPacer(phases=10)
    for i in range(100):
        pacer.add(f"s{i}", _stream(i), None, now=5.0)
    assert pacer.slot_sizes() == [10] * 10  # the least loaded slot each time
    sent: Sent = {}
    calls = 0
    for _ in range(500):  # 50 intervals
        timer = pacer.get_timer()
        assert timer is not None
        now = timer
        got = pacer.take_due(now)
        calls += 1
        assert sum(len(list(b.streams)) for b in got) == 10  # one slot per wake-up
        for batch in got:
            for paced in batch.streams:
                assert paced.stream.write_into(paced.buffer)
                sent.setdefault(paced.key, []).append((now, RtpPacket.parse(paced.buffer)))
    assert calls == 500 and now == pytest.approx(5.0 + 50 * INTERVAL - INTERVAL / 10)
    for i in range(100):
        times = [t for t, _ in sent[f"s{i}"]]
        assert times[0] == pytest.approx(5.0 + (i % 10) * INTERVAL / 10)
        assert all(b - a == pytest.approx(INTERVAL) for a, b in pairwise(times))
    assert len({round(t, 6) for s in sent.values() for t, _ in s[:1]}) == 10


def test_every_slot_hears_the_same_frame_at_one_tick() -> None:
    pacer: PhasedPacer[str, None] = PhasedPacer(phases=4)
    for i in range(4):
        pacer.add(f"s{i}", _stream(i), None, now=1.0 + 0.001 * i)
    frame_times = {pacer.frame_time(f"s{i}") for i in range(4)}
    send_times = sorted(pacer.send_time(f"s{i}") for i in range(4))
    assert len(frame_times) == 1  # the music clock reads the tick's grid time
    assert send_times == pytest.approx([1.0, 1.005, 1.010, 1.015])


def test_a_stall_sends_at_most_max_burst_packets_with_the_newest_timestamps() -> None:
    pacer: PhasedPacer[str, None] = PhasedPacer(phases=2, max_burst=2)
    pacer.add("a", _stream(1), None, now=0.0)
    pacer.add("b", _stream(2), None, now=0.0)
    sent: Sent = {}
    _drain(pacer, 0.0, sent)
    _drain(pacer, 0.010, sent)
    assert _drain(pacer, 1.0105, sent) == 2  # 50 ticks due: the newest two only
    for key in ("a", "b"):
        packets = [p for _, p in sent[key]]
        assert [seq_diff(q.sequence, packets[0].sequence) for q in packets] == [0, 1, 2]
        ticks = [ts_diff(q.timestamp, packets[0].timestamp) // 160 for q in packets]
        assert ticks == [0, 49, 50]
        assert [int.from_bytes(q.payload, "big") for q in packets] == [0, 49, 50]
        assert [q.marker for q in packets] == [True, True, False]  # the gap is marked
        assert len({q.ssrc for q in packets}) == 1
    # One tick late is caught up entirely, with the right timestamps.
    _drain(pacer, 1.0505, sent)
    ticks = [ts_diff(q.timestamp, sent["a"][0][1].timestamp) // 160 for _, q in sent["a"]]
    assert ticks[-2:] == [51, 52]


def test_work_per_call_is_bounded_and_the_rest_is_due_at_once() -> None:
    pacer: PhasedPacer[str, None] = PhasedPacer(phases=10, max_burst=2, max_packets=250)
    for i in range(1000):
        pacer.add(f"s{i}", _stream(i), None, now=0.0)
    sizes = []
    now = 0.05  # a late driver: every slot is due, two or three ticks each (two are sent)
    while True:
        timer = pacer.get_timer()
        assert timer is not None
        if timer > now:
            break
        got = pacer.take_due(now)
        sizes.append(sum(len(list(b.streams)) for b in got))
    assert sizes == [200] * 10  # one whole slot per call: a second would pass 250 packets
    assert pacer.get_timer() == pytest.approx(0.052)  # slot 6, tick 2


def test_a_slot_bigger_than_the_budget_still_goes_out() -> None:
    pacer: PhasedPacer[str, None] = PhasedPacer(phases=1, max_packets=3)
    for i in range(5):
        pacer.add(f"s{i}", _stream(i), None, now=0.0)
    assert sum(len(list(b.streams)) for b in pacer.take_due(0.0)) == 5


def test_a_stream_added_to_a_late_slot_gets_no_older_tick() -> None:
    pacer: PhasedPacer[str, None] = PhasedPacer(phases=1, max_burst=3)
    pacer.add("old", _stream(1), None, now=0.0)
    sent: Sent = {}
    _drain(pacer, 0.0, sent)
    pacer.add("new", _stream(2), None, now=0.095)  # ticks 1..4 are overdue
    _drain(pacer, 0.101, sent)
    assert len(sent["old"]) == 1 + 3
    assert len(sent["new"]) == 1  # tick 5 (at 0.100), the first due after it was added
    assert int.from_bytes(sent["new"][0][1].payload, "big") == 0


def test_write_into_is_tick_without_the_objects() -> None:
    for seed in range(20):
        a, b = _stream(seed), _stream(seed)
        a.sequence = b.sequence = 65535 - seed % 3  # across the wraps
        a.timestamp = b.timestamp = 2**32 - 160 * (seed % 3 + 1)
        buffer = bytearray(12)  # the header: grown to fit the payload
        for i in range(5):
            if i == 3:
                a.set_source(Frames(), payload_type=8)
                b.set_source(Frames(), payload_type=8)
            expected = b.tick()
            assert a.write_into(buffer)
            assert bytes(buffer) == expected
    idle = RtpStream(None, payload_type=0, rng=random.Random(0))
    before = idle.timestamp
    assert not idle.write_into(bytearray(172))
    assert ts_diff(idle.timestamp, before) == 160


class SizedFrames:
    """Frames of the given sizes in turn, their bytes numbered (a G.711 frame is 160)."""

    def __init__(self, sizes: list[int]) -> None:
        self.sizes = sizes
        self.position = 0

    def next_frame(self) -> bytes:
        size = self.sizes[self.position % len(self.sizes)]
        self.position += 1
        return bytes((self.position + i) & 0xFF for i in range(size))

    def skip(self, count: int) -> None:
        self.position += count


def test_write_into_a_packet_sized_buffer_matches_tick_whatever_the_frame_size() -> None:
    sizes = [160, 160, 100, 160, 200, 160, 0, 160]
    a, b = _stream(7), _stream(7)
    a.set_source(SizedFrames(sizes))
    b.set_source(SizedFrames(sizes))
    buffer = bytearray(12 + 160)  # the pacer's buffer: the usual packet in one pack
    for i in range(3 * len(sizes)):
        if i == 5:  # a talkspurt starts: the marker bit, then cleared
            a.mark()
            b.mark()
        expected = b.tick()
        assert a.write_into(buffer)
        assert bytes(buffer) == expected


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "remove", "wake", "wake"]),
            st.integers(0, 7),
            st.floats(0, 0.15),
        ),
        max_size=80,
    ),
    st.integers(1, 5),
    st.integers(1, 3),
)
def test_continuity_and_bounds_under_random_schedules(
    ops: list[tuple[str, int, float]], phases: int, max_burst: int
) -> None:
    pacer: PhasedPacer[str, None] = PhasedPacer(phases=phases, max_burst=max_burst, max_packets=4)
    now = 0.0
    sent: Sent = {}
    added: dict[str, float] = {}
    generation = 0
    for op, key, delay in ops:
        now += delay
        name = f"k{key}"
        if op == "add" and not any(k.startswith(name + "/") and k in pacer for k in added):
            generation += 1
            stream_id = f"{name}/{generation}"
            pacer.add(stream_id, _stream(generation), None, now=now)
            added[stream_id] = now
        elif op == "remove":
            for stream_id in [k for k in added if k.startswith(name + "/") and k in pacer]:
                pacer.remove(stream_id)
        else:
            timer = pacer.get_timer()
            if timer is not None:
                now = max(now, timer)
            counts: dict[str, int] = {}
            for _ in range(8):  # work is bounded per call: the rest is due at once
                _drain(pacer, now, sent, counts)
                after = pacer.get_timer()
                if after is None or after > now:
                    break
            assert after is None or after > now
            assert max(counts.values(), default=0) <= max_burst
    for stream_id, packets in sent.items():
        first_due = added[stream_id] - 1e-9
        assert all(t >= first_due for t, _ in packets)
        assert len({p.ssrc for _, p in packets}) == 1
        for (_, p), (_, q) in pairwise(packets):
            assert seq_diff(q.sequence, p.sequence) == 1
            elapsed = int.from_bytes(q.payload, "big") - int.from_bytes(p.payload, "big")
            assert elapsed >= 1
            assert ts_diff(q.timestamp, p.timestamp) == 160 * elapsed  # time, not packets
            assert q.marker == (elapsed > 1)
    if not len(pacer):
        assert pacer.get_timer() is None


def test_prebuilt_frames_are_the_cut_frames_and_shared() -> None:
    pcm = (np.arange(1000) * 37 % 65536 - 32768).astype(np.int16)  # 6.25 frames
    music = HoldMusic(pcm, name="odd")
    frames = music.frames(Codec.PCMA)
    assert frames is not None and len(frames) == music.period_frames == 25
    a = MusicCursor(music, Codec.PCMA, -3)
    b = MusicCursor(music, Codec.PCMA, -3)
    for i in range(-3, 60):
        frame = a.next_frame()
        assert frame == music.frame_at(i, Codec.PCMA)
        assert frame is b.next_frame()  # one object for every caller at that position


def test_a_period_too_long_to_keep_is_cut_frame_by_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(music_module, "MAX_PREBUILT_BYTES", 160 * 10)
    pcm = (np.arange(1001) * 37 % 65536 - 32768).astype(np.int16)  # period: 1001 frames
    music = HoldMusic(pcm, name="long period")
    assert music.frames(Codec.PCMU) is None
    cursor = MusicCursor(music, Codec.PCMU, 995)
    cursor.skip(2)
    assert [cursor.next_frame() for _ in range(8)] == [
        music.frame_at(i, Codec.PCMU) for i in range(997, 1005)
    ]
