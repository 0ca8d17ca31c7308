"""The five distribution algorithms as small strategy objects.

Theory of operation
-------------------
A strategy answers two questions for the hunt of one call:

- ``order(members, view)``: in which order the members of a group are
  considered during one *pass*. The order is a lazy iterator so that a
  1,000-member group costs only what the hunt consumes: the hunt skips members
  that are not free and stops at the first free one.
- its pass rules: ``simultaneous`` (every free member rings at once) and
  ``stop_after_pass`` (linear: no second pass).

Members are given sorted by position. Strategies are stateless; what they read
(round-robin pointer, talk time) comes through the ``OrderView``, never from a
clock or a global.

``order`` is the definition of a pass: the full order of every member. The
core does not walk it: ``walk(index, view, now)`` gives the same members in
the same order straight from the group's index of free members
(:mod:`huntgroup.distribution.walks`), without visiting the others. The
tests hold the two to the same decisions.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from huntgroup.config.models import Algorithm
from huntgroup.distribution.index import GroupIndex
from huntgroup.distribution.walks import LeastWalk, RotatedWalk, Walk


@dataclass(frozen=True, slots=True)
class Candidate:
    """A member of a group as strategies see it."""

    key: str
    position: int


class OrderView(Protocol):
    """What an ordering may read about the group, at the start of a pass."""

    def last_answered(self) -> int | None:
        """The position, in today's numbering, of the member who took the group's last
        call (None: no call yet, or that member is not in the group any more)."""
        ...

    def talk_time(self, member: str) -> float: ...


class Strategy(Protocol):
    @property
    def name(self) -> Algorithm: ...
    @property
    def simultaneous(self) -> bool: ...
    @property
    def stop_after_pass(self) -> bool: ...

    def order(self, members: Sequence[Candidate], view: OrderView) -> Iterator[str]: ...

    def walk(self, index: GroupIndex, view: OrderView, now: float) -> Walk: ...


def _by_position(members: Sequence[Candidate]) -> Iterator[str]:
    return (m.key for m in members)


@dataclass(frozen=True, slots=True)
class RingAll:
    """Sonner toutes les lignes: every free member rings at once; passes repeat."""

    name: Algorithm = "ring_all"
    simultaneous: bool = True
    stop_after_pass: bool = False

    def order(self, members: Sequence[Candidate], view: OrderView) -> Iterator[str]:
        return _by_position(members)

    def walk(self, index: GroupIndex, view: OrderView, now: float) -> Walk:
        return RotatedWalk(index)


@dataclass(frozen=True, slots=True)
class Linear:
    """Linéaire: by position from 1, one at a time; after one pass the hunt stops."""

    name: Algorithm = "linear"
    simultaneous: bool = False
    stop_after_pass: bool = True

    def order(self, members: Sequence[Candidate], view: OrderView) -> Iterator[str]:
        return _by_position(members)

    def walk(self, index: GroupIndex, view: OrderView, now: float) -> Walk:
        return RotatedWalk(index)


@dataclass(frozen=True, slots=True)
class Circular:
    """Circulaire: by position from 1, one at a time; the group is replayed."""

    name: Algorithm = "circular"
    simultaneous: bool = False
    stop_after_pass: bool = False

    def order(self, members: Sequence[Candidate], view: OrderView) -> Iterator[str]:
        return _by_position(members)

    def walk(self, index: GroupIndex, view: OrderView, now: float) -> Walk:
        return RotatedWalk(index)


@dataclass(frozen=True, slots=True)
class RoundRobin:
    """Uniforme (Round Robin): start after the member who took the last call."""

    name: Algorithm = "round_robin"
    simultaneous: bool = False
    stop_after_pass: bool = False

    def order(self, members: Sequence[Candidate], view: OrderView) -> Iterator[str]:
        pointer = view.last_answered()
        if pointer is None or not members:
            return _by_position(members)
        positions = [m.position for m in members]
        start = bisect.bisect_right(positions, pointer) % len(members)
        return (members[(start + i) % len(members)].key for i in range(len(members)))

    def walk(self, index: GroupIndex, view: OrderView, now: float) -> Walk:
        pointer = view.last_answered()
        if pointer is None or not index.keys:
            return RotatedWalk(index)
        start = index.after_position.get(pointer)
        if start is None:  # a position no member has now (an older version's pointer)
            start = bisect.bisect_right(index.positions, pointer)
        return RotatedWalk(index, start % len(index.keys))


@dataclass(frozen=True, slots=True)
class LeastActive:
    """Uniforme (la moins active): least talk time first, ties by position."""

    name: Algorithm = "least_active"
    simultaneous: bool = False
    stop_after_pass: bool = False

    def order(self, members: Sequence[Candidate], view: OrderView) -> Iterator[str]:
        # A heap gives the first few in O(n + k log n): the hunt usually
        # consumes one or two members, not the whole sorted list.
        heap = [(view.talk_time(m.key), m.position, m.key) for m in members]
        heapq.heapify(heap)
        while heap:
            yield heapq.heappop(heap)[2]

    def walk(self, index: GroupIndex, view: OrderView, now: float) -> Walk:
        return LeastWalk(index, now)


STRATEGIES: dict[Algorithm, Callable[[], Strategy]] = {
    "ring_all": RingAll,
    "linear": Linear,
    "circular": Circular,
    "round_robin": RoundRobin,
    "least_active": LeastActive,
}


def strategy_for(name: Algorithm) -> Strategy:
    """The strategy object for an algorithm name of the YAML file."""
    return STRATEGIES[name]()
