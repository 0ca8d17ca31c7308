"""The caller's leg: taken in, ringing, held with music, answered, bridged to a leg.

Theory of operation
-------------------
:func:`accept` takes a caller's INVITE in: our SDP answer (the caller's RTP
port), the :class:`Call` record, its dialog key in the index. What the caller
then hears follows the core: :func:`ringing` (180), :func:`hold` (183 with our
SDP, or 200, then the group's music and announcements: :mod:`announcements`),
:func:`connect` when a leg answered (our 200 if not sent yet, the media
bridged; in direct mode the member's SDP, or a re-INVITE of the caller once it
ACKed). :func:`answer_caller` sends the 200, starts the caller's session
timer, the maximum duration and the 2xx retransmissions
(:func:`retransmit_2xx`, until the ACK, §13.3.1.4).
"""

from __future__ import annotations

import logging

from huntgroup.engine.b2bua.announcements import start_announcements
from huntgroup.engine.b2bua.call_log import about, refused
from huntgroup.engine.b2bua.calls import Call, CallState, Leg, LegState
from huntgroup.engine.b2bua.context import Context, TimerKind
from huntgroup.engine.b2bua.direct_media import update_media
from huntgroup.engine.b2bua.refer_notify import transfer_outcome
from huntgroup.engine.b2bua.session_refresh import schedule_session
from huntgroup.engine.b2bua.session_timer import SessionTimer, has_option, negotiate_as_uas
from huntgroup.engine.b2bua.teardown import cancel_leg, end_call
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.dialogs import uas_dialog
from huntgroup.engine.sip.message import Request, new_tag
from huntgroup.engine.sip.next_hop import response_destination
from huntgroup.engine.sip.transaction import (
    AckTimedOut,
    SendMessage,
    TransactionKey,
    TwoXXRetransmitter,
)
from huntgroup.errors import ProtocolError
from huntgroup.media.ports import PortsExhausted
from huntgroup.queue.events import CallAnswered

log = logging.getLogger("huntgroup.calls")

NO_PORT_STATUS = 503
"""What a call gets when no RTP port is free for it (:class:`PortsExhausted`): Service
Unavailable, a condition of this server, not of the request (§21.5.4)."""


def accept(
    ctx: Context, key: TransactionKey, request: Request, source: Peer, number: str
) -> Call | None:
    """Take a caller's INVITE in: its media answer, its call record, its dialog key."""
    trusted = ctx.trust.trusts(source.host)
    try:
        media = ctx.media.caller_offer(
            request.body,
            request.content_type,
            source_host=source.host,
            trusted=trusted,
            # a UDP source may be forged: no media before the ACK or its first packet
            spoofable=source.transport == "UDP" and not trusted,
        )
    except ProtocolError as err:
        log.info("INVITE to %s refused: %s", number, err, extra=refused(ctx, number))
        ctx.respond(key, request, err.status)
        return None
    except PortsExhausted as err:  # ours, not the caller's fault: 503, as SIP has it
        log.info(
            "INVITE to %s refused: no RTP port free: %s", number, err, extra=refused(ctx, number)
        )
        ctx.respond(key, request, NO_PORT_STATUS)
        return None
    ctx.out.extend(ctx.media.open_caller_port(media))
    call = Call(
        key=f"k{next(ctx.seq)}",
        invite=request,
        tx=key,
        source=source,
        me=ctx.local_for(source),
        to_tag=new_tag(ctx.rng),
        media=media,
        number=number,
        arrived=ctx.now,
    )
    ctx.index.add(call)
    ctx.records.arrived(call.key, request, number, wall=ctx.wall())
    ctx.counters.calls += 1
    ctx.index.add_dialog(call, (request.call_id, call.to_tag, request.from_.tag or ""), None)
    return call


def ringing(ctx: Context, call: Call) -> None:
    if call.state is not CallState.EARLY or call.ringing_sent:
        return
    call.ringing_sent = True
    ctx.respond(call.tx, call.invite, 180, to_tag=call.to_tag)


def hold(ctx: Context, call: Call, answer: bool, music: str | None) -> None:
    """The caller waits: 200 (``answer``) or 183 with our SDP, then ``music`` (the
    group's file; None: the server's default, ``server.media.music``, itself None for
    the built-in music)."""
    if music is None:
        music = ctx.config.server.media.music
    log.info(
        "call %s: queued (%s)",
        call.key,
        "answered" if answer else "early media",
        extra=about(ctx, call, "queued"),
    )
    if call.state is CallState.EARLY:
        if answer:
            answer_caller(ctx, call)
        else:
            call.early_media = True
            ctx.respond(
                call.tx,
                call.invite,
                183,
                to_tag=call.to_tag,
                headers=(("Contact", call.me.contact()), ("Content-Type", "application/sdp")),
                body=call.media.caller_answer,
            )
    call.music = music or ""
    ctx.out.extend(ctx.media.play_music(call.media, music))
    transfer_outcome(ctx, call, 200)  # a transfer's target group has the call now
    start_announcements(ctx, call)


def answer_caller(ctx: Context, call: Call, body: bytes | None = None) -> None:
    """200 OK to the caller: with our SDP, or ``body`` (direct media: the member's)."""
    if body is None:
        body = call.media.caller_answer
    calls = ctx.config.server.calls
    timer = negotiate_as_uas(
        call.invite, session_expires=calls.session_expires, min_se=calls.min_se
    )
    response = ctx.respond(
        call.tx,
        call.invite,
        200,
        to_tag=call.to_tag,
        headers=(
            ("Contact", call.me.contact()),
            *timer.headers,
            ("Content-Type", "application/sdp"),
        ),
        body=body,
    )
    call.state = CallState.ANSWERED
    call.dialog = uas_dialog(call.invite, response, call.source, call.me)
    call.session = SessionTimer(
        timer.interval,
        timer.we_refresh,
        ctx.now,
        use_update=has_option(call.invite, "Allow", "UPDATE"),
    )
    schedule_session(ctx, call, "", call.session)
    if calls.max_duration is not None:
        ctx.arm(ctx.now + calls.max_duration, TimerKind.MAX_DURATION, call.key)
    destination = response_destination(call.invite.top_via, call.source)
    call.retransmit = TwoXXRetransmitter(response, destination, now=ctx.now, timers=ctx.timers)
    schedule_retransmit(ctx, call)


def schedule_retransmit(ctx: Context, call: Call) -> None:
    due = call.retransmit.get_timer() if call.retransmit is not None else None
    if due is not None:
        ctx.arm(due, TimerKind.RETRANSMIT_2XX, call.key)


def retransmit_2xx(ctx: Context, call: Call) -> None:
    """Our 2xx to the caller is due again; without its ACK at the end, the call is over."""
    assert call.retransmit is not None  # the timer entry checked it still retransmits
    for item in call.retransmit.handle_timer(now=ctx.now):
        if isinstance(item, SendMessage):
            ctx.send(item.message, item.destination)
        elif isinstance(item, AckTimedOut):
            log.info(
                "call %s: no ACK for our 200, hanging up",
                call.key,
                extra=about(ctx, call, "no_ack"),
            )
            call.retransmit = None
            end_call(ctx, call, bye_caller=True)
    if call.retransmit is not None:
        schedule_retransmit(ctx, call)


def connect(ctx: Context, call: Call, leg: Leg) -> None:
    """``leg`` answered and wins: the other contacts of its member stop ringing, the
    caller is answered if it was not yet, the media is bridged."""
    for other in call.legs.values():
        if other is not leg and other.member == leg.member and other.state is not LegState.ENDED:
            cancel_leg(ctx, other)
    media = call.media
    if call.state is CallState.EARLY:
        if media.direct and not call.early_media:  # our SDP never reached the caller
            body, commands = ctx.media.answer_with_member(media)
            answer_caller(ctx, call, body)
            ctx.out.extend(commands)
        else:
            answer_caller(ctx, call)
    call.bridged = leg.id
    ctx.records.connected(call.key, leg.member, wall=ctx.wall())
    call.music = None
    call.announcing = None
    ctx.counters.bridged += 1
    if call.caller_line_id is not None:
        ctx.tell_core(CallAnswered(call.caller_line_id))
    if log.isEnabledFor(logging.INFO):  # about() is work: only when the line is written
        log.info(
            "call %s: bridged to %s%s",
            call.key,
            leg.member or "forward target",
            " (media end to end)" if media.bypassed else "",
            extra=about(ctx, call, "bridged", leg.member),
        )
    ctx.out.extend(ctx.media.bridge(media))
    if media.direct and not media.bypassed:
        if call.retransmit is not None:  # §14.1: our 200 first, then its ACK
            call.media_update_after_ack = True
        else:
            update_media(ctx, call, "caller")
    elif media.direct and call.transfer is not None:  # transferred: end to end already
        update_media(ctx, call, "caller", again=True)
    transfer_outcome(ctx, call, 200)  # a transfer reached its target
