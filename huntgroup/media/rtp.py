"""RTP (RFC 3550) packets, stream state and one pacing scheduler for all streams.

Theory of operation
-------------------
*Packets.* :class:`RtpPacket` is the fixed 12-byte header plus CSRC list,
optional header extension, payload and padding. :meth:`RtpPacket.parse`
accepts a datagram or raises :class:`InvalidRtpPacket`, and nothing else; the
caller drops the datagram and counts it.

*Sequence and timestamp arithmetic.* Sequence numbers wrap at 2^16 and
timestamps at 2^32; :func:`seq_diff` and :func:`ts_diff` give the signed
distance (the shortest way round), so ordering survives the wrap.

*Streams.* An :class:`RtpStream` is what we send to one peer: an SSRC and
initial sequence number and timestamp drawn from an injected random
generator, and a :class:`FrameSource` that yields one 20 ms payload per tick.
The source can be swapped at any time (music -> ringback -> silence, or the
music of a reloaded configuration): the SSRC stays, the sequence number
continues by one per packet sent and the timestamp by 160 per tick, and the
first packet from the new source carries the marker bit. A tick where the
source has nothing to send still advances the timestamp (time went on), not
the sequence number (no packet was lost).

*Pacing.* :class:`PacingScheduler` is one sans-I/O timer for every stream of
the process, not a task per call. Ticks are numbered from an origin so that
their times never drift: tick ``k`` is due at ``origin + k * interval``. The
driver arms one timer at :meth:`~PacingScheduler.get_timer` and calls
:meth:`~PacingScheduler.handle_timer` with the time; each stream gets one
packet per due tick. When the driver is late by more than ``max_burst`` ticks,
a stream gets only the last ``max_burst`` packets; the older ticks are skipped
(timestamps and music positions move on, sequence numbers do not), so a stall
never turns into a burst that overflows a phone's jitter buffer.

Invariants
----------
* ``RtpPacket.parse(p.to_bytes()) == p`` for every valid packet.
* A stream's packets have consecutive sequence numbers (mod 2^16), one SSRC,
  and timestamps that advance by 160 per elapsed tick.
* A stream never gets more than ``max_burst`` packets from one call of
  ``handle_timer``, and never a packet for a tick before it was added.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Final, Generic, Protocol, TypeVar

from huntgroup.errors import MediaError

__all__ = [
    "RTP_VERSION",
    "FrameSource",
    "InvalidRtpPacket",
    "PacingScheduler",
    "RtpExtension",
    "RtpPacket",
    "RtpStream",
    "RtpStreamState",
    "seq_add",
    "seq_diff",
    "ts_add",
    "ts_diff",
]

RTP_VERSION: Final = 2
HEADER_SIZE: Final = 12
SEQ_MOD: Final = 1 << 16
TS_MOD: Final = 1 << 32
_HEADER = struct.Struct("!BBHII")
_pack_header_into = _HEADER.pack_into
FRAME_BYTES: Final = 160  # a 20 ms G.711 frame: the payload of (almost) every paced packet
_pack_packet_into = struct.Struct(f"!BBHII{FRAME_BYTES}s").pack_into  # header and frame
_EXT_HEADER = struct.Struct("!HH")


class InvalidRtpPacket(MediaError):
    """A datagram that is not a valid RTP packet, or fields that cannot be sent."""


# --- Wrap-around arithmetic ---------------------------------------------------


def seq_add(seq: int, n: int) -> int:
    """``seq + n`` modulo 2^16."""
    return (seq + n) % SEQ_MOD


def seq_diff(a: int, b: int) -> int:
    """The signed distance ``a - b`` between sequence numbers, in [-32768, 32767]."""
    return (a - b + SEQ_MOD // 2) % SEQ_MOD - SEQ_MOD // 2


def ts_add(ts: int, n: int) -> int:
    """``ts + n`` modulo 2^32."""
    return (ts + n) % TS_MOD


def ts_diff(a: int, b: int) -> int:
    """The signed distance ``a - b`` between timestamps, in [-2^31, 2^31 - 1]."""
    return (a - b + TS_MOD // 2) % TS_MOD - TS_MOD // 2


# --- Packets ----------------------------------------------------------------


def _check_header_fields(payload_type: int, sequence: int, timestamp: int, ssrc: int) -> None:
    if not 0 <= payload_type < 128:
        raise InvalidRtpPacket(f"payload type {payload_type} is not 7-bit")
    if not 0 <= sequence < SEQ_MOD:
        raise InvalidRtpPacket(f"sequence number {sequence} is not 16-bit")
    if not 0 <= timestamp < TS_MOD:
        raise InvalidRtpPacket(f"timestamp {timestamp} is not 32-bit")
    if not 0 <= ssrc < TS_MOD:
        raise InvalidRtpPacket(f"SSRC {ssrc} is not 32-bit")


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """A header extension (RFC 3550 5.3.1): a 16-bit profile value and 32-bit words."""

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.profile < 1 << 16:
            raise InvalidRtpPacket(f"extension profile {self.profile} is not 16-bit")
        if len(self.data) % 4 or len(self.data) // 4 >= 1 << 16:
            raise InvalidRtpPacket("extension data must be whole 32-bit words (< 65536)")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet. ``padding`` is the number of padding octets (0 = none)."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0

    def __post_init__(self) -> None:
        _check_header_fields(self.payload_type, self.sequence, self.timestamp, self.ssrc)
        if len(self.csrcs) > 15 or not all(0 <= c < TS_MOD for c in self.csrcs):
            raise InvalidRtpPacket("at most 15 CSRCs, each 32-bit")
        if not 0 <= self.padding <= 255:
            raise InvalidRtpPacket(f"padding {self.padding} is not 0..255 octets")

    def to_bytes(self) -> bytes:
        """The packet on the wire."""
        first = (RTP_VERSION << 6) | (len(self.csrcs) & 0x0F)
        if self.padding:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        second = (0x80 if self.marker else 0) | self.payload_type
        out = [_HEADER.pack(first, second, self.sequence, self.timestamp, self.ssrc)]
        out += [struct.pack("!I", c) for c in self.csrcs]
        if self.extension is not None:
            ext = self.extension
            out.append(_EXT_HEADER.pack(ext.profile, len(ext.data) // 4) + ext.data)
        out.append(self.payload)
        if self.padding:
            out.append(b"\x00" * (self.padding - 1) + bytes([self.padding]))
        return b"".join(out)

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> RtpPacket:
        """The packet in ``data``; raises InvalidRtpPacket for anything malformed."""
        buf = bytes(data)
        if len(buf) < HEADER_SIZE:
            raise InvalidRtpPacket(f"{len(buf)} bytes is shorter than an RTP header")
        first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(buf)
        if first >> 6 != RTP_VERSION:
            raise InvalidRtpPacket(f"RTP version {first >> 6}, expected 2")
        offset = HEADER_SIZE
        count = first & 0x0F
        if len(buf) < offset + 4 * count:
            raise InvalidRtpPacket("CSRC list runs past the end of the packet")
        csrcs = struct.unpack_from(f"!{count}I", buf, offset)
        offset += 4 * count
        extension = None
        if first & 0x10:
            if len(buf) < offset + 4:
                raise InvalidRtpPacket("header extension runs past the end of the packet")
            profile, words = _EXT_HEADER.unpack_from(buf, offset)
            offset += 4
            if len(buf) < offset + 4 * words:
                raise InvalidRtpPacket("header extension runs past the end of the packet")
            extension = RtpExtension(profile, buf[offset : offset + 4 * words])
            offset += 4 * words
        end = len(buf)
        padding = 0
        if first & 0x20:
            padding = buf[-1]
            if padding == 0 or padding > end - offset:
                raise InvalidRtpPacket(f"padding count {padding} is impossible here")
            end -= padding
        return cls(
            payload_type=second & 0x7F,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=buf[offset:end],
            marker=bool(second & 0x80),
            csrcs=tuple(csrcs),
            extension=extension,
            padding=padding,
        )


# --- Streams ----------------------------------------------------------------


class FrameSource(Protocol):
    """What a stream sends: one payload per 20 ms tick (None: nothing this tick)."""

    def next_frame(self) -> bytes | None: ...

    def skip(self, count: int) -> None:
        """Move on by ``count`` ticks without producing them."""


@dataclass(frozen=True, slots=True)
class RtpStreamState:
    """What must survive for a stream to continue: SSRC, next sequence, next timestamp."""

    ssrc: int
    sequence: int
    timestamp: int
    payload_type: int


class RtpStream:
    """The sending side of one RTP session (sans-I/O)."""

    __slots__ = (
        "_marker",
        "payload_type",
        "samples_per_frame",
        "sequence",
        "source",
        "ssrc",
        "timestamp",
    )

    def __init__(
        self,
        source: FrameSource | None,
        *,
        payload_type: int,
        rng: random.Random,
        samples_per_frame: int = 160,
    ) -> None:
        self._setup(
            source,
            RtpStreamState(
                ssrc=rng.getrandbits(32),
                sequence=rng.getrandbits(16),
                timestamp=rng.getrandbits(32),
                payload_type=payload_type,
            ),
            samples_per_frame,
        )

    def _setup(
        self, source: FrameSource | None, state: RtpStreamState, samples_per_frame: int
    ) -> None:
        _check_header_fields(state.payload_type, state.sequence, state.timestamp, state.ssrc)
        if samples_per_frame <= 0:
            raise InvalidRtpPacket("samples_per_frame must be positive")
        self.ssrc = state.ssrc
        self.sequence = state.sequence  # the next packet's
        self.timestamp = state.timestamp  # the next tick's
        self.payload_type = state.payload_type
        self.samples_per_frame = samples_per_frame
        self.source = source
        self._marker = True

    @classmethod
    def resume(
        cls,
        state: RtpStreamState,
        source: FrameSource | None,
        *,
        samples_per_frame: int = 160,
    ) -> RtpStream:
        """A stream that continues ``state`` (e.g. rebuilt after a reload)."""
        stream = cls.__new__(cls)
        stream._setup(source, state, samples_per_frame)
        return stream

    @property
    def state(self) -> RtpStreamState:
        return RtpStreamState(self.ssrc, self.sequence, self.timestamp, self.payload_type)

    def set_source(self, source: FrameSource | None, *, payload_type: int | None = None) -> None:
        """Send from ``source`` from the next tick on; sequence and timestamp continue."""
        if payload_type is not None:
            _check_header_fields(payload_type, 0, 0, 0)
            self.payload_type = payload_type
        self.source = source
        self._marker = True

    def mark(self) -> None:
        """The next packet starts a talkspurt (marker bit): the last one was not sent."""
        self._marker = True

    def tick(self) -> bytes | None:
        """The packet for one tick, or None when the source has nothing to send."""
        payload = self.source.next_frame() if self.source is not None else None
        if payload is None:
            self.timestamp = ts_add(self.timestamp, self.samples_per_frame)
            self._marker = True  # the next packet starts a talkspurt
            return None
        packet = RtpPacket(
            self.payload_type,
            self.sequence,
            self.timestamp,
            self.ssrc,
            payload,
            marker=self._marker,
        ).to_bytes()
        self._marker = False
        self.sequence = seq_add(self.sequence, 1)
        self.timestamp = ts_add(self.timestamp, self.samples_per_frame)
        return packet

    def write_into(self, buffer: bytearray) -> bool:
        """The packet for one tick, written over ``buffer`` (at least 12 bytes: the header
        patched in place, the payload copied after it, the buffer resized to fit): the bytes
        :meth:`tick` returns,
        without building an object. False, buffer untouched, when the source has nothing.

        The hot loop of hold music (once per packet): the wrap-arounds are a compare with a
        literal, not a mask (``&`` on a 32-bit int builds a new int each time)."""
        source = self.source
        payload = source.next_frame() if source is not None else None
        timestamp = self.timestamp
        after = timestamp + self.samples_per_frame
        if after > 0xFFFFFFFF:  # literals, not globals: one LOAD_CONST each
            after %= 0x100000000
        if payload is None:
            self.timestamp = after
            self._marker = True  # the next packet starts a talkspurt
            return False
        sequence = self.sequence
        second = self.payload_type | 0x80 if self._marker else self.payload_type
        if len(payload) == 160 and len(buffer) == 172:  # FRAME_BYTES, 12 + FRAME_BYTES: literals
            # the usual packet: header and frame in one call, no slice, no copy of the
            # frame into a temporary bytearray (what ``buffer[12:] = bytes`` makes)
            _pack_packet_into(buffer, 0, 0x80, second, sequence, timestamp, self.ssrc, payload)
        else:
            _pack_header_into(buffer, 0, 0x80, second, sequence, timestamp, self.ssrc)
            buffer[HEADER_SIZE:] = payload
        self._marker = False
        self.sequence = 0 if sequence == 0xFFFF else sequence + 1
        self.timestamp = after
        return True

    def skip(self, count: int) -> None:
        """Let ``count`` ticks pass unsent (the driver was late)."""
        if count <= 0:
            return
        if self.source is not None:
            self.source.skip(count)
        self.timestamp = ts_add(self.timestamp, count * self.samples_per_frame)
        self._marker = True


# --- Pacing -----------------------------------------------------------------

K = TypeVar("K", bound=Hashable)


@dataclass(slots=True)
class _Entry:
    stream: RtpStream
    next_tick: int  # the first tick this stream has not had yet


class PacingScheduler(Generic[K]):
    """One timer that paces every RTP stream of the process (sans-I/O)."""

    def __init__(self, *, interval: float = 0.020, max_burst: int = 3) -> None:
        if not (math.isfinite(interval) and interval > 0) or max_burst < 1:
            raise ValueError("interval must be > 0 and max_burst >= 1")
        self.interval = interval
        self.max_burst = max_burst
        self._origin: float | None = None
        self._streams: dict[K, _Entry] = {}

    def __len__(self) -> int:
        return len(self._streams)

    def __contains__(self, stream_id: object) -> bool:
        return stream_id in self._streams

    def _tick_at(self, now: float) -> int:
        """The last tick due at ``now`` (the origin is tick 0)."""
        assert self._origin is not None
        return math.floor((now - self._origin) / self.interval + 1e-9)

    def add(self, stream_id: K, stream: RtpStream, *, now: float) -> None:
        """Pace ``stream`` from the first tick at or after ``now``."""
        if stream_id in self._streams:
            raise KeyError(f"stream {stream_id!r} is already paced")
        if self._origin is None:
            self._origin = now  # an idle scheduler starts a new tick grid: send at once
        first = self._tick_at(now)
        if self._origin + first * self.interval < now - 1e-9:
            first += 1
        self._streams[stream_id] = _Entry(stream, first)

    def remove(self, stream_id: K) -> RtpStream | None:
        """Stop pacing ``stream_id``; returns its stream (None if it was not paced)."""
        entry = self._streams.pop(stream_id, None)
        if not self._streams:
            self._origin = None
        return entry.stream if entry is not None else None

    def stream(self, stream_id: K) -> RtpStream:
        return self._streams[stream_id].stream

    def next_tick_time(self, stream_id: K) -> float:
        """When ``stream_id`` sends its next packet (on the shared tick grid)."""
        assert self._origin is not None
        return self._origin + self._streams[stream_id].next_tick * self.interval

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next run, or None with no stream."""
        if self._origin is None or not self._streams:
            return None
        first = min(entry.next_tick for entry in self._streams.values())
        return self._origin + first * self.interval

    def handle_timer(self, *, now: float) -> list[tuple[K, bytes]]:
        """The packets due at ``now``, tick by tick, streams in the order they were added."""
        if self._origin is None:
            return []
        current = self._tick_at(now)
        out: list[tuple[K, bytes]] = []
        due: list[tuple[K, _Entry]] = []
        for stream_id, entry in self._streams.items():
            if entry.next_tick > current:
                continue
            late = current - entry.next_tick + 1 - self.max_burst
            if late > 0:
                entry.stream.skip(late)
                entry.next_tick += late
            due.append((stream_id, entry))
        for tick in range(current - self.max_burst + 1, current + 1):
            for stream_id, entry in due:
                if entry.next_tick == tick:
                    packet = entry.stream.tick()
                    entry.next_tick += 1
                    if packet is not None:
                        out.append((stream_id, packet))
        return out
