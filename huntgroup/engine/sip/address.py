"""Transport addresses: the one type for "(transport, host, port)", and host spellings.

Theory of operation: a :class:`Peer` is one end of a hop: where a message came
from (the driver builds it from the socket), where one goes (a member's
contact, the upstream, a registered phone's source address), or ourselves on
one listening address (what we write in Via sent-by and Contact). Every layer
passes the same frozen value: the transaction layer, the dialogs, the
registrar's index of sources, the driver's table of stream connections.

Its transport has ONE spelling, upper case as in a Via (``"UDP"``, ``"TCP"``,
``"TLS"``). Other spellings are converted where they enter or leave, and only
there: a Via's sent-protocol (:func:`~huntgroup.engine.sip.fields.parse_via`
upper-cases it), a URI's ``transport=`` parameter (lower case on the wire:
:meth:`Peer.contact`), and the configuration's ``listen`` entries
(``udp:host:port``, read by the driver).

A host is written in many places (a Via sent-by or
``received``, a Contact URI, a socket's peer name), with brackets or without,
and an IPv4 peer of a dual-stack socket shows up as ``::ffff:a.b.c.d``.
:func:`ip_of` reads any of those spellings into one comparable IP address, so
that two writings of one host compare equal; a host name stays a name (this
library resolves none).

Invariants: pure functions, no clock, no socket, no name resolution.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

from huntgroup.engine.sip.message import new_branch
from huntgroup.memo import bounded_memo
from huntgroup.quick_init import quick_init

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

__all__ = ["IPAddress", "Peer", "bracket", "ip_of"]


@dataclass(frozen=True, slots=True, init=False)
class Peer:
    """One end of a hop: ``host`` (IP or name; IPv6 without brackets), ``port``, and
    ``transport``, always upper case: ``"UDP"``, ``"TCP"`` or ``"TLS"``."""

    host: str
    port: int
    transport: str = "UDP"

    def __init__(self, host: str, port: int, transport: str = "UDP") -> None:
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "transport", transport)

    @property
    def reliable(self) -> bool:
        """True when the transport never loses messages (no retransmissions)."""
        return self.transport != "UDP"

    def via(self, rng: random.Random) -> str:
        """A Via value naming this address as ours, with a new branch and ``rport``."""
        sent_by = f"{bracket(self.host)}:{self.port}"
        return f"SIP/2.0/{self.transport} {sent_by};branch={new_branch(rng)};rport"

    def contact(self, user: str = "huntgroup") -> str:
        """A Contact value naming ``user`` at this address (``;transport=`` unless UDP)."""
        param = f";transport={self.transport.lower()}" if self.transport != "UDP" else ""
        return f"<sip:{user}@{bracket(self.host)}:{self.port}{param}>"


quick_init(Peer)


@bounded_memo(maxsize=1024)
def bracket(host: str) -> str:
    """``host`` as written in a URI or Via: IPv6 addresses in brackets."""
    return f"[{host}]" if ":" in host else host


@bounded_memo()
def ip_of(host: str) -> IPAddress | None:
    """``host`` as an IP address (brackets and an IPv4 mapping undone), or None for a name.
    Memoized: the same few peers' addresses are looked at for every message (the
    addresses are immutable)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
