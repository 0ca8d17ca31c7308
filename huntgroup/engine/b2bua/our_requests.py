"""Requests the B2BUA sends in a call's dialogs on its own account, or passes on.

Theory of operation
-------------------
Several concerns re-INVITE one side of a call with an SDP offer of ours: direct
media (the other side's SDP, :mod:`direct_media`), call hold (our music port,
:mod:`call_hold`), an attended transfer (the joined member, :mod:`transfer`).
:func:`reinvite` is that one request: ``INVITE`` in the dialog named by the
record ``ours`` (what its final answer is for, read back by
:func:`huntgroup.engine.b2bua.relay.our_request_answered`), with the
``Session-Expires``/``Min-SE`` of that dialog's session timer when it has one
(RFC 4028 §7.4: a re-INVITE refreshes the session), and the call marked as
having a re-INVITE pending until that answer (one at a time per call, RFC 3261
§14.1). :func:`reinvite_answered` takes that answer (our ACK to a 2xx, the call
free for the next re-INVITE), and :func:`glare_delay` says how long to wait
before trying again after a ``491``. :func:`pass_on` sends a request built
from one the call received (a REFER, a NOTIFY of a transfer from the caller's
side) and ties its answer to that request's server transaction; one that
cannot leave gets ``503``.
"""

from __future__ import annotations

import logging

from huntgroup.engine.b2bua.call_log import about
from huntgroup.engine.b2bua.calls import Call, CallState, MediaSide, OurReinvite, RelayedRequest
from huntgroup.engine.b2bua.context import Context
from huntgroup.engine.b2bua.session_refresh import refresh_answered
from huntgroup.engine.b2bua.session_timer import request_headers
from huntgroup.engine.sip.dialogs import Dialog
from huntgroup.engine.sip.message import Request, Response
from huntgroup.engine.sip.transaction import TransactionKey
from huntgroup.errors import ProtocolError

log = logging.getLogger("huntgroup.calls")


def reinvite(ctx: Context, call: Call, ours: OurReinvite, body: bytes, what: str) -> bool:
    """Our re-INVITE offering ``body`` on ``ours.dialog`` (``what``: whom, for the log);
    False when it could not be sent (logged; nothing is pending then)."""
    dialog = ours.dialog
    timer = call.timer_of(dialog)[0]
    min_se = ctx.config.server.calls.min_se
    headers = request_headers(timer.interval, min_se=min_se) if timer is not None else ()
    request = dialog.request(
        "INVITE", ctx.rng, body=body, content_type="application/sdp", headers=headers
    )
    try:
        tx = ctx.start(request, dialog.peer)
    except ProtocolError as err:
        log.info(
            "call %s: cannot re-INVITE %s: %s",
            call.key,
            what,
            err,
            extra=about(ctx, call, "reinvite_failed"),
        )
        return False
    ctx.index.requests[tx] = ours
    call.reinvite_pending = True
    return True


def reinvite_answered(ctx: Context, ours: OurReinvite, response: Response) -> Call | None:
    """The final answer to :func:`reinvite`: a 2xx is ACKed, and refreshes the session
    of its dialog; the call, still up and with no re-INVITE pending now, or None when
    it ended meanwhile."""
    dialog = ours.dialog
    answered = 200 <= response.status < 300
    if answered:
        ctx.send(dialog.ack_for_2xx(response.cseq.number, ctx.rng), dialog.peer)
    call = ctx.index.calls.get(ours.call)
    if call is None or call.state is CallState.ENDED:
        return None
    call.reinvite_pending = False
    if answered:
        refresh_answered(ctx, call, dialog, response)
    return call


def glare_delay(ctx: Context, side: MediaSide) -> float:
    """RFC 3261 §14.1: seconds before a re-INVITE answered ``491`` is tried again; the
    owner of the Call-ID (us, on member legs) waits 2.1-4 s, the other side 0-2 s."""
    return ctx.rng.uniform(0.0, 2.0) if side == "caller" else ctx.rng.uniform(2.1, 4.0)


def pass_on(
    ctx: Context,
    call: Call,
    key: TransactionKey,
    received: Request,
    outgoing: Request,
    dialog: Dialog,
) -> bool:
    """Send ``outgoing`` on ``dialog``; its final answer goes back to ``received`` (server
    transaction ``key``). False, and ``received`` answered 503, when it cannot leave."""
    try:
        client = ctx.start(outgoing, dialog.peer)
    except ProtocolError as err:
        log.info(
            "call %s: could not pass a %s on: %s",
            call.key,
            outgoing.method,
            err,
            extra=about(ctx, call, "relay_failed"),
        )
        ctx.respond(key, received, 503)
        return False
    ctx.index.requests[client] = RelayedRequest(key, dialog)
    return True
