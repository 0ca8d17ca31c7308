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

Invariants: a call id is at most once in a queue; talk time never decreases
except on a join; ``joined_since`` is None exactly when not joined; a member
is paused only while joined (logging out ends a pause), and a paused member is
never free. ``touched`` gathers the members whose membership, pause or
activity changed since the core last took it (for the time in state).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

Pointer = str | int
"""A round-robin pointer: the key of the member who took the last call, or (stored
by an older version) the position of that member, an ``int``."""


class StateStore(Protocol):
    """What the group core reads and writes about members, pointers and queues."""

    # membership -----------------------------------------------------------
    def knows_membership(self, group: str, member: str) -> bool: ...
    def joined_since(self, group: str, member: str) -> float | None: ...
    def set_joined(self, group: str, member: str, joined: bool, *, now: float) -> None: ...

    # pause -----------------------------------------------------------------
    def paused(self, group: str, member: str) -> Pause | None: ...
    def set_paused(
        self, group: str, member: str, paused: bool, *, reason: str = "", now: float
    ) -> None:
        """Pause (with ``reason``) or unpause a member; a pause already on is kept."""
        ...

    @property
    def touched(self) -> set[str]:
        """Members whose membership, pause or activity changed (the core empties it)."""
        ...

    # talk time -------------------------------------------------------------
    def talk_time(self, group: str, member: str) -> float: ...
    def add_talk_time(self, group: str, member: str, seconds: float) -> None: ...

    # round robin -----------------------------------------------------------
    def last_answered(self, group: str) -> Pointer | None: ...
    def set_last_answered(self, group: str, member: Pointer) -> None: ...

    # member activity -------------------------------------------------------
    def ringing(self, member: str) -> frozenset[str]: ...
    def set_ringing(self, member: str, call_id: str, ringing: bool) -> None: ...
    def set_ringing_many(self, members: Sequence[str], call_id: str) -> None:
        """``members`` start ringing for ``call_id`` (one offer to many: ring all); the
        same as ``set_ringing(m, call_id, True)`` for each."""
        ...

    def is_ringing(self, member: str) -> bool: ...
    def active_calls(self, member: str) -> frozenset[str]: ...
    def is_on_call(self, member: str) -> bool: ...
    def set_active(self, member: str, call_id: str, active: bool) -> None: ...
    def wrap_up_until(self, member: str) -> float: ...
    def set_wrap_up_until(self, member: str, until: float) -> None: ...
    def is_free(self, group: str, member: str, *, now: float, call_waiting: bool) -> bool:
        """Joined, not paused, not in wrap-up, not ringing, and not on a call unless
        ``call_waiting``."""
        ...

    def talk_times(self, group: str) -> dict[str, float]:
        """Talk time of every member of ``group`` with a counter (completed calls only)."""
        ...

    # queue order -----------------------------------------------------------
    def queue(self, group: str) -> Sequence[str]: ...
    def enqueue(self, group: str, call_id: str, rank: tuple[float, int]) -> None: ...
    def dequeue(self, group: str, call_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Pause:
    """A member's pause in a group: since when (the core's ``now``) and why."""

    since: float
    reason: str


@dataclass(slots=True)
class _Activity:
    ringing: set[str] = field(default_factory=set)
    active: set[str] = field(default_factory=set)
    wrap_up_until: float = float("-inf")


class MemoryStore:
    """The default store: plain dicts in this process."""

    def __init__(self) -> None:
        self._joined: dict[tuple[str, str], float | None] = {}
        self._talk: dict[str, dict[str, float]] = {}
        self._pointer: dict[str, Pointer] = {}
        self._activity: dict[str, _Activity] = {}
        self._queues: dict[str, list[tuple[tuple[float, int], str]]] = {}
        self._paused: dict[tuple[str, str], Pause] = {}
        self._touched: set[str] = set()

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
        return frozenset(act.ringing) if act else frozenset()

    def set_ringing(self, member: str, call_id: str, ringing: bool) -> None:
        self._touched.add(member)
        if ringing:
            self._act(member).ringing.add(call_id)
        elif member in self._activity:
            self._activity[member].ringing.discard(call_id)

    def set_ringing_many(self, members: Sequence[str], call_id: str) -> None:
        """Ring ``members`` for ``call_id`` in one pass (ring all's hot path). It does not
        go through ``set_ringing``: a subclass that does more per write (a journal)
        overrides this method too."""
        self._touched.update(members)
        activity = self._activity
        for member in members:
            act = activity.get(member)
            if act is None:
                act = activity[member] = _Activity()
            act.ringing.add(call_id)

    def is_ringing(self, member: str) -> bool:
        act = self._activity.get(member)
        return bool(act and act.ringing)

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
        if act is None:
            return True
        return act.wrap_up_until <= now and not act.ringing and (call_waiting or not act.active)

    def talk_times(self, group: str) -> dict[str, float]:
        return dict(self._talk.get(group, {}))

    def queue(self, group: str) -> Sequence[str]:
        return [call_id for _, call_id in self._queues.get(group, ())]

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
