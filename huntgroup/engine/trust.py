"""The trust domain (RFC 3325): the peers whose word on a caller's identity counts.

Theory of operation
-------------------
A ``P-Asserted-Identity`` header is only worth what its sender is worth. RFC
3325 limits it to a *trust domain*: a set of hosts that authenticate their
users and pass identities to each other. For huntgroup that set is

- ``server.upstream`` when it is written with an IP address (a trunk named by
  a host name must have its addresses listed in ``trusted_peers``: this core
  never resolves names);
- every address or network listed in ``server.trusted_peers`` (an SBC, a
  proxy in front of the server).

:class:`TrustDomain` answers one question, sans-I/O: is a packet's source
address in the domain? A request from a trusted peer may carry the caller's
identity in ``P-Asserted-Identity`` and may register contacts anywhere; from
anybody else that header is dropped and a contact must be on the source host.

Invariants: the networks are fixed at construction (``server.*`` changes take
effect at a restart); an IPv4-mapped IPv6 source (``::ffff:192.0.2.1``, from a
dual-stack socket) is judged as its IPv4 address; a host that is not an IP
address is never trusted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from huntgroup.engine.sip.uri import SipUri, parse_uri
from huntgroup.errors import ProtocolError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

__all__ = ["TrustDomain", "ip_of"]


def ip_of(host: str) -> IPAddress | None:
    """``host`` as an IP address (brackets and an IPv4 mapping undone), or None for a name."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustDomain:
    """The upstream's address and the ``server.trusted_peers`` networks."""

    def __init__(self, peers: Iterable[str], upstream: str | None) -> None:
        networks: list[IPNetwork] = []
        for peer in peers:
            networks.append(ipaddress.ip_network(peer.strip("[]"), strict=False))
        self.upstream_named = False  # upstream is a host name: not trusted unless listed
        if upstream is not None:
            try:
                uri = parse_uri(upstream)
            except ProtocolError:
                uri = None
            host = uri.host if isinstance(uri, SipUri) else ""
            address = ip_of(host) if host else None
            if address is not None:
                networks.append(ipaddress.ip_network(address))
            elif host:
                self.upstream_named = True
        self.networks = tuple(networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, host: str) -> bool:
        """The source address ``host`` is the upstream or one of the trusted peers."""
        if not self.networks:
            return False
        address = ip_of(host)
        if address is None:
            return False
        return any(address in network for network in self.networks)
