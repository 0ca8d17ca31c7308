"""Call hold: a bridged side puts the call on hold, the other side hears music until it resumes.

Theory of operation
-------------------
A side of a bridged call holds with a new offer (re-INVITE or UPDATE) whose
audio is ``sendonly``, ``inactive`` or at ``c=0.0.0.0`` (RFC 3264 §8.4,
:func:`~huntgroup.media.hold.holds`), and resumes with one that is not.
:func:`on_offer` takes such offers before they are relayed.

*Relay mode* (media anchored on our ports): the offer is answered here, from
the port that side already talks to, with the codec in use and the mirrored
direction (``recvonly`` to ``sendonly``); the other side's session does not
change at all (no re-INVITE, no glare, nothing it could refuse). While one
side holds, the other hears music from its own port of ours (one RTP stream:
continuous sequence numbers and timestamps, 50 packets/s), the relay and its
inactivity watch stop (a silent holder ends nothing). The resume offer is
answered here too (``sendrecv``) and the relay starts again. An offer we
cannot answer with the codec in use is relayed as before (the hold still
counts: the media follows it).

*Direct mode* (media end to end): the holder's offer is answered here from a
port of ours (:meth:`~huntgroup.media.offer_answer.MediaPlanner.anchor`), and
the held party is moved onto another port of ours by a re-INVITE
(``sendonly``, G.711: :class:`HoldReinvite`); once it answers, it hears the
music. On resume, the holder's offer is relayed to the held party as is
(its own SDP, our ``o=`` line), and the held party's answer back: on its 2xx
the media is end to end again and our ports go back (:func:`resume_answered`).
A 491 (glare) retries the re-INVITE after the RFC 3261 §14.1 delay
(:data:`TimerKind.HOLD_RETRY`); a 408 or 481 ends the call; another refusal
leaves the held party where it was (it hears silence, the call stays up). The
re-INVITE is an INVITE client transaction: Timer B bounds it.

The caller of a blind transfer, media end to end, is moved onto our music the
same way while the target is sought (:func:`move_to_music`, called by
:mod:`transfer`); once the new member answers, the usual direct-media
re-INVITE puts the media end to end again.

*Which music* (:func:`music_for`): the holding side's own ``lines[].music`` when
it is one of our lines and names one; else the group's ``queue.music`` when the
call is a group call (the number it is at is a pilot); else the server's
``server.media.music``; None is the built-in music.
"""

from __future__ import annotations

import logging

from huntgroup.engine.b2bua.call_log import about
from huntgroup.engine.b2bua.calls import Call, CallState, HoldReinvite, Leg, MediaSide
from huntgroup.engine.b2bua.context import Context, TimerKind
from huntgroup.engine.b2bua.our_requests import glare_delay, reinvite, reinvite_answered
from huntgroup.engine.b2bua.session_refresh import peer_refreshed
from huntgroup.engine.b2bua.teardown import end_dialog_gone
from huntgroup.engine.sip.dialogs import Dialog
from huntgroup.engine.sip.message import Request, Response
from huntgroup.engine.sip.transaction import TransactionKey
from huntgroup.errors import ProtocolError
from huntgroup.media.hold import holds
from huntgroup.media.ports import PortsExhausted
from huntgroup.media.sdp import SessionDescription, parse_sdp

log = logging.getLogger("huntgroup.calls")

MAX_HOLD_RETRIES = 4
"""Direct mode: 491s to the re-INVITE moving the held party onto the music before giving up."""


def on_offer(
    ctx: Context,
    key: TransactionKey,
    request: Request,
    call: Call,
    leg: Leg | None,
    dialog: Dialog | None,
) -> bool:
    """A bridged side's re-INVITE or UPDATE with SDP: True when handled here (a hold,
    a resume, or an offer of a call held here); False: relay it as before."""
    media = call.media
    side: MediaSide = "caller" if leg is None else "member"
    if media.closed or dialog is None:
        return False
    try:
        offer = parse_sdp(request.body)
    except ProtocolError:
        return False  # the other side answers it: we have nothing to add
    holding = holds(offer)
    was = media.caller_holds if side == "caller" else media.member_holds
    if media.direct and media.bypassed:  # end to end: only a hold moves us in
        return holding and hold_direct(ctx, key, request, call, side, offer, dialog)
    if media.direct and not media.anchored:
        return False  # the switch to end-to-end media is under way: relayed as is
    other_holds = media.member_holds if side == "caller" else media.caller_holds
    if media.anchored and was and not holding and not other_holds:
        media.resuming = side  # the last resume: relayed end to end (resume_answered)
        return False
    if not holding and not was and not media.anchored:
        return False  # an ordinary offer: relayed
    if request.method == "UPDATE" and call.reinvite_pending:
        ctx.respond(key, request, 491)  # RFC 3311 §5.2: our offer is outstanding
        return True
    body = ctx.media.answer_reoffer(media, offer, side)
    music = note_hold(ctx, call, side, holding)
    if body is None:  # cannot answer with the codec in use: the other side does
        return False
    answer_here(ctx, key, request, call, side, dialog, body)
    if holding != was:
        log.info(
            "call %s: %s by the %s%s",
            call.key,
            "put on hold" if holding else "resumed",
            side,
            f" (music {music or 'built-in'})" if holding else "",
            extra=about(ctx, call, "hold" if holding else "resume"),
        )
    ctx.out.extend(ctx.media.bridge(media))
    return True


def note_hold(ctx: Context, call: Call, side: MediaSide, holding: bool) -> str | None:
    """``side`` holds (or not) from now on; the music of the side that alone holds now
    (what the other side hears) is kept with the call's media, and returned."""
    media = call.media
    holder = ctx.media.set_hold(media, side, holding)
    media.hold_music = music_for(ctx, call, holder) if holder is not None else None
    return media.hold_music


def answer_here(
    ctx: Context,
    key: TransactionKey,
    request: Request,
    call: Call,
    side: MediaSide,
    dialog: Dialog,
    body: bytes,
) -> None:
    """Our 2xx with ``body`` to ``side``'s offer: it refreshes that side's session."""
    which = (call.bridged or "") if side == "member" else ""
    headers = peer_refreshed(ctx, call, which, request)
    if request.method == "INVITE":
        headers += (("Contact", dialog.me.contact()),)
    headers += (("Content-Type", "application/sdp"),)
    dialog.local_sdp = body
    ctx.respond(key, request, 200, headers=headers, body=body)


def music_for(ctx: Context, call: Call, holder: MediaSide) -> str | None:
    """The music the other side hears when ``holder`` holds (see the module docstring)."""
    config = ctx.config
    if holder == "caller":
        number = call.verified_line
    else:
        bridged = call.legs.get(call.bridged) if call.bridged else None
        number = bridged.member if bridged is not None else None
    line = config.line(number) if number else None
    if line is not None and line.music is not None:
        return line.music
    group = ctx.core.group_of_pilot(call.number)
    if group is not None:
        music = next((g.queue.music for g in config.groups if g.name == group), None)
        if music is not None:
            return music
    return config.server.media.music


# ---------------------------------------------------------------- direct mode
def hold_direct(
    ctx: Context,
    key: TransactionKey,
    request: Request,
    call: Call,
    side: MediaSide,
    offer: SessionDescription,
    dialog: Dialog,
) -> bool:
    """Direct mode, media end to end: ``side`` holds. Answer it from a port of ours and
    move the other side onto another with a re-INVITE (it hears music once it answers)."""
    media = call.media
    if call.reinvite_pending or call.refreshing():
        if request.method == "UPDATE":
            ctx.respond(key, request, 491)
            return True
        return False  # in_dialog answers a re-INVITE 491 before we are asked
    try:
        ctx.out.extend(ctx.media.anchor(media))
    except PortsExhausted as err:
        log.warning(
            "call %s: no RTP port for the hold music: %s; relayed as is",
            call.key,
            err,
            extra=about(ctx, call, "hold_music_failed"),
        )
        return False
    body = ctx.media.answer_reoffer(media, offer, side)
    if body is None:  # no G.711 in the holder's offer: relayed as is, no music
        ctx.out.extend(ctx.media.bypass(media))
        return False
    music = note_hold(ctx, call, side, True)
    answer_here(ctx, key, request, call, side, dialog, body)
    log.info(
        "call %s: put on hold by the %s (music %s)",
        call.key,
        side,
        music or "built-in",
        extra=about(ctx, call, "hold"),
    )
    call.hold_retries = 0
    move_to_music(ctx, call, "member" if side == "caller" else "caller")
    return True


def move_to_music(ctx: Context, call: Call, side: MediaSide) -> None:
    """Direct mode, anchored: re-INVITE ``side`` onto our music port: the held party, or
    the caller of a blind transfer while its target is sought (:func:`hears_music`)."""
    media = call.media
    if call.state is CallState.ENDED or not media.anchored or not hears_music(call, side):
        return  # resumed, or bridged again, meanwhile
    dialog = dialog_of(call, side)
    if dialog is None:
        return
    if call.reinvite_pending or call.refreshing():
        retry_later(ctx, call, side, 1.0)
        return
    body = ctx.media.music_offer(media, side)
    reinvite(ctx, call, HoldReinvite(call.key, side, dialog), body, f"the {side} onto the music")


def moved_to_music(ctx: Context, ours: HoldReinvite, response: Response) -> None:
    """The final answer to :func:`move_to_music`'s re-INVITE."""
    status, side, dialog = response.status, ours.side, ours.dialog
    call = reinvite_answered(ctx, ours, response)
    if call is None:
        return
    media = call.media
    if 200 <= status < 300:
        if media.music_offer_sdp is not None:  # what a refresh re-INVITE offers again
            dialog.local_sdp = media.music_offer_sdp.to_bytes()
        if not ctx.media.music_answered(media, side, response.body):
            log.warning(
                "call %s: unusable SDP from the %s; it hears no music",
                call.key,
                side,
                extra=about(ctx, call, "hold_music_failed"),
            )
            return
        if call.bridged is not None:
            ctx.out.extend(ctx.media.bridge(media))
        elif call.music is not None:  # a transfer's target is sought: its music
            ctx.out.extend(ctx.media.play_music(media, call.music or None))
        return
    if status == 491 and call.hold_retries < MAX_HOLD_RETRIES:
        call.hold_retries += 1
        retry_later(ctx, call, side, glare_delay(ctx, side))
    elif status in (408, 481):  # §14.1: the dialog is gone
        end_dialog_gone(ctx, call, side, status)
    else:  # the held party stays where it was: silence until the resume
        log.info(
            "call %s: the %s refused the hold music (%d)",
            call.key,
            side,
            status,
            extra=about(ctx, call, "hold_music_failed"),
        )


def hears_music(call: Call, side: MediaSide) -> bool:
    """``side`` hears music from us now: the caller while it is bridged to nobody (a
    blind transfer seeks its target), else the party the other side alone holds."""
    media = call.media
    if call.bridged is None:
        return side == "caller" and call.music is not None
    return media.member_holds if side == "caller" else media.caller_holds


def retry_later(ctx: Context, call: Call, side: MediaSide, delay: float) -> None:
    ctx.arm(ctx.now + delay, TimerKind.HOLD_RETRY, call.key, side)


def resume_answered(ctx: Context, call: Call, response: Response) -> None:
    """Direct mode: the answer to the last resume, relayed end to end: on a 2xx the media
    is end to end again (our ports go back); otherwise the hold goes on."""
    media = call.media
    side = media.resuming
    media.resuming = None
    if side is None or not media.anchored or not 200 <= response.status < 300:
        return
    note_hold(ctx, call, side, False)
    log.info(
        "call %s: resumed by the %s; media end to end",
        call.key,
        side,
        extra=about(ctx, call, "resume"),
    )
    ctx.out.extend(ctx.media.bypass(media))


def dialog_of(call: Call, side: MediaSide) -> Dialog | None:
    if side == "caller":
        return call.dialog
    bridged = call.legs.get(call.bridged) if call.bridged else None
    return bridged.dialog if bridged is not None else None
