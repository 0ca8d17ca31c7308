"""The members of one group as the decisions see them, kept up to date.

Theory of operation
-------------------
A decision must not scan or sort a 1,000-member group. :class:`GroupIndex`
keeps, for one group, what every decision reads, and is told of each change
of a member (:meth:`GroupIndex.update`, by :mod:`huntgroup.queue.roster`):

- ``free``: the *slots* (indices in position order) of the members free for
  the group's calls, sorted; ``flags[slot]`` says the same in O(1);
- ``available``: how many members are joined, unpaused and reachable (a
  group with none is *empty*);
- for *least talk time* only: each member's talk *entry* (completed talk
  time, join date, the connection times of its calls in progress; its talk
  time at any ``now`` follows, :func:`talk_at`), ``by_talk`` the free members
  with no call in progress sorted by ``(talk time, position, key)``, and
  ``live`` the free members with calls in progress (their talk time grows
  with ``now``, so they are not sorted).

A pass orders the group once, at its start (``T0``), and later offers of the
same pass follow that order (:mod:`huntgroup.distribution.walks`). For least
talk time the talk times of ``T0`` must be found again later: while a walk
holds the index, each entry replaced is logged (its old value), so that an
entry as of ``T0`` is the first one logged after ``T0`` or else the current
one. The log is trimmed to what the oldest live walk needs, and emptied when
no walk lives.

An index is *retired* when a reload replaces its group: it is no longer
updated, and the walks still holding it fall back to the full order, checked
member by member (a reload is rare).

Invariants: ``free`` is sorted and holds exactly the slots whose flag is set;
``by_talk`` and ``live`` partition the free slots of a least-talk index; the
talk entries as of any live walk's ``T0`` can be rebuilt from ``entries`` and
the log.
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Sequence
from functools import partial

TalkEntry = tuple[float, float | None, tuple[float, ...]]
"""(completed talk time, joined since or None, connection times of calls in progress,
in the order the core holds those calls)."""

TalkKey = tuple[float, int, str]
"""(talk time, position, key): the order of least talk time."""


def talk_at(entry: TalkEntry, now: float) -> float:
    """Talk time at ``now``: the completed calls plus the part of each call in progress
    since the member joined (the same sum, in the same order, as the core's)."""
    total, since, starts = entry
    if since is not None:
        for start in starts:
            total += max(0.0, now - max(start, since))
    return total


class GroupIndex:
    """Free and available members of one group, and their talk entries."""

    __slots__ = (
        "_walks",
        "after_position",
        "available",
        "by_talk",
        "entries",
        "flags",
        "free",
        "given",
        "keys",
        "least",
        "live",
        "log",
        "log_base",
        "n_available",
        "positions",
        "retired",
        "slot",
    )

    def __init__(self, keys: Sequence[str], positions: Sequence[int], *, least: bool) -> None:
        self.keys = tuple(keys)
        self.positions = tuple(positions)
        # position -> the slot after the last member at it: ``bisect_right(positions,
        # position)`` without the search (round robin's start after the pointer)
        self.after_position = {p: i + 1 for i, p in enumerate(self.positions)}
        self.slot = {k: i for i, k in enumerate(self.keys)}
        self.flags = bytearray(len(self.keys))
        self.free: list[int] = []
        self.available = bytearray(len(self.keys))
        self.n_available = 0
        self.least = least
        self.entries: dict[str, TalkEntry] = {}
        self.by_talk: list[TalkKey] = []
        self.live: set[int] = set()
        self.log: list[tuple[str, TalkEntry]] = []
        self.log_base = 0
        # the live walks, by weak reference; a walk that dies takes its reference out
        # (``set.discard``, a builtin, is the callback: no Python frame per walk)
        # the tokens of the walks (watch), by their id (a set hashes by value)
        self._walks: dict[int, weakref.ref[set[int]]] = {}
        self.retired = False
        self.given: tuple[list[str], list[int]] | None = None
        """The last members a walk's ``rest`` gave (ring all) and their slots (a rotation
        of a sorted run of ``free``: a run, or its tail then its head), while ``free`` has
        not changed since (every change forgets it): the roster, told those very members
        rang, takes the slots without looking the keys up (:meth:`take_given`)."""

    # ------------------------------------------------------------ changes
    def update(self, slot: int, free: bool, available: bool, entry: TalkEntry | None) -> None:
        """Member ``slot`` is (not) ``free``, (not) ``available``; its talk ``entry``
        (least talk time only)."""
        was_free = self.flags[slot] == 1
        if available != (self.available[slot] == 1):
            self.available[slot] = 1 if available else 0
            self.n_available += 1 if available else -1
        if self.least:
            assert entry is not None
            key = self.keys[slot]
            old = self.entries.get(key)
            if old != entry or was_free != free:
                if was_free and old is not None:
                    self._unsort(slot, old)
                if old != entry:
                    if old is not None and self._walks:
                        self.log.append((key, old))
                    self.entries[key] = entry
                if free:
                    self._sort(slot, entry)
        if was_free == free:
            return
        self.given = None
        self.flags[slot] = 1 if free else 0
        if free:
            bisect.insort(self.free, slot)
        else:
            del self.free[bisect.bisect_left(self.free, slot)]

    def take(self, slot: int) -> None:
        """Member ``slot``, free, is not free any more (nothing else changed): what
        :meth:`update` does then, without its comparisons."""
        self.given = None
        self.flags[slot] = 0
        free = self.free
        # the first free slot (linear, circular) is found without a search
        del free[0 if free[0] == slot else bisect.bisect_left(free, slot)]
        if self.least:  # _unsort, written out (one frame less per offer)
            live = self.live
            if slot in live:
                live.discard(slot)
                return
            key = self.keys[slot]
            item = (self.entries[key][0], self.positions[slot], key)
            by_talk = self.by_talk
            # the first of the order (a pass's first offer) is found without a search
            i = 0 if by_talk and by_talk[0] == item else bisect.bisect_left(by_talk, item)
            if i < len(by_talk) and by_talk[i] == item:
                del by_talk[i]

    def busy(self, slots: list[int]) -> None:
        """Members ``slots``, free, are not free any more (nothing else changed): many at
        once (ring all) cost one filtering of the sorted lists, not one search each; a
        run of the free slots in order (a walk's slice of them: ring all) is cut out of
        them in one step."""
        if len(slots) < 16:
            for slot in slots:
                self.update(
                    slot, False, self.available[slot] == 1, self.entries.get(self.keys[slot])
                )
            return
        self.given = None
        flags, free, n = self.flags, self.free, len(slots)
        i = bisect.bisect_left(free, slots[0])
        if free[i : i + n] == slots:
            self._cut(i, n)
            return
        for slot in slots:
            flags[slot] = 0
        self.free = [s for s in free if flags[s]]
        if self.least:
            self._unsort_taken(slots)

    def take_given(self, members: list[str]) -> bool:
        """``members``, free, are not free any more, if they are the very list a walk's
        ``rest`` gave last (ring all) and ``free`` has not changed since: their slots are
        known without a lookup, and when they are a run of ``free`` (a sorted sub-list
        with the ends and the length of a stretch of ``free`` is that stretch) the run
        is cut out at once, with no step per member. False, nothing done, otherwise."""
        given, self.given = self.given, None
        if given is None or given[0] is not members:
            return False
        slots = given[1]
        free, n = self.free, len(slots)
        i = bisect.bisect_left(free, slots[0])
        if i + n <= len(free) and free[i + n - 1] == slots[-1]:
            self._cut(i, n)
        else:  # the tail then the head of ``free`` (a walk started past the first slot)
            self.busy(slots)
        return True

    def _cut(self, i: int, n: int) -> None:
        """The free slots ``free[i:i + n]`` are not free any more: every free slot between
        their ends is one of them, so that stretch of flags is all zeros after."""
        free = self.free
        lo, hi = free[i], free[i + n - 1] + 1
        self.flags[lo:hi] = bytes(hi - lo)
        taken = free[i : i + n] if self.least else None
        del free[i : i + n]
        if taken is not None:
            self._unsort_taken(taken)

    def _unsort_taken(self, slots: list[int]) -> None:
        flags, slot_of = self.flags, self.slot
        self.by_talk = [item for item in self.by_talk if flags[slot_of[item[2]]]]
        self.live.difference_update(slots)

    def _sort(self, slot: int, entry: TalkEntry) -> None:
        if entry[1] is not None and entry[2]:
            self.live.add(slot)
        else:
            bisect.insort(self.by_talk, (entry[0], self.positions[slot], self.keys[slot]))

    def _unsort(self, slot: int, entry: TalkEntry) -> None:
        if slot in self.live:
            self.live.discard(slot)
            return
        item = (entry[0], self.positions[slot], self.keys[slot])
        i = bisect.bisect_left(self.by_talk, item)
        if i < len(self.by_talk) and self.by_talk[i] == item:
            del self.by_talk[i]

    # -------------------------------------------------------- talk at T0
    def watch(self) -> tuple[int, set[int]]:
        """A walk starts: entries replaced from now on are logged; returns its log start
        and its token, for the walk to hold for its life: a set of that one start, the
        object the index refers to weakly (a walk of a build compiled by mypyc could not
        be: a native class takes no weak reference; docs/native.md). The start is kept
        while the token lives, that is while its walk does."""
        walks = self._walks
        if not walks:
            if self.log:
                self.log_base += len(self.log)
                self.log.clear()
        elif len(self.log) > 4 * len(self.keys) + 64:
            starts = [min(t) for r in walks.values() if (t := r()) is not None]
            low = min(starts, default=self.log_base + len(self.log))
            if low > self.log_base:
                del self.log[: low - self.log_base]
                self.log_base = low
        start = self.log_base + len(self.log)
        token = {start}
        key = id(token)  # unique while the token lives: its callback runs when it dies
        walks[key] = weakref.ref(token, partial(walks.pop, key))
        return start, token

    def entries_since(self, start: int) -> dict[str, TalkEntry]:
        """The entries as they were when the log stood at ``start``, of the members whose
        entry changed since (the others are as they are now)."""
        old: dict[str, TalkEntry] = {}
        for key, entry in self.log[start - self.log_base :]:
            if key not in old:
                old[key] = entry
        return old

    def talk_key(self, slot: int, now: float, entry: TalkEntry | None = None) -> TalkKey:
        key = self.keys[slot]
        e = self.entries[key] if entry is None else entry
        return (talk_at(e, now), self.positions[slot], key)
