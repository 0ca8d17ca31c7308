"""Telling a peer behind NAT from the addresses it announces.

A phone behind NAT writes its private address in its Contact and its SDP, but
its packets reach us from the NAT's public address. When the announced
address is private and differs from the address the packets came from, the
announced one cannot be reached: signalling goes back to the source (RFC 3581
rport) and media must go through our relay (symmetric RTP latching).

For media the question is wider (docs/security.md, "RTP hijacking"): anybody
can write any address in an SDP, so the relay sends nothing to an address it
has no reason to believe (:func:`unverified_media`) until a packet came from
it or from the peer's signalling IP.
"""

from __future__ import annotations

import ipaddress

from huntgroup.memo import MAX_ADDRESS_KEY, bounded_memo


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


def unverified_media(
    sdp_host: str | None, source_host: str | None, *, trusted: bool = False
) -> str | None:
    """The signalling IP of a peer whose SDP address is not vouched for, else None.

    A peer's SDP address is believed, and media sent there at once, when it is
    the IP address the peer's SIP came from and not in a private network (a
    loopback address cannot come from the network), or when the SIP came from
    a trusted peer (the upstream, ``server.trusted_peers``: a trunk's media
    gateway is not its signalling address). Otherwise (NAT, a SIP ALG or STUN
    phone whose NAT changes the port, a forged INVITE naming a victim) the
    relay waits for the peer's first packet, from its SDP address or from the
    returned signalling IP, before it sends anything. (A caller vouched for by
    a UDP source, which may be forged, is held until its ACK or its first
    packet all the same: :mod:`~huntgroup.media.offer_answer`.) An unknown source (None),
    no SDP address (None) and a hold address (``0.0.0.0``, nothing is sent)
    need no latch.
    """
    if source_host is None or sdp_host is None or trusted:
        return None
    sdp_ip = _ip(sdp_host)
    if sdp_ip is not None and sdp_ip.is_unspecified:
        return None
    vouched = sdp_ip is not None and sdp_ip == _ip(source_host)
    if vouched and sdp_ip is not None and (sdp_ip.is_loopback or not sdp_ip.is_private):
        return None
    return source_host


@bounded_memo(max_key=MAX_ADDRESS_KEY)
def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an IP address (brackets, zone and IPv4 mapping undone); None for a name.
    Memoized (:mod:`huntgroup.memo`): asked twice per SDP about the same few peers
    (addresses are immutable)."""
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
