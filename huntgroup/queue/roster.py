"""Who is free in each group, kept up to date for the decisions.

Theory of operation
-------------------
The core decides often (every arrival, every offer that ends, every member
freed) and must not scan a 1,000-member group each time. :class:`Roster`
keeps one :class:`~huntgroup.distribution.index.GroupIndex` per group: the
members free for it (exactly the core's ``free_predicate``), how many are
available (joined, unpaused, reachable: a group with none is empty), and for
least talk time each member's talk entry.

It learns of changes from the sets of members that changed which the core
already has: the state store's ``touched`` (membership, pause, ringing, on a
call, wrap-up, talk time; also another node's changes) and the availability's
(contact, back-off, own calls). :meth:`Roster.refresh` takes those members
(it hands them on to the core's own ``_touched``, for the time in state, when the
core is ``observed``) and
looks at each again in each of its groups: one test per member changed, not
per decision. The core refreshes at the end of every input and before every
decision, so that a decision pays only for the changes made within its own
input.

What changes with time alone (the end of a wrap-up, of a back-off, of a
refused claim) is *parked*: a member found not free for such a reason is
looked at again when the earliest of those ends. An index whose group the
configuration replaced (a reload) is retired and rebuilt at its first use.

Invariants: after :meth:`Roster.refresh`, a member is in a group's free slots
exactly when ``free_predicate`` holds for it at the core's ``now``; an index
is built for the ``GroupInfo`` it serves and for no other.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Collection, Mapping
from heapq import heappop, heappush
from typing import Protocol, cast

from huntgroup.distribution.index import GroupIndex, TalkEntry
from huntgroup.queue.availability import Availability
from huntgroup.queue.groups import GroupInfo
from huntgroup.queue.state.store import StateStore


class _Call(Protocol):
    @property
    def member(self) -> str | None: ...
    @property
    def connected_at(self) -> float | None: ...
    @property
    def rank(self) -> tuple[float, int]: ...


class _HasCalls(Protocol):
    @property
    def _calls(self) -> Mapping[str, _Call]: ...


class RosterCore:
    """What the roster reads of the core: the base class of
    :class:`~huntgroup.queue.context.RoutingContext`, which sets these attributes.

    A base class rather than a ``Protocol``: compiled by mypyc (docs/native.md),
    the roster's reads of them are then native attribute reads, where a Protocol's
    are Python attribute lookups. (The calls, read for least talk time only, stay
    behind a Protocol: their class is the core's own.)"""

    store: StateStore
    availability: Availability
    _now: float
    _touched: set[str]
    observed: bool
    _claim_refused: dict[str, float]
    _groups: dict[str, GroupInfo]
    _groups_of: dict[str, tuple[str, ...]]


class Roster:
    """The group indexes of one core."""

    __slots__ = ("_groups", "_indexes", "_parked", "_shared", "_store", "_store_touched", "_wake")

    def __init__(self) -> None:
        self._groups: Mapping[str, GroupInfo] | None = None  # the groups indexed
        self._indexes: dict[str, tuple[GroupInfo, GroupIndex]] = {}
        self._parked: list[tuple[float, str]] = []
        self._wake: dict[str, float] = {}
        self._shared: frozenset[str] = frozenset()  # the members of several groups
        # the store's ``touched`` set, read once per store (a store keeps one set for its
        # life): a property read at every refresh costs a call, several per decision
        self._store: StateStore | None = None
        self._store_touched: set[str] = set()

    def _touched_of(self, store: StateStore) -> set[str]:
        if store is not self._store:
            self._store, self._store_touched = store, store.touched
        return self._store_touched

    def index(self, core: RosterCore, info: GroupInfo) -> GroupIndex:
        """The up-to-date index of the group of ``info``."""
        self.refresh(core)
        got = self._indexes.get(info.name)
        if got is not None and got[0] is info:
            return got[1]
        index = GroupIndex(
            [c.key for c in info.candidates],
            [c.position for c in info.candidates],
            least=info.strategy.name == "least_active",
        )
        self._indexes[info.config.name] = (info, index)
        for slot in range(len(index.keys)):
            self._look(core, info, index, slot)
        return index

    def refresh(self, core: RosterCore) -> None:
        """Look again at the members that changed, and at those whose wait is over."""
        store = core.store
        store_touched = self._store_touched if store is self._store else self._touched_of(store)
        available_touched = core.availability.touched
        parked = self._parked
        if (
            not store_touched
            and not available_touched
            and (not parked or parked[0][0] > core._now)
            and core._groups is self._groups  # a reload touching nobody still retires
        ):
            return  # the usual case (several times per input): nothing to look at
        if core._groups is not self._groups:
            self._retire(core._groups)
            self._shared = frozenset(m for m, gs in core._groups_of.items() if len(gs) > 1)
        now = core._now
        if not (store_touched or available_touched or (parked and parked[0][0] <= now)):
            return
        indexes, groups_of = self._indexes, core._groups_of
        members: set[str]
        if not available_touched and not (parked and parked[0][0] <= now):
            # the usual case: the store's set only, looked through as it is (no set made;
            # a look reads the store, never writes it), then emptied
            members = store_touched
            if core.observed:
                core._touched |= members
        else:
            members = set()
            for touched in (store_touched, available_touched):
                if touched:
                    members |= touched
                    if core.observed:  # only the time in state reads the core's own set
                        core._touched |= touched
                    touched.clear()
            wake = self._wake
            while parked and parked[0][0] <= now:
                when, member = heappop(parked)
                if wake.get(member) == when:
                    del wake[member]
                members.add(member)
        for member in members:
            for name in groups_of.get(member, ()):
                got = indexes.get(name)
                if got is None:
                    continue  # built at its first use
                info, index = got
                self._look(core, info, index, index.slot[member])
        if members is store_touched:
            store_touched.clear()

    def _retire(self, groups: Mapping[str, GroupInfo]) -> None:
        """A reload replaced the groups: the indexes of the old ones are retired (the
        walks holding them fall back to the full order); new ones are built at first use."""
        for name, (info, index) in list(self._indexes.items()):
            if groups.get(name) is not info:
                index.retired = True
                del self._indexes[name]
        self._groups = groups

    def rung(
        self,
        core: RosterCore,
        members: list[str],
        group: str | None = None,
        *,
        noted: bool = True,
    ) -> None:
        """``members`` were just set ringing, the only change since the last refresh: they
        are not free any more (nothing else about them changed), without a full look.
        ``group``: the group whose call they ring for (all of them are its members): its
        index takes many (ring all) in one step, the other groups of those in several
        groups one by one. ``noted=False``: the store was told not to add them to its
        ``touched`` set (``set_ringing_many(..., touch=False)``), there is none to remove.
        """
        if noted:
            touched = self._touched_of(core.store)
            if len(touched) == len(members):  # exactly them (distinct, all just marked)
                touched.clear()
            else:
                touched.difference_update(members)
        if core.observed:  # only the time in state reads the core's own set
            core._touched.update(members)
        indexes, groups_of = self._indexes, core._groups_of
        slots: dict[str, list[int]] = {}
        shared: Collection[str]
        got = indexes.get(group) if group is not None and len(members) > 8 else None
        done = group if got is not None else None  # the group whose index took them
        if got is not None and got[1].take_given(members):  # the walk's own slice (ring all)
            shared = self._shared.intersection(members) if self._shared else ()
        elif got is not None:
            index = got[1]
            flags = index.flags
            found = list(map(index.slot.get, members))  # a builtin: no Python loop
            if None in found:  # not all of them members of ``group`` (never expected)
                slots[got[0].config.name] = [s for s in found if s is not None and flags[s]]
                shared = members
            else:  # every one free there, as a walk's slice of the free slots gives them
                known = cast(list[int], found)
                i = bisect.bisect_left(index.free, known[0])
                if index.free[i : i + len(known)] != known:  # not a run of the free slots
                    known = [s for s in known if flags[s]]
                slots[got[0].config.name] = known
                shared = self._shared.intersection(members) if self._shared else ()
        else:
            shared = members
        for member in shared:
            for name in groups_of.get(member, ()):
                got = indexes.get(name)
                if name != done and got is not None and got[1].flags[slot := got[1].slot[member]]:
                    slots.setdefault(name, []).append(slot)
        for name, taken in slots.items():
            if taken:
                indexes[name][1].busy(taken)

    def rung_one(self, core: RosterCore, member: str) -> None:
        """``member`` was just set ringing, the only change since the last refresh: as
        :meth:`rung` for one member (one offer at a time), in each of its groups."""
        store = core.store
        touched = self._store_touched if store is self._store else self._touched_of(store)
        touched.discard(member)
        if core.observed:
            core._touched.add(member)
        indexes = self._indexes
        for name in core._groups_of.get(member, ()):
            got = indexes.get(name)
            if got is not None:
                index = got[1]
                slot = index.slot[member]
                if index.flags[slot]:
                    index.take(slot)

    def _look(self, core: RosterCore, info: GroupInfo, index: GroupIndex, slot: int) -> None:
        member = index.keys[slot]
        now, store, availability = core._now, core.store, core.availability
        name, waiting = info.name, info.call_waiting  # (the config's, read once: no model read)
        refused = core._claim_refused.get(member, -math.inf)
        reachable = availability.is_reachable(member, now=now)
        # joined and not paused (1), and free in the store too (2): one read of the store
        standing = store.standing(name, member, now=now, call_waiting=waiting)
        available = reachable and standing > 0
        # free_predicate: is_free (joined, not paused...) and offerable (reachable, and not
        # busy on calls of its own unless call waiting) and no refused claim
        free = (
            available
            and standing == 2
            and (waiting or not availability.busy_outside(member))
            and refused <= now
        )
        entry = (
            _talk_entry(core, name, member, store.joined_since(name, member))
            if index.least
            else None
        )
        index.update(slot, free, available, entry)
        if not free or not reachable:  # the earliest of these ends still to come, if any
            wrap_up = store.wrap_up_until(member)  # (written out: no generator per look)
            soonest = wrap_up if wrap_up > now else None
            if refused > now and (soonest is None or refused < soonest):
                soonest = refused
            backoff = availability.backoff_until(member)
            if backoff is not None and backoff > now and (soonest is None or backoff < soonest):
                soonest = backoff
            if soonest is not None:
                self._park(member, soonest)

    def _park(self, member: str, when: float) -> None:
        planned = self._wake.get(member)
        if planned is not None and planned <= when:
            return
        self._wake[member] = when
        heappush(self._parked, (when, member))


def _talk_entry(core: RosterCore, group: str, member: str, since: float | None) -> TalkEntry:
    """``member``'s talk entry in ``group``: its completed talk time, join date and the
    connection times of its calls in progress, in the order the core holds the calls."""
    stored = core.store.talk_time(group, member)
    calls: list[_Call] = []
    for call_id in core.store.active_calls(member):
        call = cast(_HasCalls, core)._calls.get(call_id)
        if call is not None and call.member == member and call.connected_at is not None:
            calls.append(call)
    if not calls:
        return (stored, since, ())
    calls.sort(key=lambda c: c.rank[1])
    return (stored, since, tuple(c.connected_at for c in calls if c.connected_at is not None))
