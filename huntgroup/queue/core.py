"""The group core: one object routes the calls of every group of a configuration.

Theory of operation
-------------------
``RoutingCore`` is sans-I/O. A driver feeds it events with the current time
(``handle(event, now=...)``) and carries out the actions it returns; it asks
``get_timer()`` when the core next needs to run and calls
``handle_timer(now=...)`` then. The live engine and the simulator drive the
very same object. The three most frequent inputs of a call (its arrival at a
pilot, a member's answer, its hang-up) can also be given without an event object
(``handle_call_arrived``, ``handle_member_answered``, ``handle_call_hung_up``:
``handle`` of the event, step for step); the simulator does, and reads the head
of the timer heap (``timer_entries``) after each input rather than asking for it.

One core routes every group of a configuration, because a line can be a
member of several groups and its activity (ringing, on a call, wrap-up) is
the same for all of them.

This module is the facade: the public inputs (events, timers, a reload, a
change of the shared state), the dispatch of each event to the module of its
concern, and the inspection the drivers and the operators use. The state
lives in :class:`~huntgroup.queue.context.RoutingContext`; the work is done
by functions over it:

- :mod:`~huntgroup.queue.arrivals`: a call to a pilot (queued, hunted or
  overflowed at once), to a line, from a line; forwards to our own numbers
  arriving there (:mod:`~huntgroup.queue.forwards`);
- :mod:`~huntgroup.queue.hunting`: the hunt of one call, passes and their
  spacing, the queue, and the dispatch of queue heads to free members, the
  group of the highest ``priority`` first;
- :mod:`~huntgroup.queue.offers`: who is free (shared state and
  :mod:`~huntgroup.queue.availability`), the order of a pass, the offers
  (claimed first when several nodes share the state: ``Claim``, answered by
  ``ClaimGranted`` or ``ClaimRefused``);
- :mod:`~huntgroup.queue.outcomes`: a member answers or refuses
  (:mod:`~huntgroup.queue.refusals`), an offer runs out, a call ends;
- :mod:`~huntgroup.queue.endings`: how a call leaves the core (released,
  forwarded out, rerouted to one of our numbers);
- :mod:`~huntgroup.queue.membership`: members logging in and out, pausing,
  lines registering, phones busy on calls of their own;
- :mod:`~huntgroup.queue.member_status`: since when each member is in its
  state (stamped at the end of every input), the control changes noted;
- :mod:`~huntgroup.queue.talk_time`: talk time per group;
- :mod:`~huntgroup.queue.transfers`: blind and attended transfers;
- :mod:`~huntgroup.queue.groups`: the groups of a configuration and what a
  reload changes.

The timers (``no_answer_timeout`` of an offer, ``max_wait`` from arrival to
answer, ``no_answer.after`` from the first hunt, the spacing of passes,
wrap-up, the end of a back-off) fire here and go to the module they belong to.

Invariants (checked by the property tests): a member rings for at most one
call at a time; a call ends exactly once (``Release``, ``Forward``,
``RefuseForward`` or a ``CallHungUp`` event); a caller is queued only while
the queue holds fewer than ``max_length`` callers who arrived through it;
nobody waits past ``max_wait``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from heapq import heappop
from typing import Any, Final

from huntgroup.config.models import Config, GroupConfig
from huntgroup.queue.actions import Action, Cancel, Identity, Release
from huntgroup.queue.arrivals import (
    call_arrived,
    direct_call,
    far_end_answered,
    follow_forwards,
    outgoing,
)
from huntgroup.queue.availability import MemberState, state_of
from huntgroup.queue.context import (
    CallKind,
    CallState,
    RoutingContext,
    TimerEntry,
    TimerKind,
)
from huntgroup.queue.endings import finish
from huntgroup.queue.events import (
    CallAnswered,
    CallArrived,
    CallHungUp,
    CallsJoined,
    CallTransferred,
    ClaimGranted,
    ClaimRefused,
    DirectCallArrived,
    Event,
    LineActivity,
    MemberAnswered,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberPaused,
    MemberReachable,
    MemberUnreachable,
    OutgoingCallStarted,
)
from huntgroup.queue.groups import Installed, install
from huntgroup.queue.hunting import advance, dispatch, empty_groups, give_up
from huntgroup.queue.member_status import MembershipChange
from huntgroup.queue.membership import (
    line_activity,
    note_change,
    pause,
    reachability,
    set_joined,
    withdraw_barred,
)
from huntgroup.queue.offers import claim_granted, end_offer, free_predicate
from huntgroup.queue.outcomes import answered, claim_refused, hung_up, offers_failed, refused
from huntgroup.queue.refusals import Refusal, refusal_of
from huntgroup.queue.state.store import Pause, StateStore
from huntgroup.queue.talk_time import talk_time, talk_times
from huntgroup.queue.transfers import transfer

__all__ = ["CallKind", "CallState", "CallSummary", "RoutingCore"]

log = logging.getLogger("huntgroup.members")

# the members of the enums the timers read, as module globals: a member read through its
# class goes through the enum metaclass's ``__getattr__`` hook each time (about ten
# times the cost of a global; issue 14)
_OFFER: Final = TimerKind.OFFER
_MAX_WAIT: Final = TimerKind.MAX_WAIT
_AFTER: Final = TimerKind.AFTER
_NEXT_PASS: Final = TimerKind.NEXT_PASS
_WRAP_UP: Final = TimerKind.WRAP_UP
_RETRY: Final = TimerKind.RETRY
_CLAIM_RETRY: Final = TimerKind.CLAIM_RETRY
_QUEUED: Final = CallState.QUEUED
_HUNTING: Final = CallState.HUNTING
_NO_ANSWER: Final = Refusal.NO_ANSWER


@dataclass(frozen=True, slots=True)
class CallSummary:
    """What operators see of one call of the core (``arrival``: the core's ``now``)."""

    call_id: str
    group: str | None
    caller: Identity
    arrival: float
    state: CallState
    member: str | None


class RoutingCore(RoutingContext):
    """Routes the calls of every group of one configuration."""

    def __init__(
        self,
        config: Config,
        *,
        now: float,
        store: StateStore | None = None,
        observed: bool = False,
        claims: bool = False,
    ) -> None:
        super().__init__(config, now=now, store=store)
        self.claims = claims
        if observed:  # the live server: operators look (time in state, control changes)
            self.observed = True
            self.changes = []
        self._install(config, now=now, first=True)
        self._stamp_states()

    # ------------------------------------------------------------------ setup
    def _install(self, config: Config, *, now: float, first: bool = False) -> Installed:
        """Take ``config`` on (:func:`~huntgroup.queue.groups.install`); returns what it
        made of it (the members whose ``joined`` flag changed, those that left)."""
        installed = install(config, self._groups, self.store, now=now, first=first)
        self.config = config
        self._groups, self._groups_of = installed.groups, installed.groups_of
        self._pilots = {g.pilot: g.name for g in config.groups}
        self._lines = {line.number: line for line in config.lines}
        self.availability.retain({*self._groups_of, *self._lines})
        self.times.retain({(g, m) for m, groups in self._groups_of.items() for g in groups})
        self._touched.update(self._groups_of)
        return installed

    def _stamp_states(self) -> None:
        """Time in state: the members whose state may have changed during this input are
        looked at now (:mod:`~huntgroup.queue.member_status`), when ``observed``; the
        roster of free members takes the changes first (:mod:`~huntgroup.queue.roster`)."""
        self.roster.refresh(self)  # it empties the store's and the availability's sets
        if self._touched:  # (handed on to this one when observed)
            self._stamp_touched()

    def _stamp_touched(self) -> None:
        """The second half of :meth:`_stamp_states`, when members were touched (the
        inputs a simulated call makes write both halves out: one frame less each)."""
        own = self._touched
        if self.observed:
            groups_of, store, availability, now = (
                self._groups_of,
                self.store,
                self.availability,
                self._now,
            )
            observe = self.times.observe
            for member in own:
                for group in groups_of.get(member, ()):
                    state = state_of(store, availability, group, member, now=now)
                    observe(group, member, state, now=now)
        own.clear()

    def take_changes(self) -> list[MembershipChange]:
        """The control changes noted since the last call (empty when not kept)."""
        changes = self.changes
        if not changes:
            return []
        self.changes = []
        return changes

    def state_changed(self, *, now: float) -> list[Action]:
        """Shared state changed behind the core (another node): offers to members it
        logged out or paused end, queued callers are served."""
        self._now = max(self._now, now)
        actions: list[Action] = []
        # another node's changes touched the store (its members are in ``touched``); the
        # end of a wrap-up it timed changes nothing there: those members are looked at again
        self._touched.update(self.times.wrapping_up())
        withdraw_barred(self, actions)  # members it logged out or paused ring no more here
        dispatch(self, actions, None)
        follow_forwards(self, actions)
        self._stamp_states()
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
        installed = self._install(config, now=now)
        for call in list(self._calls.values()):
            if call.kind is not CallKind.GROUP or call.state is CallState.CONNECTED:
                continue
            assert call.group is not None
            info = self._groups.get(call.group.name)
            if info is None:  # its offers end first: their members ring for nothing now
                for member in list(call.offers):
                    end_offer(self, call, member)
                    actions.append(Cancel(call.id, member))
                finish(self, call, Release(call.id, 480, "group_removed"), actions)
                continue
            call.group = info.config
            if call.hunt is not None and call.hunt.strategy.name != info.strategy.name:
                call.hunt.strategy = info.strategy
            for member in [m for m in call.offers if m not in info.positions]:
                end_offer(self, call, member)
                actions.append(Cancel(call.id, member))
            if call.state is CallState.HUNTING and not call.offers:
                advance(self, call, actions)
        for group, member in installed.left:
            log.info("reload: member %s leaves group %s (removed)", member, group)
            note_change(self, group, member, "logout", "", "reload")
        for group, member, joined in installed.flipped:
            log.info(
                "reload: member %s %s group %s", member, "joins" if joined else "leaves", group
            )
            set_joined(self, group, member, joined, actions, origin="reload")
        empty_groups(self, None, actions)
        dispatch(self, actions, None)
        follow_forwards(self, actions)
        self._stamp_states()
        return actions

    # ------------------------------------------------------------ inspection
    def group_config(self, group: str) -> GroupConfig | None:
        info = self._groups.get(group)
        return info.config if info is not None else None

    def members_of(self, group: str) -> list[str]:
        """The members of ``group`` by position (empty: no such group)."""
        info = self._groups.get(group)
        return [c.key for c in info.candidates] if info is not None else []

    def summary(self, call_id: str) -> CallSummary | None:
        call = self._calls.get(call_id)
        if call is None:
            return None
        group = call.group.name if call.group is not None else None
        return CallSummary(call.id, group, call.caller, call.arrival, call.state, call.member)

    def waiting(self, group: str) -> list[CallSummary]:
        """The callers of ``group`` not answered yet (queued, or hunting), earliest first."""
        calls = sorted(
            (
                c
                for c in self._calls.values()
                if c.group is not None
                and c.group.name == group
                and c.state in (CallState.QUEUED, CallState.HUNTING)
            ),
            key=lambda c: c.rank,
        )
        return [CallSummary(c.id, group, c.caller, c.arrival, c.state, c.member) for c in calls]

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
        return talk_time(self, group, member, now=now)

    def talk_times(self, group: str, *, now: float) -> dict[str, float]:
        """Talk time of every member of ``group``, counting calls in progress."""
        return talk_times(self, group, now=now)

    def is_free(self, group: str, member: str, *, now: float) -> bool:
        info = self._groups.get(group)
        return info is not None and free_predicate(self, info.config, now)(member)

    def paused(self, group: str, member: str) -> Pause | None:
        """``member``'s pause in ``group`` (None: not paused)."""
        return self.store.paused(group, member)

    def state_since(self, group: str, member: str, *, now: float) -> float | None:
        """Since when ``member`` is in its state in ``group`` (None: not a member of it):
        the start of its pause when paused (the same on every node), else the ``now``
        of the input that changed its state, as this node saw it."""
        state = self.member_state(group, member, now=now)
        if state is None:
            return None
        since = self.times.observe(group, member, state, now=now)
        pause = self.store.paused(group, member) if state is MemberState.PAUSED else None
        return pause.since if pause is not None else since

    def member_state(self, group: str, member: str, *, now: float) -> MemberState | None:
        """What ``member`` is doing for ``group`` (None: not a member of that group).

        The first that applies: logged out, paused, unavailable (no registered
        contact, or backing off after an unreachable offer), ringing, talking (on
        a call, or busy on calls of its own), in wrap-up, free.
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
            heappop(timers)
        return timers[0][0] if timers else None

    def timer_entries(self) -> Sequence[TimerEntry]:
        """The core's timer heap itself, to be read and never written. Its head's due
        time (``entries[0][0]``, when not empty) is a lower bound of :meth:`get_timer`
        that drops nothing: a timer cancelled since it was set stays in the heap until
        it comes due. A driver that holds it reads that bound after every input without
        a call, and calls :meth:`get_timer` only when its own next event is not before
        the bound (the simulator's loop)."""
        return self._timers

    def handle_timer(self, *, now: float) -> list[Action]:
        self._now = max(self._now, now)
        actions: list[Action] = []
        timers = self._timers
        while timers and timers[0][0] <= now:
            entry = heappop(timers)
            if self._timer_valid(entry):
                self._fire(entry, actions)
        if self._reentries:
            follow_forwards(self, actions)
        self._stamp_states()
        return actions

    def _timer_valid(self, entry: TimerEntry) -> bool:
        when, _, kind, key, token = entry
        if kind is _OFFER:  # the most frequent first: an offer's, then a call's max_wait
            call = self._calls.get(key)
            return call is not None and token in call.offers.values()
        if kind is _MAX_WAIT or kind is _AFTER:
            call = self._calls.get(key)
            return call is not None and (call.state is _QUEUED or call.state is _HUNTING)
        if kind is _NEXT_PASS:
            call = self._calls.get(key)
            return call is not None and call.state is _HUNTING and call.pass_token == token
        if kind is _WRAP_UP:
            return True
        if kind is _RETRY:
            return self.availability.backoff_until(key) == when
        return self._claim_refused.get(key) == when  # CLAIM_RETRY

    def _fire(self, entry: TimerEntry, actions: list[Action]) -> None:
        _, _, kind, key, token = entry
        if kind is _WRAP_UP:
            self._touched.add(key)
            dispatch(self, actions, self._groups_of.get(key, ()))
            return
        if kind is _CLAIM_RETRY:
            del self._claim_refused[key]
            dispatch(self, actions, self._groups_of.get(key, ()))
            return
        if kind is _RETRY:
            self._touched.add(key)
            if self.availability.is_reachable(key, now=self._now):
                log.info(
                    "member %s: available again, its back-off is over",
                    key,
                    extra={"member": key, "event": "available"},
                )
                dispatch(self, actions, self._groups_of.get(key, ()))
            return
        call = self._calls[key]
        if kind is _OFFER:
            expired = [m for m, t in call.offers.items() if t == token]
            for member in expired:
                actions.append(Cancel(call.id, member))
            offers_failed(self, call, expired, actions, _NO_ANSWER)
        elif kind is _NEXT_PASS:
            advance(self, call, actions)
        elif kind is _MAX_WAIT:
            assert call.group is not None
            give_up(self, call, call.group.queue.overflow_to, "max_wait", actions)
        elif kind is _AFTER:
            assert call.group is not None
            give_up(self, call, call.group.no_answer.forward_to, "no_answer_after", actions)

    # ----------------------------------------------------------------- events
    def handle(self, event: Event, *, now: float) -> list[Action]:
        """Feed one event; returns the actions to carry out, in order."""
        if now > self._now:
            self._now = now
        actions: list[Action] = []
        route = _ROUTES.get(type(event))
        if route is None:
            route = _route_of(type(event))
        route(self, event, actions)
        if self._reentries:
            follow_forwards(self, actions)
        self.roster.refresh(self)  # _stamp_states, written out
        if self._touched:
            self._stamp_touched()
        return actions

    # The three most frequent inputs of a simulated call, without the event object:
    # each is ``handle`` of its event, step for step (a test holds them to it). The
    # simulator feeds a call's arrival, answer and hang-up through them (issue 14).
    # An answer or a hang-up forwards no call to a number of ours while the roster is
    # exact (``dispatch`` hunts a queued call only where a member is free: it rings);
    # they follow such a forward all the same, as ``handle`` does (a test forces one).

    def handle_call_arrived(
        self, call_id: str, group: str, caller: str, *, now: float
    ) -> list[Action]:
        """``handle(CallArrived(call_id, group, caller), now=now)``."""
        if now > self._now:
            self._now = now
        actions: list[Action] = []
        call_arrived(self, call_id, group, Identity(caller, ""), False, actions)
        if self._reentries:
            follow_forwards(self, actions)
        self.roster.refresh(self)  # _stamp_states, written out
        if self._touched:
            self._stamp_touched()
        return actions

    def handle_member_answered(self, call_id: str, member: str, *, now: float) -> list[Action]:
        """``handle(MemberAnswered(call_id, member), now=now)``."""
        if now > self._now:
            self._now = now
        actions: list[Action] = []
        answered(self, call_id, member, actions)
        if self._reentries:
            follow_forwards(self, actions)
        self.roster.refresh(self)  # _stamp_states, written out
        if self._touched:
            self._stamp_touched()
        return actions

    def handle_call_hung_up(self, call_id: str, *, now: float) -> list[Action]:
        """``handle(CallHungUp(call_id), now=now)``."""
        if now > self._now:
            self._now = now
        actions: list[Action] = []
        hung_up(self, call_id, actions)
        if self._reentries:
            follow_forwards(self, actions)
        self.roster.refresh(self)  # _stamp_states, written out
        if self._touched:
            self._stamp_touched()
        return actions


Route = Callable[[RoutingCore, Any, list[Action]], None]
"""Where an event goes: the module of its concern, given the core, the event and the
actions so far. One table, looked up by the event's type (a dispatch per event, where a
``match`` over the cases tried them one after the other)."""

_ROUTES: dict[type, Route] = {
    CallArrived: lambda core, e, actions: call_arrived(
        core, e.call_id, e.group, Identity(e.caller, e.caller_name), e.caller_internal, actions
    ),
    DirectCallArrived: lambda core, e, actions: direct_call(
        core, e.call_id, e.line, Identity(e.caller, e.caller_name), e.caller_internal, actions
    ),
    OutgoingCallStarted: lambda core, e, actions: outgoing(core, e.call_id, e.line),
    CallAnswered: lambda core, e, actions: far_end_answered(core, e.call_id),
    MemberAnswered: lambda core, e, actions: answered(core, e.call_id, e.member, actions),
    MemberFailed: lambda core, e, actions: refused(
        core, e.call_id, e.member, refusal_of(e.status), actions
    ),
    MemberUnreachable: lambda core, e, actions: refused(
        core, e.call_id, e.member, Refusal.UNREACHABLE, actions, ours=e.ours
    ),
    ClaimGranted: lambda core, e, actions: claim_granted(core, e.call_id, e.member, actions),
    ClaimRefused: lambda core, e, actions: claim_refused(core, e.call_id, e.member, actions),
    CallHungUp: lambda core, e, actions: hung_up(core, e.call_id, actions),
    MemberJoined: lambda core, e, actions: set_joined(
        core, e.group, e.member, True, actions, origin=e.origin, reason=e.reason
    ),
    MemberLeft: lambda core, e, actions: set_joined(
        core, e.group, e.member, False, actions, origin=e.origin, reason=e.reason
    ),
    MemberPaused: lambda core, e, actions: pause(
        core, e.group, e.member, e.paused, actions, origin=e.origin, reason=e.reason
    ),
    MemberReachable: lambda core, e, actions: reachability(core, e.member, e.reachable, actions),
    LineActivity: lambda core, e, actions: line_activity(core, e.member, e.busy, actions),
    CallTransferred: lambda core, e, actions: transfer(core, e, actions),  # queue/transfers.py
    CallsJoined: lambda core, e, actions: transfer(core, e, actions),
}


def _route_of(kind: type) -> Route:
    """The route of a subclass of an event (its nearest base's); an unknown type goes
    nowhere."""
    for base in kind.__mro__:
        if base in _ROUTES:
            return _ROUTES[base]
    return lambda core, e, actions: None
