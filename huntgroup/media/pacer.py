"""The hold-music pacer: every paced RTP stream of the process on one 20 ms grid, in phases.

Theory of operation
-------------------
:class:`PhasedPacer` is sans-I/O: it decides *which* streams send *which* tick
and *when*; the driver (:mod:`huntgroup.engine.aio.media_io`) arms one timer
at :meth:`~PhasedPacer.get_timer`, asks :meth:`~PhasedPacer.take_due` for the
work due and sends it.

*One grid, several phases.* Ticks are numbered from an origin (set when the
first stream of an idle pacer is added): tick ``k`` covers the 20 ms frame
starting at ``origin + k * interval``. The interval is cut into ``phases``
slots; a stream belongs to one slot (the least loaded when it is added) and
sends tick ``k`` at ``origin + k * interval + slot * interval / phases``. So
one timer fires ``phases`` times per interval, each time for about
``1 / phases`` of the streams: the sends of one interval are spread over it
instead of leaving in one burst, and a stream's packets always leave at the
same place in its burst (its slot keeps its streams in the order they were
added). The music frame of tick ``k`` is the frame of the grid time
``origin + k * interval`` (:meth:`~PhasedPacer.frame_time`), the same for
every slot: callers at the same tick hear the same frame whatever their slot.

*Catch-up.* A slot served late by less than one interval sends its tick as
usual: the packet carries that tick's timestamp. A slot late by whole
intervals (a stalled loop) sends at most ``max_burst`` ticks per stream, the
newest ones; the older ticks are skipped (:meth:`RtpStream.skip`: timestamp
and music move on, the sequence number does not, the next packet is marked),
so a stall never becomes a burst longer than ``max_burst`` packets.

*Bounded work.* One :meth:`~PhasedPacer.take_due` hands out whole slots, in
the order they fell due, until ``max_packets`` packets are reached (always at
least one slot): what is left is due at once, and the driver lets other
events of the loop run before it comes back.

Invariants
----------
* A stream's packets have consecutive sequence numbers (mod 2^16), one SSRC,
  and timestamps 160 apart per tick elapsed (:class:`RtpStream`).
* A stream never gets more than ``max_burst`` packets from one ``take_due``,
  and never a tick before the first one due at or after it was added.
* Every stream of a slot has had every tick before the slot's ``next_tick``
  (sent or skipped), and none from it on.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

from huntgroup.media.rtp import RtpStream

__all__ = ["Batch", "Paced", "PhasedPacer"]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

_EPSILON: Final = 1e-9
MAX_PACKET: Final = 12 + 160  # the header and a 20 ms G.711 frame; a longer payload grows it


class Paced(Generic[K, T]):
    """One paced stream: its key, its :class:`RtpStream`, where it goes (``target``, opaque
    to the pacer) and the buffer its packets are written into (reused for every packet)."""

    __slots__ = ("buffer", "key", "slot", "start", "stream", "target")

    def __init__(self, key: K, stream: RtpStream, target: T, slot: int, start: int) -> None:
        self.key = key
        self.stream = stream
        self.target = target
        self.slot = slot
        self.start = start  # the first tick it may send
        self.buffer = bytearray(MAX_PACKET)


@dataclass(slots=True)
class _Slot(Generic[K, T]):
    offset: float  # after the tick's grid time
    next_tick: int = 0  # the first tick its streams have not had
    last_start: int = 0  # the latest first tick of its streams
    streams: dict[K, Paced[K, T]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Batch(Generic[K, T]):
    """Send tick ``tick`` of every stream in ``streams`` (in this order)."""

    tick: int
    streams: Iterable[Paced[K, T]]


class PhasedPacer(Generic[K, T]):
    """One timer pacing every RTP stream of the process, in ``phases`` slots (sans-I/O)."""

    def __init__(
        self,
        *,
        interval: float = 0.020,
        phases: int = 10,
        max_burst: int = 3,
        max_packets: int = 1000,
    ) -> None:
        if not (math.isfinite(interval) and interval > 0):
            raise ValueError("interval must be > 0")
        if phases < 1 or max_burst < 1 or max_packets < 1:
            raise ValueError("phases, max_burst and max_packets must be >= 1")
        self.interval = interval
        self.phases = phases
        self.max_burst = max_burst
        self.max_packets = max_packets
        self._origin: float | None = None
        self._slots: list[_Slot[K, T]] = [
            _Slot(offset=i * interval / phases) for i in range(phases)
        ]
        self._paced: dict[K, Paced[K, T]] = {}

    def __len__(self) -> int:
        return len(self._paced)

    def __contains__(self, key: object) -> bool:
        return key in self._paced

    def stream(self, key: K) -> RtpStream:
        return self._paced[key].stream

    def paced(self, key: K) -> Paced[K, T]:
        return self._paced[key]

    def slot_sizes(self) -> list[int]:
        return [len(slot.streams) for slot in self._slots]

    # ------------------------------------------------------------- streams
    def _first_tick(self, slot: _Slot[K, T], now: float) -> int:
        """The first tick of ``slot`` due at or after ``now``."""
        assert self._origin is not None
        return math.ceil((now - self._origin - slot.offset) / self.interval - _EPSILON)

    def add(self, key: K, stream: RtpStream, target: T, *, now: float) -> Paced[K, T]:
        """Pace ``stream`` toward ``target`` from its slot's first tick at or after ``now``."""
        if key in self._paced:
            raise KeyError(f"stream {key!r} is already paced")
        if self._origin is None:
            self._origin = now  # an idle pacer starts a new grid: the first slot sends at once
        index = min(range(self.phases), key=lambda i: len(self._slots[i].streams))
        slot = self._slots[index]
        first = self._first_tick(slot, now)
        if not slot.streams:
            slot.next_tick = first
        start = max(first, slot.next_tick)
        slot.last_start = max(slot.last_start, start) if slot.streams else start
        paced = Paced(key, stream, target, index, start)
        slot.streams[key] = paced
        self._paced[key] = paced
        return paced

    def remove(self, key: K) -> RtpStream | None:
        """Stop pacing ``key``; returns its stream (None if it was not paced)."""
        paced = self._paced.pop(key, None)
        if paced is None:
            return None
        del self._slots[paced.slot].streams[key]
        if not self._paced:
            self._origin = None
        return paced.stream

    def send_time(self, key: K) -> float:
        """When ``key`` sends its next packet."""
        assert self._origin is not None
        paced = self._paced[key]
        slot = self._slots[paced.slot]
        return self._origin + max(slot.next_tick, paced.start) * self.interval + slot.offset

    def frame_time(self, key: K) -> float:
        """The grid time of ``key``'s next tick: what the shared music clock reads then
        (the same for every slot at one tick)."""
        assert self._origin is not None
        paced = self._paced[key]
        return self._origin + max(self._slots[paced.slot].next_tick, paced.start) * self.interval

    # -------------------------------------------------------------- timing
    def _due(self, slot: _Slot[K, T]) -> float:
        assert self._origin is not None
        return self._origin + slot.next_tick * self.interval + slot.offset

    def get_timer(self) -> float | None:
        """When :meth:`take_due` must next run, or None with no stream."""
        if self._origin is None:
            return None
        due = [self._due(slot) for slot in self._slots if slot.streams]
        return min(due) if due else None

    def take_due(self, now: float) -> list[Batch[K, T]]:
        """The ticks due at ``now``: whole slots, earliest first, about ``max_packets``
        packets at most (at least one slot); older ticks past ``max_burst`` skipped."""
        if self._origin is None:
            return []
        due = sorted(
            (self._due(slot), index)
            for index, slot in enumerate(self._slots)
            if slot.streams and self._due(slot) <= now + _EPSILON
        )
        out: list[Batch[K, T]] = []
        budget = self.max_packets
        for _, index in due:
            slot = self._slots[index]
            current = math.floor(
                (now - self._origin - slot.offset) / self.interval + _EPSILON
            )  # the newest tick of this slot due now
            rounds = current - slot.next_tick + 1
            cost = len(slot.streams) * min(rounds, self.max_burst)
            if out and cost > budget:
                break  # the rest is due at once: the driver comes back after other events
            budget -= cost
            if rounds > self.max_burst:  # a stall: the older ticks are skipped, not burst
                skipped = rounds - self.max_burst
                for paced in slot.streams.values():
                    late = slot.next_tick + skipped - max(slot.next_tick, paced.start)
                    if late > 0:
                        paced.stream.skip(late)
                slot.next_tick += skipped
            for tick in range(slot.next_tick, current + 1):
                if slot.last_start > tick:  # streams added late do not get older ticks
                    streams: Iterable[Paced[K, T]] = [
                        p for p in slot.streams.values() if p.start <= tick
                    ]
                else:
                    streams = slot.streams.values()
                out.append(Batch(tick, streams))
            slot.next_tick = current + 1
        return out
