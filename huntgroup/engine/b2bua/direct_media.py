"""Direct media (``server.media.mode: direct``): re-INVITEs that put RTP end to end.

Theory of operation
-------------------
Once a call is bridged, :func:`update_media` re-INVITEs one side with the
other side's SDP (the caller after its ACK, §14.1: our 2xx first). The answer
(:func:`media_updated`) either confirms the addresses (the media planner then
bypasses the relay), moves one side (the other side is re-INVITEd in turn), or
refuses (the media stays relayed). One re-INVITE at a time per call: while one
is under way (relayed, a session refresh) the update is retried a second
later, and a 491 glare backs off as §14.1 says. At most
:data:`MAX_MEDIA_UPDATES` re-INVITEs per call.

Media already end to end is re-INVITEd only when a side changed since (a
transfer: ``again``). That is kept with the call (``Call.media_again``) until the
update is settled, so a retry, a 491 backing off, or the other side moved in
turn by the answer, still goes out; it is settled when both sides agree, when a
side refuses, or when the updates run out.
"""

from __future__ import annotations

import logging

from huntgroup.engine.b2bua.call_log import about
from huntgroup.engine.b2bua.calls import Call, CallState, MediaSide, MediaUpdate
from huntgroup.engine.b2bua.context import Context, TimerKind
from huntgroup.engine.b2bua.our_requests import glare_delay, reinvite, reinvite_answered
from huntgroup.engine.b2bua.teardown import end_dialog_gone
from huntgroup.engine.sip.message import Response

log = logging.getLogger("huntgroup.calls")

MAX_MEDIA_UPDATES = 4
"""Direct media: re-INVITEs per call before giving up on end-to-end media."""


def update_media(ctx: Context, call: Call, side: MediaSide, *, again: bool = False) -> None:
    """Direct media: re-INVITE ``side`` with the other side's SDP. ``again``: the media
    went end to end already, and the other side changed since (a transfer)."""
    bridged = call.legs.get(call.bridged) if call.bridged else None
    dialog = call.dialog if side == "caller" else bridged.dialog if bridged else None
    if again:
        call.media_again = True
    if call.state is CallState.ENDED or dialog is None:
        return
    if call.media.bypassed and not call.media_again:
        return
    if call.reinvite_pending or call.refreshing():  # a re-INVITE is under way
        retry_update(ctx, call, side, 1.0)
        return
    if call.media_updates >= MAX_MEDIA_UPDATES:
        log.warning(
            "call %s: media addresses keep moving; media stays relayed",
            call.key,
            extra=about(ctx, call, "media_relayed"),
        )
        call.media_again = False
        return
    call.media_updates += 1
    body = ctx.media.offer_toward(call.media, side)
    reinvite(ctx, call, MediaUpdate(call.key, side, dialog), body, f"the {side}")


def media_updated(ctx: Context, ours: MediaUpdate, response: Response) -> None:
    """The final answer to a direct-media re-INVITE."""
    status, side = response.status, ours.side
    call = reinvite_answered(ctx, ours, response)
    if call is None:
        return
    if 200 <= status < 300:
        moved = ctx.media.peer_answered(call.media, side, response.body)
        if moved:  # the other side must learn the new address
            update_media(ctx, call, "member" if side == "caller" else "caller")
            return
        call.media_again = False
        if moved is None:
            log.warning(
                "call %s: unusable SDP from the %s; relayed",
                call.key,
                side,
                extra=about(ctx, call, "media_relayed"),
            )
        else:
            log.info("call %s: media end to end", call.key, extra=about(ctx, call, "media_direct"))
            ctx.out.extend(ctx.media.bypass(call.media))
        return
    if status == 491 and call.media_updates < MAX_MEDIA_UPDATES:
        retry_update(ctx, call, side, glare_delay(ctx, side))
        return
    call.media_again = False
    if status in (408, 481):  # §14.1: the dialog is gone
        end_dialog_gone(ctx, call, side, status)
    else:
        log.info(
            "call %s: the %s refused direct media (%d); relayed",
            call.key,
            side,
            status,
            extra=about(ctx, call, "media_relayed"),
        )


def retry_update(ctx: Context, call: Call, side: MediaSide, delay: float) -> None:
    ctx.arm(ctx.now + delay, TimerKind.MEDIA_RETRY, call.key, side)
