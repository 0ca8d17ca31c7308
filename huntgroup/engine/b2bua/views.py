"""What operators see: the queues, the members, the calls and the node, as plain data.

Theory of operation
-------------------
The operators' API (``GET /api/v1/...``, ``huntgroup ctl``), the wallboard and
the metrics read the B2BUA through these functions: each builds JSON-ready
dicts and lists (str, int, float, bool, None) from the group core and the
calls, at an explicit ``now``; nothing here changes state or reads a clock.
Times in state and waits are seconds at ``now``; a join date is wall-clock
epoch seconds (``now`` plus the driver's offset).

- :func:`queues`: per group, its callers not answered yet (queued, or being
  offered: the hunt is part of the wait), earliest first with their position,
  and how many of its members are free;
- :func:`members`: per member of a group, its state (``MemberState``: free,
  ringing, talking, wrap_up, paused, unavailable, logged_out), since when
  (:mod:`~huntgroup.queue.member_status`), the reason of its pause, its join
  date, talk time and answers;
- :func:`calls`: every call in progress (feature-code calls aside): ringing
  (a member or the callee not answered yet), queued, talking, or forwarded
  out of the server;
- :func:`status`: the node, whether it drains, and its gauges.
"""

from __future__ import annotations

from typing import Any

from huntgroup.engine.b2bua.addressing import user_of
from huntgroup.engine.b2bua.calls import Call, CallState
from huntgroup.engine.b2bua.context import Context
from huntgroup.queue.availability import MemberState
from huntgroup.queue.context import CallState as CoreState
from huntgroup.queue.state.journal import JournalingStore

View = dict[str, Any]

_STATES = {CoreState.QUEUED: "queued", CoreState.CONNECTED: "talking"}
"""A call's state as shown, from the core's (hunting, ringing a line, dialing: ringing)."""


def _seconds(value: float) -> float:
    return round(max(0.0, value), 3)


def queues(ctx: Context, *, now: float) -> list[View]:
    """One entry per group of the configuration, in the file's order."""
    core, out = ctx.core, []
    for g in ctx.config.groups:
        waiting = core.waiting(g.name)
        members = core.members_of(g.name)
        free = sum(1 for m in members if core.member_state(g.name, m, now=now) is MemberState.FREE)
        out.append(
            {
                "group": g.name,
                "pilot": g.pilot,
                "algorithm": g.algorithm,
                "callers": len(waiting),
                "oldest_wait_seconds": _seconds(now - waiting[0].arrival) if waiting else 0.0,
                "members_total": len(members),
                "members_free": free,
                "waiting": [
                    {
                        "call_id": _call_key(ctx, w.call_id),
                        "caller": w.caller.number,
                        "wait_seconds": _seconds(now - w.arrival),
                        "position": i,
                    }
                    for i, w in enumerate(waiting, start=1)
                ],
            }
        )
    return out


def members(ctx: Context, group: str, *, now: float) -> list[View] | None:
    """The members of ``group`` by position; None when there is no such group."""
    core = ctx.core
    if core.group_config(group) is None:
        return None
    names = {line.number: line.name for line in ctx.config.lines}
    out = []
    for member in core.members_of(group):
        state = core.member_state(group, member, now=now)
        since = core.state_since(group, member, now=now)
        assert state is not None and since is not None
        pause = core.paused(group, member)
        joined = core.store.joined_since(group, member)
        out.append(
            {
                "member": member,
                "name": names.get(member, ""),
                "state": state.value,
                "state_seconds": _seconds(now - since),
                "paused_reason": pause.reason if pause is not None else None,
                "joined_at": None if joined is None else round(joined + ctx.wall_offset, 3),
                "talk_seconds": _seconds(core.talk_time(group, member, now=now)),
                "answered": core.times.answered(group, member),
            }
        )
    return out


def calls(ctx: Context, *, now: float) -> list[View]:
    """Every call in progress, the oldest first."""
    out = []
    for call in sorted(ctx.index.calls.values(), key=lambda c: c.arrived):
        if call.feature or call.state is CallState.ENDED:
            continue
        summary = ctx.core.summary(call.core_id) if call.core_id else None
        if summary is None:  # the core let it go: forwarded out of the server
            state, group, member = "forwarded", None, None
        else:
            group, member = summary.group, summary.member
            state = _STATES.get(summary.state, "ringing")
        out.append(
            {
                "call_id": call.key,
                "caller": user_of(call.invite.from_.uri) or "anonymous",
                "callee": call.number,
                "group": group,
                "state": state,
                "member": member,
                "age_seconds": _seconds(now - call.arrived),
            }
        )
    return out


def status(ctx: Context, gauges: dict[str, int], *, now: float) -> View:
    """The node: its id, whether it drains, its configuration's size, its gauges."""
    core = ctx.core
    paused = sum(
        1
        for g in ctx.config.groups
        for m in core.members_of(g.name)
        if core.paused(g.name, m) is not None
    )
    return {
        "node": ctx.node_id,
        "draining": not ctx.accepting,
        "groups": len(ctx.config.groups),
        "lines": len(ctx.config.lines),
        "members_paused": paused,
        "state_store": "shared" if isinstance(core.store, JournalingStore) else "memory",
        "wall_time": round(now + ctx.wall_offset, 3),
        **gauges,
    }


def _call_key(ctx: Context, core_id: str) -> str:
    """The id operators know a call by (its log id), from its id in the core."""
    call: Call | None = ctx.index.by_core.get(core_id)
    return call.key if call is not None else core_id
