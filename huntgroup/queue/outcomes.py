"""What becomes of an offer and of a call: a member answers or refuses, a call ends.

Theory of operation
-------------------
The first member to answer takes the call (:func:`answered`): the other offers
of the call are cancelled, the member is on the call (``set_active``), it is
the group's last answerer (round robin), and ``Bridge`` goes out. An answer to
an offer that already ended is too late: that leg is cancelled.

A refusal (:func:`refused`, read by :mod:`~huntgroup.queue.refusals`) ends the
offer at once; the hunt goes on, or a call to a line's own number follows the
line's forwarding. An ``UNREACHABLE`` member also backs off
(:mod:`~huntgroup.queue.availability`) before the hunt goes on, so that the
next pass does not pick it, unless the cause was ours (no media port left);
any other answer shows the phone is there and ends its back-off series.
Offers that ran out of time end the same way (:func:`offers_failed`). A
claim refused by the shared state (:func:`claim_refused`: another node holds
the member) ends the offer as a busy member does, without touching its
availability: the hunt moves on (a pass whose every claim was refused found
nobody free: the call waits at the head of the queue, even with ``linear``),
a call to the line's own number finds it busy; an offer already ringing (a
conflict found after a Redis outage) is cancelled. This node leaves the
member alone for ``CLAIM_RETRY`` seconds.

When a call ends (:func:`hung_up`), its offers are cancelled, it leaves its
queue, and its member's part ends: talk time credited
(:mod:`~huntgroup.queue.talk_time`), wrap-up started (the group's
``wrap_up``, never shortening one already running). Every group touched then
serves its queue (:func:`~huntgroup.queue.hunting.dispatch`).
"""

from __future__ import annotations

import logging
from typing import Final

from huntgroup.queue.actions import Action, Bridge, Cancel
from huntgroup.queue.context import CallKind, CallState, RoutedCall, RoutingContext, TimerKind
from huntgroup.queue.endings import line_rule
from huntgroup.queue.hunting import advance, dispatch, empty_groups
from huntgroup.queue.offers import CLAIM_RETRY, end_offer
from huntgroup.queue.refusals import Refusal
from huntgroup.queue.talk_time import credit

log = logging.getLogger("huntgroup.members")

# the members of the enums read here, as module globals: a member read through its class
# goes through the enum metaclass's ``__getattr__`` hook each time (issue 14)
_CONNECTED: Final = CallState.CONNECTED
_DIRECT: Final = CallKind.DIRECT
_UNREACHABLE: Final = Refusal.UNREACHABLE
_BUSY: Final = Refusal.BUSY
_RETRY: Final = TimerKind.RETRY
_CLAIM_RETRY: Final = TimerKind.CLAIM_RETRY
_WRAP_UP: Final = TimerKind.WRAP_UP


def answered(core: RoutingContext, call_id: str, member: str, actions: list[Action]) -> None:
    call = core._calls.get(call_id)
    if call is None or member not in call.offers:
        actions.append(Cancel(call_id, member))  # too late: hang that leg up
        return
    end_offer(core, call, member)
    if call.offers:  # ring all: the others ring no more
        for other in list(call.offers):
            end_offer(core, call, other)
            actions.append(Cancel(call_id, other))
    call.state = _CONNECTED
    call.member = member
    call.connected_at = core._now
    if call.hunt is not None:
        call.hunt.end_pass()  # the hunt is over: its walk no longer holds the group's index
    store = core.store
    store.set_active(member, call_id, True)
    core.availability.answered(member)
    g = call.group
    if g is not None:
        name = g.name  # (a model's field, read once)
        store.set_last_answered(name, member)
        core.times.count_answer(name, member)
    actions.append(Bridge(call_id, member))
    dispatch(core, actions, core._groups_of.get(member, ()))


def refused(
    core: RoutingContext,
    call_id: str,
    member: str,
    refusal: Refusal,
    actions: list[Action],
    *,
    ours: bool = False,
) -> None:
    """A member's offer failed. Unreachable (and not ``ours``, a shortage of our own):
    the member backs off; any other answer shows it is reachable."""
    call = core._calls.get(call_id)
    if call is None or member not in call.offers:
        return
    if refusal is not _UNREACHABLE:
        core.availability.answered(member)
    backing_off = refusal is _UNREACHABLE and not ours and core.availability.has_contact(member)
    if backing_off:  # before the hunt goes on: the next pass must not pick it
        until = core.availability.failed(member, now=core._now)
        core._arm(until, _RETRY, member)
        log.info(
            "member %s: unavailable (unreachable), tried again in %.0f s",
            member,
            until - core._now,
            extra={"member": member, "event": "unavailable"},
        )
    offers_failed(core, call, [member], actions, refusal)
    if backing_off:
        empty_groups(core, core._groups_of.get(member, ()), actions)


def claim_refused(core: RoutingContext, call_id: str, member: str, actions: list[Action]) -> None:
    """Another node holds ``member``: see the module docstring."""
    call = core._calls.get(call_id)
    if call is None or member not in call.offers:
        return
    if call.claiming.pop(member, None) is None:
        actions.append(Cancel(call_id, member))  # it was ringing already
    elif call.hunt is not None:  # never offered: as if it was not free when the pass met it
        call.hunt.offers_in_pass = max(0, call.hunt.offers_in_pass - 1)
    until = core._now + CLAIM_RETRY
    core._claim_refused[member] = until
    core._arm(until, _CLAIM_RETRY, member)
    offers_failed(core, call, [member], actions, _BUSY)


def offers_failed(
    core: RoutingContext,
    call: RoutedCall,
    members: list[str],
    actions: list[Action],
    refusal: Refusal,
) -> None:
    """Offers of ``call`` to ``members`` ended without an answer: the hunt goes on (a
    direct call follows its line's forwarding), and the members' groups are served."""
    touched: set[str] = set()
    for member in members:
        end_offer(core, call, member)
        touched.update(core._groups_of.get(member, ()))
    if call.kind is _DIRECT:
        line_rule(core, call, busy=refusal is _BUSY, actions=actions)
    else:
        advance(core, call, actions)
    dispatch(core, actions, touched)


def hung_up(core: RoutingContext, call_id: str, actions: list[Action]) -> None:
    """The call ended (or its member's part did, a transfer): see the module docstring."""
    call = core._calls.pop(call_id, None)
    if call is None:
        return
    touched: set[str] = set()
    if call.offers:
        for member in list(call.offers):
            end_offer(core, call, member)
            actions.append(Cancel(call_id, member))
            touched.update(core._groups_of.get(member, ()))
    g, store = call.group, core.store  # (the group's settings read once each)
    if g is not None:
        name = g.name
        if call.state is not _CONNECTED:  # an answered call left the queue before
            store.dequeue(name, call_id)
        touched.add(name)
    if call.member is not None:
        member = call.member
        store.set_active(member, call_id, False)
        if call.connected_at is not None:
            credit(core, member, call.connected_at)
        wrap_up = g.wrap_up if g is not None else 0
        if wrap_up > 0:
            until = core._now + wrap_up
            store.set_wrap_up_until(member, max(until, store.wrap_up_until(member)))
            core._arm(until, _WRAP_UP, member)
        touched.update(core._groups_of.get(member, ()))
    dispatch(core, actions, touched)
