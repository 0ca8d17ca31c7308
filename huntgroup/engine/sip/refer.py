"""REFER and Replaces: the Refer-To, Refer-Sub and Replaces fields, and sipfrag bodies.

Theory of operation
-------------------
A REFER (RFC 3515) names its target in exactly one Refer-To field
(:func:`refer_target`). The target URI may carry an escaped ``Replaces``
header (RFC 3891 §6.1, attended transfer): :func:`parse_replaces` reads it,
and the same value of an INVITE's own Replaces field. RFC 4488's
``Refer-Sub: false`` asks for no implicit subscription (:func:`wants_subscription`).
The progress of a REFER goes back in NOTIFYs whose body is a status line in
``message/sipfrag`` (RFC 3420): :func:`sipfrag`.

Parsing is strict, as everywhere in this library: a field that does not follow
the grammar, appears twice where once is allowed, or is longer than the bounds
below raises :class:`~huntgroup.errors.RemoteProtocolError` (400), nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from huntgroup.engine.sip.fields import NameAddress, parse_name_address
from huntgroup.engine.sip.grammar import bad, is_token, is_word, parse_params
from huntgroup.engine.sip.message import Request, reason_phrase
from huntgroup.engine.sip.uri import SipUri, TelUri, Uri
from huntgroup.errors import RemoteProtocolError

SIPFRAG = "message/sipfrag;version=2.0"
"""The Content-Type of a NOTIFY of the refer event package (RFC 3515 §2.4.5)."""
MAX_REPLACES = 512
"""The longest Replaces value read (a Call-ID and two tags; RFC 3261 sets no bound)."""


@dataclass(frozen=True, slots=True)
class Replaces:
    """The dialog a Replaces field names, from the point of view of the UA that receives
    it (RFC 3891 §3): ``to_tag`` is that UA's own tag, ``from_tag`` its peer's."""

    call_id: str
    to_tag: str
    from_tag: str
    early_only: bool = False


@dataclass(frozen=True, slots=True)
class ReferTarget:
    """What a REFER asks for: contact ``uri``; with ``replaces``, an attended transfer."""

    address: NameAddress
    uri: Uri
    replaces: Replaces | None = None


def parse_replaces(value: str) -> Replaces:
    """``callid *(SEMI replaces-param)``; to-tag and from-tag exactly once each."""
    text = value.strip()
    if not text or len(text) > MAX_REPLACES:
        raise bad("Invalid Replaces: empty or too long")
    semi = text.find(";")
    call_id = (text if semi < 0 else text[:semi]).strip()
    if not call_id or not _is_call_id(call_id):
        raise bad("Invalid Replaces: bad Call-ID")
    params, _ = parse_params(text, len(text) if semi < 0 else semi, what="Replaces")
    tags: dict[str, str] = {}
    early = False
    for name, pvalue in params:
        lower = name.lower()
        if lower in ("to-tag", "from-tag"):
            if lower in tags or not pvalue or not is_token(pvalue):
                raise bad(f"Invalid Replaces: bad or repeated {lower}")
            tags[lower] = pvalue
        elif lower == "early-only":
            if pvalue is not None or early:
                raise bad("Invalid Replaces: bad early-only")
            early = True
    if len(tags) != 2:
        raise bad("Invalid Replaces: to-tag and from-tag are required")
    return Replaces(call_id, tags["to-tag"], tags["from-tag"], early)


def _is_call_id(text: str) -> bool:
    word, at, host = text.partition("@")
    return is_word(word) and (not at or is_word(host))


def refer_target(request: Request) -> ReferTarget:
    """The one Refer-To of ``request`` (RFC 3515 §2.4.1: exactly one, a single value)."""
    values = request.headers.get_all("Refer-To")
    if len(values) != 1:
        raise bad("a REFER needs exactly one Refer-To")
    address = parse_name_address(values[0])
    uri = address.uri
    if not isinstance(uri, SipUri | TelUri):
        raise RemoteProtocolError("Refer-To: unsupported URI scheme", status=416)
    replaces: Replaces | None = None
    if isinstance(uri, SipUri):
        found = [v for n, v in uri.headers if n.lower() == "replaces"]
        if len(found) > 1:
            raise bad("Invalid Refer-To: several Replaces")
        if found:
            try:
                text = unquote(found[0], errors="strict")
            except UnicodeDecodeError as err:
                raise bad("Invalid Replaces: not UTF-8") from err
            replaces = parse_replaces(text)
    return ReferTarget(address, uri, replaces)


def wants_subscription(request: Request) -> bool:
    """False when the REFER says ``Refer-Sub: false`` (RFC 4488 §4); 400 when the field
    is repeated or is neither true nor false."""
    values = request.headers.get_all("Refer-Sub")
    if not values:
        return True
    if len(values) > 1:
        raise bad("Invalid Refer-Sub: repeated")
    word = values[0].split(";", 1)[0].strip().lower()
    if word not in ("true", "false"):
        raise bad("Invalid Refer-Sub")
    return word == "true"


def sipfrag(status: int) -> bytes:
    """The body of a refer NOTIFY: the status line of the referred request's outcome."""
    return f"SIP/2.0 {status} {reason_phrase(status)}\r\n".encode()
