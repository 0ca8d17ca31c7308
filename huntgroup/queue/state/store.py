"""The state store: what must outlive a process or be shared between nodes.

Theory of operation
-------------------
The group core keeps its per-call records (offers, timers) to itself: a call
lives on the node that carries its SIP dialogs. What several nodes must agree
on, and what a reload or a restart must not lose, goes through this one
interface:

- membership: whether a member is joined to a group, and since when;
- pause: whether a joined member is paused in a group (on a break: it stays
  joined, keeps its join date and talk time, and is offered no call), since
  when and why;
- talk-time counters per (group, member), restarted at zero on each join;
- the round-robin pointer of each group: the member who took the last call
  (its key; an integer is a position stored by a version before issue 11, read
  as the member at or before that position);
- member activity shared by all groups: the calls a member is ringing for,
  the calls it is on, the end of its wrap-up;
- the order of each group's queue.

Every method is synchronous and cheap: the in-memory implementation is a set
of dicts; a networked implementation keeps a local image and writes through.

Ringing is kept in two places by :class:`MemoryStore`. A member rung on its own
is in its activity's ``ringing`` set (member -> calls). The members a ring all
rings at once (:meth:`StateStore.set_ringing_many`) are one *bulk record* of
the call (call -> members, a dict used as an ordered set), written as one C-level
copy rather than one Python step per member: ring all's hundreds of members
cost the store no Python loop. A member rings for a call when the pair is in
either place (a pair may be in both: unringing removes it from both), so a
reader of one member also looks through the bulk records; there are at most
:data:`MAX_BULK` of them (a ring all that would make one more moves the oldest
record into the members' own sets), so that a read costs a bounded number of
lookups.

Invariants: a call id is at most once in a queue; talk time never decreases
except on a join; ``joined_since`` is None exactly when not joined; a member
is paused only while joined (logging out ends a pause), and a paused member is
never free. ``touched`` gathers the members whose membership, pause or
activity changed since the core last took it (for the time in state).
"""

from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

MAX_BULK = 4
"""Bulk ringing records (ring alls ringing at once) a :class:`MemoryStore` keeps before
it moves the oldest into its members' own sets: a read of one member looks at each."""

BULK_MIN = 16
"""Fewer members rung at once are written member by member (no bulk record)."""

_ABSENT = object()

Pointer = str | int
"""A round-robin pointer: the key of the member who took the last call, or (stored
by an older version) the position of that member, an ``int``."""


class StateStore(ABC):
    """What the group core reads and writes about members, pointers and queues.

    An abstract base class rather than a ``Protocol``: compiled by mypyc
    (docs/native.md), a call through a ``StateStore`` is then a native method call
    (a vtable), where a Protocol's is a Python attribute lookup and call."""

    # membership -----------------------------------------------------------
    @abstractmethod
    def knows_membership(self, group: str, member: str) -> bool: ...
    @abstractmethod
    def joined_since(self, group: str, member: str) -> float | None: ...
    @abstractmethod
    def set_joined(self, group: str, member: str, joined: bool, *, now: float) -> None: ...

    # pause -----------------------------------------------------------------
    @abstractmethod
    def paused(self, group: str, member: str) -> Pause | None: ...
    @abstractmethod
    def set_paused(
        self, group: str, member: str, paused: bool, *, reason: str = "", now: float
    ) -> None:
        """Pause (with ``reason``) or unpause a member; a pause already on is kept."""
        ...

    @property
    @abstractmethod
    def touched(self) -> set[str]:
        """Members whose membership, pause or activity changed (the core empties it)."""
        ...

    # talk time -------------------------------------------------------------
    @abstractmethod
    def talk_time(self, group: str, member: str) -> float: ...
    @abstractmethod
    def add_talk_time(self, group: str, member: str, seconds: float) -> None: ...

    # round robin -----------------------------------------------------------
    @abstractmethod
    def last_answered(self, group: str) -> Pointer | None: ...
    @abstractmethod
    def set_last_answered(self, group: str, member: Pointer) -> None: ...

    # member activity -------------------------------------------------------
    @abstractmethod
    def ringing(self, member: str) -> frozenset[str]: ...
    @abstractmethod
    def set_ringing(self, member: str, call_id: str, ringing: bool) -> None: ...
    @abstractmethod
    def set_ringing_many(
        self, members: Collection[str], call_id: str, *, touch: bool = True
    ) -> None:
        """``members`` (distinct) start ringing for ``call_id`` (one offer to many: ring
        all); the same as ``set_ringing(m, call_id, True)`` for each, except that with
        ``touch=False`` they are not added to ``touched`` (the caller, the core's
        roster, takes note of them itself; members already there stay)."""
        ...

    @abstractmethod
    def is_ringing(self, member: str) -> bool: ...
    @abstractmethod
    def active_calls(self, member: str) -> frozenset[str]: ...
    @abstractmethod
    def is_on_call(self, member: str) -> bool: ...
    @abstractmethod
    def set_active(self, member: str, call_id: str, active: bool) -> None: ...
    @abstractmethod
    def wrap_up_until(self, member: str) -> float: ...
    @abstractmethod
    def set_wrap_up_until(self, member: str, until: float) -> None: ...
    @abstractmethod
    def is_free(self, group: str, member: str, *, now: float, call_waiting: bool) -> bool:
        """Joined, not paused, not in wrap-up, not ringing, and not on a call unless
        ``call_waiting``."""
        ...

    @abstractmethod
    def standing(self, group: str, member: str, *, now: float, call_waiting: bool) -> int:
        """``member`` in ``group`` in one read: 0 not joined, or paused; 1 joined and not
        paused, but not free; 2 free (:meth:`is_free`). What the core's roster of free
        members reads of a member it looks at again (:mod:`~huntgroup.queue.roster`)."""
        ...

    @abstractmethod
    def talk_times(self, group: str) -> dict[str, float]:
        """Talk time of every member of ``group`` with a counter (completed calls only)."""
        ...

    # queue order -----------------------------------------------------------
    @abstractmethod
    def queue(self, group: str) -> Sequence[str]: ...
    @abstractmethod
    def enqueue(self, group: str, call_id: str, rank: tuple[float, int]) -> None: ...
    @abstractmethod
    def dequeue(self, group: str, call_id: str) -> bool: ...


@dataclass(frozen=True, slots=True, init=False)
class Pause:
    """A member's pause in a group: since when (the core's ``now``) and why."""

    since: float
    reason: str

    def __init__(self, since: float, reason: str) -> None:
        object.__setattr__(self, "since", since)
        object.__setattr__(self, "reason", reason)


@dataclass(slots=True, init=False)
class _Activity:
    ringing: set[str] = field(default_factory=set)
    active: set[str] = field(default_factory=set)
    wrap_up_until: float = float("-inf")

    def __init__(
        self,
        ringing: set[str] | None = None,
        active: set[str] | None = None,
        wrap_up_until: float = float("-inf"),
    ) -> None:
        self.ringing = set() if ringing is None else ringing
        self.active = set() if active is None else active
        self.wrap_up_until = wrap_up_until


class MemoryStore(StateStore):
    """The default store: plain dicts in this process."""

    def __init__(self) -> None:
        self._joined: dict[tuple[str, str], float | None] = {}
        self._talk: dict[str, dict[str, float]] = {}
        self._pointer: dict[str, Pointer] = {}
        self._activity: dict[str, _Activity] = {}
        self._queues: dict[str, list[tuple[tuple[float, int], str]]] = {}
        self._paused: dict[tuple[str, str], Pause] = {}
        self._touched: set[str] = set()
        self._bulk: dict[str, dict[str, object]] = {}
        """Ring all's bulk records: call -> the members rung together (keys; the values
        mean nothing), oldest first, at most ``MAX_BULK``."""

    @property
    def touched(self) -> set[str]:
        return self._touched

    def _act(self, member: str) -> _Activity:
        act = self._activity.get(member)
        if act is None:
            act = self._activity[member] = _Activity()
        return act

    def knows_membership(self, group: str, member: str) -> bool:
        return (group, member) in self._joined

    def joined_since(self, group: str, member: str) -> float | None:
        return self._joined.get((group, member))

    def set_joined(self, group: str, member: str, joined: bool, *, now: float) -> None:
        key = (group, member)
        self._touched.add(member)
        if joined:
            if self._joined.get(key) is None:
                self._joined[key] = now
                self._talk.setdefault(group, {})[member] = 0.0
        else:
            self._joined[key] = None
            self._paused.pop(key, None)

    def paused(self, group: str, member: str) -> Pause | None:
        return self._paused.get((group, member))

    def set_paused(
        self, group: str, member: str, paused: bool, *, reason: str = "", now: float
    ) -> None:
        key = (group, member)
        self._touched.add(member)
        if not paused:
            self._paused.pop(key, None)
        elif key not in self._paused:
            self._paused[key] = Pause(now, reason)

    def talk_time(self, group: str, member: str) -> float:
        return self._talk.get(group, {}).get(member, 0.0)

    def add_talk_time(self, group: str, member: str, seconds: float) -> None:
        self._touched.add(member)  # least talk time orders by it (queue.roster)
        counters = self._talk.setdefault(group, {})
        counters[member] = counters.get(member, 0.0) + max(0.0, seconds)

    def last_answered(self, group: str) -> Pointer | None:
        return self._pointer.get(group)

    def set_last_answered(self, group: str, member: Pointer) -> None:
        self._pointer[group] = member

    def ringing(self, member: str) -> frozenset[str]:
        act = self._activity.get(member)
        calls = frozenset(act.ringing) if act else frozenset()
        if self._bulk:
            bulk = [call for call, record in self._bulk.items() if member in record]
            if bulk:
                return calls.union(bulk)
        return calls

    def set_ringing(self, member: str, call_id: str, ringing: bool) -> None:
        self._touched.add(member)
        if ringing:
            self._act(member).ringing.add(call_id)
            return
        bulk = self._bulk
        if bulk:
            record = bulk.get(call_id)
            if record is not None and record.pop(member, _ABSENT) is not _ABSENT and not record:
                del bulk[call_id]
        act = self._activity.get(member)
        if act is not None:
            act.ringing.discard(call_id)

    def set_ringing_many(
        self, members: Collection[str], call_id: str, *, touch: bool = True
    ) -> None:
        """Ring ``members`` for ``call_id`` at once (ring all's hot path): a bulk record
        of the call, a copy of ``members`` made in C (a ``dict``'s keys, as the core
        gives them, are copied whole: no hashing). It does not go through
        ``set_ringing``: a subclass that does more per write (a journal) overrides
        this method too."""
        if len(members) < BULK_MIN:
            self._ring_each(members, call_id)
        else:
            bulk = self._bulk
            record = members.copy() if isinstance(members, dict) else dict.fromkeys(members)
            old = bulk.get(call_id)
            if old is not None:
                old.update(record)
            else:
                if len(bulk) >= MAX_BULK:
                    self._unbulk(next(iter(bulk)))
                bulk[call_id] = record
        if touch:
            self._touched.update(members)

    def _ring_each(self, members: Iterable[str], call_id: str) -> None:
        activity = self._activity
        for member in members:
            act = activity.get(member)
            if act is None:
                act = activity[member] = _Activity()
            act.ringing.add(call_id)

    def _unbulk(self, call_id: str) -> None:
        """The bulk record of ``call_id`` goes into its members' own sets."""
        self._ring_each(self._bulk.pop(call_id), call_id)

    def is_ringing(self, member: str) -> bool:
        act = self._activity.get(member)
        if act is not None and act.ringing:
            return True
        return bool(self._bulk) and self._in_bulk(member)

    def _in_bulk(self, member: str) -> bool:
        """``member`` rings for the call of a bulk record."""
        return any(member in record for record in self._bulk.values())

    def is_on_call(self, member: str) -> bool:
        act = self._activity.get(member)
        return bool(act and act.active)

    def active_calls(self, member: str) -> frozenset[str]:
        act = self._activity.get(member)
        return frozenset(act.active) if act else frozenset()

    def set_active(self, member: str, call_id: str, active: bool) -> None:
        self._touched.add(member)
        if active:
            self._act(member).active.add(call_id)
        elif member in self._activity:
            self._activity[member].active.discard(call_id)

    def wrap_up_until(self, member: str) -> float:
        act = self._activity.get(member)
        return act.wrap_up_until if act else float("-inf")

    def set_wrap_up_until(self, member: str, until: float) -> None:
        self._touched.add(member)
        self._act(member).wrap_up_until = until

    def is_free(self, group: str, member: str, *, now: float, call_waiting: bool) -> bool:
        key = (group, member)
        if self._joined.get(key) is None or (self._paused and key in self._paused):
            return False
        act = self._activity.get(member)
        if act is not None and not (
            act.wrap_up_until <= now and not act.ringing and (call_waiting or not act.active)
        ):
            return False
        return not (self._bulk and self._in_bulk(member))

    def standing(self, group: str, member: str, *, now: float, call_waiting: bool) -> int:
        key = (group, member)  # is_free's tests, in its order
        if self._joined.get(key) is None or (self._paused and key in self._paused):
            return 0
        act = self._activity.get(member)
        if act is not None and not (
            act.wrap_up_until <= now and not act.ringing and (call_waiting or not act.active)
        ):
            return 1
        return 1 if self._bulk and self._in_bulk(member) else 2

    def talk_times(self, group: str) -> dict[str, float]:
        return dict(self._talk.get(group, {}))

    def queue(self, group: str) -> Sequence[str]:
        items = self._queues.get(group)
        if not items:  # the usual case: nobody waits (no comprehension run)
            return []
        return [call_id for _, call_id in items]

    def enqueue(self, group: str, call_id: str, rank: tuple[float, int]) -> None:
        items = self._queues.setdefault(group, [])
        if any(c == call_id for _, c in items):
            return
        bisect.insort(items, (rank, call_id))

    def dequeue(self, group: str, call_id: str) -> bool:
        items = self._queues.get(group)
        if not items:
            return False
        for i, (_, c) in enumerate(items):
            if c == call_id:
                del items[i]
                return True
        return False
