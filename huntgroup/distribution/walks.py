"""The walk of one pass over a group: the next free member, straight from the index.

Theory of operation
-------------------
A pass considers the members of a group in the order of its strategy
(:mod:`huntgroup.distribution.algorithms`), skipping those that are not free
when the walk reaches them. A walk does the same without visiting the members
that are not free: it keeps a *cursor* (how far the pass has gone in its
order) and asks the group's index (:class:`~huntgroup.distribution.index.GroupIndex`)
for the first free member past it.

- :class:`RotatedWalk`: by position from a starting slot, wrapping around
  (linear, circular and ring all start at the first slot; round robin after
  the member who took the last call). The cursor is the number of slots of
  the order passed; the next free slot is one bisection of the sorted free
  slots, and ``rest`` (ring all) is a slice of them.
- :class:`LeastWalk`: by talk time at the start of the pass (``T0``), ties by
  position then key. The cursor is the key of the last member passed. The
  next free member is the smallest of: the first of ``by_talk`` past the
  cursor, the free members with calls in progress, and the free members whose
  talk entry changed since ``T0`` (their ``T0`` entry comes from the index's
  log), each keyed by its talk time at ``T0``.

Each member ``next`` gets from the index is checked once more with the caller's
``is_free`` (one test, not a scan); one found not free is passed, as the full
walk would. ``rest`` (ring all: hundreds of members) checks none of them: it
is a slice of the free slots, exact because the roster refreshed the index
from every change of the store just before the offer (:mod:`huntgroup.queue.roster`),
so a member the index calls free is free. A walk over a *retired* index (its
group was reloaded) falls back to the full order of the old members, each
checked with ``is_free``.

Invariants: a member is given at most once per pass; the members given, and
the order they come in, are those of the full order of the strategy filtered
by ``is_free`` at the time of each take.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import Protocol

from huntgroup.distribution.index import GroupIndex, TalkKey

IsFree = Callable[[str], bool]


class Walk(Protocol):
    def next(self, is_free: IsFree) -> str | None:
        """The next free member of the pass (None: the pass is exhausted)."""
        ...

    def rest(self, is_free: IsFree) -> list[str]:
        """Every free member left in the pass, in order; the pass is then exhausted."""
        ...


class RotatedWalk:
    """Members by position from slot ``start``, wrapping around."""

    __slots__ = ("_fallback", "done", "index", "start")

    def __init__(self, index: GroupIndex, start: int = 0) -> None:
        self.index = index
        self.start = start
        self.done = 0  # slots of the order passed
        self._fallback: Iterator[str] | None = None

    def next(self, is_free: IsFree) -> str | None:
        idx = self.index
        if idx.retired:
            return next((m for m in self._remaining() if is_free(m)), None)
        n, free, s0, keys = len(idx.keys), idx.free, self.start, idx.keys
        while self.done < n:
            lo = s0 + self.done
            slot: int | None = None
            if lo < n:
                i = bisect.bisect_left(free, lo) if lo else 0  # slots are >= 0
                if i < len(free):
                    slot = free[i]
                elif free and free[0] < s0:
                    slot = free[0]
            else:
                i = bisect.bisect_left(free, lo - n)
                if i < len(free) and free[i] < s0:
                    slot = free[i]
            if slot is None:
                self.done = n
                return None
            self.done = (slot - s0) % n + 1
            key = keys[slot]
            if is_free(key):
                return key
        return None

    def rest(self, is_free: IsFree) -> list[str]:
        idx = self.index
        if idx.retired:
            return [m for m in self._remaining() if is_free(m)]
        n, free, s0, keys = len(idx.keys), idx.free, self.start, idx.keys
        lo = s0 + self.done
        self.done = n
        if lo >= n + s0:
            return []
        if lo < n:
            slots = free[bisect.bisect_left(free, lo) :]
            if s0:
                slots += free[: bisect.bisect_left(free, s0)]
        else:
            slots = free[bisect.bisect_left(free, lo - n) : bisect.bisect_left(free, s0)]
        if len(slots) > 1:  # one C call for them all (ring all: hundreds)
            members = list(itemgetter(*slots)(keys))
            idx.given = (members, slots)
            return members
        return [keys[s] for s in slots]

    def _remaining(self) -> Iterator[str]:
        """The rest of the full order (a retired index: the members of the old group)."""
        if self._fallback is None:
            self._fallback = self._iterate()
        return self._fallback

    def _iterate(self) -> Iterator[str]:
        keys, n = self.index.keys, len(self.index.keys)
        while self.done < n:
            slot = (self.start + self.done) % n
            self.done += 1
            yield keys[slot]


class LeastWalk:
    """Members by talk time at ``t0``, ties by position then key."""

    __slots__ = ("_fallback", "_token", "cursor", "done", "index", "log_start", "t0")

    def __init__(self, index: GroupIndex, t0: float) -> None:
        self.index = index
        self.t0 = t0
        self.cursor: TalkKey | None = None
        self.done = False
        self._fallback: Iterator[str] | None = None
        self.log_start, self._token = index.watch()  # the index watches while it lives

    def next(self, is_free: IsFree) -> str | None:
        if self.done:
            return None
        idx = self.index
        if idx.retired:
            return next((m for m in self._remaining() if is_free(m)), None)
        log_start = self.log_start
        # the entries changed since T0 (usually none: nothing logged since the walk began)
        changed = idx.entries_since(log_start) if len(idx.log) > log_start - idx.log_base else {}
        by_talk = idx.by_talk
        while True:
            if not changed and not idx.live:  # _first_free when only by_talk counts
                cursor = self.cursor
                i = 0 if cursor is None else bisect.bisect_right(by_talk, cursor)
                best = by_talk[i] if i < len(by_talk) else None
            else:
                best = self._first_free(changed)
            if best is None:
                self.done = True
                return None
            self.cursor = best
            if is_free(best[2]):
                return best[2]

    def rest(self, is_free: IsFree) -> list[str]:
        chosen: list[str] = []
        while (member := self.next(is_free)) is not None:
            chosen.append(member)
        return chosen

    def _first_free(
        self, changed: dict[str, tuple[float, float | None, tuple[float, ...]]]
    ) -> TalkKey | None:
        """The smallest ``T0`` key past the cursor among the members free now."""
        idx, cursor, t0 = self.index, self.cursor, self.t0
        best: TalkKey | None = None
        by_talk = idx.by_talk
        i = 0 if cursor is None else bisect.bisect_right(by_talk, cursor)
        while i < len(by_talk):
            item = by_talk[i]
            if not changed or item[2] not in changed:
                best = item
                break
            i += 1
        for slot in idx.live:
            if changed and idx.keys[slot] in changed:
                continue
            key = idx.talk_key(slot, t0)
            if (cursor is None or key > cursor) and (best is None or key < best):
                best = key
        for member, entry in changed.items():
            at = idx.slot.get(member)
            if at is None or not idx.flags[at]:
                continue
            key = idx.talk_key(at, t0, entry)
            if (cursor is None or key > cursor) and (best is None or key < best):
                best = key
        return best

    def _remaining(self) -> Iterator[str]:
        if self._fallback is None:
            idx = self.index
            old = idx.entries_since(self.log_start)
            order = sorted(idx.talk_key(s, self.t0, old.get(k)) for s, k in enumerate(idx.keys))
            cursor = self.cursor
            self._fallback = iter([k[2] for k in order if cursor is None or k > cursor])
        return self._fallback
