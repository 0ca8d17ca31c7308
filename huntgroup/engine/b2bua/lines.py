"""Our lines: REGISTER, digest authentication, and the feature codes a line dials.

Theory of operation
-------------------
:func:`authenticated` digest-checks a request as one line (REGISTER with
``Authorization``, an INVITE with ``Proxy-Authorization``), answers what is
wrong (401/407 challenge, 403, 400, 503 while locked out by
:class:`AuthGuard`) and counts failures; known and unknown numbers get the
same answers. :func:`register` then binds the contacts in the registrar
(:func:`bind`: a line binds only contacts on its own source host, a trusted
peer any; each binding keeps whether its REGISTER listed ``dialog`` in
Allow-Events, for :mod:`phone_watch`; and the REGISTER's ``Path``, RFC 3327,
when it comes from a trusted peer: :func:`accepted_path`); an accepted REGISTER
that binds or removes contacts publishes this node's share of the line for the
other nodes (:func:`~huntgroup.engine.b2bua.line_contacts.publish_share`: several
nodes only). The authentication and lockout checks read this node's own bindings
only (a source address means something on the node that saw it).
:func:`feature_code` handles ``*51`` / ``*52`` [pilot]: the line joins or leaves its
groups, the call is answered and hung up at the ACK.
"""

from __future__ import annotations

import logging
import re

from huntgroup.engine.b2bua.addressing import user_of
from huntgroup.engine.b2bua.auth_guard import address_of
from huntgroup.engine.b2bua.caller_leg import accept, answer_caller
from huntgroup.engine.b2bua.context import Context
from huntgroup.engine.b2bua.line_contacts import publish_share, report_contacts
from huntgroup.engine.b2bua.phone_watch import WATCHED_EVENTS, registered
from huntgroup.engine.b2bua.session_timer import has_option
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.dialog_info import allowed_events
from huntgroup.engine.sip.digest import (
    AuthOutcome,
    DecoyAlgorithms,
    parse_credentials,
    uri_matches,
    usable_algorithms,
)
from huntgroup.engine.sip.fields import parse_contact_values, parse_name_address
from huntgroup.engine.sip.message import Request
from huntgroup.engine.sip.registrar import contact_on_source
from huntgroup.engine.sip.transaction import TransactionKey
from huntgroup.errors import ProtocolError
from huntgroup.queue.events import MemberJoined, MemberLeft

log = logging.getLogger("huntgroup.calls")

MAX_PATH = 8
"""The most Path values a REGISTER may carry (a proxy or two in practice): more is a 400."""

FEATURE_CODE = re.compile(r"\*(51|52)(\+?[0-9]{2,15})?")
"""*51 joins, *52 leaves: every group of the calling line, or the group of the pilot."""


def register(ctx: Context, key: TransactionKey, request: Request, source: Peer) -> None:
    number = user_of(request.to.uri)
    if not number:
        ctx.respond(key, request, 404)
        return
    # a number that is no line is challenged all the same (docs/security.md)
    if authenticated(ctx, key, request, source, number, proxy=False):
        bind(ctx, key, request, source, number)


def authenticated(
    ctx: Context,
    key: TransactionKey,
    request: Request,
    source: Peer,
    number: str,
    *,
    proxy: bool,
) -> bool:
    """Digest-check ``request`` as line ``number``; answers 401/407/403/400/503 when not.

    Known and unknown numbers get the same answers: a challenge (for an
    unknown number, the algorithms of a line drawn by :class:`DecoyAlgorithms`),
    then 403 for a wrong answer (or one with an algorithm the line has no
    secret for). Failures count against ``source`` and ``number``
    (:class:`AuthGuard`; for a line with a live binding from ``source``'s exact
    transport address, host and port, against that (address, line) pair instead
    of the source; a trusted peer has no per-source count);
    while locked out, 503 with Retry-After.
    """
    header = "Proxy-Authorization" if proxy else "Authorization"
    credentials = request.headers.get(header)
    now = ctx.now + ctx.wall_offset
    bound = {
        address_of(b.source.transport, b.source.host, b.source.port)
        for b in ctx.registrar.contacts(number, now=ctx.now)
        if b.source
    }
    here = address_of(source.transport, source.host, source.port)
    trusted = ctx.trust.trusts(source.host)
    wait = ctx.guard.locked(
        source.host, number, now=ctx.now, address=here, line_addresses=bound, trusted=trusted
    )
    if wait is not None:
        ctx.counters.auth_locked_out += 1
        ctx.respond(key, request, 503, headers=(("Retry-After", str(wait)),))
        return False
    stale = False
    if credentials is not None:
        try:
            parsed = parse_credentials(credentials)
        except ProtocolError as err:
            log.info("%s %s refused (400): %s", request.method, number, err)
            ctx.respond(key, request, 400)
            return False
        if not uri_matches(parsed.uri, str(request.uri), our_hosts=ctx.our_hosts):
            log.info(
                "%s %s refused (400): digest uri is not the Request-URI", request.method, number
            )
            ctx.respond(key, request, 400)
            return False
        result = ctx.auth.verify(
            parsed, method=request.method, credentials_lookup=ctx.config.line, now=now
        )
        if result.ok and parsed.username == number:
            ctx.guard.succeeded(number)
            return True
        if result.ok or result.outcome in (
            AuthOutcome.WRONG_PASSWORD,
            AuthOutcome.UNKNOWN_USER,
            AuthOutcome.NO_SECRET_FOR_ALGORITHM,  # as a wrong password: tells nothing
        ):
            reason = "credentials of another line" if result.ok else result.outcome.value
            auth_failed(ctx, request, source, number, reason, bound=bound, trusted=trusted)
            ctx.respond(key, request, 403)
            return False
        stale = result.stale
    name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
    line = ctx.config.line(number)
    if line is not None:
        offer = usable_algorithms(line, ctx.auth.algorithms) or None
    else:  # a number that is no line is offered what a line would be (DecoyAlgorithms)
        if ctx.decoys.lines is not ctx.config.lines:  # reloaded
            ctx.decoys = DecoyAlgorithms(ctx.auth, ctx.config.lines)
        offer = ctx.decoys.offer(number)
    values = ctx.auth.challenge(now=now, stale=stale, algorithms=offer)
    headers = tuple((name, v) for v in values)
    ctx.respond(key, request, 407 if proxy else 401, headers=headers)
    return False


def auth_failed(
    ctx: Context,
    request: Request,
    source: Peer,
    number: str,
    reason: str,
    *,
    bound: set[str],
    trusted: bool,
) -> None:
    ctx.counters.auth_failures += 1
    log.info("%s %s from %s refused (403): %s", request.method, number, source.host, reason)
    here = address_of(source.transport, source.host, source.port)
    failed = ctx.guard.failed(
        source.host, number, now=ctx.now, address=here, line_addresses=bound, trusted=trusted
    )
    for lockout in failed:
        ctx.counters.auth_lockouts += 1
        log.warning(
            "auth: %s locked out for %.0f s after %d failed authentications",
            lockout.what,
            lockout.seconds,
            lockout.failures,
        )


def bind(ctx: Context, key: TransactionKey, request: Request, source: Peer, number: str) -> None:
    try:
        entries = [e for v in request.headers.get_all("Contact") for e in parse_contact_values(v)]
    except ProtocolError:
        ctx.respond(key, request, 400)
        return
    if not ctx.trust.is_peer(source.host):
        foreign = next(
            (
                e.uri
                for e in entries
                if not e.is_wildcard and not contact_on_source(e.uri, source.host)
            ),
            None,
        )
        if foreign is not None:  # a line binds itself, not a trunk or another host's port
            log.warning(
                "line %s: REGISTER from %s:%s refused (403): contact %.120s is not on "
                "the source host",
                number,
                source.host,
                source.port,
                foreign,
            )
            ctx.respond(key, request, 403)
            return
    path = accepted_path(ctx, request, source, number)
    if path is None:
        ctx.respond(key, request, 400)
        return
    if path and not ctx.trust.is_peer(source.host):
        log.warning(
            "line %s: REGISTER from %s:%s refused (403): a Path from a host that is not "
            "in server.trusted_peers",
            number,
            source.host,
            source.port,
        )
        ctx.respond(key, request, 403)
        return
    result = ctx.registrar.register(
        number,
        entries,
        call_id=request.call_id,
        cseq=request.cseq.number,
        now=ctx.now,
        expires=request.expires,
        source=source,
        events=allowed_events(request) & WATCHED_EVENTS,
        path=path,
    )
    headers: list[tuple[str, str]] = [("Contact", v) for v in result.contact_values]
    if result.ok and path and has_option(request, "Supported", "path"):
        headers.extend(("Path", v) for v in path)  # RFC 3327 §5.3
    if result.min_expires is not None:
        headers.append(("Min-Expires", str(result.min_expires)))
    ctx.respond(key, request, result.status, headers=tuple(headers))
    if result.ok:
        log.info("line %s: %d contact(s) registered", number, len(result.bindings))
        if entries:  # not a mere query: the other nodes learn this node's share
            publish_share(ctx, number, result.removed_keys)
        report_contacts(ctx, number)
        registered(ctx, number)


def accepted_path(
    ctx: Context, request: Request, source: Peer, number: str
) -> tuple[str, ...] | None:
    """The REGISTER's Path values (RFC 3327), or None when they are unusable (400).

    Each must be a ``sip:``/``sips:`` address (requests to the contact are sent
    to the first); at most :data:`MAX_PATH`. The Path is stored whether or not
    the phone listed ``path`` in Supported: the proxy inserted it, and the
    binding is only reachable through it (§5.3 leaves a registrar free to
    store it; it is echoed in the 200 only to a phone that supports it).
    """
    values = tuple(request.headers.get_all("Path"))
    if len(values) > MAX_PATH:
        log.info(
            "line %s: REGISTER from %s refused (400): %d Path values",
            number,
            source.host,
            len(values),
        )
        return None
    for value in values:
        try:
            address = parse_name_address(value)
        except ProtocolError:
            address = None
        if address is None or str(address.uri).split(":", 1)[0].lower() not in ("sip", "sips"):
            log.info(
                "line %s: REGISTER from %s refused (400): Path %.120s", number, source.host, value
            )
            return None
    return values


def report_all_contacts(ctx: Context) -> None:
    """:func:`report_contacts` for every line (after a reload: lines it added)."""
    for line in ctx.config.lines:
        report_contacts(ctx, line.number)


def feature_code(
    ctx: Context,
    key: TransactionKey,
    request: Request,
    source: Peer,
    line: str,
    code: re.Match[str],
) -> None:
    """*51 / *52 [pilot]: a line joins or leaves its groups (or the group of that pilot).

    The line authenticates (407) like for an outgoing call; the server answers
    200, then hangs up as soon as the ACK arrives: the phone shows a short call.
    """
    # authenticated first, so a number that is no line is answered like one (407, 403)
    if not authenticated(ctx, key, request, source, line, proxy=True):
        return
    pilot = code.group(2)
    names = [
        g.name
        for g in ctx.config.groups
        if any(m.key == line for m in g.members) and (not pilot or g.pilot == pilot)
    ]
    if not names:
        ctx.respond(key, request, 404)
        return
    call = accept(ctx, key, request, source, code.group(0))
    if call is None:
        return
    call.feature = True
    ctx.records.served(call.key, wall=ctx.wall())
    joining = code.group(1) == "51"
    for name in names:
        log.info("line %s %s group %s", line, "joins" if joining else "leaves", name)
        ctx.tell_core(MemberJoined(name, line) if joining else MemberLeft(name, line))
    answer_caller(ctx, call)
