"""Member legs: the INVITEs we send for a call, and what their answers mean.

Theory of operation
-------------------
The core's ``Ring`` becomes :func:`ring`: one INVITE per registered contact
of the member (or to its fixed URI), each its own dialog (:func:`new_leg`).
A leg's responses (:func:`leg_response`): a provisional makes it
``PROCEEDING`` (a CANCEL held back since §9.1 goes now) and may ring the
caller; a 2xx (:func:`leg_answered`) is ACKed and told to the core, unless
the call no longer wants it (then BYE); a failure (:func:`leg_failed`) is
told to the core with its status (``MemberFailed``: the core reads what it
means) once no other contact of that member still rings; a 422
(:func:`retry_brief`) asks again once with the peer's Min-SE. A leg whose
call ended meanwhile is an orphan (:func:`orphan_response`): it gets the
CANCEL it still owed, or an ACK and a BYE for its late 2xx.
"""

from __future__ import annotations

import logging

from huntgroup.engine.b2bua.addressing import ANONYMOUS, identity_value, peer_of
from huntgroup.engine.b2bua.call_log import about
from huntgroup.engine.b2bua.caller_leg import NO_PORT_STATUS, connect, ringing
from huntgroup.engine.b2bua.calls import Call, CallState, Leg, LegState
from huntgroup.engine.b2bua.context import ALLOW, Context
from huntgroup.engine.b2bua.line_contacts import line_bindings
from huntgroup.engine.b2bua.session_refresh import min_se, schedule_session
from huntgroup.engine.b2bua.session_timer import (
    SessionTimer,
    has_option,
    negotiate_as_uac,
    request_headers,
)
from huntgroup.engine.b2bua.teardown import bye_leg, end_call, send_cancel
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.dialogs import uac_dialog
from huntgroup.engine.sip.fields import parse_name_address
from huntgroup.engine.sip.grammar import quote
from huntgroup.engine.sip.headers import Headers
from huntgroup.engine.sip.message import Request, Response, new_call_id, new_tag
from huntgroup.engine.sip.next_hop import next_hop_max_forwards
from huntgroup.engine.sip.registrar import Binding
from huntgroup.engine.sip.transaction import TransactionKey
from huntgroup.engine.sip.uri import Uri, parse_uri
from huntgroup.errors import ProtocolError
from huntgroup.media.nat import behind_nat
from huntgroup.media.ports import PortsExhausted
from huntgroup.queue.actions import Identity
from huntgroup.queue.events import CallAnswered, MemberAnswered, MemberFailed, MemberUnreachable

log = logging.getLogger("huntgroup.calls")

MAX_SESSION_INTERVAL = 7200
"""The longest session interval a member's 422 can make us ask for (RFC 4028 §7.4)."""


def ring(ctx: Context, call: Call, member: str, caller: Identity, group: str | None) -> None:
    targets = targets_of(ctx, member)
    if not targets:
        log.info(
            "call %s: member %s unreachable (no contact)",
            call.key,
            member,
            extra=about(ctx, call, "unreachable", member),
        )
        ctx.records.offer_failed(call.key, member, None, wall=ctx.wall())
        ctx.tell_core(MemberUnreachable(call.core_id, member))
        return
    if log.isEnabledFor(logging.INFO):  # about() is work: only when the line is written
        log.info(
            "call %s: ringing %s (%s)",
            call.key,
            member,
            group or "direct",
            extra=about(ctx, call, "ringing", member),
        )
    asserted = call.asserted
    g = next((x for x in ctx.config.groups if x.name == group), None)
    if g is not None and g.pilot_as_caller_id and caller.number == g.pilot:
        # our own pilot: we vouch for it
        asserted = (identity_value(caller, ctx.config.server.domain),)
    for uri, peer, route in targets:
        new_leg(ctx, call, member, uri, peer, caller, asserted, route=route)


Target = tuple[Uri, Peer, tuple[str, ...]]
"""Where an INVITE goes: Request-URI, next hop, and Route set (a binding's Path)."""


def targets_of(ctx: Context, member: str) -> list[Target]:
    """Where to send INVITEs for a member: its registered contacts (on any node that this
    node reaches: :func:`line_bindings`) or its URI."""
    if member.lower().startswith(("sip:", "sips:")):
        uri = parse_uri(member)
        peer = peer_of(uri)
        return [(uri, peer, ())] if peer else []
    bindings = line_bindings(ctx, member)
    return [t for t in map(binding_target, bindings) if t is not None]


def binding_target(binding: Binding) -> Target | None:
    """Where to send a request for a registered contact; None when it cannot be reached.

    A binding with a Path (RFC 3327) is reached through it: the request goes to
    the first Path URI with the Path as its Route set (the proxy that owns the
    phone's connection or NAT binding forwards it); else to the contact, or to
    the address its REGISTER came from when the phone is on TLS or behind NAT.
    """
    try:
        uri = parse_uri(binding.uri)
    except ProtocolError:
        return None
    if binding.path:
        try:
            hop = peer_of(parse_name_address(binding.path[0]).uri)
        except ProtocolError:
            return None
        return (uri, hop, binding.path) if hop is not None else None
    peer = peer_of(uri)
    src = binding.source
    # A phone on TLS (or behind NAT) is reached over the way it came in.
    if src is not None and (
        peer is None or src.transport == "TLS" or behind_nat(peer.host, src.host)
    ):
        peer = src
    return (uri, peer, ()) if peer is not None else None


def new_leg(
    ctx: Context,
    call: Call,
    member: str,
    target: Uri,
    destination: Peer,
    caller: Identity,
    asserted: tuple[str, ...],
    *,
    route: tuple[str, ...] = (),
) -> None:
    """INVITE ``target``: From shows ``caller``; P-Asserted-Identity is ``asserted``
    only, the identities the server vouches for (none for an outside caller);
    ``route`` is its Route set (a binding's Path; its CANCEL and ACKs copy it)."""
    me = ctx.local_for(destination)
    domain = ctx.config.server.domain
    calls = ctx.config.server.calls
    display = f"{quote(caller.display_name)} " if caller.display_name else ""
    host = "anonymous.invalid" if caller.number == ANONYMOUS else domain  # RFC 3323 §4.1.1.3
    from_ = f"{display}<sip:{caller.number}@{host}>;tag={new_tag(ctx.rng)}"
    to = f"<{target}>"
    call_id = new_call_id(ctx.rng, me.host)
    try:
        offer = ctx.media.member_offer(call.media)
    except (PortsExhausted, ProtocolError) as err:  # no RTP port left: cannot be rung
        reason = f"no RTP port free: {err}" if isinstance(err, PortsExhausted) else str(err)
        log.warning(
            "call %s: cannot ring %s: %s",
            call.key,
            member or "target",
            reason,
            extra=about(ctx, call, "ring_failed", member),
        )
        ctx.records.offer_failed(call.key, member, None, wall=ctx.wall())
        if member:  # our shortage, not the member's fault: no back-off
            ctx.tell_core(MemberUnreachable(call.core_id, member, ours=True))
        else:
            ctx.records.caused(call.key, "refused")
            end_call(ctx, call, bye_caller=True, status=NO_PORT_STATUS)
        return
    ctx.out.extend(ctx.media.open_member_port(call.media))
    headers = Headers(
        [
            ("Via", me.via(ctx.rng)),
            ("Max-Forwards", str(next_hop_max_forwards(call.invite, default=69))),
            ("From", from_),
            ("To", to),
            ("Call-ID", call_id),
            ("CSeq", "1 INVITE"),
            *(("Route", value) for value in route),
            ("Contact", me.contact()),
            *(("P-Asserted-Identity", value) for value in asserted),
            *((("Privacy", call.privacy),) if asserted and call.privacy else ()),
            ("Allow", ALLOW),
            *request_headers(calls.session_expires, min_se=calls.min_se),
            ("Content-Type", "application/sdp"),
        ]
    )
    invite = Request(method="INVITE", uri=target, headers=headers, body=offer)
    leg_id = f"{call.key}.l{next(ctx.seq)}"
    try:
        tx = ctx.start(invite, destination)
    except ProtocolError as err:
        log.info(
            "call %s: could not ring %s: %s",
            call.key,
            member,
            err,
            extra=about(ctx, call, "ring_failed", member),
        )
        ctx.records.offer_failed(call.key, member, None, wall=ctx.wall())
        ctx.tell_core(MemberUnreachable(call.core_id, member))
        return
    ctx.index.add_leg(call, Leg(leg_id, call.key, member, invite, tx, destination, me))
    ctx.records.presented(call.key, caller.number)


def leg_response(ctx: Context, call: Call, leg: Leg, response: Response, source: Peer) -> None:
    """A response to the INVITE of ``leg`` (a leg of a call in progress)."""
    status = response.status
    if response.cseq.method != "INVITE":
        return
    if status < 200:
        if status > 100 and has_option(response, "Require", "100rel"):
            # RFC 3262 §3: not ours to get, we never offer 100rel; taken as unreliable (the
            # member retransmits it, then gives up with a 5xx that ends the leg as a refusal)
            log.debug(
                "call %s: %s sent a reliable %d unasked",
                call.key,
                leg.member,
                status,
                extra=about(ctx, call, "reliable_provisional", leg.member),
            )
        if leg.state is LegState.CALLING:  # any provisional, 100 included (§9.1)
            leg.state = LegState.PROCEEDING
        if leg.cancel_pending:
            leg.cancel_pending = False
            send_cancel(ctx, leg)
        elif status in (180, 183) and call.state is CallState.EARLY and not call.ringing_sent:
            ringing(ctx, call)
        return
    if status < 300:
        leg_answered(ctx, call, leg, response, source)
    elif status == 422 and retry_brief(ctx, call, leg, response):
        return
    else:
        leg_failed(ctx, call, leg, status)


def retry_brief(ctx: Context, call: Call, leg: Leg, response: Response) -> bool:
    """422 to our INVITE (RFC 4028 §7.4): once, the same INVITE again (CSeq + 1, new
    branch) with the peer's ``Min-SE`` as our interval, when that is not above
    ``MAX_SESSION_INTERVAL``. False when there is nothing to retry."""
    wanted = min_se(response)
    current = leg.invite.headers.get("Session-Expires") or ""
    if (
        leg.cancelled
        or leg.state is LegState.ENDED
        or call.state is CallState.ENDED
        or leg.invite.cseq.number > 1  # retried once already
        or wanted > MAX_SESSION_INTERVAL
        or wanted <= int(current.split(";", 1)[0] or 0)
    ):
        return False
    headers = (
        leg.invite.headers.with_first_replaced("Via", leg.me.via(ctx.rng))
        .with_replaced("CSeq", f"{leg.invite.cseq.number + 1} INVITE")
        .with_replaced("Session-Expires", str(wanted))
        .with_replaced("Min-SE", str(wanted))
    )
    invite = Request(method="INVITE", uri=leg.invite.uri, headers=headers, body=leg.invite.body)
    try:
        tx = ctx.start(invite, leg.destination)
    except ProtocolError:
        return False
    log.info(
        "call %s: %s wants sessions of %d s at least, asked again",
        call.key,
        leg.member or "the target",
        wanted,
        extra=about(ctx, call, "session_retry", leg.member),
    )
    leg.invite, leg.state = invite, LegState.CALLING
    ctx.index.move_leg(call, leg, tx)
    return True


def orphan_response(ctx: Context, key: TransactionKey, leg: Leg, response: Response) -> None:
    """A leg whose call is gone: finish the CANCEL it owes, or hang up its late answer."""
    status = response.status
    if status < 200:
        if leg.cancel_pending:
            leg.cancel_pending = False
            send_cancel(ctx, leg)
        return
    del ctx.index.orphans[key]
    if status < 300 and response.cseq.method == "INVITE":
        dialog = uac_dialog(leg.invite, response, leg.destination, leg.me)
        ctx.send(dialog.ack_for_2xx(leg.invite.cseq.number, ctx.rng), leg.destination)
        ctx.start(dialog.request("BYE", ctx.rng), dialog.peer)


def leg_answered(ctx: Context, call: Call, leg: Leg, response: Response, source: Peer) -> None:
    retransmitted = leg.dialog is not None  # our ACK was lost: send it again, only
    if leg.dialog is None:
        leg.dialog = uac_dialog(leg.invite, response, leg.destination, leg.me)
    ctx.send(leg.dialog.ack_for_2xx(leg.invite.cseq.number, ctx.rng), leg.destination)
    if retransmitted:
        return
    if leg.cancelled or call.state is CallState.ENDED or call.bridged is not None:
        bye_leg(ctx, leg)  # too late: another member won, or the caller left
        return
    if (
        ctx.media.member_answer(
            call.media,
            response.body,
            source_host=source.host,
            trusted=ctx.trust.trusts(source.host),
        )
        is None
    ):
        bye_leg(ctx, leg)  # an answer we cannot relay counts as a refusal
        ctx.records.offer_failed(call.key, leg.member, 488, wall=ctx.wall())
        ctx.tell_core(MemberFailed(call.core_id, leg.member, 488))
        return
    leg.state = LegState.CONFIRMED
    dialog_key = (leg.dialog.call_id, leg.dialog.local_tag, leg.dialog.remote_tag)
    ctx.index.add_dialog(call, dialog_key, leg)
    interval, we_refresh = negotiate_as_uac(
        response, interval=ctx.config.server.calls.session_expires
    )
    leg.session = SessionTimer(
        interval, we_refresh, ctx.now, use_update=has_option(response, "Allow", "UPDATE")
    )
    schedule_session(ctx, call, leg.id, leg.session)
    if not leg.member:  # a forwarding or outgoing leg: no core decision to wait for
        if call.outgoing_line is not None:
            ctx.tell_core(CallAnswered(call.core_id))
        connect(ctx, call, leg)
        return
    if log.isEnabledFor(logging.INFO):  # about() is work: only when the line is written
        log.info(
            "call %s: member %s answered",
            call.key,
            leg.member,
            extra=about(ctx, call, "answered", leg.member),
        )
    ctx.tell_core(MemberAnswered(call.core_id, leg.member))


def leg_failed(ctx: Context, call: Call, leg: Leg, status: int) -> None:
    if leg.state is LegState.ENDED:
        return
    leg.state = LegState.ENDED
    if leg.cancelled:
        return
    if not leg.member:
        ctx.records.caused(call.key, "no_answer")  # a forward out keeps "forwarded"
        log.info(
            "call %s: %s failed (%d)",
            call.key,
            "outgoing call" if call.outgoing_line else "forwarding",
            status,
            extra=about(ctx, call, "forward_failed"),
        )
        end_call(ctx, call, bye_caller=True, status=status)
        return
    others = [
        x for x in call.legs.values() if x.member == leg.member and x.state is not LegState.ENDED
    ]
    if others:
        return  # another contact of the same line still rings
    log.info(
        "call %s: member %s did not take the call (%d)",
        call.key,
        leg.member,
        status,
        extra=about(ctx, call, "not_taken", leg.member),
    )
    # what the status means (busy, declined, unreachable) is the core's reading
    ctx.records.offer_failed(call.key, leg.member, status, wall=ctx.wall())
    ctx.tell_core(MemberFailed(call.core_id, leg.member, status))
