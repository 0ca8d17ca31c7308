"""Overload and floods: a new INVITE or REGISTER refused before it takes any state.

Theory of operation
-------------------
Per source address (``server.limits.per_source_*``, :func:`flood_check`):
over the rate, 503 with Retry-After; past twice the rate, nothing. A new
INVITE while the node is saturated (:meth:`CallAdmission.overloaded`): 503
at once. The 503 is sent statelessly, so a flood creates no transaction;
requests inside a dialog, retransmissions of requests taken in, ACK, BYE,
CANCEL and responses are never shed.

Over UDP the decision is taken on the datagram's bytes, before the parser
(:func:`quick_shed`): under a flood the parser is most of what a refused
request costs. The full path (:func:`shed`) decides for a parsed message, or
whenever the bytes look unusual. The To tag of our stateless 503s starts with
:data:`SHED_TAG`, so their ACKs are dropped without parsing too.
"""

from __future__ import annotations

import logging
import re

from huntgroup.engine.b2bua.admission import DROP, PASS, REFUSE, Refusal, SourceLimiter, Verdict
from huntgroup.engine.b2bua.auth_guard import address_of
from huntgroup.engine.b2bua.connections import source_of
from huntgroup.engine.b2bua.context import Context, Transmit
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.fields import Via, parse_via
from huntgroup.engine.sip.layer import server_key
from huntgroup.engine.sip.message import Request, make_response
from huntgroup.engine.sip.next_hop import stamp_via
from huntgroup.engine.sip.transaction import TransactionKey
from huntgroup.errors import ProtocolError

log = logging.getLogger("huntgroup.calls")

SHED_TAG = "shed-"
"""The To tag of our stateless 503s starts so: their ACK is recognised without parsing
(our other tags are base62, without a dash)."""
_SHED_ACK = re.compile(rb"\r\n(?:To|t)[ \t]*:[^\r\n]*;[ \t]*tag=shed-", re.IGNORECASE)
_TO_TAG = re.compile(rb";[ \t]*tag[ \t]*=", re.IGNORECASE)
_QUICK_FIELDS = {
    b"via": "via",
    b"v": "via",
    b"from": "from",
    b"f": "from",
    b"to": "to",
    b"t": "to",
    b"call-id": "call-id",
    b"i": "call-id",
    b"cseq": "cseq",
}


def shed(ctx: Context, request: Request, source: Peer) -> bool:
    """Refuse a new INVITE or REGISTER over its limits (see the module docstring); True
    when it was refused or dropped."""
    method = request.method
    if method not in ("INVITE", "REGISTER"):
        return False
    try:
        if request.to.tag is not None or server_key(request) in ctx.layer:
            return False
        limiter, verdict = flood_check(ctx, method, source)
        if limiter is not None and verdict == DROP:
            ctx.counters.flood_dropped += 1
            return True
        if limiter is not None and verdict == REFUSE:
            ctx.counters.flood_refused += 1
            log.debug("%s from %s over its rate: 503", method, source.host)
            refuse_stateless(ctx, request, source, limiter.retry_after)
            return True
        if method != "INVITE":
            return False
        refusal = ctx.admission.overloaded(now=ctx.now)
        overload_log(ctx, refusal)
        if refusal is None:
            return False
        ctx.counters.overload_refused += 1
        refuse_stateless(ctx, request, source, refusal.retry_after)
        return True
    except ProtocolError:
        return False  # the transaction layer answers what is wrong with it


def flood_check(ctx: Context, method: str, source: Peer) -> tuple[SourceLimiter | None, Verdict]:
    """The per-source flood limit of a new ``method`` request from ``source``: the
    limiter that judged it (None: not limited) and its verdict.

    - An INVITE from the trust domain (the upstream, ``server.trusted_peers``) is
      not limited: a trunk or an SBC carries many callers from one address, and is
      bounded by the node's own limits instead.
    - A REGISTER from a trusted peer (an SBC registers every phone behind it) draws
      from its own bucket, ``TRUSTED_PEER_REGISTER_FACTOR`` (:mod:`context`) times
      the rate and burst. The upstream never registers, and a spoofed UDP source can use its
      address: its REGISTERs are limited like anyone's.
    - A request from the exact transport address (transport, host, port) of a live
      binding draws from that address's own bucket: a flood from other ports of the
      phone's host (an office NAT, a blind UDP spoofer) does not silence the phone.
    - Any other request draws from its source's bucket, keyed like the connection
      caps (:func:`source_of`: an IPv4 address, an IPv6 /64).
    """
    limiter = ctx.source_limits.get(method)
    if limiter is None:
        return None, PASS
    if ctx.trust.trusts(source.host):
        if method == "INVITE":
            return None, PASS
        if ctx.trust.is_peer(source.host) and ctx.peer_register_limits is not None:
            peers = ctx.peer_register_limits
            return peers, peers.check(source_of(source.host), now=ctx.now)
    here = source
    if ctx.registrar.aors_at(here, now=ctx.now):
        key = address_of(source.transport, source.host, source.port)
    else:
        key = source_of(source.host)
    return limiter, limiter.check(key, now=ctx.now)


def refuse_stateless(ctx: Context, request: Request, source: Peer, retry_after: int) -> None:
    """503 without a transaction, to where the request came from (never its Via)."""
    tag = f"{SHED_TAG}{next(ctx.seq):x}"  # no dialog: unique is enough
    response = make_response(
        stamp_via(request, source),
        503,
        to_tag=tag,
        headers=(("Retry-After", str(retry_after)),),
    )
    ctx.send(response, source)


def quick_shed(ctx: Context, data: bytes, source: Peer) -> Verdict | None:
    """:func:`shed` on a datagram's bytes, before the full parser runs.

    Reads only the request line and the Via, From, To, Call-ID and CSeq lines.
    PASS: taken in (the full path skips :func:`shed`); REFUSE: 503 sent; DROP:
    no answer; None: not a new INVITE or REGISTER, or anything unusual (folded
    or repeated fields, a pre-RFC 3261 branch...): the full path decides.
    The ACK of one of these 503s (its To tag starts with :data:`SHED_TAG`) is
    dropped here too.
    """
    try:
        return quick_verdict(ctx, data, source)
    except ProtocolError:
        return None  # the full path answers what is wrong with it
    except Exception as err:  # a bug of this shortcut: the full path decides
        ctx.internal_error("pre-checking a datagram", source, err)
        return None


def quick_verdict(ctx: Context, data: bytes, source: Peer) -> Verdict | None:
    if data.startswith(b"ACK "):
        # a match holds ``shed-`` in any case: most ACKs are told apart without the search
        if b"shed-" not in data[:4096].lower():
            return None
        return DROP if _SHED_ACK.search(data, 0, 4096) is not None else None
    if data.startswith(b"INVITE "):
        method = "INVITE"
    elif data.startswith(b"REGISTER "):
        method = "REGISTER"
    else:
        return None
    fields = quick_fields(data)
    if fields is None:
        return None
    vias, found = fields
    to = found["to"]
    if b";" in to and _TO_TAG.search(to) is not None:  # a match holds ``;``
        return None  # inside a dialog
    via = parse_via(vias[0].partition(b",")[0].decode("utf-8", "surrogateescape"))
    branch = via.branch
    if branch is None or not branch.startswith("z9hG4bK"):
        return None
    if TransactionKey(branch, via.sent_by.lower(), method, server=True) in ctx.layer:
        return None  # a retransmission: its transaction answers
    limiter, verdict = flood_check(ctx, method, source)
    if verdict == DROP:
        ctx.counters.flood_dropped += 1
        return DROP
    if verdict == REFUSE and limiter is not None:
        ctx.counters.flood_refused += 1
        quick_refuse(ctx, vias, found, via, source, limiter.retry_after)
        return REFUSE
    if method == "INVITE":
        refusal = ctx.admission.overloaded(now=ctx.now)
        overload_log(ctx, refusal)
        if refusal is not None:
            ctx.counters.overload_refused += 1
            quick_refuse(ctx, vias, found, via, source, refusal.retry_after)
            return REFUSE
    return PASS


def quick_fields(data: bytes) -> tuple[list[bytes], dict[str, bytes]] | None:
    """The Via values and the From, To, Call-ID and CSeq values of a request's bytes,
    or None when anything is unusual (the full parser then decides)."""
    end = data.find(b"\r\n\r\n", 0, 16384)
    if end < 0:
        return None
    head = data[:end]
    crlf = head.count(b"\r\n")
    if head.count(b"\r") != crlf or head.count(b"\n") != crlf:
        return None  # a bare CR or LF: never copied into a response
    vias: list[bytes] = []
    found: dict[str, bytes] = {}
    for line in head.split(b"\r\n")[1:]:
        if not line or line[0] in b" \t":
            return None  # folded
        name, sep, value = line.partition(b":")
        key = _QUICK_FIELDS.get(name.strip().lower())
        if not sep or key is None:
            continue
        value = value.strip()
        if key == "via":
            vias.append(value)
        elif key in found or not value:
            return None
        else:
            found[key] = value
    if not vias or len(found) != 4:
        return None
    return vias, found


def quick_refuse(
    ctx: Context,
    vias: list[bytes],
    found: dict[str, bytes],
    via: Via,
    source: Peer,
    retry: int,
) -> None:
    """A 503 built from the request's own field lines (§8.2.6), without a
    transaction, sent to where the request came from (never to its Via)."""
    tag = f"{SHED_TAG}{next(ctx.seq):x}".encode()  # no dialog: unique is enough
    stamped = via.with_param("received", source.host.strip("[]"))
    if via.has_rport:  # RFC 3581
        stamped = stamped.with_param("rport", str(source.port))
    _, comma, others = vias[0].partition(b",")
    lines = [b"SIP/2.0 503 Service Unavailable"]
    lines.append(b"Via: " + str(stamped).encode("utf-8", "surrogateescape") + comma + others)
    lines += [b"Via: " + v for v in vias[1:]]
    lines += [
        b"From: " + found["from"],
        b"To: " + found["to"] + b";tag=" + tag,
        b"Call-ID: " + found["call-id"],
        b"CSeq: " + found["cseq"],
        b"Retry-After: " + str(retry).encode(),
        b"Content-Length: 0",
        b"",
        b"",
    ]
    ctx.traffic.response_out(503)
    ctx.out.append(Transmit(b"\r\n".join(lines), source))


def overload_log(ctx: Context, refusal: Refusal | None) -> None:
    """One warning when the node starts shedding, one when it stops."""
    if refusal is not None and not ctx.overloaded:
        ctx.overloaded = True
        log.warning("overloaded, new calls get 503: %s", refusal.reason)
    elif refusal is None and ctx.overloaded and not ctx.admission.shedding(now=ctx.now):
        ctx.overloaded = False
        log.warning("overload over: new calls are taken in again")
