"""The group core: members' states, bounded FIFO queues, hunting and dispatch.

Theory of operation
-------------------
``RoutingCore`` is sans-I/O. A driver feeds it events with the current time
(``handle(event, now=...)``) and carries out the actions it returns; it asks
``get_timer()`` when the core next needs to run and calls
``handle_timer(now=...)`` then. The live engine and the simulator drive the
very same object.

One core routes every group of a configuration, because a line can be a
member of several groups and its activity (ringing, on a call, wrap-up) is
the same for all of them.

A call to a pilot (DESIGN.md §1):

1. no member of the group is available (every joined member unreachable, or
   none joined) and ``queue.when_empty`` is ``overflow``: ``Forward(overflow_to)``
   or ``Release(480)`` at once;
2. a member is free and nobody waits in the group's queue: hunting starts at
   once (``Ringback``);
3. else if the queue holds fewer than ``max_length`` callers: the caller is
   queued (``Hold``);
4. else the queue is full: ``Release(486)`` or ``Forward(overflow_to)``.

A member is *free* when the shared state says so (joined, not ringing, not on
a call, not in wrap-up) and this node can offer it a call (``availability``:
it has a registered contact, is not backing off after an unreachable offer,
and is not busy on calls of its own unless ``call_waiting``). An unavailable
member is skipped by every algorithm without costing a pass, and never counts
as free: callers who find nobody free wait in the queue, in order.

A forward to one of our own pilots or lines does not leave the core: the call
arrives there again, and the driver only gets ``Reroute`` (``forwards``).

Hunting follows the group's strategy (``distribution``). Each offer lasts
``no_answer_timeout``; a refusal (``refusals``: busy, declined, unreachable)
ends it at once.
When a pass is exhausted linear stops (forward or 480) and the others start a
new pass; passes start at least ``PASS_SPACING`` seconds apart, so that a
group whose members all refuse at once is not rung in a tight loop. When a
fresh pass finds nobody free the call goes back to the head of the queue (its
arrival order is kept; ``max_length`` is not checked again, but a group with
``max_length: 0`` releases it as for a full queue). Whenever a member may have
become free, ``_dispatch`` hands queue heads to free members: the queue of
the group with the highest ``priority`` first, the earliest arrival first
between groups of equal priority. When the last available member of a group
with ``when_empty: overflow`` goes (unreachable, logged out, removed), its
waiting callers overflow.

``max_wait`` runs from arrival to answer; ``no_answer.after`` from the first
hunt. Talk time is credited to every group a member is joined to, for the part
of the call after the member joined.

Invariants (checked by the property tests): a member rings for at most one
call at a time; a call ends exactly once (``Release``, ``Forward``,
``RefuseForward`` or a ``CallHungUp`` event); a caller is queued only while
the queue holds fewer than ``max_length`` callers who arrived through it;
nobody waits past ``max_wait``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum

from huntgroup.config.models import Config, GroupConfig, LineConfig
from huntgroup.distribution.hunt import Hunt
from huntgroup.queue.actions import (
    Action,
    Bridge,
    Cancel,
    Forward,
    ForwardReason,
    Hold,
    Identity,
    Release,
    ReleaseReason,
    Reroute,
    Ring,
    Ringback,
)
from huntgroup.queue.availability import Availability, MemberState, state_of
from huntgroup.queue.events import (
    CallAnswered,
    CallArrived,
    CallHungUp,
    CallsJoined,
    CallTransferred,
    DirectCallArrived,
    Event,
    LineActivity,
    MemberAnswered,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberReachable,
    MemberUnreachable,
    OutgoingCallStarted,
)
from huntgroup.queue.forwards import Reentry, follow
from huntgroup.queue.groups import GroupInfo, install, position_of
from huntgroup.queue.refusals import Refusal, refusal_of
from huntgroup.queue.state.store import MemoryStore, StateStore
from huntgroup.queue.transfers import transfer

log = logging.getLogger("huntgroup.members")

PASS_SPACING = 1.0
"""Minimum seconds between the starts of two passes of one hunt."""


class CallKind(Enum):
    GROUP = "group"
    DIRECT = "direct"
    OUTGOING = "outgoing"


class CallState(Enum):
    QUEUED = "queued"
    HUNTING = "hunting"
    RINGING = "ringing"  # a direct call ringing its line
    DIALING = "dialing"  # an outgoing call not answered yet
    CONNECTED = "connected"


class _Timer(Enum):
    OFFER = 1
    MAX_WAIT = 2
    AFTER = 3
    NEXT_PASS = 4
    WRAP_UP = 5
    RETRY = 6  # a member's back-off ends: it may be offered calls again


@dataclass(slots=True)
class _RoutedCall:
    """One call as the group core knows it: where it is, who it was offered to."""

    id: str
    kind: CallKind
    state: CallState
    arrival: float
    rank: tuple[float, int]
    caller: Identity
    route: tuple[str, ...] = ()  # our numbers it went to: the one dialled, then forwards
    caller_internal: bool = False
    group: GroupConfig | None = None
    line: LineConfig | None = None
    hunt: Hunt | None = None
    offers: dict[str, int] = field(default_factory=dict)  # member -> offer token
    member: str | None = None
    connected_at: float | None = None
    holding: bool = False
    pass_token: int = 0


class _View:
    """What strategies read about a group at the start of a pass."""

    __slots__ = ("_core", "_group", "_now", "_talk")

    def __init__(self, core: RoutingCore, group: str, now: float) -> None:
        self._core, self._group, self._now = core, group, now
        self._talk: dict[str, float] | None = None

    def last_answered(self) -> int | None:
        """The position, in today's numbering, of the member who took the last call."""
        info = self._core._groups[self._group]
        return position_of(info, self._core.store.last_answered(self._group))

    def talk_time(self, member: str) -> float:
        if self._talk is None:
            self._talk = self._core.talk_times(self._group, now=self._now)
        return self._talk.get(member, 0.0)


class RoutingCore:
    """Routes the calls of every group of one configuration."""

    def __init__(self, config: Config, *, now: float, store: StateStore | None = None) -> None:
        self.store: StateStore = store if store is not None else MemoryStore()
        self._calls: dict[str, _RoutedCall] = {}
        self._timers: list[tuple[float, int, _Timer, str, int]] = []
        self._seq = itertools.count(1)
        self._now = now
        self._groups: dict[str, GroupInfo] = {}
        self._pilots: dict[str, str] = {}
        self._lines: dict[str, LineConfig] = {}
        self._groups_of: dict[str, tuple[str, ...]] = {}
        self._reentries: deque[Reentry] = deque()  # forwards to our numbers, to follow
        self.availability = Availability()
        self.config = config
        self._install(config, now=now, first=True)

    # ------------------------------------------------------------------ setup
    def _install(
        self, config: Config, *, now: float, first: bool = False
    ) -> list[tuple[str, str, bool]]:
        """Take ``config`` on (:func:`~huntgroup.queue.groups.install`); returns the
        (group, member, joined) whose ``joined`` flag the file changed."""
        installed = install(config, self._groups, self.store, now=now, first=first)
        self.config = config
        self._groups, self._groups_of = installed.groups, installed.groups_of
        self._pilots = {g.pilot: g.name for g in config.groups}
        self._lines = {line.number: line for line in config.lines}
        self.availability.retain({*self._groups_of, *self._lines})
        return installed.flipped

    def state_changed(self, *, now: float) -> list[Action]:
        """Shared state changed behind the core (another node): serve queued callers."""
        self._now = max(self._now, now)
        actions: list[Action] = []
        self._dispatch(actions, None)
        self._follow_forwards(actions)
        return actions

    def reload(self, config: Config, *, now: float) -> list[Action]:
        """Apply a new configuration without dropping calls.

        Pointers, talk time and membership live in the store and are kept, but a
        member the file removed from a group leaves it (added back, it joins
        afresh), and a member whose ``joined`` flag the file changed logs in or
        out of that group (a ``*51`` / ``*52`` since is overridden only then).
        Calls waiting for a group that no longer exists are released (480);
        offers to members removed from a group end as unanswered.
        """
        self._now = max(self._now, now)
        actions: list[Action] = []
        flipped = self._install(config, now=now)
        for call in list(self._calls.values()):
            if call.kind is not CallKind.GROUP or call.state is CallState.CONNECTED:
                continue
            assert call.group is not None
            info = self._groups.get(call.group.name)
            if info is None:
                self._finish(call, Release(call.id, 480, "group_removed"), actions)
                continue
            call.group = info.config
            if call.hunt is not None and call.hunt.strategy.name != info.strategy.name:
                call.hunt.strategy = info.strategy
            for member in [m for m in call.offers if m not in info.positions]:
                self._end_offer(call, member)
                actions.append(Cancel(call.id, member))
            if call.state is CallState.HUNTING and not call.offers:
                self._advance(call, actions)
        for group, member, joined in flipped:
            log.info(
                "reload: member %s %s group %s", member, "joins" if joined else "leaves", group
            )
            (self._join if joined else self._leave)(group, member, actions)
        self._empty_groups(None, actions)
        self._dispatch(actions, None)
        self._follow_forwards(actions)
        return actions

    # ------------------------------------------------------------ inspection
    def call_state(self, call_id: str) -> CallState | None:
        call = self._calls.get(call_id)
        return call.state if call else None

    def call_ids(self) -> list[str]:
        return list(self._calls)

    def offers_of(self, call_id: str) -> list[str]:
        call = self._calls.get(call_id)
        return list(call.offers) if call else []

    def group_of_call(self, call_id: str) -> str | None:
        call = self._calls.get(call_id)
        return call.group.name if call is not None and call.group is not None else None

    def queue(self, group: str) -> list[str]:
        return list(self.store.queue(group))

    def group_of_pilot(self, number: str) -> str | None:
        return self._pilots.get(number)

    def talk_time(self, group: str, member: str, *, now: float) -> float:
        """Talk time since the member joined ``group``, counting calls in progress."""
        total = self.store.talk_time(group, member)
        since = self.store.joined_since(group, member)
        if since is None:
            return total
        for call_id in self.store.active_calls(member):
            call = self._calls.get(call_id)
            if call is not None and call.connected_at is not None:
                total += max(0.0, now - max(call.connected_at, since))
        return total

    def talk_times(self, group: str, *, now: float) -> dict[str, float]:
        """Talk time of every member of ``group``, counting calls in progress."""
        totals = self.store.talk_times(group)
        for call in self._calls.values():
            member = call.member
            if call.connected_at is None or member is None:
                continue
            since = self.store.joined_since(group, member)
            if since is not None:
                extra = max(0.0, now - max(call.connected_at, since))
                totals[member] = totals.get(member, 0.0) + extra
        return totals

    def is_free(self, group: str, member: str, *, now: float) -> bool:
        info = self._groups.get(group)
        return info is not None and self._free_predicate(info.config, now)(member)

    def member_state(self, group: str, member: str, *, now: float) -> MemberState | None:
        """What ``member`` is doing for ``group`` (None: not a member of that group).

        The first that applies: logged out, unavailable (no registered contact,
        or backing off after an unreachable offer), ringing, talking (on a call,
        or busy on calls of its own), in wrap-up, free.
        """
        info = self._groups.get(group)
        if info is None or member not in info.positions:
            return None
        return state_of(self.store, self.availability, group, member, now=now)

    def member_states(self, group: str, *, now: float) -> dict[str, MemberState]:
        """The state of every member of ``group``, by position (empty: no such group)."""
        info = self._groups.get(group)
        if info is None:
            return {}
        store, availability = self.store, self.availability
        return {
            c.key: state_of(store, availability, group, c.key, now=now) for c in info.candidates
        }

    # ----------------------------------------------------------------- timers
    def get_timer(self) -> float | None:
        """When the core next needs ``handle_timer``; None when it has nothing due."""
        timers = self._timers
        while timers and not self._timer_valid(timers[0]):
            heapq.heappop(timers)
        return timers[0][0] if timers else None

    def handle_timer(self, *, now: float) -> list[Action]:
        self._now = max(self._now, now)
        actions: list[Action] = []
        timers = self._timers
        while timers and timers[0][0] <= now:
            entry = heapq.heappop(timers)
            if self._timer_valid(entry):
                self._fire(entry, actions)
        if self._reentries:
            self._follow_forwards(actions)
        return actions

    def _arm(self, when: float, kind: _Timer, key: str, token: int = 0) -> None:
        heapq.heappush(self._timers, (when, next(self._seq), kind, key, token))

    def _timer_valid(self, entry: tuple[float, int, _Timer, str, int]) -> bool:
        when, _, kind, key, token = entry
        if kind is _Timer.WRAP_UP:
            return True
        if kind is _Timer.RETRY:
            return self.availability.backoff_until(key) == when
        call = self._calls.get(key)
        if call is None:
            return False
        if kind is _Timer.OFFER:
            return token in call.offers.values()
        if kind is _Timer.NEXT_PASS:
            return call.state is CallState.HUNTING and call.pass_token == token
        return call.state in (CallState.QUEUED, CallState.HUNTING)

    def _fire(self, entry: tuple[float, int, _Timer, str, int], actions: list[Action]) -> None:
        _, _, kind, key, token = entry
        if kind is _Timer.WRAP_UP:
            self._dispatch(actions, self._groups_of.get(key, ()))
            return
        if kind is _Timer.RETRY:
            if self.availability.is_reachable(key, now=self._now):
                log.info("member %s: available again, its back-off is over", key)
                self._dispatch(actions, self._groups_of.get(key, ()))
            return
        call = self._calls[key]
        if kind is _Timer.OFFER:
            expired = [m for m, t in call.offers.items() if t == token]
            for member in expired:
                actions.append(Cancel(call.id, member))
            self._offers_failed(call, expired, actions, Refusal.NO_ANSWER)
        elif kind is _Timer.NEXT_PASS:
            self._advance(call, actions)
        elif kind is _Timer.MAX_WAIT:
            assert call.group is not None
            self._give_up(call, call.group.queue.overflow_to, "max_wait", actions)
        elif kind is _Timer.AFTER:
            assert call.group is not None
            self._give_up(call, call.group.no_answer.forward_to, "no_answer_after", actions)

    # ----------------------------------------------------------------- events
    def handle(self, event: Event, *, now: float) -> list[Action]:
        """Feed one event; returns the actions to carry out, in order."""
        self._now = max(self._now, now)
        actions: list[Action] = []
        match event:
            case CallArrived(call_id, group, caller, caller_name, internal):
                self._call_arrived(call_id, group, Identity(caller, caller_name), internal, actions)
            case DirectCallArrived(call_id, line, caller, caller_name, internal):
                self._direct_call(call_id, line, Identity(caller, caller_name), internal, actions)
            case OutgoingCallStarted(call_id, line):
                self._outgoing(call_id, line)
            case CallAnswered(call_id):
                self._far_end_answered(call_id)
            case MemberAnswered(call_id, member):
                self._answered(call_id, member, actions)
            case MemberFailed(call_id, member, status):
                self._refused(call_id, member, refusal_of(status), actions)
            case MemberUnreachable(call_id, member, ours):
                self._refused(call_id, member, Refusal.UNREACHABLE, actions, ours=ours)
            case CallHungUp(call_id):
                self._hung_up(call_id, actions)
            case MemberJoined(group, member):
                self._join(group, member, actions)
            case MemberLeft(group, member):
                self._leave(group, member, actions)
            case MemberReachable(member, reachable):
                self._reachability(member, reachable, actions)
            case LineActivity(member, busy):
                self._line_activity(member, busy, actions)
            case CallTransferred() | CallsJoined():
                transfer(self, event, actions)  # queue/transfers.py
        if self._reentries:
            self._follow_forwards(actions)
        return actions

    # ------------------------------------------------------------- arrivals
    def _new_call(
        self, call_id: str, kind: CallKind, state: CallState, caller: Identity
    ) -> _RoutedCall:
        now = self._now
        call = _RoutedCall(call_id, kind, state, now, (now, next(self._seq)), caller)
        self._calls[call_id] = call
        return call

    def _call_arrived(
        self,
        call_id: str,
        group: str,
        caller: Identity,
        internal: bool,
        actions: list[Action],
        route: tuple[str, ...] = (),
    ) -> None:
        """A call to ``group``; ``route`` as it arrives (default: the group's pilot dialled)."""
        info = self._groups.get(group)
        if call_id in self._calls:
            return  # a retransmission of an arrival: already routed
        if info is None:
            actions.append(Release(call_id, 480, "group_removed"))
            return
        g = info.config
        call = self._new_call(call_id, CallKind.GROUP, CallState.HUNTING, caller)
        call.group = g
        call.route = route or (g.pilot,)
        call.caller_internal = internal
        call.hunt = Hunt(info.strategy)
        if g.queue.max_wait is not None:
            self._arm(call.arrival + g.queue.max_wait, _Timer.MAX_WAIT, call_id)
        if self._is_empty(info):
            self._overflow_empty(call, actions)
        elif not self.store.queue(g.name) and self._has_free(info):
            actions.append(Ringback(call_id))
            self._start_hunting(call, actions)
        elif len(self.store.queue(g.name)) < g.queue.max_length:
            self._enqueue(call, actions)
        else:
            self._queue_full(call, actions)

    def _queue_full(self, call: _RoutedCall, actions: list[Action]) -> None:
        """No place in the queue: ``overflow_to``, else 486 Busy Here."""
        assert call.group is not None
        target = call.group.queue.overflow_to
        self._finish(
            call,
            Forward(call.id, target, "queue_full")
            if target
            else Release(call.id, 486, "queue_full"),
            actions,
        )

    def _overflow_empty(self, call: _RoutedCall, actions: list[Action]) -> None:
        """No member available and ``when_empty: overflow``: ``overflow_to``, else 480."""
        assert call.group is not None
        target = call.group.queue.overflow_to
        self._finish(
            call,
            Forward(call.id, target, "empty") if target else Release(call.id, 480, "empty"),
            actions,
        )

    def _direct_call(
        self,
        call_id: str,
        number: str,
        caller: Identity,
        internal: bool,
        actions: list[Action],
        route: tuple[str, ...] = (),
    ) -> None:
        """A call to line ``number``; ``route`` as it arrives (default: the line dialled)."""
        if call_id in self._calls:
            return
        line = self._lines.get(number)
        if line is None:
            actions.append(Release(call_id, 404, "not_found"))
            return
        route = route or (number,)  # default: the line was dialled
        busy = self.store.is_ringing(number) or self.store.is_on_call(number)
        if busy and not internal:
            for g in self._groups_of.get(number, ()):
                cfg = self._groups[g].config
                if cfg.hunt_direct_calls and self.store.joined_since(g, number) is not None:
                    self._call_arrived(call_id, g, caller, internal, actions, route)
                    return
        call = self._new_call(call_id, CallKind.DIRECT, CallState.RINGING, caller)
        call.line, call.route, call.caller_internal = line, route, internal
        if busy:
            self._line_rule(call, busy=True, actions=actions)
            return
        self._offer(call, [number], line.no_answer_timeout, caller, actions)

    def _outgoing(self, call_id: str, number: str) -> None:
        if call_id in self._calls:
            return
        call = self._new_call(call_id, CallKind.OUTGOING, CallState.DIALING, Identity(number))
        call.member = number
        self.store.set_active(number, call_id, True)

    def _far_end_answered(self, call_id: str) -> None:
        call = self._calls.get(call_id)
        if call is not None and call.state is CallState.DIALING:
            call.state = CallState.CONNECTED
            call.connected_at = self._now

    # ---------------------------------------------------------------- hunting
    def _is_empty(self, info: GroupInfo) -> bool:
        """``when_empty: overflow`` applies: no member is available (joined and reachable)."""
        if info.config.queue.when_empty != "overflow":
            return False
        name, now, store, reachable = info.config.name, self._now, self.store, self.availability
        return not any(
            store.joined_since(name, c.key) is not None and reachable.is_reachable(c.key, now=now)
            for c in info.candidates
        )

    def _has_free(self, info: GroupInfo) -> bool:
        free = self._free_predicate(info.config, self._now)
        return any(free(c.key) for c in info.candidates)

    def _order(self, info: GroupInfo) -> Iterator[str]:
        return info.strategy.order(info.candidates, _View(self, info.config.name, self._now))

    def _start_hunting(self, call: _RoutedCall, actions: list[Action]) -> None:
        call.state = CallState.HUNTING
        assert call.group is not None and call.hunt is not None
        first = call.hunt.started_at is None
        self._advance(call, actions)
        after = call.group.no_answer.after
        if first and after is not None and call.id in self._calls:
            self._arm(self._now + after, _Timer.AFTER, call.id)

    def _advance(self, call: _RoutedCall, actions: list[Action]) -> None:
        """Make the next offer(s) of a hunting call, or apply the end-of-pass rule."""
        if call.offers:
            return  # ring all: the pass goes on while someone still rings
        hunt, g = call.hunt, call.group
        assert hunt is not None and g is not None
        info = self._groups[g.name]
        now = self._now
        free = self._free_predicate(g, now)
        if hunt.in_pass:
            chosen = hunt.take(free)
            if chosen:
                self._offer_all(call, chosen, actions)
                return
            hunt.end_pass()
            if info.strategy.stop_after_pass:
                self._give_up(call, g.no_answer.forward_to, "no_answer", actions, status=480)
                return
            if now < hunt.pass_started_at + PASS_SPACING:
                call.pass_token = next(self._seq)
                self._arm(
                    hunt.pass_started_at + PASS_SPACING,
                    _Timer.NEXT_PASS,
                    call.id,
                    call.pass_token,
                )
                return
        hunt.begin_pass(self._order(info), now=now)
        chosen = hunt.take(free)
        if chosen:
            self._offer_all(call, chosen, actions)
            return
        hunt.end_pass()
        if self._is_empty(info):
            self._overflow_empty(call, actions)
        elif g.queue.max_length == 0:
            self._queue_full(call, actions)  # no queue: nobody ever waits
        else:
            self._enqueue(call, actions)

    def _free_predicate(self, g: GroupConfig, now: float) -> Callable[[str], bool]:
        """Whether a member is free for group ``g`` at ``now``: free in the shared state
        and offerable from this node (``availability``); the hunt's predicate."""
        is_free, name, waiting = self.store.is_free, g.name, g.call_waiting
        offerable = self.availability.offerable
        return lambda member: (
            is_free(name, member, now=now, call_waiting=waiting)
            and offerable(member, now=now, call_waiting=waiting)
        )

    def _offer_all(self, call: _RoutedCall, members: list[str], actions: list[Action]) -> None:
        g = call.group
        assert g is not None
        caller = Identity(g.pilot, g.name) if g.pilot_as_caller_id else call.caller
        self._offer(call, members, g.no_answer_timeout, caller, actions)

    def _offer(
        self,
        call: _RoutedCall,
        members: list[str],
        timeout: float,
        caller: Identity,
        actions: list[Action],
    ) -> None:
        """Ring ``members`` for ``call``; offers made together share one timer."""
        token = next(self._seq)
        group = call.group.name if call.group is not None else None
        set_ringing, offers, call_id = self.store.set_ringing, call.offers, call.id
        for member in members:
            offers[member] = token
            set_ringing(member, call_id, True)
            actions.append(Ring(call_id, member, caller, group, timeout))
        self._arm(self._now + timeout, _Timer.OFFER, call_id, token)

    def _end_offer(self, call: _RoutedCall, member: str) -> None:
        del call.offers[member]
        self.store.set_ringing(member, call.id, False)

    def _enqueue(self, call: _RoutedCall, actions: list[Action]) -> None:
        assert call.group is not None
        call.state = CallState.QUEUED
        self.store.enqueue(call.group.name, call.id, call.rank)
        if not call.holding:
            call.holding = True
            actions.append(Hold(call.id, call.group.queue.answer, call.group.queue.music))

    # -------------------------------------------------------------- outcomes
    def _answered(self, call_id: str, member: str, actions: list[Action]) -> None:
        call = self._calls.get(call_id)
        if call is None or member not in call.offers:
            actions.append(Cancel(call_id, member))  # too late: hang that leg up
            return
        self._end_offer(call, member)
        for other in list(call.offers):
            self._end_offer(call, other)
            actions.append(Cancel(call_id, other))
        call.state = CallState.CONNECTED
        call.member = member
        call.connected_at = self._now
        self.store.set_active(member, call_id, True)
        self.availability.answered(member)
        if call.group is not None:
            self.store.set_last_answered(call.group.name, member)
        actions.append(Bridge(call_id, member))
        self._dispatch(actions, self._groups_of.get(member, ()))

    def _refused(
        self,
        call_id: str,
        member: str,
        refusal: Refusal,
        actions: list[Action],
        *,
        ours: bool = False,
    ) -> None:
        """A member's offer failed. Unreachable (and not ``ours``, a shortage of our own):
        the member backs off; any other answer shows it is reachable."""
        call = self._calls.get(call_id)
        if call is None or member not in call.offers:
            return
        if refusal is not Refusal.UNREACHABLE:
            self.availability.answered(member)
        backing_off = (
            refusal is Refusal.UNREACHABLE and not ours and self.availability.has_contact(member)
        )
        if backing_off:  # before the hunt goes on: the next pass must not pick it
            until = self.availability.failed(member, now=self._now)
            self._arm(until, _Timer.RETRY, member)
            log.info(
                "member %s: unavailable (unreachable), tried again in %.0f s",
                member,
                until - self._now,
            )
        self._offers_failed(call, [member], actions, refusal)
        if backing_off:
            self._empty_groups(self._groups_of.get(member, ()), actions)

    def _offers_failed(
        self, call: _RoutedCall, members: list[str], actions: list[Action], refusal: Refusal
    ) -> None:
        touched: set[str] = set()
        for member in members:
            self._end_offer(call, member)
            touched.update(self._groups_of.get(member, ()))
        if call.kind is CallKind.DIRECT:
            self._line_rule(call, busy=refusal is Refusal.BUSY, actions=actions)
        else:
            self._advance(call, actions)
        self._dispatch(actions, touched)

    def _line_rule(self, call: _RoutedCall, *, busy: bool, actions: list[Action]) -> None:
        """A direct call the line did not take follows the line's own forwarding."""
        line = call.line
        assert line is not None
        final: Release | Forward
        if busy:
            target = line.forward_busy
            final = Forward(call.id, target, "busy") if target else Release(call.id, 486, "busy")
        else:
            target = line.forward_no_answer
            final = (
                Forward(call.id, target, "no_answer")
                if target
                else Release(call.id, 480, "no_answer")
            )
        self._finish(call, final, actions)

    def _give_up(
        self,
        call: _RoutedCall,
        target: str | None,
        reason: ForwardReason,
        actions: list[Action],
        *,
        status: int = 480,
    ) -> None:
        for member in list(call.offers):
            self._end_offer(call, member)
            actions.append(Cancel(call.id, member))
        release_reason: ReleaseReason = "max_wait" if reason == "max_wait" else "no_answer"
        self._finish(
            call,
            Forward(call.id, target, reason)
            if target
            else Release(call.id, status, release_reason),
            actions,
        )
        if call.group is not None:
            self._dispatch(actions, (call.group.name,))

    def _finish(self, call: _RoutedCall, final: Release | Forward, actions: list[Action]) -> None:
        """The caller's call leaves the core (released or forwarded), or this group or line
        of ours: a forward to another of our numbers arrives there once the event that
        caused it is handled (``_follow_forwards``)."""
        if call.group is not None:
            self.store.dequeue(call.group.name, call.id)
        self._calls.pop(call.id, None)
        if type(final) is Forward:
            limit = self.config.server.limits.max_internal_forwards
            step = follow(final, call.route, pilots=self._pilots, lines=self._lines, limit=limit)
            if type(step) is Reroute:
                self._reentries.append(Reentry(step, call.caller, call.caller_internal))
            actions.append(step)
            return
        actions.append(final)

    def _follow_forwards(self, actions: list[Action]) -> None:
        """Calls forwarded to our own numbers arrive there, in the order they were forwarded
        (a call may be forwarded again at once: each one follows the chain to its end)."""
        reentries = self._reentries
        while reentries:
            entry = reentries.popleft()
            step, caller, internal = entry.reroute, entry.caller, entry.caller_internal
            if step.group is not None:
                self._call_arrived(step.call_id, step.group, caller, internal, actions, entry.route)
            else:
                self._direct_call(step.call_id, step.target, caller, internal, actions, entry.route)

    def _hung_up(self, call_id: str, actions: list[Action]) -> None:
        call = self._calls.pop(call_id, None)
        if call is None:
            return
        touched: set[str] = set()
        for member in list(call.offers):
            self._end_offer(call, member)
            actions.append(Cancel(call_id, member))
            touched.update(self._groups_of.get(member, ()))
        if call.group is not None:
            self.store.dequeue(call.group.name, call_id)
            touched.add(call.group.name)
        if call.member is not None:
            member = call.member
            self.store.set_active(member, call_id, False)
            if call.connected_at is not None:
                self._credit_talk_time(member, call.connected_at)
            if call.group is not None and call.group.wrap_up > 0:
                until = self._now + call.group.wrap_up
                self.store.set_wrap_up_until(member, max(until, self.store.wrap_up_until(member)))
                self._arm(until, _Timer.WRAP_UP, member)
            touched.update(self._groups_of.get(member, ()))
        self._dispatch(actions, touched)

    def _credit_talk_time(self, member: str, connected_at: float) -> None:
        now = self._now
        for g in self._groups_of.get(member, ()):
            since = self.store.joined_since(g, member)
            if since is not None:
                self.store.add_talk_time(g, member, now - max(connected_at, since))

    # ------------------------------------------------------------ membership
    def _join(self, group: str, member: str, actions: list[Action]) -> None:
        info = self._groups.get(group)
        if info is None or member not in info.positions:
            return
        self.store.set_joined(group, member, True, now=self._now)
        self._dispatch(actions, (group,))

    def _leave(self, group: str, member: str, actions: list[Action]) -> None:
        info = self._groups.get(group)
        if info is None or member not in info.positions:
            return
        self.store.set_joined(group, member, False, now=self._now)
        for call in list(self._calls.values()):
            if call.group is not None and call.group.name == group and member in call.offers:
                actions.append(Cancel(call.id, member))
                self._offers_failed(call, [member], actions, Refusal.UNREACHABLE)
        self._empty_groups((group,), actions)

    # ---------------------------------------------------------- availability
    def _reachability(self, member: str, reachable: bool, actions: list[Action]) -> None:
        """A line registered its first contact, or lost its last one."""
        groups = self._groups_of.get(member, ())
        if member not in self._lines and not groups:
            return  # not ours: nothing to keep
        was = self.availability.is_reachable(member, now=self._now)
        self.availability.set_contact(member, reachable)
        now_reachable = self.availability.is_reachable(member, now=self._now)
        if was != now_reachable and groups:
            log.info(
                "member %s: %s",
                member,
                "available (registered)" if reachable else "unavailable (no registered contact)",
            )
        if now_reachable:
            self._dispatch(actions, groups)
        else:
            self._empty_groups(groups, actions)

    def _line_activity(self, member: str, busy: bool, actions: list[Action]) -> None:
        """A line's phone has calls of its own (``busy``), or has none any more."""
        groups = self._groups_of.get(member, ())
        if not groups:
            return  # offered no group call: nothing to keep
        if self.availability.set_busy(member, busy) and not busy:
            self._dispatch(actions, groups)

    def _empty_groups(self, groups: Iterable[str] | None, actions: list[Action]) -> None:
        """Waiting callers of groups with ``when_empty: overflow`` and no member available
        any more overflow, the earliest arrival first."""
        names = self._groups if groups is None else groups
        empty = {n for n in names if n in self._groups and self._is_empty(self._groups[n])}
        if not empty:
            return
        waiting = sorted(
            (
                c
                for c in self._calls.values()
                if c.group is not None
                and c.group.name in empty
                and not c.offers
                and c.state in (CallState.QUEUED, CallState.HUNTING)
            ),
            key=lambda c: c.rank,
        )
        for call in waiting:
            self._overflow_empty(call, actions)

    # --------------------------------------------------------------- dispatch
    def _dispatch(self, actions: list[Action], groups: Iterable[str] | None) -> None:
        """Hand queued callers to free members: the group of the highest ``priority``
        first, then the earliest arrival."""
        names = list(self._groups) if groups is None else [g for g in groups if g in self._groups]
        store = self.store
        while True:
            best: tuple[tuple[int, float, int], _RoutedCall] | None = None
            for name in names:
                queued = store.queue(name)
                while queued and queued[0] not in self._calls:
                    store.dequeue(name, queued[0])  # stale: a call this core no longer has
                    queued = store.queue(name)
                if not queued:
                    continue
                head = self._calls[queued[0]]
                info = self._groups[name]
                order = (-info.config.priority, *head.rank)
                if (best is None or order < best[0]) and self._has_free(info):
                    best = (order, head)
            if best is None:
                return
            call = best[1]
            assert call.group is not None
            store.dequeue(call.group.name, call.id)
            self._start_hunting(call, actions)
