"""Numbers, URIs and identities as the B2BUA reads and writes them (pure functions).

Theory of operation
-------------------
A Request-URI or a From names a number in its user part; :func:`number_of`
turns it into the form our lines and pilots are compared in (escapes resolved,
visual separators dropped), so no spelling disguises one of our numbers.
:func:`peer_of` and :func:`target_uri` say where a URI or a forwarding target
is reached; :func:`identity_value` and :func:`asserted_values` write and read
P-Asserted-Identity (RFC 3325).
"""

from __future__ import annotations

import re

from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.fields import parse_name_address
from huntgroup.engine.sip.grammar import quote, split_list
from huntgroup.engine.sip.message import Request
from huntgroup.engine.sip.uri import SipUri, TelUri, Uri, parse_uri, unescape
from huntgroup.errors import ProtocolError
from huntgroup.queue.actions import Identity

ANONYMOUS = "anonymous"
"""The caller's number when it has none or hides it (From: sip:anonymous@anonymous.invalid)."""
MAX_ASSERTED = 2
"""RFC 3325 §9.1: at most two P-Asserted-Identity values (one sip:/sips:, one tel:)."""
PHONE_NUMBER = re.compile(r"\+?[0-9*#]+")
_VISUAL_SEPARATORS = str.maketrans("", "", "-.() \t")


def number_of(user: str) -> str:
    """A URI's user part as a number, to compare with our lines and pilots: its escapes
    resolved (RFC 3261 §19.1.4: ``%30`` is ``0``, the same URI) and the RFC 3966 visual
    separators (``-``, ``.``, ``(``, ``)``) dropped, so neither disguises one of our
    numbers."""
    return unescape(user).translate(_VISUAL_SEPARATORS)


def user_of(uri: Uri) -> str:
    if isinstance(uri, SipUri):
        return (uri.user or "").split(";", 1)[0]
    if isinstance(uri, TelUri):
        return uri.number
    return ""


def asserted_values(request: Request) -> tuple[str, ...]:
    """The P-Asserted-Identity values of a trusted peer's request that parse (at most 2)."""
    values: list[str] = []
    for header in request.headers.get_all("P-Asserted-Identity"):
        try:
            items = split_list(header)
            for item in items:
                parse_name_address(item)
        except ProtocolError:
            continue
        values += items
    return tuple(values[:MAX_ASSERTED])


def identity_value(identity: Identity, domain: str) -> str:
    """``identity`` as a P-Asserted-Identity value in our ``domain``."""
    display = f"{quote(identity.display_name)} " if identity.display_name else ""
    return f"{display}<sip:{identity.number}@{domain}>"


def is_sdp(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() == "application/sdp"


def peer_of(uri: Uri) -> Peer | None:
    if not isinstance(uri, SipUri):
        return None
    transport = (uri.param("transport") or "udp").upper()
    if uri.secure or transport == "TLS":  # sips: is TLS on every hop (§26.2.2)
        return Peer(uri.host.strip("[]"), uri.port or 5061, "TLS")
    return Peer(uri.host.strip("[]"), uri.port or 5060, "TCP" if transport == "TCP" else "UDP")


def target_uri(target: str, domain: str, upstream: str | None) -> Uri:
    if target.lower().startswith(("sip:", "sips:")):
        return parse_uri(target)
    host = domain
    if upstream:
        up = parse_uri(upstream)
        if isinstance(up, SipUri):
            host = up.host + (f":{up.port}" if up.port else "")
    return parse_uri(f"sip:{target}@{host}")
