"""Next-hop handling: the peer at the other end of a hop, Via stamping and
where responses go (RFC 3261 §18.2, RFC 3581), plus the hop checks of §8.2.2 /
§16.3 (Max-Forwards and loops). The Route and Record-Route sets a request
carries are read by :mod:`~huntgroup.engine.sip.message` (``routes``,
``record_routes``); choosing which member a call rings is not SIP at all, it
is the group core's distribution (``huntgroup.distribution``).

Theory of operation: a :class:`~huntgroup.engine.sip.address.Peer` names the
other end of one hop (address, port, transport). When a request arrives,
:func:`stamp_via` records on its top Via where it really came from
(``received``, and ``rport`` when the sender asked for it); responses built
from that request carry the stamped Via, and :func:`response_destination`
says where the response goes: back to where the request really came from, on
the transport it came over (the same connection for TCP and TLS, the packet's
source address and port for UDP). The Via's
``maddr``, transport, sent-by and port are deliberately never followed: they
are written by the sender, and following them would let anyone steer our
responses (and their retransmissions) at a third party, or make us open a
connection to any host and port (RFC 3581 symmetric response routing, always).

Invariants: these are pure functions of their inputs; they never touch the
network or a clock.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Collection
from dataclasses import replace

from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.fields import Via
from huntgroup.engine.sip.message import Request

TOO_MANY_HOPS = 483
LOOP_DETECTED = 482


def _same_address(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return ipaddress.ip_address(a.strip("[]")) == ipaddress.ip_address(b.strip("[]"))
    except ValueError:
        return a.lower() == b.lower()


def _host_param(host: str) -> str:
    """An address as written in a Via ``received`` parameter (no brackets)."""
    return host.strip("[]")


def stamp_via(request: Request, source: Peer) -> Request:
    """``request`` with its top Via stamped per §18.2.1 and RFC 3581.

    Adds ``received`` when the sent-by host differs from the source address,
    and fills an empty ``rport`` with the source port (``received`` is then
    always added).
    """
    via = request.top_via
    stamped = via
    if via.has_rport and via.rport is None:
        stamped = stamped.with_param("rport", str(source.port))
        stamped = stamped.with_param("received", _host_param(source.host))
    elif not _same_address(via.host, source.host):
        stamped = stamped.with_param("received", _host_param(source.host))
    if stamped == via:
        return request
    return replace(request, headers=request.headers.with_first_replaced("Via", str(stamped)))


def response_destination(via: Via, source: Peer) -> Peer:
    """Where to send a response to a request that arrived from ``source``.

    Always ``source``: the connection the request came on (TCP, TLS), or
    the datagram's real source address and port (UDP), as RFC 3581 symmetric
    response routing does whether or not the sender asked for ``rport``.
    ``via`` (the request's top Via) is not consulted on purpose: its
    ``maddr``, transport and sent-by are the sender's say-so, and a response
    never goes where the sender merely claims to be (§18.2.2's ``maddr`` and
    sent-by rules are not followed). The driver never opens a connection to
    send a response: over a stream transport whose connection is gone the
    response is dropped.
    """
    del via  # deliberately unused (see above)
    return source


def check_max_forwards(request: Request) -> int | None:
    """The status to refuse ``request`` with for its hop count, or None (§8.2.2).

    Max-Forwards 0 gives 483 (Too Many Hops), except for OPTIONS, which the
    element may answer itself (§16.3 item 3). A missing header is fine.
    """
    value = request.max_forwards
    if value == 0 and request.method != "OPTIONS":
        return TOO_MANY_HOPS
    return None


def next_hop_max_forwards(request: Request, default: int = 70) -> int:
    """Max-Forwards for the request sent on the next hop (one less, or ``default``)."""
    value = request.max_forwards
    return default if value is None else max(value - 1, 0)


def loop_key(request: Request) -> str:
    """A digest of the fields that identify a request across hops (§16.6 item 8).

    Covers the Request-URI, From and To tags, Call-ID, CSeq number, and the
    Proxy-Require, Proxy-Authorization and Route fields. The received top Via
    is left out so that a request coming back through another hop still
    matches. An element that forwards puts this key at the end of its branch
    (``new_branch(rng, suffix=loop_key(request))``).
    """
    parts = [
        str(request.uri),
        request.from_.tag or "",
        request.to.tag or "",
        request.call_id,
        str(request.cseq.number),
        *request.headers.get_all("Proxy-Require"),
        *request.headers.get_all("Proxy-Authorization"),
        *request.headers.get_all("Route"),
    ]
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogateescape")).hexdigest()[:20]


def detect_loop(request: Request, own_sent_by: Collection[str]) -> bool:
    """True when ``request`` already went through us unchanged (§16.3 item 4).

    A loop is a Via whose sent-by is one of ours (``host:port`` as we write it)
    whose branch ends with this request's :func:`loop_key`. A request that came
    back with a different Request-URI or Route (a spiral) is not a loop.
    Answer a loop with 482 (Loop Detected).
    """
    ours = {s.lower() for s in own_sent_by}
    key = "-" + loop_key(request)
    return any(
        via.sent_by.lower() in ours and (via.branch or "").endswith(key) for via in request.vias
    )
