"""Session timers of a call's dialogs (RFC 4028), glued to the timer heap and the SIP stack.

Theory of operation
-------------------
Every dialog of a call (the caller's, each confirmed leg's) has a
:class:`SessionTimer` (header logic in :mod:`session_timer`), named by
``which``: "" for the caller's, a leg id for a leg's. :func:`schedule_session` puts
its due time in the timer heap (one entry per timer: a later due time is
picked up when the entry fires); :func:`session_due` runs it: we refresh
(:func:`refresh`: UPDATE, or a re-INVITE with our last SDP), or the peer did
not and the call ends like on a BYE. :func:`refresh_done` reads the answer to
our refresh: 2xx renegotiates, 408/481 or none ends the call, 405/501 falls
back to re-INVITE, 422 asks again with the peer's Min-SE, 491 retries later.
A re-INVITE or UPDATE from a peer refreshes its session
(:func:`peer_alive`, :func:`peer_refreshed`).
"""

from __future__ import annotations

import logging

from huntgroup.engine.b2bua.call_log import about
from huntgroup.engine.b2bua.calls import Call, CallState, SessionRefresh
from huntgroup.engine.b2bua.context import Context, TimerKind
from huntgroup.engine.b2bua.session_timer import (
    SessionTimer,
    min_se_of,
    negotiate_as_uac,
    negotiate_as_uas,
    request_headers,
)
from huntgroup.engine.b2bua.teardown import end_call
from huntgroup.engine.sip.dialogs import Dialog
from huntgroup.engine.sip.message import Request, Response
from huntgroup.errors import ProtocolError

log = logging.getLogger("huntgroup.calls")


def schedule_session(ctx: Context, call: Call, which: str, timer: SessionTimer) -> None:
    """One heap entry per timer: a later due time is picked up when the entry fires."""
    due = timer.due
    if timer.scheduled is not None and timer.scheduled <= due:
        return
    timer.scheduled = due
    ctx.arm(due, TimerKind.SESSION, call.key, which)


def session_due(ctx: Context, call: Call, which: str, at: float) -> None:
    """The heap entry of ``which``'s session timer, due ``at``, came up."""
    timer, dialog = call.session_of(which)
    if timer is None or dialog is None or timer.scheduled != at:
        return
    timer.scheduled = None
    if timer.due > ctx.now:
        schedule_session(ctx, call, which, timer)
    elif timer.we_refresh or timer.retry_at is not None:
        refresh(ctx, call, which, timer, dialog)
    else:
        side = f"member {call.legs[which].member or '(forward)'}" if which else "caller"
        log.info(
            "call %s: no session refresh from the %s (RFC 4028)",
            call.key,
            side,
            extra=about(ctx, call, "session_expired"),
        )
        ctx.counters.sessions_expired += 1
        end_call(ctx, call, bye_caller=True)


def refresh(ctx: Context, call: Call, which: str, timer: SessionTimer, dialog: Dialog) -> None:
    """We are the refresher: an UPDATE without body, or a re-INVITE with our last SDP."""
    if timer.refreshing:
        return  # its transaction ends on its own timers, then we go on
    method = "UPDATE" if timer.use_update else "INVITE"
    if method == "INVITE" and call.reinvite_pending:  # §14.1: one re-INVITE at a time
        timer.retry_at = ctx.now + 1.0  # (a relayed or direct-media one)
        schedule_session(ctx, call, which, timer)
        return
    timer.retry_at = None
    body = dialog.local_sdp if method == "INVITE" else b""
    calls = ctx.config.server.calls
    request = dialog.request(
        method,
        ctx.rng,
        body=body,
        content_type="application/sdp" if body else None,
        headers=request_headers(timer.interval, min_se=calls.min_se, refresher="uac"),
    )
    try:
        tx = ctx.start(request, dialog.peer)
    except ProtocolError as err:
        log.info(
            "call %s: cannot refresh the session: %s",
            call.key,
            err,
            extra=about(ctx, call, "session_expired"),
        )
        end_call(ctx, call, bye_caller=True)
        return
    ctx.index.requests[tx] = SessionRefresh(call.key, which, dialog)
    timer.refreshing = True
    timer.refreshing_invite = method == "INVITE"
    ctx.counters.session_refreshes += 1


def refresh_done(
    ctx: Context, ours: SessionRefresh, response: Response, *, dead: bool = False
) -> None:
    """The final answer to our session refresh (``dead``: none came, or undeliverable)."""
    status, method = response.status, response.cseq.method
    dialog, which = ours.dialog, ours.which
    if 200 <= status < 300 and method == "INVITE":
        ctx.send(dialog.ack_for_2xx(response.cseq.number, ctx.rng), dialog.peer)
    call = ctx.index.calls.get(ours.call)
    if call is None or call.state is CallState.ENDED:
        return
    timer = call.session_of(which)[0]
    if timer is None:
        return
    timer.refreshing = timer.refreshing_invite = False
    if 200 <= status < 300:
        interval, we_refresh = negotiate_as_uac(response, interval=timer.interval)
        timer.refreshed(ctx.now, interval=interval, we_refresh=we_refresh)
    elif dead or status in (408, 481):  # RFC 4028 §10: the session is over
        side = "member" if which else "caller"
        log.info(
            "call %s: session refresh to the %s failed (%d)",
            call.key,
            side,
            status,
            extra=about(ctx, call, "session_expired"),
        )
        ctx.counters.sessions_expired += 1
        end_call(ctx, call, bye_caller=True)
        return
    elif status in (405, 501) and timer.use_update:
        timer.use_update = False  # try again at once, with a re-INVITE
        timer.retry_at = ctx.now
    elif status == 422 and min_se(response) > timer.interval:
        timer.interval = min(min_se(response), ctx.config.server.calls.session_expires)
        timer.retry_at = ctx.now
    elif status == 491:
        timer.retry_at = ctx.now + ctx.rng.uniform(2.1, 4.0)
    else:  # refused, but answered: the dialog is alive
        timer.refreshed(ctx.now)
    schedule_session(ctx, call, which, timer)


def min_se(response: Response) -> int:
    try:
        return min_se_of(response)
    except ProtocolError:
        return 0


def peer_refreshed(
    ctx: Context, call: Call, which: str, request: Request
) -> tuple[tuple[str, str], ...]:
    """A re-INVITE or UPDATE from the peer on ``which`` gets our 2xx: it refreshes
    that session, renegotiated from its fields; returns the fields for the 2xx."""
    timer = call.session_of(which)[0]
    if timer is None:
        return ()
    calls = ctx.config.server.calls
    agreed = negotiate_as_uas(request, session_expires=calls.session_expires, min_se=calls.min_se)
    timer.refreshed(ctx.now, interval=agreed.interval, we_refresh=agreed.we_refresh)
    schedule_session(ctx, call, which, timer)
    return agreed.headers


def peer_alive(ctx: Context, call: Call, which: str) -> None:
    """A re-INVITE or UPDATE came in on ``which``: its peer is alive, whatever the
    answer (a relayed one may fail on the other side); the 2xx renegotiates."""
    timer = call.session_of(which)[0]
    if timer is not None and not timer.we_refresh:
        timer.refreshed(ctx.now)
        schedule_session(ctx, call, which, timer)


def refresh_answered(ctx: Context, call: Call, dialog: Dialog, response: Response) -> None:
    """A 2xx to a re-INVITE or UPDATE we sent on ``dialog`` refreshes that session."""
    timer, which = call.timer_of(dialog)
    if timer is None:
        return
    interval, we_refresh = negotiate_as_uac(response, interval=timer.interval)
    timer.refreshed(ctx.now, interval=interval, we_refresh=we_refresh)
    schedule_session(ctx, call, which, timer)
