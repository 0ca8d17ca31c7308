"""Ending calls and legs: the one way a call ends, and the ways a leg we started ends.

Theory of operation
-------------------
:func:`end_call` ends the whole call: the caller's leg (a final response while
early, else a BYE when asked), every member leg still up (:func:`cancel_leg`:
CANCEL once a provisional came, §9.1, or BYE once confirmed), the core's state
(``CallHungUp``), then :func:`forget` closes the media and removes the call
from the index, with the log line ``call k12: ended`` and the call's record
(:mod:`call_records`). A call ends exactly once: a second call is a no-op.
:func:`end_dialog_gone` is the end when a re-INVITE or UPDATE of ours finds the
peer's dialog gone (408 or 481, §14.1): one log line, then :func:`end_call`.
"""

from __future__ import annotations

import logging

from huntgroup.engine.b2bua.call_log import about
from huntgroup.engine.b2bua.calls import Call, CallState, Leg, LegState, MediaSide
from huntgroup.engine.b2bua.context import Context
from huntgroup.engine.b2bua.refer_notify import transfer_outcome
from huntgroup.engine.sip.message import make_cancel
from huntgroup.errors import ProtocolError
from huntgroup.queue.events import CallHungUp

log = logging.getLogger("huntgroup.calls")


def end_call(
    ctx: Context,
    call: Call,
    *,
    bye_caller: bool,
    status: int = 480,
    skip_leg: str | None = None,
    tell_core: bool = True,
) -> None:
    """End the whole call: caller leg, every member leg, media, core state."""
    if call.state is CallState.ENDED:
        return
    ctx.records.ending(call.key, status)
    if call.state is CallState.EARLY:
        ctx.respond(call.tx, call.invite, status, to_tag=call.to_tag)
    elif bye_caller and call.dialog is not None:
        ctx.start(call.dialog.request("BYE", ctx.rng), call.dialog.peer)
    call.state = CallState.ENDED
    call.retransmit = None
    transfer_outcome(ctx, call, status)  # a transfer under way ends with the call
    for leg in call.legs.values():
        if leg.id != skip_leg and leg.state is not LegState.ENDED:
            cancel_leg(ctx, leg)
    if tell_core and call.core_id in ctx.index.by_core:
        ctx.tell_core(CallHungUp(call.core_id))
    if call.caller_line_id is not None:
        ctx.tell_core(CallHungUp(call.caller_line_id))
    forget(ctx, call)


def end_dialog_gone(ctx: Context, call: Call, side: MediaSide, status: int) -> None:
    """A re-INVITE or UPDATE of ours to ``side`` failed with 408 or 481: its dialog is
    gone (RFC 3261 §14.1), so the whole call ends."""
    log.info(
        "call %s: the %s's dialog is gone (%d)",
        call.key,
        side,
        status,
        extra=about(ctx, call, "dialog_gone"),
    )
    end_call(ctx, call, bye_caller=True)


def forget(ctx: Context, call: Call) -> None:
    """Close the call's media and remove it from the index (it has ended): the call's
    last log line, ``call k12: ended``, and its record."""
    if log.isEnabledFor(logging.INFO):  # about() is work: only when the line is written
        log.info("call %s: ended", call.key, extra=about(ctx, call, "ended"))
    ctx.records.ended(ctx.out, call.key, wall=ctx.wall())
    ctx.out.extend(ctx.media.close(call.media))
    ctx.index.forget(call, ctx.layer)


def cancel_leg(ctx: Context, leg: Leg) -> None:
    leg.cancelled = True
    if leg.state is LegState.CALLING:
        leg.cancel_pending = True  # §9.1: CANCEL only after a provisional response
    elif leg.state is LegState.PROCEEDING:
        send_cancel(ctx, leg)
    elif leg.state is LegState.CONFIRMED:
        bye_leg(ctx, leg)


def send_cancel(ctx: Context, leg: Leg) -> None:
    try:
        ctx.start(make_cancel(leg.invite), leg.destination)
    except ProtocolError as err:
        log.info("could not cancel leg %s: %s", leg.id, err)


def bye_leg(ctx: Context, leg: Leg) -> None:
    if leg.dialog is not None and leg.state is not LegState.ENDED:
        ctx.start(leg.dialog.request("BYE", ctx.rng), leg.dialog.peer)
    leg.state = LegState.ENDED
