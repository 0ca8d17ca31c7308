"""Transfers asked by a member: REFER, blind (RFC 3515) or attended (RFC 3891 Replaces).

Theory of operation
-------------------
A REFER comes in the dialog of a member leg (:func:`on_refer`). Only the member
bridged to the call may transfer it: it is one of our lines or group members,
authenticated by the dialog we opened to its registered contact (the REFER must
come from that host too). A REFER from a leg out through the upstream, or
out of any dialog, is refused (403): nothing outside the server picks a
destination.

**From the caller**: a REFER in the caller's dialog is
:mod:`caller_transfer`'s (passed on to the member's phone when blind; two calls
of the line joined when attended); it uses :func:`destination_refusal`,
:func:`consultation` and :func:`join_answered` from here.

**Blind** (Refer-To names a number): the target is read from the URI's user
part only (the host is ignored, so no REFER names a server to call). A pilot
or a line of ours is always allowed; an outside number only when the
transferor is one of our lines and ``server.upstream`` is set (a group member
reached at a fixed URI, outside the server, may not dial out through us).
Anything else is 403. Accepted, the REFER gets 202 and ``NOTIFY 100 Trying``
(:mod:`refer_notify`); the caller is unbridged and hears the target group's
music (or the built-in one) while the target is sought (:func:`wait_with_music`:
in direct mode, media end to end, it is first re-INVITEd onto a port of ours,
and the new member's answer puts the media end to end again, as for any
caller who heard our music), and the core is told
``CallTransferred``: it ends the member's part at once (talk time, wrap-up)
and routes the call on to the target like a forward (queue, algorithm, line,
or ``Forward`` out). The transfer is settled (last NOTIFY, then our BYE to
the transferor) when the call is bridged again or queued (200), or ends (its
status); after ``REFER_EXPIRES`` at the latest.

**Attended** (Refer-To carries ``Replaces``): the transferor called a pilot or
a line through us (the consultation call) and asks to join its caller with
whoever answered there. Replaces names the transferor's own dialog with us,
from our side: ``to-tag`` ours, ``from-tag`` the transferor's (the reverse
order is tried too, for phones that swap them). A dialog we do not hold, or
not the transferor's own, gets ``NOTIFY 481`` and nothing changes; an early
(unanswered) one 481 too (RFC 3891 §3: an early dialog we did not initiate);
``early-only`` on an answered one 486; a consultation still queued, or
answered out through the upstream, 403. Otherwise the consultation's member
leg moves into the first call (:func:`join`), the consultation's caller leg
(the transferor) gets BYE, and the moved leg is re-INVITEd with the first
call's media (:func:`join_answered`): relayed to the caller's port, or in
direct mode the caller's own SDP, then the caller re-INVITEd in turn. Its
2xx settles the transfer (200, BYE to the transferor's first leg); a refusal
ends the joined call. The core is told ``CallsJoined``, and the first call
goes on under the consultation's core id. A new INVITE carrying Replaces
(:func:`replacing_invite`) is refused: calls are joined by REFER only.
"""

from __future__ import annotations

import logging

from huntgroup.engine.b2bua.addressing import PHONE_NUMBER, number_of, user_of
from huntgroup.engine.b2bua.call_hold import move_to_music, note_hold
from huntgroup.engine.b2bua.call_log import about
from huntgroup.engine.b2bua.calls import (
    Call,
    CallState,
    JoinOffer,
    Leg,
    Transfer,
)
from huntgroup.engine.b2bua.context import Context, TimerKind
from huntgroup.engine.b2bua.direct_media import update_media
from huntgroup.engine.b2bua.our_requests import reinvite, reinvite_answered
from huntgroup.engine.b2bua.refer_notify import (
    REFER_EXPIRES,
    notify,
    notify_progress,
    transfer_outcome,
)
from huntgroup.engine.b2bua.session_refresh import schedule_session
from huntgroup.engine.b2bua.teardown import end_call
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.extensions import supported_value
from huntgroup.engine.sip.message import Request, Response
from huntgroup.engine.sip.refer import (
    Replaces,
    parse_replaces,
    refer_target,
    wants_subscription,
)
from huntgroup.engine.sip.transaction import TransactionKey
from huntgroup.errors import ProtocolError, RemoteProtocolError
from huntgroup.media.ports import PortsExhausted
from huntgroup.queue.core import CallState as CoreState
from huntgroup.queue.events import CallsJoined, CallTransferred

log = logging.getLogger("huntgroup.calls")


def on_refer(
    ctx: Context, key: TransactionKey, request: Request, call: Call, leg: Leg, source: Peer
) -> None:
    """A REFER in the dialog of ``leg`` (the caller's are :mod:`caller_transfer`'s)."""
    refusal = who_may_not(ctx, call, leg, source)
    if refusal is not None:
        ctx.respond(key, request, refusal)
        return
    assert leg is not None and leg.dialog is not None  # who_may_not checked it
    try:
        target = refer_target(request)
        subscribed = wants_subscription(request)
    except ProtocolError as err:
        log.info(
            "call %s: REFER refused (%d): %s",
            call.key,
            err.status,
            err,
            extra=about(ctx, call, "transfer_refused", leg.member),
        )
        ctx.respond(key, request, err.status)
        return
    transfer = Transfer(leg.id, leg.dialog, subscribed, ctx.now + REFER_EXPIRES)
    if target.replaces is not None:
        ctx.respond(key, request, 202, headers=refer_sub(subscribed))
        attended(ctx, call, leg, transfer, target.replaces)
        return
    number = number_of(user_of(target.uri))
    status = destination_refusal(ctx, leg.member, number)
    if status is not None:
        log.info(
            "call %s: %s may not transfer to %r (%d)",
            call.key,
            leg.member,
            number,
            status,
            extra=about(ctx, call, "transfer_refused", leg.member),
        )
        ctx.respond(key, request, status)
        return
    ctx.respond(key, request, 202, headers=refer_sub(subscribed))
    blind(ctx, call, leg, transfer, number)


def who_may_not(ctx: Context, call: Call, leg: Leg | None, source: Peer) -> int | None:
    """Why this REFER may not transfer ``call`` (a status), or None."""
    if leg is None or not leg.member or leg.dialog is None:
        return 403  # the caller's side, or a leg out of the server: not ours to move
    if source.host != leg.dialog.peer.host:
        return 403  # not from the phone we rang
    if (
        call.state is not CallState.ANSWERED
        or call.bridged != leg.id
        or call.transfer is not None
        or ctx.core.call_state(call.core_id) is not CoreState.CONNECTED
    ):
        return 403
    if call.reinvite_pending or call.refreshing():
        return 491  # a re-INVITE is under way across the bridge
    return None


def destination_refusal(ctx: Context, member: str, number: str) -> int | None:
    """403 when ``member`` may not send a call to ``number`` (see the module docstring)."""
    if not number:
        return 404
    if ctx.core.group_of_pilot(number) is not None or ctx.config.line(number) is not None:
        return None
    outside_allowed = (
        ctx.config.line(member) is not None
        and ctx.config.server.upstream is not None
        and PHONE_NUMBER.fullmatch(number) is not None
    )
    return None if outside_allowed else 403


def refer_sub(subscribed: bool) -> tuple[tuple[str, str], ...]:
    """The headers of our 202: RFC 4488 §4, a ``Refer-Sub: false`` honoured is said so,
    and the ``norefersub`` option tag is supported (a REFER may require it)."""
    return (("Supported", supported_value()),) + (() if subscribed else (("Refer-Sub", "false"),))


def blind(ctx: Context, call: Call, leg: Leg, transfer: Transfer, number: str) -> None:
    """The caller goes on to ``number``: the member's part ends now."""
    log.info(
        "call %s: %s transfers the call to %s",
        call.key,
        leg.member,
        number,
        extra=about(ctx, call, "transferred", leg.member),
    )
    start(ctx, call, transfer)
    call.bridged = None
    note_hold(ctx, call, "member", False)  # a hold before the REFER ends with that member
    group = ctx.core.group_of_pilot(number)
    music = next(
        (g.queue.music for g in ctx.config.groups if g.name == group and group is not None),
        None,
    )
    wait_with_music(ctx, call, music)
    ctx.tell_core(CallTransferred(call.core_id, leg.member, number))


def wait_with_music(ctx: Context, call: Call, music: str | None) -> None:
    """The caller, bridged to nobody, hears ``music`` while the target is sought. Media
    end to end (direct mode) is first moved onto a port of ours by a re-INVITE, as a
    held party's is (:func:`~huntgroup.engine.b2bua.call_hold.move_to_music`)."""
    media = call.media
    if media.bypassed:
        try:
            ctx.out.extend(ctx.media.anchor(media))
        except PortsExhausted as err:
            log.warning(
                "call %s: no RTP port for the transfer's music: %s",
                call.key,
                err,
                extra=about(ctx, call, "transfer_music_failed"),
            )
            return  # silence until the next bridge
        call.music = music or ""
        call.hold_retries = 0
        move_to_music(ctx, call, "caller")  # it hears the music once it answers
        return
    call.music = music or ""
    ctx.out.extend(ctx.media.play_music(media, music))


def start(ctx: Context, call: Call, transfer: Transfer) -> None:
    """The transfer is under way: ``100 Trying``, and its deadline armed."""
    call.transfer = transfer
    ctx.arm(transfer.expires, TimerKind.TRANSFER, call.key)
    notify_progress(ctx, call)


def transfer_expired(ctx: Context, call: Call, due: float) -> None:
    """The implicit subscription ran out before the target was reached."""
    if call.transfer is not None and call.transfer.expires == due:
        transfer_outcome(ctx, call, 100, reason="timeout")


# ------------------------------------------------------------------ attended


def replacing_invite(ctx: Context, key: TransactionKey, request: Request) -> bool:
    """A new INVITE with a Replaces field (RFC 3891): True when it was answered here.

    Calls are joined by REFER only (see the module docstring): an INVITE that asks
    to take a party's place in one of our calls is refused, 403 when it names a
    dialog of ours, 481 when it names none (§3), 400 when the field is malformed or
    repeated. It never becomes a new call that ignores what it asked for."""
    values = request.headers.get_all("Replaces")
    if not values:
        return False
    try:
        if len(values) > 1:
            raise RemoteProtocolError("several Replaces fields")
        replaces = parse_replaces(values[0])
    except ProtocolError as err:
        ctx.respond(key, request, err.status)
        return True
    index = ctx.index.by_dialog
    known = (replaces.call_id, replaces.to_tag, replaces.from_tag) in index or (
        replaces.call_id,
        replaces.from_tag,
        replaces.to_tag,
    ) in index
    log.info("INVITE with Replaces refused (%s dialog)", "a known" if known else "an unknown")
    ctx.respond(key, request, 403 if known else 481)
    return True


def attended(ctx: Context, call: Call, leg: Leg, transfer: Transfer, replaces: Replaces) -> None:
    """REFER with Replaces (already answered 202): join, or NOTIFY why not."""
    found = consultation(ctx, leg.member, replaces)
    if isinstance(found, int):
        log.info(
            "call %s: attended transfer by %s refused (%d)",
            call.key,
            leg.member,
            found,
            extra=about(ctx, call, "transfer_refused", leg.member),
        )
        notify(ctx, transfer, found, final=True)
        return
    if found is call:
        notify(ctx, transfer, 481, final=True)
        return
    join(ctx, call, leg, transfer, found)


def consultation(ctx: Context, transferor: str, replaces: Replaces) -> Call | int:
    """The consultation call of line ``transferor`` that ``replaces`` names, or the
    sipfrag status saying why it cannot be joined (see the module docstring)."""
    index = ctx.index.by_dialog
    found = index.get((replaces.call_id, replaces.to_tag, replaces.from_tag)) or index.get(
        (replaces.call_id, replaces.from_tag, replaces.to_tag)
    )
    if found is None or found[1] is not None:
        return 481
    other = found[0]
    if other.verified_line is None or other.verified_line != transferor:
        return 481  # not the transferor's own dialog: as unknown to it as any other
    if other.state is not CallState.ANSWERED:
        return 481  # RFC 3891 §3: an early dialog we did not initiate
    if replaces.early_only:
        return 486
    bridged = other.legs.get(other.bridged) if other.bridged else None
    if (
        bridged is None
        or not bridged.member
        or bridged.dialog is None
        or other.transfer is not None
        or other.reinvite_pending
        or other.refreshing()
        or ctx.core.call_state(other.core_id) is not CoreState.CONNECTED
    ):
        return 403
    return other


def join(ctx: Context, call: Call, leg: Leg, transfer: Transfer, other: Call) -> None:
    """Move ``other``'s member leg into ``call``; ``other`` (the consultation) ends."""
    moved = other.legs[other.bridged or ""]
    log.info(
        "call %s: %s joins its caller with %s (call %s)",
        call.key,
        leg.member,
        moved.member,
        other.key,
        extra=about(ctx, call, "transferred", leg.member),
    )
    ctx.tell_core(CallsJoined(call.core_id, leg.member, other.core_id))
    index = ctx.index
    index.by_core.pop(call.core_id, None)
    joined_id, other.core_id = other.core_id, ""
    index.by_core.pop(joined_id, None)
    index.add_core_id(call, joined_id)
    index.move_leg_to(moved, other, call)
    other.bridged = None
    call.bridged = moved.id
    ctx.records.connected(call.key, moved.member, wall=ctx.wall())  # the caller's member now
    note_hold(ctx, call, "member", False)  # the transferor's hold ends with it
    start(ctx, call, transfer)
    end_call(ctx, other, bye_caller=True, tell_core=False)
    if moved.session is not None:
        moved.session.scheduled = None
        schedule_session(ctx, call, moved.id, moved.session)
    assert moved.dialog is not None
    offer = ctx.media.rejoin_offer(call.media, other.media)
    if not reinvite(ctx, call, JoinOffer(call.key, moved.id, moved.dialog), offer, moved.member):
        transfer_outcome(ctx, call, 503)
        end_call(ctx, call, bye_caller=True)


def join_answered(ctx: Context, ours: JoinOffer, response: Response) -> None:
    """The joined member answered our re-INVITE: its media now meets the caller's."""
    status, dialog = response.status, ours.dialog
    call = reinvite_answered(ctx, ours, response)
    if call is None:
        return
    media, host = call.media, dialog.peer.host
    trusted = ctx.trust.trusts(host)
    if not 200 <= status < 300:
        usable = False
    elif ours.leg:  # the consulted member, bridged in place of the transferor
        answer = ctx.media.member_answer(media, response.body, source_host=host, trusted=trusted)
        usable = answer is not None
    else:  # the consulted member, in place of the transferring caller
        usable = ctx.media.caller_rejoined(media, response.body, source_host=host, trusted=trusted)
    if not usable:
        log.info(
            "call %s: the joined member refused our media (%d)",
            call.key,
            status,
            extra=about(ctx, call, "transfer_failed"),
        )
        transfer_outcome(ctx, call, status if status >= 300 else 488)
        end_call(ctx, call, bye_caller=True)
        return
    call.music = None
    ctx.out.extend(ctx.media.bridge(media))
    if media.direct:  # the other side learns where the joined member wants its RTP
        update_media(ctx, call, "caller" if ours.leg else "member", again=True)
    transfer_outcome(ctx, call, 200)
