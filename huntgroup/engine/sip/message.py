"""SIP requests and responses, their serialisation, and builders.

Theory of operation: :class:`Request` and :class:`Response` are frozen
dataclasses holding the start line, a :class:`~.headers.Headers` collection
and the body bytes. The headers are the single source of truth: typed views
(``vias``, ``from_``, ``cseq``...) parse the relevant field on access. Messages
that come out of the parser were validated, so those views cannot fail on
them; on a hand-built message a missing or malformed field raises
``RemoteProtocolError`` (400) like a received one would.

Text is decoded from UTF-8 with ``surrogateescape`` so every byte of a received
header survives; :meth:`Request.to_bytes` encodes it back the same way and
always writes ``Content-Length`` (last) from the body length; parsed messages
do not keep the received Content-Length field.

Builders for the user agent core: :func:`make_response` (RFC 3261 §8.2.6),
:func:`make_cancel` (§9.1), and identifiers from an injected ``random.Random``:
:func:`new_branch`, :func:`new_tag`, :func:`new_call_id`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, replace

from huntgroup.engine.sip.fields import (
    MAGIC_COOKIE,
    MAX_DELTA_SECONDS,
    CSeq,
    NameAddress,
    Via,
    parse_call_id,
    parse_cseq,
    parse_name_address,
    parse_via,
)
from huntgroup.engine.sip.grammar import bad, parse_uint
from huntgroup.engine.sip.headers import Headers, check_field
from huntgroup.engine.sip.uri import Uri
from huntgroup.errors import LocalProtocolError
from huntgroup.quick_init import quick_init

SIP_VERSION = "SIP/2.0"

REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    493: "Undecipherable",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


def encode_text(text: str) -> bytes:
    """UTF-8 with surrogateescape: the inverse of how the parser decodes."""
    return text.encode("utf-8", "surrogateescape")


class _Fields:
    """Typed views over ``headers``, shared by requests and responses."""

    __slots__ = ()
    headers: Headers
    body: bytes

    def _one(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise bad(f"Missing {name} header")
        return value

    @property
    def vias(self) -> tuple[Via, ...]:
        """Every Via, top first."""
        return tuple(parse_via(v) for v in self.headers.get_all("Via"))

    # The typed views below are read a dozen times per message: each is one frame over
    # the lookup index by lower-case key (no canonicalisation of the name).

    @property
    def top_via(self) -> Via:
        """The topmost Via."""
        return parse_via(self.headers.required_of_key("via", "Via"))

    @property
    def from_(self) -> NameAddress:
        """The From field."""
        return parse_name_address(self.headers.required_of_key("from", "From"))

    @property
    def to(self) -> NameAddress:
        """The To field."""
        return parse_name_address(self.headers.required_of_key("to", "To"))

    @property
    def call_id(self) -> str:
        """The Call-ID."""
        return parse_call_id(self.headers.required_of_key("call-id", "Call-ID"))

    @property
    def cseq(self) -> CSeq:
        """The CSeq field."""
        return parse_cseq(self.headers.required_of_key("cseq", "CSeq"))

    @property
    def contacts(self) -> tuple[NameAddress, ...]:
        """Contact values (a ``*`` wildcard is not included; see ``contact_is_wildcard``)."""
        return tuple(
            parse_name_address(v) for v in self.headers.get_all("Contact") if v.strip() != "*"
        )

    @property
    def contact_is_wildcard(self) -> bool:
        """True when the message carries ``Contact: *`` (REGISTER removal)."""
        return any(v.strip() == "*" for v in self.headers.get_all("Contact"))

    @property
    def routes(self) -> tuple[NameAddress, ...]:
        """Route values, in order."""
        return tuple(parse_name_address(v) for v in self.headers.get_all("Route"))

    @property
    def record_routes(self) -> tuple[NameAddress, ...]:
        """Record-Route values, in order."""
        return tuple(parse_name_address(v) for v in self.headers.get_all("Record-Route"))

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (0-255), or None when absent."""
        value = self.headers.get("Max-Forwards")
        return None if value is None else parse_uint(value, what="Max-Forwards", maximum=255)

    @property
    def expires(self) -> int | None:
        """The Expires header in seconds, or None when absent."""
        value = self.headers.get("Expires")
        if value is None:
            return None
        return parse_uint(value, what="Expires", maximum=MAX_DELTA_SECONDS)

    @property
    def content_type(self) -> str | None:
        """The Content-Type value as written, or None."""
        return self.headers.get("Content-Type")

    def _head_bytes(self, start_line: str) -> bytes:
        # Every field as ``name: value``, joined in C (no Python step per field). Names
        # are canonical in Headers, so any Content-Length is spelled so, and no value
        # holds a line break, so a field starts the text or follows a CRLF: one search
        # says whether one must be left out (it is written from the body below).
        fields = "\r\n".join(map(": ".join, self.headers))
        if fields.startswith("Content-Length: ") or "\r\nContent-Length: " in fields:
            fields = "\r\n".join([f"{n}: {v}" for n, v in self.headers if n != "Content-Length"])
        if fields:
            fields += "\r\n"
        return encode_text(f"{start_line}\r\n{fields}Content-Length: {len(self.body)}\r\n\r\n")


@dataclass(frozen=True, slots=True, init=False)
class Request(_Fields):
    """A SIP request."""

    method: str
    uri: Uri
    headers: Headers
    body: bytes = b""

    def __init__(self, method: str, uri: Uri, headers: Headers, body: bytes = b"") -> None:
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "uri", uri)
        object.__setattr__(self, "headers", headers)
        object.__setattr__(self, "body", body)

    @property
    def is_invite(self) -> bool:
        """True for INVITE."""
        return self.method == "INVITE"

    def to_bytes(self) -> bytes:
        """The wire form; Content-Length always matches the body."""
        return self._head_bytes(f"{self.method} {self.uri} {SIP_VERSION}") + self.body

    def __bytes__(self) -> bytes:
        return self.to_bytes()


quick_init(Request)


@dataclass(frozen=True, slots=True, init=False)
class Response(_Fields):
    """A SIP response."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""

    def __init__(self, status: int, reason: str, headers: Headers, body: bytes = b"") -> None:
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "headers", headers)
        object.__setattr__(self, "body", body)

    @property
    def is_provisional(self) -> bool:
        """True for 1xx."""
        return self.status < 200

    @property
    def is_success(self) -> bool:
        """True for 2xx."""
        return 200 <= self.status < 300

    def to_bytes(self) -> bytes:
        """The wire form; Content-Length always matches the body."""
        return self._head_bytes(f"{SIP_VERSION} {self.status} {self.reason}") + self.body

    def __bytes__(self) -> bytes:
        return self.to_bytes()


quick_init(Response)


Message = Request | Response


def reason_phrase(status: int) -> str:
    """The usual reason phrase for ``status`` (a generic one when unknown)."""
    if status in REASON_PHRASES:
        return REASON_PHRASES[status]
    return REASON_PHRASES.get(status // 100 * 100, "Unknown")


_COPIED = (("From", "from"), ("To", "to"), ("Call-ID", "call-id"), ("CSeq", "cseq"))
"""The single fields a response copies from its request (name, lookup key)."""


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """A response to ``request`` per RFC 3261 §8.2.6.

    Copies every Via (in order), From, To, Call-ID and CSeq; for a dialog
    creating status (101-299) also Record-Route. ``to_tag`` is added to To
    unless To already has a tag or ``status`` is 100. Extra ``headers`` are
    appended, and ``body`` becomes the body.
    """
    if not 100 <= status <= 699:
        raise LocalProtocolError(f"Invalid status code {status}")
    # Fields copied from the request were checked when it was built or parsed.
    fields = request.headers
    copied: list[tuple[str, str]] = [("Via", v) for v in fields.values_of_key("via")]
    for name, key in _COPIED:
        value = fields.first_of_key(key)
        if value is None:
            raise LocalProtocolError(f"Request has no {name} header")
        if key == "to" and to_tag is not None and status != 100:
            to = parse_name_address(value)
            if to.tag is None:
                value = str(to.with_tag(to_tag))
                check_field(name, value)
        copied.append((name, value))
    if 100 < status < 300:
        route = fields.values_of_key("record-route")
        if route:
            copied.extend([("Record-Route", v) for v in route])
    if headers:
        copied.extend(Headers(headers))
    return Response(
        status=status,
        reason=reason if reason is not None else reason_phrase(status),
        headers=Headers._trusted(tuple(copied)),
        body=body,
    )


def make_cancel(invite: Request) -> Request:
    """The CANCEL for ``invite`` per RFC 3261 §9.1 (same branch, Route set)."""
    if invite.method != "INVITE":
        raise LocalProtocolError("Only an INVITE can be cancelled")
    top_via = invite.headers.get("Via")
    if top_via is None:
        raise LocalProtocolError("INVITE has no Via")
    items: list[tuple[str, str]] = [("Via", top_via)]
    for name in ("From", "To", "Call-ID"):
        value = invite.headers.get(name)
        if value is None:
            raise LocalProtocolError(f"INVITE has no {name} header")
        items.append((name, value))
    items.append(("CSeq", f"{invite.cseq.number} CANCEL"))
    items.extend(("Route", v) for v in invite.headers.get_all("Route"))
    items.append(("Max-Forwards", "70"))
    return Request(method="CANCEL", uri=invite.uri, headers=Headers(items))


_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


# Two base-62 digits at a time, least significant first: _ID_PAIRS[d] spells d % 62
# then d // 62, as two single-digit steps would.
_ID_PAIRS = tuple(_ID_ALPHABET[d % 62] + _ID_ALPHABET[d // 62] for d in range(62 * 62))


def _random_text(rng: random.Random, length: int) -> str:
    # One draw of 6 bits per character, read out in base 62 (bias below 2**-200).
    n = rng.getrandbits(6 * length + 200)
    chars = []
    for _ in range(length // 2):
        n, pair = divmod(n, 62 * 62)
        chars.append(_ID_PAIRS[pair])
    if length % 2:
        chars.append(_ID_ALPHABET[n % 62])
    return "".join(chars)


def new_branch(rng: random.Random, *, suffix: str = "") -> str:
    """A fresh RFC 3261 branch (magic cookie + 16 random characters [+ suffix])."""
    return MAGIC_COOKIE + _random_text(rng, 16) + (f"-{suffix}" if suffix else "")


def new_tag(rng: random.Random) -> str:
    """A fresh From/To tag (12 random characters, about 71 bits)."""
    return _random_text(rng, 12)


def new_call_id(rng: random.Random, host: str | None = None) -> str:
    """A fresh Call-ID, ``random@host`` when ``host`` is given."""
    local = _random_text(rng, 24)
    return f"{local}@{host}" if host else local


def with_top_via(message: Request, via: Via) -> Request:
    """A copy of ``message`` with ``via`` pushed on top of its Via list."""
    return replace(message, headers=message.headers.with_prepended("Via", str(via)))
