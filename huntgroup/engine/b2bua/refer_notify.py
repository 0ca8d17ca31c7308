"""The transferor's side of a transfer: NOTIFYs of its progress (RFC 3515), then our BYE.

Theory of operation
-------------------
Once we accept a REFER (202), the member who sent it (or the line, for an
attended transfer from the caller's side) is told how its transfer goes in
NOTIFYs on its own dialog (the implicit subscription of RFC 3515
§2.4.4): ``Event: refer``, a ``message/sipfrag`` body holding one status line.
:func:`notify_progress` sends ``100 Trying`` at once; :func:`transfer_outcome`
sends the outcome and ends the subscription (``Subscription-State:
terminated;reason=noresource``): ``200 OK`` when the target took the call (a
member answered, or the target group queued it: it has the call now), the
final status of the call otherwise (486, 480, 487 when the caller hung up
meanwhile...). Then the transferor's leg gets our BYE at once: its part of the
call was over in the core at the REFER, its dialog only lived on to carry the
NOTIFYs. With ``Refer-Sub: false`` (RFC 4488) there is no NOTIFY, the BYE
goes out after the 202.

A transfer never waits for the answers to our NOTIFYs; a failure answer to
``100 Trying`` (481: the phone forgot the subscription; a timeout) ends the
subscription (:func:`notify_answered`: no more NOTIFYs, our BYE still goes);
the transferor's own BYE (:func:`transferor_left`) ends both.
"""

from __future__ import annotations

import logging

from huntgroup.engine.b2bua.call_log import about
from huntgroup.engine.b2bua.calls import Call, LegState, ReferNotify, Transfer
from huntgroup.engine.b2bua.context import Context
from huntgroup.engine.sip.message import Response
from huntgroup.engine.sip.refer import SIPFRAG, sipfrag
from huntgroup.errors import ProtocolError

log = logging.getLogger("huntgroup.calls")

REFER_EXPIRES = 120
"""Seconds the implicit subscription of a REFER lasts (``Subscription-State: active;
expires=``): a transfer not settled by then is reported as it stands, and its
transferor gets our BYE (the call itself goes on where the transfer sent it)."""


def notify(
    ctx: Context,
    transfer: Transfer,
    status: int,
    *,
    final: bool,
    reason: str = "noresource",
    call_key: str = "",
) -> None:
    """One NOTIFY of the refer event package on the transferor's dialog; the answer to
    one that is not ``final`` is read (:func:`notify_answered`) for call ``call_key``."""
    if not transfer.subscribed:
        return
    state = (
        f"terminated;reason={reason}"
        if final
        else f"active;expires={max(0, round(transfer.expires - ctx.now))}"
    )
    dialog = transfer.dialog
    request = dialog.request(
        "NOTIFY",
        ctx.rng,
        body=sipfrag(status),
        content_type=SIPFRAG,
        headers=(
            ("Event", "refer"),
            ("Subscription-State", state),
            ("Contact", dialog.me.contact()),
        ),
    )
    try:
        tx = ctx.start(request, dialog.peer)
    except ProtocolError as err:
        log.info("could not send NOTIFY (%d) to the transferor: %s", status, err)
        return
    if not final:
        ctx.index.requests[tx] = ReferNotify(call_key)


def notify_answered(ctx: Context, ours: ReferNotify, response: Response) -> None:
    """The final answer to a NOTIFY of ours: a failure (481, a timeout...) ends the
    subscription (RFC 6665 §4.1.3): no more NOTIFYs, the transfer itself goes on."""
    call = ctx.index.calls.get(ours.call)
    if response.status >= 300 and call is not None and call.transfer is not None:
        log.info(
            "call %s: the transferor refused our NOTIFY (%d)",
            call.key,
            response.status,
            extra=about(ctx, call, "notify_refused"),
        )
        call.transfer.subscribed = False


def notify_progress(ctx: Context, call: Call) -> None:
    """``100 Trying``: the REFER was accepted, the target is being sought."""
    if call.transfer is not None:
        notify(ctx, call.transfer, 100, final=False, call_key=call.key)


def transfer_outcome(ctx: Context, call: Call, status: int, *, reason: str = "noresource") -> None:
    """The transfer of ``call`` is settled with ``status`` (``reason`` ``timeout``: it
    was not, by ``REFER_EXPIRES``): last NOTIFY, then our BYE to the transferor
    (unless it hung up already)."""
    transfer = call.transfer
    if transfer is None:
        return
    call.transfer = None
    leg = call.legs.get(transfer.leg)
    log.info(
        "call %s: transfer by %s %s (%d)",
        call.key,
        leg.member if leg is not None else "?",
        "done" if 200 <= status < 300 else "failed",
        status,
        extra=about(ctx, call, "transfer_result", leg.member if leg is not None else ""),
    )
    if leg is None or leg.state is LegState.ENDED:
        return
    notify(ctx, transfer, status, final=True, reason=reason)
    leg.state = LegState.ENDED
    try:
        ctx.start(transfer.dialog.request("BYE", ctx.rng), transfer.dialog.peer)
    except ProtocolError as err:
        log.info("could not send BYE to the transferor: %s", err)


def transferor_left(ctx: Context, call: Call, leg_id: str) -> None:
    """The transferor hung up before the outcome: no NOTIFY can reach it any more; the
    transfer itself goes on."""
    transfer = call.transfer
    if transfer is not None and transfer.leg == leg_id:
        transfer.subscribed = False
