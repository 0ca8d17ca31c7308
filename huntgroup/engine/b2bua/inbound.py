"""Requests that come in: dispatch by method, and a new INVITE from its first checks to the core.

Theory of operation
-------------------
:func:`dispatch_request` sends an in-dialog request (a To tag) to
:mod:`relay` (a SUBSCRIBE inside one of our subscriptions to
:mod:`subscriptions`), a REGISTER to :mod:`lines`, a SUBSCRIBE to
:mod:`subscriptions`, and answers OPTIONS, a stray BYE or NOTIFY and unknown
methods itself. Any request that requires an extension we do not understand is
refused first (:func:`refused_extension`: 420 Bad Extension with
``Unsupported``, RFC 3261 §8.2.2.3; see :mod:`huntgroup.engine.sip.extensions`).
A new INVITE (:func:`new_invite`) is refused while draining (503), on a
Max-Forwards loop (483), and for a feature code goes to
:func:`~huntgroup.engine.b2bua.lines.feature_code`. Otherwise the
caller's identity is settled (:func:`caller_identity`, RFC 3325: who vouches
for it), the session timer checked (RFC 4028 422), the node's limits applied
(:class:`CallAdmission`, 503), and the call taken in
(:func:`~huntgroup.engine.b2bua.caller_leg.accept`) and handed to the core
under its id (:func:`~huntgroup.engine.b2bua.core_actions.enter_core`), an
authenticated line under its licence name (:func:`display_name`): to a
group (``CallArrived``) or a line (``DirectCallArrived``), the number noted by
:func:`~huntgroup.engine.b2bua.core_actions.route`, or out through the
upstream (a line calling another number, authenticated).
"""

from __future__ import annotations

import logging

from huntgroup.engine.b2bua.addressing import asserted_values, identity_value, number_of, user_of
from huntgroup.engine.b2bua.call_log import refused
from huntgroup.engine.b2bua.caller_leg import accept
from huntgroup.engine.b2bua.context import ALLOW, ALLOW_EVENTS, KNOWN_METHODS, Context
from huntgroup.engine.b2bua.core_actions import enter_core, line_name, outgoing, route
from huntgroup.engine.b2bua.lines import FEATURE_CODE, authenticated, feature_code, register
from huntgroup.engine.b2bua.relay import in_dialog
from huntgroup.engine.b2bua.session_timer import uas_refusal
from huntgroup.engine.b2bua.subscriptions import in_subscription, subscribe
from huntgroup.engine.b2bua.transfer import replacing_invite
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.digest import parse_credentials
from huntgroup.engine.sip.extensions import supported_value, unsupported_required
from huntgroup.engine.sip.fields import parse_name_address
from huntgroup.engine.sip.message import Request
from huntgroup.engine.sip.next_hop import check_max_forwards
from huntgroup.engine.sip.transaction import TransactionKey
from huntgroup.errors import ProtocolError
from huntgroup.queue.actions import Identity
from huntgroup.queue.events import CallArrived, DirectCallArrived, OutgoingCallStarted

log = logging.getLogger("huntgroup.calls")

CallerIdentity = tuple[str | None, tuple[str, ...]]
"""The line a caller is authenticated as (or None), and the PAI values presented for it."""


def dispatch_request(ctx: Context, key: TransactionKey, request: Request, source: Peer) -> None:
    method = request.method
    if method == "INVITE":
        ctx.untried.append((key, request))
    if refused_extension(ctx, key, request):
        return
    if request.to.tag is not None:
        if not in_subscription(ctx, key, request):
            in_dialog(ctx, key, request, source)
    elif method == "INVITE":
        new_invite(ctx, key, request, source)
    elif method == "REGISTER":
        register(ctx, key, request, source)
    elif method == "OPTIONS":
        if not ctx.accepting:  # draining: a load balancer's probe takes the node out
            ctx.respond(key, request, 503, headers=(("Retry-After", "30"),))
        else:
            ctx.respond(
                key,
                request,
                200,
                headers=(
                    ("Allow", ALLOW),
                    ("Accept", "application/sdp"),
                    ("Supported", supported_value()),
                    ("Allow-Events", ALLOW_EVENTS),
                ),
            )
    elif method == "SUBSCRIBE":
        subscribe(ctx, key, request, source)
    elif method in ("BYE", "NOTIFY"):
        ctx.respond(key, request, 481)
    elif method == "REFER":  # only in a call's dialog (engine/b2bua/transfer.py)
        ctx.respond(key, request, 403)
    elif method in KNOWN_METHODS:
        ctx.respond(key, request, 405, headers=(("Allow", ALLOW),))
    else:
        ctx.respond(key, request, 501, headers=(("Allow", ALLOW),))


def refused_extension(ctx: Context, key: TransactionKey, request: Request) -> bool:
    """Answer a request that requires an extension we do not understand: 420 Bad
    Extension listing those tags in ``Unsupported`` (RFC 3261 §8.2.2.3), or 400 for a
    malformed ``Require``. True when answered. ``Proxy-Require`` is not ours to check
    (§20.29: a UAS ignores it)."""
    try:
        unknown = unsupported_required(request)
    except ProtocolError as err:
        ctx.respond(key, request, err.status)
        return True
    if not unknown:
        return False
    log.info(
        "%s from %s refused (420): requires %s",
        request.method,
        user_of(request.from_.uri) or "anonymous",
        ", ".join(unknown),
    )
    ctx.respond(
        key,
        request,
        420,
        headers=(("Unsupported", ", ".join(unknown)), ("Supported", supported_value())),
    )
    return True


def new_invite(ctx: Context, key: TransactionKey, request: Request, source: Peer) -> None:
    ctx.counters.invites += 1
    if not ctx.accepting:
        ctx.respond(key, request, 503, headers=(("Retry-After", "30"),))
        return
    hops = check_max_forwards(request)
    if hops is not None:
        ctx.respond(key, request, hops)
        return
    if replacing_invite(ctx, key, request):  # RFC 3891: refused (engine/b2bua/transfer.py)
        return
    number = user_of(request.uri)
    group = ctx.core.group_of_pilot(number) if number else None
    line = ctx.config.line(number) if number and group is None else None
    caller_number = user_of(request.from_.uri) or "anonymous"
    feature = FEATURE_CODE.fullmatch(number or "")
    if feature is not None:
        feature_code(ctx, key, request, source, caller_number, feature)
        return
    is_outgoing = group is None and line is None
    if is_outgoing:
        # A line calling another number: out through server.upstream, once authenticated.
        # Every caller is challenged alike, a line or not (no hint of which numbers exist).
        if not number or ctx.config.server.upstream is None:
            ctx.respond(key, request, 404)
            return
        if not authenticated(ctx, key, request, source, caller_number, proxy=True):
            return
        identity: CallerIdentity = (
            caller_number,
            (asserted_line(ctx, request, caller_number),),
        )
    else:
        found = caller_identity(ctx, key, request, source, caller_number)
        if found is None:
            return  # answered (403 or 407): credentials that do not hold
        identity = found
    brief = uas_refusal(request, min_se=ctx.config.server.calls.min_se)
    if brief is not None:  # RFC 4028: Session-Expires below our Min-SE
        ctx.respond(key, request, brief[0], headers=brief[1])
        return
    # server.limits: only what would become a call counts (not a 404 nor a 407);
    # feature codes (above) still pass, they are over at once.
    refusal = ctx.admission.admit(len(ctx.index.calls), now=ctx.now)
    if refusal is not None:
        ctx.counters.over_limits += 1
        log.info(
            "INVITE to %s refused (503): %s", number, refusal.reason, extra=refused(ctx, number)
        )
        ctx.respond(key, request, 503, headers=(("Retry-After", str(refusal.retry_after)),))
        return
    call = accept(ctx, key, request, source, number)
    if call is None:
        return
    call.verified_line, call.asserted = identity
    if call.asserted:
        call.privacy = request.headers.get("Privacy")
    name = display_name(ctx, request, call.verified_line)
    if is_outgoing:
        outgoing(ctx, call, caller_number, name, number)
        return
    if call.verified_line is not None:
        # one of our lines calls a pilot or another line: it is busy meanwhile
        call.caller_line_id = f"{call.key}.line"
        ctx.tell_core(OutgoingCallStarted(call.caller_line_id, call.verified_line))
    enter_core(ctx, call)
    route(ctx, call, caller_number, group, number)
    internal = call.verified_line is not None  # authenticated, not a From claim
    if group is not None:
        ctx.tell_core(CallArrived(call.core_id, group, caller_number, name, internal))
    else:
        ctx.tell_core(DirectCallArrived(call.core_id, number, caller_number, name, internal))


def caller_identity(
    ctx: Context, key: TransactionKey, request: Request, source: Peer, number: str
) -> CallerIdentity | None:
    """Who vouches for the caller of an INVITE to a pilot or a line (RFC 3325).

    - The trust domain (``server.trusted_peers``, the upstream) asserting an
      identity: its P-Asserted-Identity is kept. Only a trusted peer (an SBC
      in front of our phones) makes the call internal when it names one of
      our lines. The upstream speaks for outside callers, never for a line:
      a call from it is outside whatever it carries (PAI, credentials).
    - Otherwise their P-Asserted-Identity is dropped. The caller is line
      ``number`` (the From) only when the INVITE comes from the transport
      address that line, and no other line, registered from, that address not
      being in the trust domain (see :func:`is_registered_line`); or when it
      carries Proxy-Authorization credentials for our realm that verify as
      that line. Credentials for our realm that do not hold are answered by
      :func:`~huntgroup.engine.b2bua.lines.authenticated` (403, or 407 when
      stale) whether or not ``number`` is a line, so the answer tells nothing
      about which numbers exist. Without credentials for our realm the call is
      an outside call and its From only a claim: no P-Asserted-Identity is made
      of it.

    Returns (the authenticated line or None, the PAI values to present), or
    None when the INVITE was answered.
    """
    trusted = ctx.trust.trusts(source.host)
    values = asserted_values(request) if trusted else ()
    if trusted and not ctx.trust.is_peer(source.host):
        return None, values  # the upstream: an outside call, whatever it carries
    if values:
        users = (number_of(user_of(parse_name_address(v).uri)) for v in values)
        line = next((u for u in users if u and ctx.config.line(u) is not None), None)
        return line, values
    if not is_registered_line(ctx, number, source):
        if not credentials_for_us(ctx, request):
            return None, ()
        if not authenticated(ctx, key, request, source, number, proxy=True):
            return None
    return number, (asserted_line(ctx, request, number),)


def credentials_for_us(ctx: Context, request: Request) -> bool:
    """The INVITE carries Proxy-Authorization credentials for our realm (others, or
    malformed ones, may be meant for another proxy on the way: ignored)."""
    value = request.headers.get("Proxy-Authorization")
    if value is None:
        return False
    try:
        return parse_credentials(value).realm == ctx.config.server.domain
    except ProtocolError:
        return False


def asserted_line(ctx: Context, request: Request, number: str) -> str:
    """The P-Asserted-Identity of our authenticated line ``number``."""
    identity = Identity(number, display_name(ctx, request, number))
    return identity_value(identity, ctx.config.server.domain)


def display_name(ctx: Context, request: Request, line: str | None) -> str:
    """The caller's display name: the name of our authenticated ``line`` (its licence
    name, ``lines[].name``) when it has one, else what its From says. Shown in the From
    and P-Asserted-Identity of what we send (quoted there, RFC 3261 §25.1), and to
    members as the caller's name on group calls."""
    return line_name(ctx, line) or request.from_.display_name or ""


def is_registered_line(ctx: Context, number: str, source: Peer) -> bool:
    """``number`` is a line and ``source`` the very transport address (transport, host,
    port) a live binding of it registered from, with digest authentication, and of no
    other line. An address several lines registered from (a shared NAT address, a
    proxy relaying every phone from one port) proves nobody; so does one in the trust
    domain (an SBC, the upstream), which speaks for others: its PAI or the line's own
    Proxy-Authorization must say who calls."""
    if ctx.config.line(number) is None or ctx.trust.trusts(source.host):
        return False
    here = source
    return ctx.registrar.aors_at(here, now=ctx.now) == {number}
