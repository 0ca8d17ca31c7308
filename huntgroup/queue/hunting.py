"""The hunt of one call, and the dispatch of the queues by priority.

Theory of operation
-------------------
Hunting follows the group's strategy (:mod:`~huntgroup.distribution`). A call
starts hunting when it arrives and a member is free with nobody waiting
before it, or when the dispatch takes it from the head of its queue
(:func:`start_hunting`); ``no_answer.after`` runs from that first hunt.
:func:`advance` makes the next offer(s) (:mod:`~huntgroup.queue.offers`),
each lasting ``no_answer_timeout``. When a pass is exhausted linear stops
(``no_answer.forward_to``, else 480) and the others start a new pass; passes
start at least :data:`PASS_SPACING` seconds apart, so that a group whose
members all refuse at once is not rung in a tight loop. When a fresh pass
finds nobody free the call goes back to the head of the queue
(:func:`enqueue`: its arrival order is kept; ``max_length`` is not checked
again, but a group with ``max_length: 0`` releases it as for a full queue).

Whenever a member may have become free, :func:`dispatch` hands queue heads to
free members: the queue of the group with the highest ``priority`` first,
the earliest arrival first between groups of equal priority. When the last
available member of a group with ``when_empty: overflow`` goes (unreachable,
logged out, removed), its waiting callers overflow (:func:`empty_groups`).

The usual decision, a new call that finds a free member with nobody waiting
in a group that rings one member at a time (no claims), takes a fused path
(:func:`ring_first`, issue 14): the same steps as :func:`start_hunting`,
:func:`advance` and the offer, in the same order, in one frame, with the
index the arrival just refreshed. Every other case takes the general path;
a property test holds the two to the same actions and state.

The hunt and the dispatch call each other (a call that gives up frees its
group for the next caller, whose hunt may give up in turn), so they live
together here; every step either makes an offer, queues the call or ends it,
so the recursion ends.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from heapq import heappush
from typing import Final

from huntgroup.distribution.hunt import Hunt
from huntgroup.distribution.index import GroupIndex
from huntgroup.queue.actions import (
    Action,
    Cancel,
    Forward,
    ForwardReason,
    Hold,
    Identity,
    Release,
    ReleaseReason,
    Ring,
    Ringback,
)
from huntgroup.queue.context import CallKind, CallState, RoutedCall, RoutingContext, TimerKind
from huntgroup.queue.endings import finish, overflow_empty, queue_full
from huntgroup.queue.groups import GroupInfo
from huntgroup.queue.offers import (
    GroupView,
    end_offer,
    free_predicate,
    has_free,
    is_empty,
    offer_all,
    order,
)

PASS_SPACING = 1.0
"""Minimum seconds between the starts of two passes of one hunt."""

# the members of the enums :func:`ring_first` reads, as module globals: a member read
# through its class goes through the enum metaclass's ``__getattr__`` hook each time
_GROUP: Final = CallKind.GROUP
_HUNTING: Final = CallState.HUNTING
_MAX_WAIT: Final = TimerKind.MAX_WAIT
_OFFER: Final = TimerKind.OFFER
_AFTER: Final = TimerKind.AFTER
_QUEUED: Final = CallState.QUEUED
_NEXT_PASS: Final = TimerKind.NEXT_PASS


def enqueue(core: RoutingContext, call: RoutedCall, actions: list[Action]) -> None:
    """The call waits at its place in its group's queue, hearing the group's music."""
    assert call.group is not None
    call.state = _QUEUED
    core.store.enqueue(call.group.name, call.id, call.rank)
    if not call.holding:
        call.holding = True
        actions.append(Hold(call.id, call.group.queue.answer, call.group.queue.music))


def start_hunting(
    core: RoutingContext, call: RoutedCall, actions: list[Action], info: GroupInfo | None = None
) -> None:
    """The call hunts (``info``: its group's, when the caller has it at hand)."""
    call.state = _HUNTING
    assert call.group is not None and call.hunt is not None
    first = call.hunt.started_at is None
    if info is None:
        info = core._groups[call.group.name]
    advance(core, call, actions, info)
    after = info.no_answer_after
    if first and after is not None and call.id in core._calls:
        core._arm(core._now + after, _AFTER, call.id)


def ring_first(
    core: RoutingContext,
    call_id: str,
    caller: Identity,
    internal: bool,
    route: tuple[str, ...],
    info: GroupInfo,
    index: GroupIndex,
    actions: list[Action],
) -> None:
    """A new call to group ``info`` with nobody waiting, whose ``index`` (just refreshed)
    has a free member, one member at a time and no claims: the fused path of the usual
    decision (issue 14).

    It does what the general path does, in the same order (the same actions, the same
    state, the same sequence numbers), in one frame: the call made with its hunt already
    in its first pass, ``max_wait`` armed, ``Ringback``, the pass's walk and its first
    take (:func:`start_hunting`, :func:`advance`), the offer of that one member
    (:func:`~huntgroup.queue.offers.offer`: marked ringing, ``Ring``, out of the index,
    its timer) and ``no_answer.after``. The member the index gives first is checked once
    more, written out (:func:`~huntgroup.queue.offers.free_predicate`); one found not
    free is passed and the walk goes on with the predicate, as in :meth:`Hunt.take
    <huntgroup.distribution.hunt.Hunt.take>`; nobody found ends as the general path
    does (:func:`nobody_free`). Nothing writes the store between the refresh of
    ``index`` and the offer, so the roster is not refreshed again before it.
    """
    now, name, strategy = core._now, info.name, info.strategy
    walk = strategy.walk(index, GroupView(core, name, now), now)
    member = walk.next(bool)  # the index's first free member of the pass, unchecked
    store, waiting, refused = core.store, info.call_waiting, core._claim_refused
    if member is not None and not (
        store.is_free(name, member, now=now, call_waiting=waiting)
        and core.availability.offerable(member, now=now, call_waiting=waiting)
        and (not refused or refused.get(member, -math.inf) <= now)
    ):
        member = walk.next(free_predicate(core, info.config, now))
    seq, timers, max_wait = core._seq, core._timers, info.max_wait
    rank = (now, seq)
    seq += 1
    if max_wait is not None:  # the sequence of max_wait's timer
        waits = seq
        seq += 1
    else:
        waits = 0
    if member is None:  # begin_pass, then take: nobody, and the pass ended
        token, hunt, offers = 0, Hunt(strategy, now, 1, now, 0, None), {}
    else:  # begin_pass, then take: one offer in the pass (made below), its token
        token = seq
        seq += 1
        hunt, offers = Hunt(strategy, now, 1, now, 1, walk), {member: token}
    core._seq = seq
    call = RoutedCall(
        call_id,
        _GROUP,
        _HUNTING,
        now,
        rank,
        caller,
        route,
        internal,
        info.config,
        None,
        hunt,
        offers,
    )
    core._calls[call_id] = call
    if max_wait is not None:
        heappush(timers, (now + max_wait, waits, _MAX_WAIT, call_id, 0))
    actions.append(Ringback(call_id))
    if member is None:
        nobody_free(core, call, info, actions)
    else:
        store.set_ringing(member, call_id, True)
        timeout = info.no_answer_timeout
        actions.append(Ring(call_id, member, info.pilot_caller or caller, name, timeout))
        core.roster.rung_one(core, member)
        seq = core._seq
        core._seq = seq + 1
        heappush(timers, (now + timeout, seq, _OFFER, call_id, token))
    after = info.no_answer_after
    if after is not None and call_id in core._calls:
        seq = core._seq
        core._seq = seq + 1
        heappush(timers, (now + after, seq, _AFTER, call_id, 0))


def advance(
    core: RoutingContext, call: RoutedCall, actions: list[Action], info: GroupInfo | None = None
) -> None:
    """Make the next offer(s) of a hunting call, or apply the end-of-pass rule
    (``info``: the call's group's, when the caller has it at hand)."""
    if call.offers:
        return  # ring all: the pass goes on while someone still rings
    hunt, g = call.hunt, call.group
    assert hunt is not None and g is not None
    if info is None:
        info = core._groups[g.name]
    now = core._now
    free = free_predicate(core, g, now)
    if hunt.in_pass:
        core.roster.refresh(core)  # the walk reads the index of free members
        chosen = hunt.take(free)
        if chosen:
            offer_all(core, call, chosen, actions, info)
            return
        hunt.end_pass()
        if hunt.offers_in_pass == 0:  # its claims were all refused: nobody was free
            nobody_free(core, call, info, actions)
            return
        if info.strategy.stop_after_pass:
            give_up(core, call, g.no_answer.forward_to, "no_answer", actions, status=480)
            return
        if now < hunt.pass_started_at + PASS_SPACING:
            call.pass_token = core._seq
            core._seq += 1
            core._arm(
                hunt.pass_started_at + PASS_SPACING,
                _NEXT_PASS,
                call.id,
                call.pass_token,
            )
            return
    hunt.begin_pass(order(core, info), now=now)
    chosen = hunt.take(free)
    if chosen:
        offer_all(core, call, chosen, actions, info)
        return
    hunt.end_pass()
    nobody_free(core, call, info, actions)


def nobody_free(
    core: RoutingContext, call: RoutedCall, info: GroupInfo, actions: list[Action]
) -> None:
    """A pass found nobody free: the group overflows when empty, else the call waits
    (released at once by a group without a queue)."""
    g = call.group
    assert g is not None
    if is_empty(core, info):
        overflow_empty(core, call, actions)
    elif g.queue.max_length == 0:
        queue_full(core, call, actions)  # no queue: nobody ever waits
    else:
        enqueue(core, call, actions)


def give_up(
    core: RoutingContext,
    call: RoutedCall,
    target: str | None,
    reason: ForwardReason,
    actions: list[Action],
    *,
    status: int = 480,
) -> None:
    """The hunt ends without an answer: the offers are cancelled, the call forwarded to
    ``target`` (else released with ``status``), and its group serves its queue."""
    for member in list(call.offers):
        end_offer(core, call, member)
        actions.append(Cancel(call.id, member))
    release_reason: ReleaseReason = "max_wait" if reason == "max_wait" else "no_answer"
    finish(
        core,
        call,
        Forward(call.id, target, reason) if target else Release(call.id, status, release_reason),
        actions,
    )
    if call.group is not None:
        dispatch(core, actions, (call.group.name,))


def empty_groups(core: RoutingContext, groups: Iterable[str] | None, actions: list[Action]) -> None:
    """Waiting callers of groups with ``when_empty: overflow`` and no member available
    any more overflow, the earliest arrival first."""
    names = core._groups if groups is None else groups
    empty = {n for n in names if n in core._groups and is_empty(core, core._groups[n])}
    if not empty:
        return
    waiting = sorted(
        (
            c
            for c in core._calls.values()
            if c.group is not None
            and c.group.name in empty
            and not c.offers
            and c.state in (_QUEUED, _HUNTING)
        ),
        key=lambda c: c.rank,
    )
    for call in waiting:
        overflow_empty(core, call, actions)


def dispatch(core: RoutingContext, actions: list[Action], groups: Iterable[str] | None) -> None:
    """Hand queued callers to free members: the group of the highest ``priority``
    first, then the earliest arrival."""
    known = core._groups
    names: Collection[str]
    if groups is None:
        names = list(known)
    elif type(groups) is tuple or type(groups) is set:  # the callers' (no list made)
        names = groups
    else:
        names = list(groups)
    store, calls = core.store, core._calls
    while True:
        best: tuple[tuple[int, float, int], RoutedCall] | None = None
        for name in names:
            if name not in known:
                continue
            queued = store.queue(name)
            while queued and queued[0] not in calls:
                store.dequeue(name, queued[0])  # stale: a call this core no longer has
                queued = store.queue(name)
            if not queued:
                continue
            head = calls[queued[0]]
            info = core._groups[name]
            rank = (-info.config.priority, *head.rank)
            if (best is None or rank < best[0]) and has_free(core, info):
                best = (rank, head)
        if best is None:
            return
        call = best[1]
        assert call.group is not None
        store.dequeue(call.group.name, call.id)
        start_hunting(core, call, actions)
