"""Typed values of the header fields the SIP core interprets (RFC 3261 §20, §25).

Theory of operation: each ``parse_*`` function takes one logical header value
(already unfolded, and already split when the header is a list) and returns a
frozen dataclass, or raises ``RemoteProtocolError`` (400). ``str()`` of each
dataclass is a valid header value that parses back to an equal object, so a
B2BUA can read, change (``with_tag``, ``with_param``) and write fields back.

Invariants: the dataclasses are immutable; parameter names keep their case
and order; display names are stored unquoted and are always written quoted.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from huntgroup.engine.sip.grammar import (
    TOKEN_CHARS,
    WSP,
    Params,
    bad,
    format_params,
    is_token,
    is_word,
    param_lookup,
    parse_params,
    parse_uint,
    quote,
    scan_quoted,
    set_param,
    skip_ws,
    split_list,
    unquote,
)
from huntgroup.engine.sip.uri import SipUri, Uri, format_hostport, parse_hostport, parse_uri
from huntgroup.memo import bounded_memo
from huntgroup.quick_init import quick_init

PARSE_CACHE_SIZE = 4096
"""Parsed header values are memoized (they are immutable): a message's fields are
validated by the parser and read again by the transaction layer and the B2BUA."""

MAGIC_COOKIE = "z9hG4bK"
"""Prefix of RFC 3261 branch parameters (§8.1.1.7)."""

MAX_CSEQ = 2**31 - 1
MAX_DELTA_SECONDS = 2**32 - 1


@bounded_memo(maxsize=1024)
def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text[1:-1] if text.startswith("[") else text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True, init=False)
class Via:
    """One Via value: ``SIP/2.0/<transport> host[:port];params``."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()

    def __init__(
        self,
        transport: str,
        host: str,
        port: int | None = None,
        params: Params = (),
    ) -> None:
        object.__setattr__(self, "transport", transport)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "params", params)

    @property
    def sent_by(self) -> str:
        """``host`` or ``host:port`` as written by the sender."""
        return format_hostport(self.host, self.port)

    @property
    def branch(self) -> str | None:
        """The branch parameter, or None."""
        # param_lookup(self.params, "branch")[1], inline: read several times per message
        for name, value in self.params:
            if name == "branch" or name.lower() == "branch":
                return value
        return None

    @property
    def received(self) -> str | None:
        """The received parameter (source address stamped by the next hop)."""
        return param_lookup(self.params, "received")[1]

    @property
    def has_rport(self) -> bool:
        """True when the rport parameter is present, with or without a value."""
        return param_lookup(self.params, "rport")[0]

    @property
    def rport(self) -> int | None:
        """The rport value (RFC 3581), or None when absent or empty."""
        value = param_lookup(self.params, "rport")[1]
        return int(value) if value else None

    @property
    def maddr(self) -> str | None:
        """The maddr parameter, or None."""
        return param_lookup(self.params, "maddr")[1]

    @property
    def ttl(self) -> int | None:
        """The ttl parameter, or None."""
        value = param_lookup(self.params, "ttl")[1]
        return int(value) if value else None

    @property
    def reliable(self) -> bool:
        """True for transports that do not lose messages (anything but UDP)."""
        return self.transport != "UDP"

    def with_param(self, name: str, value: str | None = None) -> Via:
        """A copy with parameter ``name`` set (bare when ``value`` is None)."""
        # the constructor, not dataclasses.replace (which walks the fields each time)
        return Via(self.transport, self.host, self.port, set_param(self.params, name, value))

    def __str__(self) -> str:
        return f"SIP/2.0/{self.transport} {self.sent_by}{format_params(self.params)}"


quick_init(Via)


def _read_token(text: str, pos: int) -> tuple[str, int]:
    start = pos
    while pos < len(text) and text[pos] in TOKEN_CHARS:
        pos += 1
    return text[start:pos], pos


def _expect_slash(text: str, pos: int) -> int:
    pos = skip_ws(text, pos)
    if pos >= len(text) or text[pos] != "/":
        raise bad("Invalid Via: bad sent-protocol")
    return skip_ws(text, pos + 1)


# ``SIP/2.0/UDP host:port`` with single spaces: the sent-protocol and sent-by
# as the general scan in parse_via reads them.
_PLAIN_VIA = re.compile(r"SIP/2\.0/([A-Za-z]+) ([^; \t]+)")


@bounded_memo(maxsize=PARSE_CACHE_SIZE)
def parse_via(value: str) -> Via:
    """Parse one Via value (RFC 3261 §20.42, RFC 3581 rport)."""
    text = value.strip(WSP)
    plain = _PLAIN_VIA.match(text)
    if plain is not None:  # the usual spelling: what the general scan would read
        transport, sent_by, pos = plain.group(1), plain.group(2), plain.end()
    else:
        name, pos = _read_token(text, 0)
        pos = _expect_slash(text, pos)
        version, pos = _read_token(text, pos)
        pos = _expect_slash(text, pos)
        transport, pos = _read_token(text, pos)
        if name.upper() != "SIP" or version != "2.0" or not transport:
            raise bad("Invalid Via: bad sent-protocol")
        if pos >= len(text) or text[pos] not in WSP:
            raise bad("Invalid Via: no sent-by")
        pos = skip_ws(text, pos)
        start = pos
        while pos < len(text) and text[pos] not in ";" + WSP:
            pos += 1
        sent_by = text[start:pos]
    host, port = parse_hostport(sent_by)
    params, pos = parse_params(text, pos, what="Via")
    for pname, pvalue in params:
        key = pname.lower()
        if key == "branch" and not (pvalue and is_token(pvalue)):
            raise bad("Invalid Via: bad branch")
        if key == "received" and not (pvalue and _is_ip(pvalue)):
            raise bad("Invalid Via: bad received")
        if key == "rport" and pvalue is not None:
            parse_uint(pvalue, what="Via rport", maximum=65535)
        if key == "ttl":
            parse_uint(pvalue or "", what="Via ttl", maximum=255)
        if key == "maddr":
            parse_hostport(pvalue or "")
    return Via(transport=transport.upper(), host=host, port=port, params=params)


@dataclass(frozen=True, slots=True, init=False)
class NameAddress:
    """A ``name-addr`` or ``addr-spec`` with header parameters (From, To, Contact,
    Route, Record-Route...). ``display_name`` is unquoted (None when absent)."""

    uri: Uri
    display_name: str | None = None
    params: Params = ()

    def __init__(self, uri: Uri, display_name: str | None = None, params: Params = ()) -> None:
        object.__setattr__(self, "uri", uri)
        object.__setattr__(self, "display_name", display_name)
        object.__setattr__(self, "params", params)

    @property
    def tag(self) -> str | None:
        """The tag parameter, or None."""
        # param_lookup(self.params, "tag")[1], inline: read several times per message
        for name, value in self.params:
            if name == "tag" or name.lower() == "tag":
                return value
        return None

    def param(self, name: str) -> str | None:
        """Value of header parameter ``name`` (``""`` for a bare name, None if absent)."""
        present, value = param_lookup(self.params, name)
        if not present:
            return None
        return "" if value is None else value

    def with_tag(self, tag: str) -> NameAddress:
        """A copy with the tag parameter set to ``tag``."""
        return self.with_param("tag", tag)

    def with_param(self, name: str, value: str | None = None) -> NameAddress:
        """A copy with header parameter ``name`` set (bare when ``value`` is None)."""
        return NameAddress(self.uri, self.display_name, set_param(self.params, name, value))

    def __str__(self) -> str:
        display = f"{quote(self.display_name)} " if self.display_name else ""
        return f"{display}<{self.uri}>{format_params(self.params)}"


quick_init(NameAddress)


_NOT_IN_URI = re.compile(f'[{WSP}<>"]')  # whitespace, angle brackets, double quotes


def _split_address(text: str) -> tuple[str | None, str, int]:
    """``(display name, URI text as written, index of the parameters)`` of a
    stripped, non-empty ``name-addr`` or ``addr-spec`` with its parameters."""
    display: str | None = None
    if text[0] == '"':
        end = scan_quoted(text, 0)
        display = unquote(text[:end])
        pos = skip_ws(text, end)
        if pos >= len(text) or text[pos] != "<":
            raise bad("Invalid address: no '<' after display name")
        lt = pos
    else:
        lt = text.find("<")
        if lt >= 0:
            words = text[:lt].split()
            if any(not is_token(word) for word in words):
                raise bad("Invalid address: bad display name")
            display = " ".join(words) or None
    if lt >= 0:
        gt = text.find(">", lt)
        if gt < 0:
            raise bad("Invalid address: unterminated '<'")
        uri_text = text[lt + 1 : gt]
        if not uri_text or uri_text[0] in WSP or uri_text[-1] in WSP:
            raise bad("Invalid address: whitespace inside '<>'")
        pos = gt + 1
    else:
        semi = text.find(";")
        uri_text = (text if semi < 0 else text[:semi]).rstrip(WSP)
        if any(c in uri_text for c in ",?" + WSP):
            raise bad("Invalid address: URI with ',', '?' or spaces needs '<>'")
        pos = len(text) if semi < 0 else semi
    # _NOT_IN_URI.search(uri_text), as five substring tests (no expression set-up)
    if " " in uri_text or "<" in uri_text or ">" in uri_text or '"' in uri_text or "\t" in uri_text:
        raise bad("Invalid address: bad URI")
    return display, uri_text, pos


@bounded_memo(maxsize=PARSE_CACHE_SIZE)
def parse_name_address(value: str) -> NameAddress:
    """Parse ``[display-name] <URI> *(;param)`` or ``URI *(;param)``."""
    text = value.strip(WSP)
    if not text:
        raise bad("Invalid address: empty")
    display, uri_text, pos = _split_address(text)
    uri = parse_uri(uri_text)
    params, _ = parse_params(text, pos, what="address parameters")
    for pname, pvalue in params:
        if pname.lower() == "tag" and not (pvalue and is_token(pvalue)):
            raise bad("Invalid address: bad tag")
    return NameAddress(uri=uri, display_name=display, params=params)


# --------------------------------------------------------------------------- Contact


@dataclass(frozen=True, slots=True)
class ContactEntry:
    """One Contact of a REGISTER as the registrar reads it: ``uri="*"`` is the wildcard.

    ``uri`` is the URI as written (a binding keeps the phone's spelling);
    ``expires``, ``q`` and ``instance`` are its ``expires``, ``q`` and
    ``+sip.instance`` (RFC 5626, without the angle brackets) parameters.
    """

    uri: str
    expires: int | None = None  # the ;expires= parameter, None when absent
    q: float = 1.0
    instance: str | None = None

    @property
    def is_wildcard(self) -> bool:
        return self.uri == "*"


WILDCARD = ContactEntry("*")
MAX_CONTACT_VALUE_LENGTH = 8192
_QVALUE_RE = re.compile(r"(0(\.[0-9]{0,3})?|1(\.0{0,3})?)")
_DELTA_RE = re.compile(r"[0-9]{1,20}")


def parse_contact_values(value: str) -> list[ContactEntry]:
    """Parse one Contact header value (a comma-separated list, or ``*``).

    Returns the entries in order; ``*`` gives ``[WILDCARD]``. Raises
    ``RemoteProtocolError`` (400) for anything malformed, a parameter given
    twice, a bad ``expires`` (an ``expires`` beyond 2**32-1 is clamped), ``q``
    or ``+sip.instance`` included. Several Contact headers are parsed one by
    one and their entries concatenated.
    """
    if len(value) > MAX_CONTACT_VALUE_LENGTH:
        raise bad("Contact value too long")
    if value.strip(WSP) == "*":
        return [WILDCARD]
    return [_contact_entry(item) for item in split_list(value)]


def _contact_entry(text: str) -> ContactEntry:
    _, uri_text, pos = _split_address(text)
    parse_uri(uri_text)
    params, _ = parse_params(text, pos, what="Contact")
    expires: int | None = None
    q = 1.0
    instance: str | None = None
    seen: set[str] = set()
    for pname, pvalue in params:
        name = pname.lower()
        if name in seen:
            raise bad(f"Invalid Contact: duplicate parameter {name!r}")
        seen.add(name)
        if name == "expires":
            if pvalue is None or not _DELTA_RE.fullmatch(pvalue):
                raise bad("Invalid Contact: expires must be a number of seconds")
            expires = min(int(pvalue), MAX_DELTA_SECONDS)
        elif name == "q":
            if pvalue is None or not _QVALUE_RE.fullmatch(pvalue):
                raise bad("Invalid Contact: q must be between 0 and 1 with at most 3 decimals")
            q = float(pvalue)
        elif name == "+sip.instance":
            value = unquote(pvalue or "")
            if value.startswith("<") and value.endswith(">"):
                value = value[1:-1]
            if not value:
                raise bad("Invalid Contact: +sip.instance needs a value")
            instance = value
    return ContactEntry(uri=uri_text, expires=expires, q=q, instance=instance)


@dataclass(frozen=True, slots=True, init=False)
class CSeq:
    """The CSeq field: a sequence number and a method."""

    number: int
    method: str

    def __init__(self, number: int, method: str) -> None:
        object.__setattr__(self, "number", number)
        object.__setattr__(self, "method", method)

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


quick_init(CSeq)


@bounded_memo(maxsize=PARSE_CACHE_SIZE)
def parse_cseq(value: str) -> CSeq:
    """Parse ``1*DIGIT LWS Method``; the number must be below 2**31."""
    parts = value.split()
    if len(parts) != 2 or not is_token(parts[1]):
        raise bad("Invalid CSeq")
    return CSeq(number=parse_uint(parts[0], what="CSeq", maximum=MAX_CSEQ), method=parts[1])


@bounded_memo(maxsize=PARSE_CACHE_SIZE)
def parse_call_id(value: str) -> str:
    """Validate ``word ["@" word]`` and return the Call-ID."""
    text = value.strip(WSP)
    left, at, right = text.partition("@")
    if not is_word(left) or (at and not is_word(right)):
        raise bad("Invalid Call-ID")
    return text


_DATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d\d) "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4}) "
    r"(\d\d):(\d\d):(\d\d) GMT",
    re.ASCII,
)


def parse_date(value: str) -> str:
    """Validate an RFC 1123 date in GMT (RFC 3261 §20.17) and return it."""
    text = value.strip(WSP)
    match = _DATE.fullmatch(text)
    if match is None:
        raise bad("Invalid Date")
    day, hour, minute, second = (int(match.group(i)) for i in (2, 5, 6, 7))
    if not 1 <= day <= 31 or hour > 23 or minute > 59 or second > 60:
        raise bad("Invalid Date")
    return text


def is_sip_uri(uri: Uri) -> bool:
    """True for sip: and sips: URIs."""
    return isinstance(uri, SipUri)
