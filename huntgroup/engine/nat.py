"""Telling a peer behind NAT from the addresses it announces.

A phone behind NAT writes its private address in its Contact and its SDP, but
its packets reach us from the NAT's public address. When the announced
address is private and differs from the address the packets came from, the
announced one cannot be reached: signalling goes back to the source (RFC 3581
rport) and media must go through our relay (symmetric RTP latching).
"""

from __future__ import annotations

import ipaddress


def behind_nat(announced_host: str, source_host: str | None) -> bool:
    """A private address announced from another address: the peer is behind NAT.

    A host name is trusted; an unknown source (None) is taken as no NAT.
    """
    if source_host is None or announced_host == source_host:
        return False
    try:
        return ipaddress.ip_address(announced_host).is_private
    except ValueError:
        return False
