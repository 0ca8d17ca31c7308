"""RTP packets, wrap-around arithmetic, streams and the pacing scheduler (time scripted)."""

from __future__ import annotations

import random
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from huntgroup.errors import MediaError
from huntgroup.media.g711 import Codec
from huntgroup.media.music import HoldMusic, MusicCursor, SilenceSource
from huntgroup.media.rtp import (
    InvalidRtpPacket,
    PacingScheduler,
    RtpExtension,
    RtpPacket,
    RtpStream,
    seq_add,
    seq_diff,
    ts_add,
    ts_diff,
)

# --- Packets ---

packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 65535),
    timestamp=st.integers(0, 2**32 - 1),
    ssrc=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=200),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 2**32 - 1), max_size=15).map(tuple),
    extension=st.none()
    | st.builds(
        RtpExtension,
        profile=st.integers(0, 65535),
        data=st.binary(max_size=40).map(lambda b: b[: len(b) // 4 * 4]),
    ),
    padding=st.integers(0, 255),
)


@given(packets)
def test_roundtrip(packet: RtpPacket) -> None:
    wire = packet.to_bytes()
    assert RtpPacket.parse(wire) == packet
    assert wire[0] >> 6 == 2
    assert (
        len(wire)
        == 12
        + 4 * len(packet.csrcs)
        + (0 if packet.extension is None else 4 + len(packet.extension.data))
        + len(packet.payload)
        + packet.padding
    )


@given(st.binary(max_size=100))
def test_parse_raises_only_invalid_rtp_packet(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except InvalidRtpPacket:
        return
    assert packet.to_bytes() == data or packet.padding  # padding octets are not kept


def test_known_packet_layout() -> None:
    wire = bytes.fromhex("80e0 0102 0a0b0c0d 11223344") + b"\xff" * 160
    packet = RtpPacket.parse(wire)
    assert packet.payload_type == 0x60
    assert packet.marker
    assert (packet.sequence, packet.timestamp, packet.ssrc) == (0x0102, 0x0A0B0C0D, 0x11223344)
    assert packet.payload == b"\xff" * 160
    full = RtpPacket(
        8, 1, 2, 3, b"ab", csrcs=(9,), extension=RtpExtension(0xBEDE, b"wxyz"), padding=3
    )
    assert (
        full.to_bytes()
        == bytes.fromhex("b108 0001 00000002 00000003 00000009 bede0001")
        + b"wxyz"
        + b"ab"
        + b"\x00\x00\x03"
    )


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\x80\x00\x00", "shorter than"),
        (bytes.fromhex("40000000000000000000000000"), "version 1"),
        (bytes.fromhex("83000000000000000000000000000000"), "CSRC list"),
        (bytes.fromhex("900000000000000000000000bede"), "extension"),
        (bytes.fromhex("900000000000000000000000bede0002aaaabbbb"), "extension"),
        (bytes.fromhex("a0000000000000000000000000"), "padding count 0"),
        (bytes.fromhex("a000000000000000000000000005"), "padding count 5"),
    ],
)
def test_bad_headers(data: bytes, fragment: str) -> None:
    with pytest.raises(InvalidRtpPacket, match=fragment) as info:
        RtpPacket.parse(data)
    assert isinstance(info.value, MediaError)


def test_fields_out_of_range_cannot_be_built() -> None:
    for kwargs in (
        {"payload_type": 128},
        {"sequence": 65536},
        {"timestamp": -1},
        {"ssrc": 2**32},
        {"csrcs": tuple(range(16))},
        {"padding": 256},
    ):
        base: dict[str, object] = {"payload_type": 0, "sequence": 0, "timestamp": 0, "ssrc": 0}
        base.update(kwargs)
        with pytest.raises(InvalidRtpPacket):
            RtpPacket(**base)  # type: ignore[arg-type]
    with pytest.raises(InvalidRtpPacket):
        RtpExtension(1, b"abc")


# --- Wrap-around ---


def test_wrap_helpers() -> None:
    assert seq_add(65535, 1) == 0
    assert seq_diff(0, 65535) == 1
    assert seq_diff(65535, 0) == -1
    assert seq_diff(10, 10) == 0
    assert ts_add(2**32 - 80, 160) == 80
    assert ts_diff(80, 2**32 - 80) == 160
    assert ts_diff(2**32 - 80, 80) == -160


@given(st.integers(0, 65535), st.integers(-32768, 32767))
def test_seq_diff_inverts_seq_add(seq: int, n: int) -> None:
    assert seq_diff(seq_add(seq, n), seq) == n


@given(st.integers(0, 2**32 - 1), st.integers(-(2**31), 2**31 - 1))
def test_ts_diff_inverts_ts_add(ts: int, n: int) -> None:
    assert ts_diff(ts_add(ts, n), ts) == n


# --- Streams ---


class Frames:
    """A frame source that numbers its frames, with gaps when asked."""

    def __init__(self, tag: int, gaps: frozenset[int] = frozenset()) -> None:
        self.tag = tag
        self.position = 0
        self.gaps = gaps

    def next_frame(self) -> bytes | None:
        position = self.position
        self.position += 1
        if position in self.gaps:
            return None
        return bytes([self.tag]) + position.to_bytes(4, "big")

    def skip(self, count: int) -> None:
        self.position += count


def test_stream_numbers_from_injected_rng() -> None:
    a = RtpStream(Frames(1), payload_type=0, rng=random.Random(42))
    b = RtpStream(Frames(1), payload_type=0, rng=random.Random(42))
    c = RtpStream(Frames(1), payload_type=0, rng=random.Random(43))
    assert (a.ssrc, a.sequence, a.timestamp) == (b.ssrc, b.sequence, b.timestamp)
    assert (a.ssrc, a.sequence, a.timestamp) != (c.ssrc, c.sequence, c.timestamp)


def test_stream_continues_across_a_change_of_source_and_payload_type() -> None:
    stream = RtpStream(Frames(1), payload_type=0, rng=random.Random(1))
    stream.sequence, stream.timestamp = 65534, 2**32 - 160  # cross both wraps
    sent = [RtpPacket.parse(p) for p in (stream.tick(), stream.tick()) if p is not None]
    stream.set_source(SilenceSource(Codec.PCMA), payload_type=8)
    sent += [RtpPacket.parse(p) for p in (stream.tick(), stream.tick()) if p is not None]
    assert [p.sequence for p in sent] == [65534, 65535, 0, 1]
    assert [p.timestamp for p in sent] == [2**32 - 160, 0, 160, 320]
    assert [p.marker for p in sent] == [True, False, True, False]
    assert [p.payload_type for p in sent] == [0, 0, 8, 8]
    assert {p.ssrc for p in sent} == {stream.ssrc}
    assert sent[2].payload == b"\xd5" * 160


def test_a_tick_without_payload_advances_time_not_sequence() -> None:
    stream = RtpStream(Frames(1, gaps=frozenset({1, 2})), payload_type=0, rng=random.Random(2))
    out = [stream.tick() for _ in range(4)]
    assert out[1] is None and out[2] is None
    first, last = RtpPacket.parse(out[0] or b""), RtpPacket.parse(out[3] or b"")
    assert seq_diff(last.sequence, first.sequence) == 1
    assert ts_diff(last.timestamp, first.timestamp) == 3 * 160
    assert last.marker  # a new talkspurt
    idle = RtpStream(None, payload_type=0, rng=random.Random(3))
    assert idle.tick() is None


def test_stream_resumes_from_saved_state() -> None:
    stream = RtpStream(Frames(1), payload_type=8, rng=random.Random(5))
    stream.tick()
    state = stream.state
    resumed = RtpStream.resume(state, Frames(2))
    packet = RtpPacket.parse(resumed.tick() or b"")
    assert (packet.ssrc, packet.sequence, packet.timestamp, packet.payload_type) == (
        state.ssrc,
        state.sequence,
        state.timestamp,
        8,
    )
    with pytest.raises(InvalidRtpPacket):
        RtpStream(None, payload_type=200, rng=random.Random(0))


# --- Pacing scheduler ---


def _parse(out: list[tuple[str, bytes]]) -> list[tuple[str, RtpPacket]]:
    return [(k, RtpPacket.parse(p)) for k, p in out]


def test_one_timer_paces_all_streams_every_20_ms() -> None:
    rng = random.Random(9)
    sched: PacingScheduler[str] = PacingScheduler()
    assert sched.get_timer() is None
    assert sched.handle_timer(now=5.0) == []
    now = 100.0
    sched.add("a", RtpStream(Frames(1), payload_type=0, rng=rng), now=now)
    assert sched.get_timer() == now  # an idle scheduler sends at once
    assert [k for k, _ in sched.handle_timer(now=now)] == ["a"]
    assert sched.handle_timer(now=now + 0.005) == []
    sched.add("b", RtpStream(Frames(2), payload_type=8, rng=rng), now=now + 0.007)
    timer = sched.get_timer()
    assert timer == pytest.approx(now + 0.020)
    assert [k for k, _ in sched.handle_timer(now=now + 0.020)] == ["a", "b"]
    seen: dict[str, list[RtpPacket]] = {"a": [], "b": []}
    t = now + 0.020
    for _ in range(200):
        timer = sched.get_timer()
        assert timer is not None
        assert timer == pytest.approx(t + 0.020)
        t = timer
        for k, p in _parse(sched.handle_timer(now=t)):
            seen[k].append(p)
    for packets in seen.values():
        assert len(packets) == 200
        assert all(seq_diff(q.sequence, p.sequence) == 1 for p, q in pairwise(packets))
        assert all(ts_diff(q.timestamp, p.timestamp) == 160 for p, q in pairwise(packets))
    # No drift: tick 10,000 lands exactly on the grid.
    assert sched.get_timer() == pytest.approx(now + 0.020 * 202)


def test_late_driver_catches_up_without_a_burst() -> None:
    sched: PacingScheduler[str] = PacingScheduler(max_burst=3)
    source = Frames(1)
    stream = RtpStream(source, payload_type=0, rng=random.Random(4))
    sched.add("a", stream, now=0.0)
    first = RtpPacket.parse(sched.handle_timer(now=0.0)[0][1])
    # The driver wakes 1 s late: 50 ticks are due; only the last 3 are sent.
    out = _parse(sched.handle_timer(now=1.0 + 0.001))
    assert len(out) == 3
    assert [seq_diff(p.sequence, first.sequence) for _, p in out] == [1, 2, 3]
    assert [ts_diff(p.timestamp, first.timestamp) // 160 for _, p in out] == [48, 49, 50]
    assert [int.from_bytes(p.payload[1:], "big") for _, p in out] == [48, 49, 50]
    assert out[0][1].marker  # the gap starts a new talkspurt
    assert sched.get_timer() == pytest.approx(1.02)
    # A small delay (2 ticks) is caught up entirely.
    out = _parse(sched.handle_timer(now=1.061))
    assert [ts_diff(p.timestamp, first.timestamp) // 160 for _, p in out] == [51, 52, 53]


def test_streams_added_and_removed_at_any_time() -> None:
    rng = random.Random(11)
    sched: PacingScheduler[int] = PacingScheduler()
    sched.add(1, RtpStream(Frames(1), payload_type=0, rng=rng), now=0.0)
    sched.handle_timer(now=0.0)
    # Added while the driver is late: no packets for ticks before it existed.
    sched.add(2, RtpStream(Frames(2), payload_type=0, rng=rng), now=0.095)
    out = sched.handle_timer(now=0.101)
    counts = {k: sum(1 for j, _ in out if j == k) for k in (1, 2)}
    assert counts == {1: 3, 2: 1}
    assert sched.remove(1) is not None
    assert sched.remove(1) is None
    assert 1 not in sched and 2 in sched
    assert [k for k, _ in sched.handle_timer(now=0.12)] == [2]
    with pytest.raises(KeyError):
        sched.add(2, RtpStream(None, payload_type=0, rng=rng), now=0.12)
    sched.remove(2)
    assert sched.get_timer() is None
    assert len(sched) == 0


def test_music_continues_across_source_change_and_reload() -> None:
    music = HoldMusic(np.arange(-800, 800, dtype=np.int16) * 20, name="m")
    reloaded = HoldMusic(np.zeros(1600, dtype=np.int16), name="reloaded")
    sched: PacingScheduler[str] = PacingScheduler()
    stream = RtpStream(MusicCursor(music, Codec.PCMU, 0), payload_type=0, rng=random.Random(0))
    sched.add("call", stream, now=0.0)
    sent = [p for t in range(5) for _, p in _parse(sched.handle_timer(now=t * 0.02))]
    stream.set_source(MusicCursor(reloaded, Codec.PCMU, 0))
    sent += [p for t in range(5, 10) for _, p in _parse(sched.handle_timer(now=t * 0.02))]
    assert len(sent) == 10
    assert all(seq_diff(q.sequence, p.sequence) == 1 for p, q in pairwise(sent))
    assert all(ts_diff(q.timestamp, p.timestamp) == 160 for p, q in pairwise(sent))
    assert sent[4].payload == music.frame_at(4, Codec.PCMU)
    assert sent[5].payload == b"\xff" * 160
    assert [p.marker for p in sent] == [True, False, False, False, False, True] + [False] * 4


@given(
    st.lists(
        st.tuples(st.sampled_from(["add", "remove", "wake"]), st.integers(0, 5), st.floats(0, 0.2)),
        max_size=60,
    )
)
def test_scheduler_invariants_under_random_schedules(
    ops: list[tuple[str, int, float]],
) -> None:
    sched: PacingScheduler[int] = PacingScheduler(max_burst=3)
    rng = random.Random(0)
    now = 0.0
    last: dict[int, RtpPacket] = {}
    for op, key, delay in ops:
        now += delay
        if op == "add" and key not in sched:
            sched.add(key, RtpStream(Frames(key), payload_type=0, rng=rng), now=now)
            last.pop(key, None)
        elif op == "remove":
            sched.remove(key)
        else:
            timer = sched.get_timer()
            if timer is not None:
                now = max(now, timer)
            out = _parse([(str(k), p) for k, p in sched.handle_timer(now=now)])
            per_stream: dict[str, int] = {}
            for k, p in out:
                per_stream[k] = per_stream.get(k, 0) + 1
                prev = last.get(int(k))
                if prev is not None:
                    assert seq_diff(p.sequence, prev.sequence) == 1
                    assert ts_diff(p.timestamp, prev.timestamp) >= 160
                last[int(k)] = p
            assert all(n <= 3 for n in per_stream.values())
            after = sched.get_timer()
            assert after is None or after > now
