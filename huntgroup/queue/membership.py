"""Members coming and going: logging in and out, pausing, registering, phones busy on their own.

Theory of operation
-------------------
A member logs in to a group (:func:`set_joined`, ``*51``, the operators' API, a
reload) and the group serves its queue at once; it logs out (the same,
``*52``, the API, a reload) and its offers for that group's calls end as if it
were unreachable, so the hunt goes on; a pause ends with the logout.

A joined member is paused (:func:`pause`, the API) for a break: it stays
joined, keeps its join date and talk time, and is offered no call of that
group (the shared state says it is not free, for every algorithm); its offers
for that group's calls end, a call it is on goes on. Unpaused, the group
serves its queue. Pausing a logged-out member changes nothing. Each change
that happened is noted for the driver (:class:`MembershipChange`, when the
core keeps them: ``changes``).

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
from huntgroup.queue.events import ChangeOrigin
from huntgroup.queue.hunting import dispatch, empty_groups
from huntgroup.queue.member_status import ChangeAction, MembershipChange
from huntgroup.queue.outcomes import offers_failed
from huntgroup.queue.refusals import Refusal

log = logging.getLogger("huntgroup.members")


def set_joined(
    core: RoutingContext,
    group: str,
    member: str,
    joined: bool,
    actions: list[Action],
    *,
    origin: ChangeOrigin = "phone",
    reason: str = "",
) -> None:
    """Log a member in to ``group`` (``joined``) or out; see the module docstring."""
    if not _member_known(core, group, member):
        return
    store = core.store
    if (store.joined_since(group, member) is not None) != joined:
        _note(core, group, member, "login" if joined else "logout", reason, origin)
    store.set_joined(group, member, joined, now=core._now)
    if joined:
        dispatch(core, actions, (group,))
    else:
        _withdraw_offers(core, group, member, actions)
        empty_groups(core, (group,), actions)


def pause(
    core: RoutingContext,
    group: str,
    member: str,
    paused: bool,
    actions: list[Action],
    *,
    origin: ChangeOrigin = "api",
    reason: str = "",
) -> None:
    """Pause (``paused``) or unpause a member joined to ``group``; see the module docstring."""
    store = core.store
    if not _member_known(core, group, member) or store.joined_since(group, member) is None:
        return
    if (store.paused(group, member) is not None) == paused:
        return  # already so
    store.set_paused(group, member, paused, reason=reason, now=core._now)
    _note(core, group, member, "pause" if paused else "unpause", reason, origin)
    if paused:
        _withdraw_offers(core, group, member, actions)
        empty_groups(core, (group,), actions)
    else:
        dispatch(core, actions, (group,))


def withdraw_barred(core: RoutingContext, actions: list[Action]) -> None:
    """Another node logged out or paused members: their offers for those groups end."""
    store, groups = core.store, set()
    for call in list(core._calls.values()):
        if call.group is None or not call.offers:
            continue
        name = call.group.name
        for member in list(call.offers):
            barred = (
                store.joined_since(name, member) is None or store.paused(name, member) is not None
            )
            if barred and member in call.offers:
                actions.append(Cancel(call.id, member))
                offers_failed(core, call, [member], actions, Refusal.UNREACHABLE)
                groups.add(name)
    if groups:
        empty_groups(core, groups, actions)


def _member_known(core: RoutingContext, group: str, member: str) -> bool:
    """``group`` is one of ours and ``member`` one of its members."""
    info = core._groups.get(group)
    return info is not None and member in info.positions


def _withdraw_offers(core: RoutingContext, group: str, member: str, actions: list[Action]) -> None:
    """``member`` may no longer take calls of ``group``: its offers for them end."""
    for call in list(core._calls.values()):
        if call.group is not None and call.group.name == group and member in call.offers:
            actions.append(Cancel(call.id, member))
            offers_failed(core, call, [member], actions, Refusal.UNREACHABLE)


def _note(
    core: RoutingContext,
    group: str,
    member: str,
    action: ChangeAction,
    reason: str,
    origin: ChangeOrigin,
) -> None:
    if core.changes is not None:
        core.changes.append(MembershipChange(core._now, group, member, action, reason, origin))


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
