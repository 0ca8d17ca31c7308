"""Calls arriving at the core: to a pilot, to a line, from a line, or by a forward.

Theory of operation
-------------------
A call to a pilot (DESIGN.md §1, :func:`call_arrived`):

1. no member of the group is available (every joined member unreachable, or
   none joined) and ``queue.when_empty`` is ``overflow``: ``Forward(overflow_to)``
   or ``Release(480)`` at once;
2. a member is free and nobody waits in the group's queue: hunting starts at
   once (``Ringback``);
3. else if the queue holds fewer than ``max_length`` callers: the caller is
   queued (``Hold``);
4. else the queue is full: ``Release(486)`` or ``Forward(overflow_to)``.

``max_wait`` runs from the arrival. A call to a line's own number
(:func:`direct_call`) rings that line for its ``no_answer_timeout``; a busy
line follows its ``forward_busy``, unless the call comes from outside and the
line is joined to a group with ``hunt_direct_calls``: that group takes it. A
call a line makes (:func:`outgoing`) makes it busy until it ends; its talk
time counts from the far end's answer.

A forward to one of our numbers arrives there (:func:`follow_forwards`) once
the event that caused it is handled, under the same call id and with the route
it took. A second arrival under a call id the core already holds is a
retransmission and changes nothing.
"""

from __future__ import annotations

from typing import Final

from huntgroup.distribution.hunt import Hunt
from huntgroup.queue.actions import Action, Identity, Release, Ringback
from huntgroup.queue.context import CallKind, CallState, RoutedCall, RoutingContext, TimerKind
from huntgroup.queue.endings import line_rule, overflow_empty, queue_full
from huntgroup.queue.hunting import enqueue, ring_first, start_hunting
from huntgroup.queue.offers import has_free, is_empty, offer

# the members of the enums a pilot call's arrival reads, as module globals: a member read
# through its class goes through the enum metaclass's ``__getattr__`` hook (issue 14)
_GROUP: Final = CallKind.GROUP
_HUNTING: Final = CallState.HUNTING
_MAX_WAIT: Final = TimerKind.MAX_WAIT


def new_call(
    core: RoutingContext, call_id: str, kind: CallKind, state: CallState, caller: Identity
) -> RoutedCall:
    now, seq = core._now, core._seq
    core._seq = seq + 1
    call = RoutedCall(call_id, kind, state, now, (now, seq), caller)
    core._calls[call_id] = call
    return call


def call_arrived(
    core: RoutingContext,
    call_id: str,
    group: str,
    caller: Identity,
    internal: bool,
    actions: list[Action],
    route: tuple[str, ...] = (),
) -> None:
    """A call to ``group``; ``route`` as it arrives (default: the group's pilot dialled)."""
    info = core._groups.get(group)
    if call_id in core._calls:
        return  # a retransmission of an arrival: already routed
    if info is None:
        actions.append(Release(call_id, 480, "group_removed"))
        return
    queued = core.store.queue(info.name)
    if not queued and core.quick and not core.claims and not info.strategy.simultaneous:
        index = core.roster.index(core, info)
        if index.free:  # the usual case: the fused path rings the first free member
            ring_first(core, call_id, caller, internal, route or info.route, info, index, actions)
            return
    now, seq = core._now, core._seq  # the call, made whole at once (settings from ``info``)
    core._seq = seq + 1
    call = RoutedCall(
        call_id,
        _GROUP,
        _HUNTING,
        now,
        (now, seq),
        caller,
        route or info.route,
        internal,
        info.config,
        None,
        Hunt(info.strategy),
    )
    core._calls[call_id] = call
    max_wait = info.max_wait
    if max_wait is not None:
        core._arm(now + max_wait, _MAX_WAIT, call_id)
    if is_empty(core, info):
        overflow_empty(core, call, actions)
    elif not queued and has_free(core, info):
        actions.append(Ringback(call_id))
        start_hunting(core, call, actions, info)
    elif len(queued) < info.max_length:
        enqueue(core, call, actions)
    else:
        queue_full(core, call, actions)


def direct_call(
    core: RoutingContext,
    call_id: str,
    number: str,
    caller: Identity,
    internal: bool,
    actions: list[Action],
    route: tuple[str, ...] = (),
) -> None:
    """A call to line ``number``; ``route`` as it arrives (default: the line dialled)."""
    if call_id in core._calls:
        return
    line = core._lines.get(number)
    if line is None:
        actions.append(Release(call_id, 404, "not_found"))
        return
    route = route or (number,)  # default: the line was dialled
    # busy: ringing, on a call through us, or on a call of its own that its phone reports
    busy = (
        core.store.is_ringing(number)
        or core.store.is_on_call(number)
        or core.availability.busy_outside(number)
    )
    if busy and not internal:
        for g in core._groups_of.get(number, ()):
            cfg = core._groups[g].config
            if cfg.hunt_direct_calls and core.store.joined_since(g, number) is not None:
                call_arrived(core, call_id, g, caller, internal, actions, route)
                return
    call = new_call(core, call_id, CallKind.DIRECT, CallState.RINGING, caller)
    call.line, call.route, call.caller_internal = line, route, internal
    if busy:
        line_rule(core, call, busy=True, actions=actions)
        return
    if not core.availability.is_reachable(number, now=core._now):
        # no contact, or backing off after an offer found it unreachable: what an offer
        # would come to (MemberUnreachable), without ringing a phone known not to answer
        line_rule(core, call, busy=False, actions=actions)
        return
    offer(core, call, [number], line.no_answer_timeout, caller, actions)


def outgoing(core: RoutingContext, call_id: str, number: str) -> None:
    """Line ``number`` calls out: it is on a call until the call ends."""
    if call_id in core._calls:
        return
    call = new_call(core, call_id, CallKind.OUTGOING, CallState.DIALING, Identity(number))
    call.member = number
    core.store.set_active(number, call_id, True)


def far_end_answered(core: RoutingContext, call_id: str) -> None:
    """An outgoing call was answered: its talk time starts."""
    call = core._calls.get(call_id)
    if call is not None and call.state is CallState.DIALING:
        call.state = CallState.CONNECTED
        call.connected_at = core._now
        if call.member is not None:
            core.store.touched.add(call.member)  # its talk time runs (queue.roster)


def follow_forwards(core: RoutingContext, actions: list[Action]) -> None:
    """Calls forwarded to our own numbers arrive there, in the order they were forwarded
    (a call may be forwarded again at once: each one follows the chain to its end)."""
    reentries = core._reentries
    while reentries:
        entry = reentries.popleft()
        step, caller, internal = entry.reroute, entry.caller, entry.caller_internal
        if step.group is not None:
            call_arrived(core, step.call_id, step.group, caller, internal, actions, entry.route)
        else:
            direct_call(core, step.call_id, step.target, caller, internal, actions, entry.route)
