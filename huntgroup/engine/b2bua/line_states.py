"""What a supervision key shows: the dialogs of a line or a pilot, read from the calls.

Theory of operation
-------------------
:func:`dialogs_of` answers, for a set of watched numbers, the RFC 4235 dialogs
each one has through this server now, in one pass over the calls in
progress (:class:`~huntgroup.engine.b2bua.index.CallIndex`), naming only the
numbers that have some (the others are idle):

- a **line** is the *recipient* of every call that rings one of its contacts
  or is bridged to it (a group call offered to it as a member, or a direct
  call: both are member legs), ``early`` while it rings and ``confirmed``
  once answered; it is the *initiator* of every call it placed itself
  (authenticated: to a pilot, to another line, out through the upstream),
  ``early`` until answered, then ``confirmed``. No dialog: idle.
- a **pilot** has one *recipient* ``early`` dialog per caller waiting for
  the group: queued with music, or being offered to members, until a member
  answers (the caller is then the member's call, on the member's key). At
  most :data:`MAX_PILOT_DIALOGS` are listed, the earliest first.

Whose identity is shown (``server.subscriptions.show_remote``): ``never``;
``lines`` (the default): only our own authenticated lines and our pilots and
lines as dialled numbers, so colleagues see each other but outside callers'
numbers stay on the phones that ring; ``all``: outside callers too. Never a
caller who asked for privacy (a ``Privacy`` of ``id``, ``user`` or
``header``, RFC 3323/3325), a line included, nor an anonymous one. Dialog ids are the call's key
inside this server: neither Call-IDs nor tags are published (no pickup by
``Replaces`` from a BLF key).
"""

from __future__ import annotations

from collections.abc import Container

from huntgroup.engine.b2bua.addressing import ANONYMOUS, user_of
from huntgroup.engine.b2bua.calls import Call, CallState, LegState
from huntgroup.engine.b2bua.context import Context
from huntgroup.engine.sip.dialog_info import DialogEntry, DialogState

MAX_PILOT_DIALOGS = 32
"""Waiting callers listed in a pilot's document (the earliest first)."""
PRIVATE = frozenset(["id", "user", "header"])


def dialogs_of(ctx: Context, watched: Container[str]) -> dict[str, tuple[DialogEntry, ...]]:
    """The dialogs of the watched numbers (lines or pilots) that have any now; a number
    left out is idle. One pass over the calls: the cost does not grow with the number
    of subscriptions."""
    found: dict[str, list[DialogEntry]] = {}
    pilot_of = ctx.core.group_of_pilot
    policy = ctx.config.server.subscriptions.show_remote
    for call in ctx.index.calls.values():
        if call.state is CallState.ENDED or call.feature:
            continue
        own = call.verified_line
        if own is not None and own in watched:
            state: DialogState = "confirmed" if call.state is CallState.ANSWERED else "early"
            dialled = user_of(call.invite.uri)
            show = policy == "all" or (policy == "lines" and _ours(ctx, dialled))
            remote = f"sip:{dialled}@{ctx.config.server.domain}" if show and dialled else None
            entry = DialogEntry(f"{call.key}-out", state, "initiator", remote)
            found.setdefault(own, []).append(entry)
        if call.bridged is None and call.number in watched and pilot_of(call.number):
            entries = found.setdefault(call.number, [])
            if len(entries) < MAX_PILOT_DIALOGS:
                entries.append(_received(ctx, call, "early", policy))
        members: dict[str, DialogState] = {}
        for leg in call.legs.values():
            member = leg.member
            if not member or member not in watched:
                continue
            if leg.state is LegState.CONFIRMED or leg.id == call.bridged:
                members[member] = "confirmed"
            elif leg.state is not LegState.ENDED:
                members.setdefault(member, "early")
        for member, leg_state in members.items():
            found.setdefault(member, []).append(_received(ctx, call, leg_state, policy))
    return {number: tuple(entries) for number, entries in found.items()}


def _received(ctx: Context, call: Call, state: DialogState, policy: str) -> DialogEntry:
    """A dialog ``call``'s caller has with the watched number (a recipient dialog)."""
    caller = call.verified_line
    number = caller or user_of(call.invite.from_.uri)
    show = policy == "all" or (policy == "lines" and caller is not None)
    if number == ANONYMOUS or _private(call):
        show = False
    if not show or not number:
        return DialogEntry(call.key, state, "recipient")
    name = call.invite.from_.display_name or ""
    return DialogEntry(
        call.key, state, "recipient", f"sip:{number}@{ctx.config.server.domain}", name
    )


def _ours(ctx: Context, number: str) -> bool:
    return ctx.config.line(number) is not None or ctx.core.group_of_pilot(number) is not None


def _private(call: Call) -> bool:
    values = call.invite.headers.get_all("Privacy")
    return any(v.strip().lower() in PRIVATE for value in values for v in value.split(";"))
