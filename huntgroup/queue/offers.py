"""Who can be offered a call, in which order, and the offers themselves.

Theory of operation
-------------------
A member is *free* for a group when the shared state says so (joined, not
paused, not ringing, not on a call, not in wrap-up) and this node can offer it a call
(:mod:`~huntgroup.queue.availability`: a registered contact, no back-off, not
busy on calls of its own unless the group has ``call_waiting``):
:func:`free_predicate` is that test, the one the hunt and the dispatch use. A
group with ``when_empty: overflow`` is *empty* (:func:`is_empty`) when none of
its joined members is reachable and unpaused (with ``when_empty: wait`` an
all-paused group is waited for, as an all-busy one).

At the start of a pass the group's strategy orders the members
(:func:`order`) from what it may read of the group (:class:`GroupView`: who
took the last call, each member's talk time, read once per pass).

An offer rings one or more members for a call (:func:`offer`): each is marked
ringing in the shared state, a ``Ring`` goes out (one ``RingAll`` for several
members, with one write of the store: ring all costs little more per member than
its offer's own record), and the offers made together share one timer token, so
that they expire together. :func:`end_offer` undoes
one, whatever ended it.

With :attr:`~huntgroup.queue.context.RoutingContext.claims` (several nodes on
one shared state) an offer first *claims* its member: ``Claim`` goes out
instead of ``Ring``, which waits in ``RoutedCall.claiming`` until the driver
reports ``ClaimGranted`` (:func:`claim_granted`: the ``Ring`` goes out) or
``ClaimRefused`` (:mod:`~huntgroup.queue.outcomes`). Meanwhile the member
counts as ringing here, and the offer's timer runs as usual, so a claim never
answered ends as an unanswered offer. A member whose claim was refused is not
free here for :data:`CLAIM_RETRY` seconds (the other node's activity reaches
us well within it), so a node never spins on a member another node holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

from huntgroup.config.models import GroupConfig
from huntgroup.distribution.walks import Walk
from huntgroup.queue.actions import Action, Claim, Identity, Ring, RingAll
from huntgroup.queue.context import RoutedCall, RoutingContext, TimerKind
from huntgroup.queue.groups import GroupInfo
from huntgroup.queue.talk_time import talk_times

CLAIM_RETRY = 1.0
"""Seconds a member whose claim was refused is left alone by this node."""

# the members of the enums read here, as module globals: a member read through its class
# goes through the enum metaclass's ``__getattr__`` hook each time (issue 14)
_OFFER: Final = TimerKind.OFFER


class GroupView:
    """What strategies read about a group at the start of a pass."""

    __slots__ = ("_core", "_group", "_now", "_talk")

    def __init__(self, core: RoutingContext, group: str, now: float) -> None:
        self._core, self._group, self._now = core, group, now
        self._talk: dict[str, float] | None = None

    def last_answered(self) -> int | None:
        """The position, in today's numbering, of the member who took the last call."""
        core = self._core
        pointer = core.store.last_answered(self._group)
        if pointer is None or isinstance(pointer, int):  # position_of, written out
            return pointer
        return core._groups[self._group].positions.get(pointer)

    def talk_time(self, member: str) -> float:
        if self._talk is None:
            self._talk = talk_times(self._core, self._group, now=self._now)
        return self._talk.get(member, 0.0)


def free_predicate(core: RoutingContext, g: GroupConfig, now: float) -> Callable[[str], bool]:
    """Whether a member is free for group ``g`` at ``now``: free in the shared state
    and offerable from this node (``availability``); the hunt's predicate."""
    is_free, name, waiting = core.store.is_free, g.name, g.call_waiting
    offerable = core.availability.offerable
    refused = core._claim_refused
    if refused:  # several nodes: a member another node holds is left alone for a while
        return lambda member: (
            is_free(name, member, now=now, call_waiting=waiting)
            and offerable(member, now=now, call_waiting=waiting)
            and refused.get(member, -math.inf) <= now
        )
    return lambda member: (
        is_free(name, member, now=now, call_waiting=waiting)
        and offerable(member, now=now, call_waiting=waiting)
    )


def has_free(core: RoutingContext, info: GroupInfo) -> bool:
    return bool(core.roster.index(core, info).free)  # the free members, kept up to date


def is_empty(core: RoutingContext, info: GroupInfo) -> bool:
    """``when_empty: overflow`` applies: no member is available (joined, not paused,
    reachable)."""
    if not info.overflow_when_empty:
        return False
    return core.roster.index(core, info).n_available == 0  # kept up to date


def order(core: RoutingContext, info: GroupInfo) -> Walk:
    """The walk of a new pass, in the order of the group's strategy, over the index of
    the group's free members (:mod:`~huntgroup.queue.roster`)."""
    view = GroupView(core, info.config.name, core._now)
    return info.strategy.walk(core.roster.index(core, info), view, core._now)


def offer_all(
    core: RoutingContext,
    call: RoutedCall,
    members: list[str],
    actions: list[Action],
    info: GroupInfo,
) -> None:
    """Ring ``members`` for a group call (of group ``info``), for the group's
    ``no_answer_timeout``."""
    caller = info.pilot_caller or call.caller
    offer(core, call, members, info.no_answer_timeout, caller, actions)


def offer(
    core: RoutingContext,
    call: RoutedCall,
    members: list[str],
    timeout: float,
    caller: Identity,
    actions: list[Action],
) -> None:
    """Ring ``members`` for ``call``; offers made together share one timer. Several
    members on one node are one ``RingAll`` and one write of the store."""
    roster = core.roster
    roster.refresh(core)  # so that ringing is the only change roster.rung is told of
    token = core._seq
    core._seq = token + 1
    g = call.group
    group = g.name if g is not None else None
    call_id, store = call.id, core.store
    if len(members) == 1:
        member = members[0]
        call.offers[member] = token
        store.set_ringing(member, call_id, True)
        ring = Ring(call_id, member, caller, group, timeout)
        if core.claims:
            call.claiming[member] = ring
            actions.append(
                Claim(call_id, member, group, g is not None and g.call_waiting, call.rank[0])
            )
        else:
            actions.append(ring)
        roster.rung_one(core, member)
        core._arm(core._now + timeout, _OFFER, call_id, token)
        return
    elif core.claims:  # each member is claimed, then rung, on its own
        waiting = g is not None and g.call_waiting
        for member in members:
            call.offers[member] = token
            store.set_ringing(member, call_id, True)
            call.claiming[member] = Ring(call_id, member, caller, group, timeout)
            actions.append(Claim(call_id, member, group, waiting, call.rank[0]))
        roster.rung(core, members, group)
    else:
        rung = dict.fromkeys(members, token)  # the one hashing of the members
        if call.offers:
            call.offers.update(rung)
        else:  # the usual case (ring all offers when nobody rings): one dict, not two
            call.offers = rung
        # the store copies the dict's keys whole; the roster takes note of the members
        # itself (they stay out of the store's touched set)
        store.set_ringing_many(rung, call_id, touch=False)
        actions.append(RingAll(call_id, tuple(members), caller, group, timeout))
        roster.rung(core, members, group, noted=False)
    core._arm(core._now + timeout, _OFFER, call_id, token)


def claim_granted(core: RoutingContext, call_id: str, member: str, actions: list[Action]) -> None:
    """The member of a claiming offer is ours: ring it (a late grant changes nothing)."""
    call = core._calls.get(call_id)
    ring = call.claiming.pop(member, None) if call is not None else None
    if ring is not None:
        actions.append(ring)


def end_offer(core: RoutingContext, call: RoutedCall, member: str) -> None:
    del call.offers[member]
    if call.claiming:
        call.claiming.pop(member, None)
    core.store.set_ringing(member, call.id, False)
