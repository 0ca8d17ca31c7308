"""Transport addresses: what the SIP library knows of where a message comes
from or goes to.

Theory of operation: an address is written in many places (a Via sent-by or
``received``, a Contact URI, a socket's peer name), with brackets or without,
and an IPv4 peer of a dual-stack socket shows up as ``::ffff:a.b.c.d``.
:func:`ip_of` reads any of those spellings into one comparable IP address, so
that two writings of one host compare equal; a host name stays a name (this
library resolves none).

Invariants: pure functions, no clock, no socket, no name resolution.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

__all__ = ["IPAddress", "ip_of"]


def ip_of(host: str) -> IPAddress | None:
    """``host`` as an IP address (brackets and an IPv4 mapping undone), or None for a name."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
