"""Runtime control of members: log in or out, pause or unpause, and the records of it.

Theory of operation
-------------------
An operator (the JSON API on the admin listener, ``huntgroup ctl``) asks the
B2BUA to log a member of a group in or out, or to pause or unpause it
(:meth:`B2BUA.control <huntgroup.engine.b2bua.facade.B2BUA.control>`).
:func:`prepare` judges the request against the group core's state and
answers at once with a :class:`ControlResult`, an HTTP-like status:

- 400: an unknown operation, or a reason that is too long
  (:data:`MAX_REASON` characters), holds control, surrogate or private-use
  characters, or does not encode as UTF-8 (so that every sink can write it);
- 404: no such group, or no such member in it (a member is named by its key:
  the line's number, or the ``uri:`` member's URI);
- 409: pausing a member that is logged out (log it in first);
- 200: done, with the event for the core; or nothing to do (pausing a paused
  member, logging in a member that is in), said in the message: the request
  is idempotent, so that a script can repeat it. No record is made then.

The core carries the change out like a ``*51``/``*52`` (offers withdrawn,
queues served) and notes it; every control change noted by the core, from
any origin (this API, the feature codes, a reload of ``joined``), becomes one
:class:`~huntgroup.engine.b2bua.call_records.MemberChange` output with
wall-clock time (:func:`take_member_changes`, run after every input of the
core, appends them through :func:`emit_member_change`, the one place that
does).
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from typing import Literal, get_args

from huntgroup.engine.b2bua.call_records import MemberChange, RecordOutput
from huntgroup.engine.b2bua.context import Context
from huntgroup.queue.events import Event, MemberJoined, MemberLeft, MemberPaused

log = logging.getLogger("huntgroup.members")

ControlOp = Literal["login", "logout", "pause", "unpause"]
CONTROL_OPS: tuple[str, ...] = get_args(ControlOp)

MAX_REASON = 128
"""The longest reason a control request may carry, in characters."""


@dataclass(frozen=True, slots=True)
class ControlResult:
    """The answer to a control request: 200 (done, or nothing to do), 400, 404 or 409."""

    status: int
    message: str


def reason_problem(reason: str) -> str | None:
    """What is wrong with ``reason`` (hostile input), None when it is acceptable."""
    if len(reason) > MAX_REASON:
        return f"the reason is longer than {MAX_REASON} characters"
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co") for ch in reason):
        return "the reason holds control, surrogate or private-use characters"
    try:
        reason.encode("utf-8")
    except UnicodeEncodeError:
        return "the reason is not valid UTF-8 text"
    return None


def prepare(
    ctx: Context, op: str, group: str, member: str, reason: str
) -> tuple[ControlResult, Event | None]:
    """Judge a control request; the event for the core when there is something to do."""
    if op not in CONTROL_OPS:
        return ControlResult(
            400, f"unknown operation {op!r}: one of {', '.join(CONTROL_OPS)}"
        ), None
    problem = reason_problem(reason)
    if problem is not None:
        return ControlResult(400, problem), None
    core = ctx.core
    if core.group_config(group) is None:
        return ControlResult(404, f"no group {group!r}"), None
    if core.member_state(group, member, now=ctx.now) is None:
        return ControlResult(404, f"no member {member!r} in group {group!r}"), None
    joined = core.store.joined_since(group, member) is not None
    pause = core.paused(group, member)
    who = f"member {member} in group {group}"
    if op == "login":
        if joined:
            return ControlResult(200, f"{who} is logged in already"), None
        return ControlResult(200, f"{who} logged in"), MemberJoined(group, member, "api", reason)
    if op == "logout":
        if not joined:
            return ControlResult(200, f"{who} is logged out already"), None
        return ControlResult(200, f"{who} logged out"), MemberLeft(group, member, "api", reason)
    if op == "pause":
        if not joined:
            return ControlResult(409, f"{who} is logged out: log it in before pausing it"), None
        if pause is not None:
            why = f" ({pause.reason})" if pause.reason else ""
            return ControlResult(200, f"{who} is paused already{why}"), None
        return ControlResult(200, f"{who} paused"), MemberPaused(group, member, True, "api", reason)
    if pause is None:
        return ControlResult(200, f"{who} is not paused"), None
    return ControlResult(200, f"{who} unpaused"), MemberPaused(group, member, False, "api", reason)


def take_member_changes(ctx: Context) -> None:
    """The control changes the core noted become records (wall-clock time), and log lines."""
    for change in ctx.core.take_changes():
        log.info(
            "member %s: %s, group %s (%s)%s",
            change.member,
            change.action,
            change.group,
            change.origin,
            f": {change.reason}" if change.reason else "",
        )
        emit_member_change(
            ctx,
            MemberChange(
                at=change.at + ctx.wall_offset,
                group=change.group,
                member=change.member,
                action=change.action,
                reason=change.reason,
                origin=change.origin,
            ),
        )


def emit_member_change(ctx: Context, change: MemberChange) -> None:
    """The one place a :class:`MemberChange` joins the outputs of the input."""
    ctx.out.append(RecordOutput(change))
