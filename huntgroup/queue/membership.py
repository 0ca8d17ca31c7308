"""Members coming and going: logging in and out, registering, phones busy on their own.

Theory of operation
-------------------
A member logs in to a group (:func:`join`, ``*51``, a reload) and the group
serves its queue at once; it logs out (:func:`leave`, ``*52``, a reload) and
its offers for that group's calls end as if it were unreachable, so the hunt
goes on.

Whether a member can be reached is this node's view
(:mod:`~huntgroup.queue.availability`): a line registering its first contact
or losing its last one (:func:`reachability`), a phone reporting calls of its
own or none any more (:func:`line_activity`). A member becoming available may
take queued callers (the dispatch); when the last available member of a group
with ``when_empty: overflow`` goes, the group's waiting callers overflow.
"""

from __future__ import annotations

import logging

from huntgroup.queue.actions import Action, Cancel
from huntgroup.queue.context import RoutingContext
from huntgroup.queue.hunting import dispatch, empty_groups
from huntgroup.queue.outcomes import offers_failed
from huntgroup.queue.refusals import Refusal

log = logging.getLogger("huntgroup.members")


def join(core: RoutingContext, group: str, member: str, actions: list[Action]) -> None:
    info = core._groups.get(group)
    if info is None or member not in info.positions:
        return
    core.store.set_joined(group, member, True, now=core._now)
    dispatch(core, actions, (group,))


def leave(core: RoutingContext, group: str, member: str, actions: list[Action]) -> None:
    info = core._groups.get(group)
    if info is None or member not in info.positions:
        return
    core.store.set_joined(group, member, False, now=core._now)
    for call in list(core._calls.values()):
        if call.group is not None and call.group.name == group and member in call.offers:
            actions.append(Cancel(call.id, member))
            offers_failed(core, call, [member], actions, Refusal.UNREACHABLE)
    empty_groups(core, (group,), actions)


def reachability(core: RoutingContext, member: str, reachable: bool, actions: list[Action]) -> None:
    """A line registered its first contact, or lost its last one."""
    groups = core._groups_of.get(member, ())
    if member not in core._lines and not groups:
        return  # not ours: nothing to keep
    was = core.availability.is_reachable(member, now=core._now)
    core.availability.set_contact(member, reachable)
    now_reachable = core.availability.is_reachable(member, now=core._now)
    if was != now_reachable and groups:
        log.info(
            "member %s: %s",
            member,
            "available (registered)" if reachable else "unavailable (no registered contact)",
            extra={"member": member, "event": "available" if reachable else "unavailable"},
        )
    if now_reachable:
        dispatch(core, actions, groups)
    else:
        empty_groups(core, groups, actions)


def line_activity(core: RoutingContext, member: str, busy: bool, actions: list[Action]) -> None:
    """A line's phone has calls of its own (``busy``), or has none any more."""
    groups = core._groups_of.get(member, ())
    if not groups:
        return  # offered no group call: nothing to keep
    if core.availability.set_busy(member, busy) and not busy:
        dispatch(core, actions, groups)
