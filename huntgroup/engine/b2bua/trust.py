"""The trust domain (RFC 3325): the peers whose word on a caller's identity counts.

Theory of operation
-------------------
A ``P-Asserted-Identity`` header is only worth what its sender is worth. RFC
3325 limits it to a *trust domain*: a set of hosts that authenticate their
users and pass identities to each other. huntgroup knows two kinds of member:

- **trusted peers**, ``server.trusted_peers``: an SBC or a proxy *in front of
  our own phones*. Their PAI is kept, and when it names one of our lines the
  call is that line's (internal); they may register contacts anywhere;
- **the upstream**, ``server.upstream`` when it is written with an IP address
  (a trunk named by a host name must have its addresses listed; this core
  never resolves names). Its PAI is kept, since it is the outside caller's
  identity that members' phones show, but a call from the upstream is an
  outside call whatever it asserts: the trunk speaks for the PSTN, not for
  our lines. An upstream also listed in ``trusted_peers`` (one SBC in front
  of both the phones and the carrier) is a trusted peer.

From anybody else the header is dropped and a contact must be on the source
host. :class:`TrustDomain` answers, sans-I/O, which kind a packet's source
address is: :meth:`TrustDomain.trusts` (its PAI is kept) and
:meth:`TrustDomain.is_peer` (it speaks for our lines).

Invariants: the networks are fixed at construction (``server.*`` changes take
effect at a restart); an IPv4-mapped IPv6 source (``::ffff:192.0.2.1``, from a
dual-stack socket) is judged as its IPv4 address; a host that is not an IP
address is never trusted. The configuration refuses catch-all and overly
broad networks (``config.models``), so a trusted peer is a bounded set of
hosts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from huntgroup.engine.sip.address import IPAddress, ip_of
from huntgroup.engine.sip.uri import SipUri, parse_uri
from huntgroup.errors import ProtocolError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

__all__ = ["TrustDomain"]


def _network(value: str) -> IPNetwork:
    return ipaddress.ip_network(value.strip("[]"), strict=False)


class TrustDomain:
    """The ``server.trusted_peers`` networks and the upstream's address."""

    def __init__(self, peers: Iterable[str], upstream: str | None) -> None:
        self.peers: tuple[IPNetwork, ...] = tuple(_network(peer) for peer in peers)
        self.upstream: IPAddress | None = None
        self.upstream_named = False  # upstream is a host name: not trusted unless listed
        if upstream is not None:
            try:
                uri = parse_uri(upstream)
            except ProtocolError:
                uri = None
            host = uri.host if isinstance(uri, SipUri) else ""
            self.upstream = ip_of(host) if host else None
            self.upstream_named = bool(host) and self.upstream is None

    def __bool__(self) -> bool:
        return bool(self.peers) or self.upstream is not None

    def trusts(self, host: str) -> bool:
        """The source address ``host`` is a trusted peer or the upstream: its PAI is kept."""
        address = ip_of(host)
        if address is None:
            return False
        return address == self.upstream or any(address in network for network in self.peers)

    def is_peer(self, host: str) -> bool:
        """The source address ``host`` is in ``server.trusted_peers``: a PAI it sends may
        make a call one of our lines', and it may register contacts on other hosts."""
        if not self.peers:
            return False
        address = ip_of(host)
        if address is None:
            return False
        return any(address in network for network in self.peers)
