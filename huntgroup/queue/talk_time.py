"""Talk time: how long members talked, for the groups they are joined to.

Theory of operation
-------------------
A member's talk time in a group is kept in the state store and counts only the
part of each call after the member joined that group (``joined_since``): a
member who logs out and in again starts from zero. When a member's part of a
call ends (a hang-up, a transfer) the time since the call was connected is
credited to every group the member is joined to (:func:`credit`). A call still
in progress counts too when talk time is read (:func:`talk_time`,
:func:`talk_times`): the *least talk time* algorithm and the operators see it
up to ``now``.
"""

from __future__ import annotations

from huntgroup.queue.context import RoutingContext


def talk_time(core: RoutingContext, group: str, member: str, *, now: float) -> float:
    """Talk time since the member joined ``group``, counting calls in progress."""
    total = core.store.talk_time(group, member)
    since = core.store.joined_since(group, member)
    if since is None:
        return total
    for call_id in core.store.active_calls(member):
        call = core._calls.get(call_id)
        if call is not None and call.connected_at is not None:
            total += max(0.0, now - max(call.connected_at, since))
    return total


def talk_times(core: RoutingContext, group: str, *, now: float) -> dict[str, float]:
    """Talk time of every member of ``group``, counting calls in progress."""
    totals = core.store.talk_times(group)
    for call in core._calls.values():
        member = call.member
        if call.connected_at is None or member is None:
            continue
        since = core.store.joined_since(group, member)
        if since is not None:
            extra = max(0.0, now - max(call.connected_at, since))
            totals[member] = totals.get(member, 0.0) + extra
    return totals


def credit(core: RoutingContext, member: str, connected_at: float) -> None:
    """``member``'s part of a call connected at ``connected_at`` ends now: its talk time
    goes to every group it is joined to, from when it joined."""
    now, store = core._now, core.store
    for g in core._groups_of.get(member, ()):
        since = store.joined_since(g, member)
        if since is not None:
            store.add_talk_time(g, member, now - max(connected_at, since))
