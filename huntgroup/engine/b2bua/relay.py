"""Inside a call: ACK, CANCEL and in-dialog requests, and every response to what we sent.

Theory of operation
-------------------
A request with a To tag finds its dialog in the index (:func:`in_dialog`);
it must come in CSeq order (§12.2.2). BYE ends the call from that side;
re-INVITE, UPDATE and INFO are relayed on the other side's dialog once the
call is bridged (:func:`relay`, SDP rewritten for the anchored media; an offer
that holds or resumes is first offered to :mod:`call_hold`), and
answered here while it is not (the media is anchored: nothing to tell the
other side; a direct-mode caller moved onto a port of ours for a transfer's
music is answered from that port, :func:`answer_from_anchor`). An UPDATE
without body is a session refresh, answered here. One re-INVITE at a time per
call (491).

Responses to our client transactions are dispatched by what the transaction
was for (:func:`on_response`): a relayed request (:func:`relay_response`), a
direct-media re-INVITE, a session refresh, a member leg, or an orphan leg of
an ended call. A transaction that failed without any answer
(:func:`on_failure`: timeout 408, transport 503) is handled as that answer.
"""

from __future__ import annotations

import logging

from huntgroup.engine.b2bua.addressing import is_sdp
from huntgroup.engine.b2bua.call_hold import moved_to_music, on_offer, resume_answered
from huntgroup.engine.b2bua.call_log import about
from huntgroup.engine.b2bua.caller_transfer import caller_refer, on_notify
from huntgroup.engine.b2bua.calls import (
    Call,
    CallState,
    HoldReinvite,
    JoinOffer,
    Leg,
    LegState,
    MediaUpdate,
    OurRequest,
    ReferNotify,
    RelayedRequest,
    SessionRefresh,
)
from huntgroup.engine.b2bua.context import ALLOW, Context
from huntgroup.engine.b2bua.direct_media import media_updated, update_media
from huntgroup.engine.b2bua.member_legs import leg_failed, leg_response, orphan_response
from huntgroup.engine.b2bua.refer_notify import notify_answered, transferor_left
from huntgroup.engine.b2bua.session_refresh import (
    peer_alive,
    peer_refreshed,
    refresh_answered,
    refresh_done,
)
from huntgroup.engine.b2bua.session_timer import request_headers, uas_refusal
from huntgroup.engine.b2bua.teardown import end_call
from huntgroup.engine.b2bua.transfer import join_answered, on_refer
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.dialogs import Dialog
from huntgroup.engine.sip.extensions import supported_value
from huntgroup.engine.sip.message import Request, Response, make_response, new_tag
from huntgroup.engine.sip.transaction import TransactionKey
from huntgroup.errors import ProtocolError
from huntgroup.media.sdp import parse_sdp

log = logging.getLogger("huntgroup.calls")

RELAYED_IN_DIALOG = ("INVITE", "UPDATE", "INFO")


def on_ack(ctx: Context, request: Request) -> None:
    """An ACK outside any transaction: the ACK of one of our 2xx."""
    found = ctx.index.by_dialog.get(
        (request.call_id, request.to.tag or "", request.from_.tag or "")
    )
    if found is None:
        return
    call, leg = found
    retransmit = call.retransmit if leg is None else None
    if retransmit is not None and retransmit.matches(request):
        retransmit.ack_received()
        call.retransmit = None
        # our To tag came back: the caller is no forger, its media may flow
        ctx.out.extend(ctx.media.confirm(call.media))
        if call.media_update_after_ack:
            call.media_update_after_ack = False
            update_media(ctx, call, "caller")
        if call.feature:  # a feature code is done once answered: hang up
            end_call(ctx, call, bye_caller=True, tell_core=False)


def on_cancel(
    ctx: Context, key: TransactionKey, request: Request, invite_key: TransactionKey | None
) -> None:
    call = ctx.index.by_invite.get(invite_key) if invite_key else None
    if call is None:
        ctx.respond(key, request, 481)
        return
    ctx.respond(key, request, 200)
    if call.state is CallState.EARLY:
        log.info("call %s: caller cancelled", call.key, extra=about(ctx, call, "cancelled"))
        ctx.records.hung_up(call.key, "caller")
        end_call(ctx, call, bye_caller=False, status=487)


def in_dialog(ctx: Context, key: TransactionKey, request: Request, source: Peer) -> None:
    found = ctx.index.by_dialog.get(
        (request.call_id, request.to.tag or "", request.from_.tag or "")
    )
    if found is None:
        ctx.respond(key, request, 481)
        return
    call, leg = found
    which = leg.id if leg is not None else ""
    method = request.method
    dialog = leg.dialog if leg is not None else call.dialog
    if dialog is not None:  # §12.2.2: requests within a dialog come in CSeq order
        if request.cseq.number <= dialog.remote_cseq:
            ctx.respond(key, request, 500, headers=(("Retry-After", "1"),))
            return
        dialog.remote_cseq = request.cseq.number
    if method == "REFER":  # a transfer (engine/b2bua/transfer.py, caller_transfer.py)
        if leg is None:
            caller_refer(ctx, key, request, call, source)
        else:
            on_refer(ctx, key, request, call, leg, source)
        return
    if method == "NOTIFY":  # the progress of a transfer the caller asked for
        on_notify(ctx, key, request, call, leg)
        return
    if method == "BYE":
        ctx.respond(key, request, 200)
        if leg is None:
            if log.isEnabledFor(logging.INFO):  # about() is work: only when written
                log.info(
                    "call %s: caller hung up", call.key, extra=about(ctx, call, "caller_hangup")
                )
            ctx.records.hung_up(call.key, "caller")
            end_call(ctx, call, bye_caller=False, status=487)
        else:
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "call %s: member %s hung up",
                    call.key,
                    leg.member or "(forward)",
                    extra=about(ctx, call, "member_hangup", leg.member),
                )
            leg.state = LegState.ENDED
            if leg.id != call.bridged:  # a leg no longer bridged (a transferor): it alone
                transferor_left(ctx, call, leg.id)
                return
            ctx.records.hung_up(call.key, "member")
            end_call(ctx, call, bye_caller=True, skip_leg=leg.id)
        return
    if method == "OPTIONS":
        ctx.respond(key, request, 200, headers=(("Allow", ALLOW), ("Supported", supported_value())))
        return
    if method in ("INVITE", "UPDATE"):
        brief = uas_refusal(request, min_se=ctx.config.server.calls.min_se)
        if brief is not None:  # RFC 4028: Session-Expires below our Min-SE
            ctx.respond(key, request, brief[0], headers=brief[1])
            return
        peer_alive(ctx, call, which)
    if method == "UPDATE" and not request.body:
        # a session refresh: each leg's session is ours, nothing to tell the other side
        headers = peer_refreshed(ctx, call, which, request)
        ctx.respond(key, request, 200, headers=headers)
        return
    if method in RELAYED_IN_DIALOG:
        if method == "INVITE" and (call.reinvite_pending or call.refreshing()):
            ctx.respond(key, request, 491)  # §14.2: one re-INVITE at a time
            return
        other = call.other_side(leg)
        if other is None:  # not bridged: answer ourselves (media is anchored here)
            answer_in_dialog(ctx, key, request, call, which, dialog)
            return
        offer = method != "INFO" and is_sdp(request.content_type) and bool(request.body)
        if offer and on_offer(ctx, key, request, call, leg, dialog):
            return  # a hold or a resume, answered here (call_hold)
        relay(ctx, key, request, other, call, from_caller=leg is None)
        return
    ctx.respond(key, request, 501, headers=(("Allow", ALLOW),))


def answer_in_dialog(
    ctx: Context,
    key: TransactionKey,
    request: Request,
    call: Call,
    which: str,
    dialog: Dialog | None,
) -> None:
    """A re-INVITE, UPDATE or INFO of a call not bridged: answered here."""
    method = request.method
    fresh: bytes | None = None
    if not which and method != "INFO" and is_sdp(request.content_type):
        media = call.media
        moved = ctx.media.caller_reoffered(media, request.body)
        if media.anchored:  # direct mode, moved onto a port of ours (a transfer): from it
            fresh = answer_from_anchor(ctx, call, request.body)
        if (moved or fresh) and call.music is not None:  # the music follows the caller
            ctx.out.extend(ctx.media.play_music(media, call.music or None))
    body = call.media.caller_answer if method != "INFO" and request.body else b""
    body = fresh or body
    ctype: tuple[tuple[str, str], ...] = ()
    if body:
        ctype = (("Content-Type", "application/sdp"),)
    if method != "INFO":  # a re-INVITE or UPDATE refreshes the session
        ctype = peer_refreshed(ctx, call, which, request) + ctype
        if body and dialog is not None:
            dialog.local_sdp = body
    ctx.respond(key, request, 200, headers=ctype, body=body)


def answer_from_anchor(ctx: Context, call: Call, offer: bytes) -> bytes | None:
    """Direct mode: the caller, moved onto a port of ours that is not the one of our first
    answer, offers anew: answered from that port, our ``o=`` version one up (RFC 3264
    §8); None when the offer cannot be answered so."""
    try:
        sdp = parse_sdp(offer)
    except ProtocolError:
        return None
    return ctx.media.answer_reoffer(call.media, sdp, "caller")


def relay(
    ctx: Context,
    key: TransactionKey,
    request: Request,
    other: Dialog,
    call: Call,
    *,
    from_caller: bool,
) -> None:
    body, ctype = request.body, request.content_type
    if body and is_sdp(ctype):
        body, commands = ctx.media.rewrite(call.media, body, from_caller=from_caller)
        ctx.out.extend(commands)
    headers: tuple[tuple[str, str], ...] = ()
    timer = call.timer_of(other)[0]
    if timer is not None and request.method in ("INVITE", "UPDATE"):
        headers = request_headers(timer.interval, min_se=ctx.config.server.calls.min_se)
    outgoing = other.request(
        request.method, ctx.rng, body=body, content_type=ctype, headers=headers
    )
    client = ctx.start(outgoing, other.peer)
    ctx.index.requests[client] = RelayedRequest(key, other)
    if request.method == "INVITE":
        call.reinvite_pending = True


def on_response(ctx: Context, key: TransactionKey | None, response: Response, source: Peer) -> None:
    if key is None:
        stray_response(ctx, response)
        return
    index = ctx.index
    ours = index.requests.get(key)
    if ours is not None:
        if response.status >= 200:
            del index.requests[key]
            our_request_answered(ctx, ours, response)
        return
    orphan = index.orphans.get(key)
    if orphan is not None:
        orphan_response(ctx, key, orphan, response)
        return
    found = index.legs_by_tx.get(key)
    if found is None:  # e.g. a 2xx retransmission to a re-INVITE already answered
        stray_response(ctx, response)
        return
    leg_response(ctx, found[0], found[1], response, source)


def our_request_answered(ctx: Context, ours: OurRequest, response: Response) -> None:
    """The final answer to one of our in-dialog requests (or the one standing for none)."""
    match ours:
        case RelayedRequest(server, target):
            relay_response(ctx, server, target, response)
        case MediaUpdate():
            media_updated(ctx, ours, response)
        case HoldReinvite():
            moved_to_music(ctx, ours, response)
        case SessionRefresh():
            refresh_done(ctx, ours, response)
        case JoinOffer():
            join_answered(ctx, ours, response)
        case ReferNotify():
            notify_answered(ctx, ours, response)


def relay_response(
    ctx: Context, server: TransactionKey, target: Dialog, response: Response
) -> None:
    """Answer a relayed request with the other side's ``response`` (sent on ``target``)."""
    try:
        request = ctx.layer.request_of(server)
    except ProtocolError:
        return
    found = ctx.index.by_dialog.get(
        (request.call_id, request.to.tag or "", request.from_.tag or "")
    )
    owner, leg = found if found is not None else (None, None)
    if owner is not None and request.method == "INVITE":
        owner.reinvite_pending = False
    resumed = owner is not None and owner.media.resuming is not None
    headers: tuple[tuple[str, str], ...] = ()
    body = response.body
    if body and response.content_type:
        headers = (("Content-Type", response.content_type),)
        if owner is not None and is_sdp(response.content_type):
            # the answer comes from the side opposite to the request's sender
            body, commands = ctx.media.rewrite(owner.media, body, from_caller=leg is not None)
            ctx.out.extend(commands)
    if owner is not None and 200 <= response.status < 300:
        side = leg.dialog if leg is not None else owner.dialog
        if side is not None and request.method == "INVITE":
            headers += (("Contact", side.me.contact()),)
        if request.method in ("INVITE", "UPDATE"):  # both sessions are refreshed
            which = leg.id if leg is not None else ""
            headers = peer_refreshed(ctx, owner, which, request) + headers
            refresh_answered(ctx, owner, target, response)
            if side is not None and body and is_sdp(response.content_type):
                side.local_sdp = body
    ctx.respond(
        server,
        request,
        response.status,
        to_tag=request.to.tag,
        headers=headers,
        body=body,
    )
    if 200 <= response.status < 300 and response.cseq.method == "INVITE":
        ctx.send(target.ack_for_2xx(response.cseq.number, ctx.rng), target.peer)
    if resumed and owner is not None and request.method in ("INVITE", "UPDATE"):
        resume_answered(ctx, owner, response)  # direct media: end to end again, or still held


def stray_response(ctx: Context, response: Response) -> None:
    """A 2xx retransmission to an INVITE already answered: ACK it again."""
    if not (200 <= response.status < 300) or response.cseq.method != "INVITE":
        return
    found = ctx.index.legs_by_call_id.get(response.call_id)
    leg: Leg | None = found[1] if found is not None else None
    if leg is not None and leg.dialog is not None:
        ctx.send(leg.dialog.ack_for_2xx(response.cseq.number, ctx.rng), leg.dialog.peer)
        return
    # a re-INVITE we sent the caller (session refresh, direct media): its dialog
    mine = (response.call_id, response.from_.tag or "", response.to.tag or "")
    owner = ctx.index.by_dialog.get(mine)
    caller = owner[0] if owner is not None and owner[1] is None else None
    if caller is not None and caller.dialog is not None:
        dialog = caller.dialog
        ctx.send(dialog.ack_for_2xx(response.cseq.number, ctx.rng), dialog.peer)


def on_failure(ctx: Context, key: TransactionKey, request: Request, status: int) -> None:
    """Client transaction ``key`` ended without a final answer: timed out (408) or
    undeliverable (503)."""
    index = ctx.index
    ours = index.requests.pop(key, None)
    if ours is not None:
        failed = make_response(request, status, to_tag=new_tag(ctx.rng))
        if isinstance(ours, SessionRefresh):  # no answer at all: the peer is gone
            refresh_done(ctx, ours, failed, dead=True)
        else:
            our_request_answered(ctx, ours, failed)
        return
    if index.orphans.pop(key, None) is not None:
        return
    found = index.legs_by_tx.get(key)
    if found is None or request.method != "INVITE":
        return
    leg_failed(ctx, found[0], found[1], status)
