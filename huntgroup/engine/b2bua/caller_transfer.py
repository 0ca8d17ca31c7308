"""Transfers asked by the caller's side: its REFER passed on, or two calls of its own joined.

Theory of operation
-------------------
Only a caller authenticated as one of our lines, bridged to a member, may
transfer (anyone else gets 403): it is the member's peer in call 1, the one
its REFER arrives in (:func:`caller_refer`), from the host of that dialog.

*Blind* (Refer-To names a number): the server does not move the member itself.
It passes the REFER on to the member's phone, its Refer-To rewritten to the
number at our domain (the host asked for is dropped), and relays the NOTIFYs
that come back (:func:`on_notify`). The member's phone calls the target through
the server, as a call of its own, judged by the usual rules (an outside number
only for a line, authenticated, through the upstream), then hangs up the first
call. The destination rule is the member's own (a member at a fixed URI is sent
to our pilots and lines only).

*Attended* (Refer-To carries Replaces): the line called someone else through
the server too (call 2, the consultation, again as the caller), and asks to
join the member of call 1 (M) with whoever answered call 2 (X). Replaces names
call 2's dialog as :func:`~huntgroup.engine.b2bua.transfer.consultation` reads
it, with the same refusals in a final NOTIFY (481 unknown, not the line's own,
or early; 486 ``early-only``; 403 not joinable). Joined
(:func:`join_caller_side`): X's leg becomes call 1's caller side, in place of
the line, whose dialog of call 1 stays a leg of the call only to carry the
transfer's NOTIFYs and our BYE; call 2 ends (BYE to the line). X counts as
the caller from then on: a calling line of ours when it is one (it may
transfer in turn), else an outside party (its REFER gets 403). X is re-INVITEd
with call 1's media (:meth:`~huntgroup.media.offer_answer.MediaPlanner.
rejoin_caller_offer`): relayed, our caller port of call 1 with the codec in
use (M keeps talking to our member port, nothing changes for it); end to end
(direct mode), M's SDP, and M is re-INVITEd with X's answer in turn. X's 2xx
settles the transfer (``NOTIFY 200``, BYE to the line on call 1); a refusal
ends the joined call. For the core both members' calls go on as they are
(each one's talk time runs until the joined call ends, both end with it: X's
call is carried as ``Call.caller_line_id``); the line's own activities end at
the REFER (``CallHungUp``), as if it had hung up both calls.
"""

from __future__ import annotations

import logging

from huntgroup.engine.b2bua.addressing import number_of, user_of
from huntgroup.engine.b2bua.call_hold import note_hold
from huntgroup.engine.b2bua.call_log import about
from huntgroup.engine.b2bua.calls import (
    Call,
    CallState,
    JoinOffer,
    Leg,
    LegState,
    Transfer,
)
from huntgroup.engine.b2bua.context import Context
from huntgroup.engine.b2bua.our_requests import pass_on, reinvite
from huntgroup.engine.b2bua.refer_notify import REFER_EXPIRES, notify, transfer_outcome
from huntgroup.engine.b2bua.session_refresh import schedule_session
from huntgroup.engine.b2bua.teardown import end_call
from huntgroup.engine.b2bua.transfer import consultation, destination_refusal, refer_sub, start
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.message import Request
from huntgroup.engine.sip.refer import Replaces, refer_target, wants_subscription
from huntgroup.engine.sip.transaction import TransactionKey
from huntgroup.errors import ProtocolError
from huntgroup.queue.core import CallState as CoreState
from huntgroup.queue.events import CallHungUp

log = logging.getLogger("huntgroup.calls")


def caller_refer(
    ctx: Context, key: TransactionKey, request: Request, call: Call, source: Peer
) -> None:
    """A REFER from the caller: only an authenticated line bridged to a member may send
    one. Blind, it is passed on to that member's phone, which carries the transfer out
    itself (it calls the target through the server as any call of its own, then hangs
    up): the server relays the REFER and the NOTIFYs that come back. Attended
    (Replaces), the server joins the member with the one the line consulted."""
    bridged = call.legs.get(call.bridged) if call.bridged else None
    if (
        call.verified_line is None
        or call.dialog is None
        or source.host != call.dialog.peer.host  # not from the phone of that dialog
        or bridged is None
        or not bridged.member
        or bridged.dialog is None
        or call.refer_passed
        or call.reinvite_pending
    ):
        ctx.respond(key, request, 403)
        return
    try:
        target = refer_target(request)
        subscribed = wants_subscription(request)
    except ProtocolError as err:
        ctx.respond(key, request, err.status)
        return
    if target.replaces is not None:
        status = not_joinable(ctx, call)
        if status is not None:
            ctx.respond(key, request, status)
            return
        ctx.respond(key, request, 202, headers=refer_sub(subscribed))
        expires = ctx.now + REFER_EXPIRES
        transfer = Transfer(f"{call.key}.transferor", call.dialog, subscribed, expires)
        caller_attended(ctx, call, transfer, target.replaces)
        return
    number = number_of(user_of(target.uri))
    status = destination_refusal(ctx, bridged.member, number)
    if status is not None:
        who = call.verified_line
        log.info(
            "call %s: %s may not transfer to %r (%d)",
            call.key,
            who,
            number,
            status,
            extra=about(ctx, call, "transfer_refused"),
        )
        ctx.respond(key, request, status)
        return
    log.info(
        "call %s: %s transfers %s to %s (REFER passed on)",
        call.key,
        call.verified_line,
        bridged.member,
        number,
        extra=about(ctx, call, "transferred"),
    )
    domain = ctx.config.server.domain
    headers = (
        ("Refer-To", f"<sip:{number}@{domain}>"),  # through the server, whatever was asked
        ("Referred-By", f"<sip:{call.verified_line}@{domain}>"),
        *refer_sub(subscribed),
    )
    outgoing = bridged.dialog.request("REFER", ctx.rng, headers=headers)
    if pass_on(ctx, call, key, request, outgoing, bridged.dialog):
        call.refer_passed = request.cseq.number


def on_notify(
    ctx: Context, key: TransactionKey, request: Request, call: Call, leg: Leg | None
) -> None:
    """A NOTIFY in one of ``call``'s dialogs: the progress of a REFER passed on to the
    bridged member (:func:`caller_refer`) goes back to the caller; any other is 481
    (no subscription of ours, RFC 6665 §4.1.3). The ``id`` of its Event names the
    REFER by its CSeq (RFC 3515 §2.4.6): the member's, so it becomes the caller's."""
    event = (request.headers.get("Event") or "").split(";", 1)
    if (
        not call.refer_passed
        or leg is None
        or leg.id != call.bridged
        or call.dialog is None
        or event[0].strip().lower() != "refer"
    ):
        ctx.respond(key, request, 481)
        return
    named = len(event) > 1 and "id=" in event[1].replace(" ", "").lower()
    kept = (
        ("Event", f"refer;id={call.refer_passed}" if named else "refer"),
        *(("Subscription-State", v) for v in request.headers.get_all("Subscription-State")),
    )
    outgoing = call.dialog.request(
        "NOTIFY",
        ctx.rng,
        body=request.body,
        content_type=request.content_type,
        headers=(*kept, ("Contact", call.dialog.me.contact())),
    )
    pass_on(ctx, call, key, request, outgoing, call.dialog)


# ------------------------------------------------------------------ attended


def not_joinable(ctx: Context, call: Call) -> int | None:
    """Why call 1 cannot be joined now (a status for the REFER), or None."""
    if (
        call.state is not CallState.ANSWERED
        or call.transfer is not None
        or ctx.core.call_state(call.core_id) is not CoreState.CONNECTED
    ):
        return 403
    if call.refreshing():
        return 491  # a re-INVITE of ours is under way
    return None


def caller_attended(ctx: Context, call: Call, transfer: Transfer, replaces: Replaces) -> None:
    """REFER with Replaces from the caller (already answered 202): join, or NOTIFY why not."""
    line = call.verified_line or ""
    found = consultation(ctx, line, replaces)
    if isinstance(found, int) or found is call:
        status = found if isinstance(found, int) else 481
        log.info(
            "call %s: attended transfer by %s refused (%d)",
            call.key,
            line,
            status,
            extra=about(ctx, call, "transfer_refused"),
        )
        notify(ctx, transfer, status, final=True)
        return
    join_caller_side(ctx, call, transfer, found)


def join_caller_side(ctx: Context, call: Call, transfer: Transfer, other: Call) -> None:
    """``other``'s member leg becomes ``call``'s caller side; ``other`` (the consultation)
    ends; the transferring line keeps its dialog of ``call`` as a leg, for the NOTIFYs."""
    moved = other.legs[other.bridged or ""]
    member = call.legs[call.bridged or ""].member
    assert moved.dialog is not None and call.dialog is not None
    log.info(
        "call %s: %s joins %s with %s (call %s)",
        call.key,
        call.verified_line,
        member,
        moved.member,
        other.key,
        extra=about(ctx, call, "transferred"),
    )
    transferor = Leg(
        transfer.leg,
        call.key,
        call.verified_line or "",
        call.invite,
        call.tx,
        call.source,
        call.me,
        state=LegState.CONFIRMED,
        dialog=call.dialog,
    )
    index = ctx.index
    index.move_leg_to_caller(moved, other, call, transferor)
    other.bridged = None
    if call.caller_line_id is not None:  # the line's own activity ends here
        ctx.tell_core(CallHungUp(call.caller_line_id))
    index.by_core.pop(other.core_id, None)
    call.caller_line_id, other.core_id = other.core_id, ""  # ends with the joined call
    call.dialog, call.session = moved.dialog, moved.session
    # X is the caller's side now: a line of ours when it is one (authenticated by the
    # dialog we opened to its registered contact), else nobody who may transfer
    call.verified_line = moved.member if ctx.config.line(moved.member) is not None else None
    call.asserted, call.privacy, call.refer_passed = (), None, 0
    if moved.session is not None:
        moved.session.scheduled = None
        schedule_session(ctx, call, "", moved.session)
    note_hold(ctx, call, "caller", False)  # the line's hold ends with it
    start(ctx, call, transfer)
    end_call(ctx, other, bye_caller=True, tell_core=False)
    offer = ctx.media.rejoin_caller_offer(call.media, other.media)
    if not reinvite(ctx, call, JoinOffer(call.key, "", moved.dialog), offer, moved.member):
        transfer_outcome(ctx, call, 503)
        end_call(ctx, call, bye_caller=True)
