"""SDP (RFC 4566) parsing and serialising, and G.711 offer/answer (RFC 3264).

Theory of operation
-------------------
*Model.* A :class:`SessionDescription` holds the session lines (``v o s c b t
a`` and the informational ``i u e p r z k``) and one :class:`MediaDescription`
per ``m=`` line, each with its own ``c b a`` lines. Attributes keep their
order; ``rtpmap``, ``fmtp``, ``ptime`` and the direction are read through
helper methods. Serialising writes the lines in the order RFC 4566 requires,
with CRLF endings; parsing what was serialised gives back an equal object.

*Parsing.* :func:`parse_sdp` accepts CRLF or bare LF and either ``bytes``
(UTF-8) or ``str``. Any fault -- a line that is not ``x=value``, an unknown
type letter, a missing ``v=0`` or ``o=``, a bad ``m=``/``c=``/``o=``/``t=``
line, a malformed ``rtpmap``/``ptime``, a stream with no connection address --
raises :class:`SdpSyntaxError` (a ``RemoteProtocolError``, status 400), and no
other exception escapes.

*Offer/answer.* :func:`answer_offer` accepts the first audio stream that is
``RTP/AVP`` on a non-zero port and offers PCMU or PCMA, picking whichever the
offer lists first (static payload type 0/8, or any payload type whose
``rtpmap`` says PCMU/8000 or PCMA/8000). It echoes ``telephone-event/8000``
(RFC 4733) with the offered payload type when offered. Every other stream is
rejected with port 0, keeping the number and order of ``m=`` lines (RFC 3264
6). The direction is the mirror of the offer's (sendonly -> recvonly...).
With no acceptable stream it raises :class:`SdpNotAcceptable` (status 488).
:func:`make_offer` builds our own offers (re-INVITEs to members), and
:func:`accept_answer` reads the answer to one of them.

Invariants
----------
* ``parse_sdp(sdp.to_bytes()) == sdp`` for every description we build.
* An answer has exactly as many ``m=`` lines as its offer, in the same order.
* At most one stream is accepted, and its payload type is one the offer listed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from huntgroup.errors import LocalProtocolError, RemoteProtocolError
from huntgroup.media.g711 import Codec
from huntgroup.memo import MAX_ADDRESS_KEY, bounded_memo
from huntgroup.quick_init import quick_init

__all__ = [
    "Answer",
    "Attribute",
    "Connection",
    "Direction",
    "MediaDescription",
    "MediaPlan",
    "Origin",
    "RtpMap",
    "SdpNotAcceptable",
    "SdpSyntaxError",
    "SessionDescription",
    "accept_answer",
    "answer_offer",
    "make_offer",
    "parse_sdp",
]

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
DIRECTIONS: Final[tuple[Direction, ...]] = ("sendrecv", "sendonly", "recvonly", "inactive")
_MIRROR: Final[dict[Direction, Direction]] = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}
MAX_SDP_SIZE: Final = 65536
TELEPHONE_EVENT: Final = "telephone-event"
_STATIC_G711: Final = {0: Codec.PCMU, 8: Codec.PCMA}

_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")
_DIGITS = re.compile(r"[0-9]{1,20}")
_RTPMAP = re.compile(r"([0-9]{1,3}) +([^/ ]+)/([0-9]{1,9})(?:/([0-9]{1,3}))?\s*")
_PORT = re.compile(r"([0-9]{1,5})(?:/([0-9]{1,5}))?")
_PROTO = re.compile(r"[A-Za-z0-9/._+-]+")
_FMTP = re.compile(r"\S+( .*)?")
_ADDR_TYPES: Final[dict[str, Literal["IP4", "IP6"]]] = {"IP4": "IP4", "IP6": "IP6"}
"""An address type checked as one of the two, typed as such (was a ``cast`` whose
``Literal[...]`` subscript ran two Python frames of ``typing`` per line)."""
PARSE_CACHE_SIZE: Final = 1024
"""Lines that recur in every call (``a=rtpmap:0 PCMU/8000``, ``c=IN IP4 ...``) are
parsed once: their parsers are pure and return immutable values."""
_SESSION_TYPES: Final = frozenset("vosiuepcbtrzka")
_MEDIA_TYPES: Final = frozenset("micbka")
_SESSION_INFO_BEFORE_C: Final = "iuep"
_SESSION_INFO_AFTER_T: Final = "rzk"


class SdpSyntaxError(RemoteProtocolError):
    """The peer's SDP is malformed (answered with 400)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(f"bad SDP: {message}", status)


class SdpNotAcceptable(RemoteProtocolError):
    """No stream of the peer's SDP can be accepted (answered with 488)."""

    def __init__(self, message: str, status: int = 488) -> None:
        super().__init__(message, status)


# --- Model ------------------------------------------------------------------


@bounded_memo(maxsize=PARSE_CACHE_SIZE, max_key=MAX_ADDRESS_KEY)
def _unspecified(address: str) -> bool:
    """Whether ``address`` is ``0.0.0.0`` or ``::`` (memoized: peers repeat theirs)."""
    try:
        return ipaddress.ip_address(address).is_unspecified
    except ValueError:
        return False


@bounded_memo(maxsize=PARSE_CACHE_SIZE)
def _addr_type_of(address: str) -> Literal["IP4", "IP6"] | None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    return "IP4" if ip.version == 4 else "IP6"


def _check_address(addr_type: str, address: str, where: str) -> None:
    base = address.split("/", 1)[0] if addr_type == "IP4" else address
    kind = _addr_type_of(base)
    if kind is None:
        if not _HOSTNAME.fullmatch(base) or base.replace(".", "").isdigit():
            raise SdpSyntaxError(f"{where}: {address!r} is not an address")
    elif kind != addr_type:
        raise SdpSyntaxError(f"{where}: {address!r} is not an {addr_type} address")


@dataclass(frozen=True, slots=True, init=False)
class Origin:
    """The ``o=`` line."""

    username: str
    session_id: int
    session_version: int
    address: str
    addr_type: Literal["IP4", "IP6"] = "IP4"
    net_type: str = "IN"

    def __init__(
        self,
        username: str,
        session_id: int,
        session_version: int,
        address: str,
        addr_type: Literal["IP4", "IP6"] = "IP4",
        net_type: str = "IN",
    ) -> None:
        object.__setattr__(self, "username", username)
        object.__setattr__(self, "session_id", session_id)
        object.__setattr__(self, "session_version", session_version)
        object.__setattr__(self, "address", address)
        object.__setattr__(self, "addr_type", addr_type)
        object.__setattr__(self, "net_type", net_type)

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.net_type} {self.addr_type} {self.address}"
        )


quick_init(Origin)


@dataclass(frozen=True, slots=True, init=False)
class Connection:
    """A ``c=`` line."""

    address: str
    addr_type: Literal["IP4", "IP6"] = "IP4"
    net_type: str = "IN"

    def __init__(
        self,
        address: str,
        addr_type: Literal["IP4", "IP6"] = "IP4",
        net_type: str = "IN",
    ) -> None:
        object.__setattr__(self, "address", address)
        object.__setattr__(self, "addr_type", addr_type)
        object.__setattr__(self, "net_type", net_type)

    @classmethod
    def for_address(cls, address: str) -> Connection:
        """The connection line for a local IP address (IPv4 or IPv6)."""
        kind = _addr_type_of(address)
        if kind is None:
            raise LocalProtocolError(f"media address {address!r} is not an IP address", 500)
        return cls(address, kind)

    @property
    def is_unspecified(self) -> bool:
        """``0.0.0.0`` or ``::``: the old (RFC 2543) way of putting a call on hold."""
        return _unspecified(self.address)

    def __str__(self) -> str:
        return f"{self.net_type} {self.addr_type} {self.address}"


quick_init(Connection)


@dataclass(frozen=True, slots=True, init=False)
class Attribute:
    """An ``a=`` line: a property (``value`` None) or ``name:value``."""

    name: str
    value: str | None = None

    def __init__(self, name: str, value: str | None = None) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "value", value)

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


quick_init(Attribute)


@dataclass(frozen=True, slots=True, init=False)
class RtpMap:
    """The value of ``a=rtpmap``: payload type, encoding name, clock rate, channels."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    def __init__(
        self,
        payload_type: int,
        encoding: str,
        clock_rate: int,
        channels: int | None = None,
    ) -> None:
        object.__setattr__(self, "payload_type", payload_type)
        object.__setattr__(self, "encoding", encoding)
        object.__setattr__(self, "clock_rate", clock_rate)
        object.__setattr__(self, "channels", channels)

    @classmethod
    def parse(cls, value: str) -> RtpMap:
        return _parse_rtpmap(value)

    def __str__(self) -> str:
        tail = f"/{self.channels}" if self.channels is not None else ""
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{tail}"

    @property
    def g711(self) -> Codec | None:
        """PCMU or PCMA when this maps an 8 kHz mono G.711 payload."""
        name = self.encoding.upper()
        if self.clock_rate != 8000 or self.channels not in (None, 1):
            return None
        return Codec.PCMU if name == "PCMU" else Codec.PCMA if name == "PCMA" else None


quick_init(RtpMap)


@bounded_memo(maxsize=PARSE_CACHE_SIZE)
def _parse_rtpmap(value: str) -> RtpMap:
    m = _RTPMAP.fullmatch(value)
    if m is None or int(m.group(1)) > 127:
        raise SdpSyntaxError(f"rtpmap {value!r} is not 'PT NAME/RATE[/CHANNELS]'")
    channels = int(m.group(4)) if m.group(4) is not None else None
    return RtpMap(int(m.group(1)), m.group(2), int(m.group(3)), channels)


@dataclass(frozen=True, slots=True, init=False)
class MediaDescription:
    """One ``m=`` line with its ``i c b k a`` lines."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    connection: Connection | None = None
    bandwidths: tuple[str, ...] = ()
    attributes: tuple[Attribute, ...] = ()
    info: tuple[tuple[str, str], ...] = ()  # i= and k= lines, in order

    def __init__(
        self,
        media: str,
        port: int,
        proto: str,
        formats: tuple[str, ...],
        port_count: int | None = None,
        connection: Connection | None = None,
        bandwidths: tuple[str, ...] = (),
        attributes: tuple[Attribute, ...] = (),
        info: tuple[tuple[str, str], ...] = (),
    ) -> None:
        object.__setattr__(self, "media", media)
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "proto", proto)
        object.__setattr__(self, "formats", formats)
        object.__setattr__(self, "port_count", port_count)
        object.__setattr__(self, "connection", connection)
        object.__setattr__(self, "bandwidths", bandwidths)
        object.__setattr__(self, "attributes", attributes)
        object.__setattr__(self, "info", info)

    def attribute_values(self, name: str) -> list[str]:
        return [a.value or "" for a in self.attributes if a.name == name]

    def _attribute_texts(self) -> list[str]:
        return [
            f"a={a.name}" if a.value is None else f"a={a.name}:{a.value}" for a in self.attributes
        ]

    def rtpmaps(self) -> dict[int, RtpMap]:
        """``rtpmap`` attributes by payload type."""
        maps: dict[int, RtpMap] = {}
        for value in self.attribute_values("rtpmap"):
            rtpmap = RtpMap.parse(value)
            maps.setdefault(rtpmap.payload_type, rtpmap)
        return maps

    def fmtp(self, payload_type: int | str) -> str | None:
        """The format parameters of ``payload_type``, if any."""
        for value in self.attribute_values("fmtp"):
            fmt, _, params = value.partition(" ")
            if fmt == str(payload_type):
                return params.strip()
        return None

    @property
    def ptime(self) -> int | None:
        """``a=ptime`` in milliseconds (rounded), if present."""
        for value in self.attribute_values("ptime"):
            return _parse_ptime(value)
        return None

    def direction(self, default: Direction = "sendrecv") -> Direction:
        for a in self.attributes:
            if a.value is None and a.name in DIRECTIONS:
                return a.name
        return default

    def codecs(self) -> list[tuple[int, Codec]]:
        """The G.711 payload types this stream lists, in the offer's order."""
        maps = self.rtpmaps()
        found: list[tuple[int, Codec]] = []
        for fmt in self.formats:
            if not fmt.isdigit() or int(fmt) > 127:
                continue
            pt = int(fmt)
            rtpmap = maps.get(pt)
            codec = rtpmap.g711 if rtpmap is not None else _STATIC_G711.get(pt)
            if codec is not None:
                found.append((pt, codec))
        return found

    def telephone_event(self) -> int | None:
        """The payload type of ``telephone-event/8000`` if the stream lists it."""
        listed = set(self.formats)
        for pt, rtpmap in self.rtpmaps().items():
            if (
                str(pt) in listed
                and rtpmap.encoding.lower() == TELEPHONE_EVENT
                and rtpmap.clock_rate == 8000
            ):
                return pt
        return None

    def lines(self) -> list[str]:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        out = [f"m={self.media} {port} {self.proto} {' '.join(self.formats)}"]
        if self.info:
            out += [f"i={v}" for k, v in self.info if k == "i"]
        if self.connection is not None:
            out.append(f"c={self.connection}")
        if self.bandwidths:
            out += [f"b={b}" for b in self.bandwidths]
        if self.info:
            out += [f"k={v}" for k, v in self.info if k == "k"]
        out += self._attribute_texts()
        return out


quick_init(MediaDescription)


@dataclass(frozen=True, slots=True, init=False)
class SessionDescription:
    """A whole SDP body."""

    origin: Origin
    session_name: str = "-"
    connection: Connection | None = None
    times: tuple[tuple[int, int], ...] = ((0, 0),)
    attributes: tuple[Attribute, ...] = ()
    media: tuple[MediaDescription, ...] = ()
    bandwidths: tuple[str, ...] = ()
    info: tuple[tuple[str, str], ...] = ()  # i u e p r z k lines, in order
    version: int = 0

    def __init__(
        self,
        origin: Origin,
        session_name: str = "-",
        connection: Connection | None = None,
        times: tuple[tuple[int, int], ...] = ((0, 0),),
        attributes: tuple[Attribute, ...] = (),
        media: tuple[MediaDescription, ...] = (),
        bandwidths: tuple[str, ...] = (),
        info: tuple[tuple[str, str], ...] = (),
        version: int = 0,
    ) -> None:
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "session_name", session_name)
        object.__setattr__(self, "connection", connection)
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "attributes", attributes)
        object.__setattr__(self, "media", media)
        object.__setattr__(self, "bandwidths", bandwidths)
        object.__setattr__(self, "info", info)
        object.__setattr__(self, "version", version)

    @property
    def direction(self) -> Direction:
        """The session-level direction (the default of every stream)."""
        for a in self.attributes:
            if a.value is None and a.name in DIRECTIONS:
                return a.name
        return "sendrecv"

    def connection_of(self, media: MediaDescription) -> Connection | None:
        return media.connection or self.connection

    def lines(self) -> list[str]:
        info = self.info
        out = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        if info:
            out += [f"{k}={v}" for t in _SESSION_INFO_BEFORE_C for k, v in info if k == t]
        if self.connection is not None:
            out.append(f"c={self.connection}")
        if self.bandwidths:
            out += [f"b={b}" for b in self.bandwidths]
        out += [f"t={start} {stop}" for start, stop in self.times]
        if info:
            out += [f"{k}={v}" for t in _SESSION_INFO_AFTER_T for k, v in info if k == t]
        out += [
            f"a={a.name}" if a.value is None else f"a={a.name}:{a.value}" for a in self.attributes
        ]
        for m in self.media:
            out += m.lines()
        return out

    def __str__(self) -> str:
        return "\r\n".join(self.lines()) + "\r\n"

    def to_bytes(self) -> bytes:
        return str(self).encode("utf-8")


quick_init(SessionDescription)


# --- Parsing ----------------------------------------------------------------


def _parse_ptime(value: str) -> int:
    try:
        ms = float(value)
    except ValueError:
        raise SdpSyntaxError(f"ptime {value!r} is not a number") from None
    if not 0 < ms <= 10_000:
        raise SdpSyntaxError(f"ptime {value!r} is out of range")
    return round(ms)


def _is_digits(text: str) -> bool:
    """``_DIGITS.fullmatch(text)`` (1 to 20 ASCII digits), with string methods: a regular
    expression call costs a few thousand instructions of set-up, more than the scan."""
    return len(text) <= 20 and text.isascii() and text.isdigit()


def _is_token(text: str) -> bool:
    """``_TOKEN.fullmatch(text)``; ASCII letters and digits (a subset of the class:
    media types, payload types) without the regular expression."""
    return (text.isascii() and text.isalnum()) or _TOKEN.fullmatch(text) is not None


_USUAL_PROTOS: Final = frozenset(
    {"RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVPF"}
)
"""Transport protocols that match ``_PROTO`` (checked by a test), taken without it."""


def _parse_origin(value: str) -> Origin:
    parts = value.split(" ")
    if len(parts) != 6:
        raise SdpSyntaxError(f"o={value!r} needs 6 fields")
    user, sid, version, net, addr_type, address = parts
    if not (_is_digits(sid) and _is_digits(version)):
        raise SdpSyntaxError(f"o={value!r}: session id and version must be numbers")
    if not user or net != "IN" or addr_type not in ("IP4", "IP6"):
        raise SdpSyntaxError(f"o={value!r}: expected 'user id version IN IP4|IP6 address'")
    _check_address(addr_type, address, "o=")
    return Origin(user, int(sid), int(version), address, _ADDR_TYPES[addr_type])


@bounded_memo(maxsize=PARSE_CACHE_SIZE)
def _parse_connection(value: str) -> Connection:
    parts = value.split(" ")
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpSyntaxError(f"c={value!r}: expected 'IN IP4|IP6 address'")
    _check_address(parts[1], parts[2], "c=")
    return Connection(parts[2], _ADDR_TYPES[parts[1]])


def _parse_media(value: str) -> MediaDescription:
    parts = value.split(" ")
    if len(parts) < 4 or not all(parts):
        raise SdpSyntaxError(f"m={value!r}: expected 'media port proto format...'")
    media, port_text, proto, *formats = parts
    # The usual line (a port without a count, a known protocol, numeric formats) is
    # checked with string methods; the regular expressions decide anything else.
    count: int | None
    if len(port_text) <= 5 and port_text.isascii() and port_text.isdigit():
        port, count = int(port_text), None  # what _PORT reads from plain digits
    else:
        m = _PORT.fullmatch(port_text)
        if m is None:
            raise SdpSyntaxError(f"m={value!r}: bad media type or port")
        port = int(m.group(1))
        count = int(m.group(2)) if m.group(2) is not None else None
    if not _is_token(media) or port > 65535:
        raise SdpSyntaxError(f"m={value!r}: bad media type or port")
    if proto not in _USUAL_PROTOS and not _PROTO.fullmatch(proto):
        raise SdpSyntaxError(f"m={value!r}: bad transport protocol")
    every = "".join(formats)  # no format is empty (checked above)
    if not (every.isascii() and every.isalnum()) and not all(map(_is_token, formats)):
        raise SdpSyntaxError(f"m={value!r}: bad format list")
    if count == 0:
        raise SdpSyntaxError(f"m={value!r}: port count 0")
    return MediaDescription(media, port, proto, tuple(formats), count)


@bounded_memo(maxsize=PARSE_CACHE_SIZE)
def _parse_attribute(value: str) -> Attribute:
    name, sep, rest = value.partition(":")
    if not _TOKEN.fullmatch(name):
        raise SdpSyntaxError(f"a={value!r}: bad attribute name")
    attribute = Attribute(name, rest if sep else None)
    if name == "rtpmap":
        RtpMap.parse(rest)
    elif name == "ptime" or name == "maxptime":
        _parse_ptime(rest)
    elif name == "fmtp" and not _FMTP.fullmatch(rest):
        raise SdpSyntaxError(f"a={value!r}: expected 'fmtp:FORMAT PARAMETERS'")
    return attribute


def _parse_time(value: str) -> tuple[int, int]:
    parts = value.split(" ")
    if len(parts) != 2 or not (_is_digits(parts[0]) and _is_digits(parts[1])):
        raise SdpSyntaxError(f"t={value!r}: expected 'start stop'")
    return int(parts[0]), int(parts[1])


@dataclass(slots=True, init=False)
class _MediaBuilder:
    description: MediaDescription
    connection: Connection | None = None
    bandwidths: list[str] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)
    info: list[tuple[str, str]] = field(default_factory=list)

    def __init__(
        self,
        description: MediaDescription,
        connection: Connection | None = None,
        bandwidths: list[str] | None = None,
        attributes: list[Attribute] | None = None,
        info: list[tuple[str, str]] | None = None,
    ) -> None:
        self.description = description
        self.connection = connection
        self.bandwidths = [] if bandwidths is None else bandwidths
        self.attributes = [] if attributes is None else attributes
        self.info = [] if info is None else info

    def build(self) -> MediaDescription:
        d = self.description
        return MediaDescription(
            d.media,
            d.port,
            d.proto,
            d.formats,
            d.port_count,
            connection=self.connection,
            bandwidths=tuple(self.bandwidths),
            attributes=tuple(self.attributes),
            info=tuple(sorted(self.info, key=lambda line: "ik".index(line[0]))),
        )


_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
# Control characters other than CR and LF, for a check of the whole text at once.
_CONTROL_NOT_EOL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# The usual body in one match: every line ``x=value`` ended by CRLF, no other control
# character than TAB. Such a text needs none of the per-line checks below.
_WELL_FORMED = re.compile("(?:[a-z]=[^\x00-\x08\x0a-\x1f\x7f]*\r\n)+")


def _split_lines(data: bytes | str) -> list[tuple[str, str]]:
    if len(data) > MAX_SDP_SIZE:
        raise SdpSyntaxError(f"body larger than {MAX_SDP_SIZE} bytes", 413)
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise SdpSyntaxError("not UTF-8 text") from None
    else:
        text = data
    if _WELL_FORMED.fullmatch(text) is not None:
        return [(line[0], line[2:]) for line in text[:-2].split("\r\n")]
    # Usually no line holds a control character: every CR ends a line, nothing
    # else is below 0x20. Then the per-line search can be skipped.
    stray_cr = text.count("\r") - text.count("\r\n") - text.endswith("\r")
    clean = stray_cr == 0 and _CONTROL_NOT_EOL.search(text) is None
    lines: list[tuple[str, str]] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line.strip():
            continue
        if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
            raise SdpSyntaxError(f"line {number} is not 'x=value': {line[:40]!r}")
        if not clean and _CONTROL.search(line) is not None:
            raise SdpSyntaxError(f"line {number} holds control characters")
        lines.append((line[0], line[2:]))
    return lines


def parse_sdp(data: bytes | str) -> SessionDescription:
    """The session description in ``data``; raises SdpSyntaxError (400) if malformed."""
    lines = _split_lines(data)
    if not lines or lines[0] != ("v", "0"):
        raise SdpSyntaxError("the first line must be v=0")
    origin: Origin | None = None
    session_name: str | None = None
    connection: Connection | None = None
    times: list[tuple[int, int]] = []
    attributes: list[Attribute] = []
    bandwidths: list[str] = []
    info: list[tuple[str, str]] = []
    media: list[_MediaBuilder] = []
    for kind, value in lines[1:]:
        if kind == "m":
            media.append(_MediaBuilder(_parse_media(value)))
            continue
        if media:
            current = media[-1]
            if kind not in _MEDIA_TYPES:
                raise SdpSyntaxError(f"{kind}= is not allowed after m=")
            if kind == "c":
                if current.connection is not None:
                    raise SdpSyntaxError("two c= lines in one media description")
                current.connection = _parse_connection(value)
            elif kind == "b":
                current.bandwidths.append(value)
            elif kind == "a":
                current.attributes.append(_parse_attribute(value))
            else:
                current.info.append((kind, value))
            continue
        if kind not in _SESSION_TYPES:
            raise SdpSyntaxError(f"unknown line type {kind}=")
        if kind == "v":
            raise SdpSyntaxError("a second v= line")
        if kind == "o":
            if origin is not None:
                raise SdpSyntaxError("two o= lines")
            origin = _parse_origin(value)
        elif kind == "s":
            if session_name is not None:
                raise SdpSyntaxError("two s= lines")
            session_name = value
        elif kind == "c":
            if connection is not None:
                raise SdpSyntaxError("two session-level c= lines")
            connection = _parse_connection(value)
        elif kind == "t":
            times.append(_parse_time(value))
        elif kind == "b":
            bandwidths.append(value)
        elif kind == "a":
            attributes.append(_parse_attribute(value))
        else:
            info.append((kind, value))
    if origin is None:
        raise SdpSyntaxError("no o= line")
    built = tuple(m.build() for m in media)
    if connection is None and any(m.connection is None for m in built):
        raise SdpSyntaxError("a media stream has no connection address (c=)")
    return SessionDescription(
        origin=origin,
        session_name=session_name if session_name is not None else "-",
        connection=connection,
        times=tuple(times) or ((0, 0),),
        attributes=tuple(attributes),
        media=built,
        bandwidths=tuple(bandwidths),
        info=tuple(sorted(info, key=lambda line: "iueprzk".index(line[0]))),  # RFC order
    )


# --- Offer / answer ---------------------------------------------------------


@dataclass(frozen=True, slots=True, init=False)
class MediaPlan:
    """What was agreed for the audio stream, from our side."""

    codec: Codec
    payload_type: int
    telephone_event: int | None
    remote_address: str
    remote_port: int
    direction: Direction  # ours: "sendonly" means we send and do not receive
    remote_ptime: int | None = None
    stream_index: int = 0  # which m= line

    def __init__(
        self,
        codec: Codec,
        payload_type: int,
        telephone_event: int | None,
        remote_address: str,
        remote_port: int,
        direction: Direction,
        remote_ptime: int | None = None,
        stream_index: int = 0,
    ) -> None:
        object.__setattr__(self, "codec", codec)
        object.__setattr__(self, "payload_type", payload_type)
        object.__setattr__(self, "telephone_event", telephone_event)
        object.__setattr__(self, "remote_address", remote_address)
        object.__setattr__(self, "remote_port", remote_port)
        object.__setattr__(self, "direction", direction)
        object.__setattr__(self, "remote_ptime", remote_ptime)
        object.__setattr__(self, "stream_index", stream_index)

    @property
    def sends(self) -> bool:
        """Whether we should send RTP to the peer."""
        if self.direction not in ("sendrecv", "sendonly") or self.remote_port == 0:
            return False
        try:
            return not ipaddress.ip_address(self.remote_address).is_unspecified
        except ValueError:
            return True  # a host name

    @property
    def receives(self) -> bool:
        return self.direction in ("sendrecv", "recvonly")


quick_init(MediaPlan)


@dataclass(frozen=True, slots=True, init=False)
class Answer:
    """An SDP answer and the plan it agrees to."""

    sdp: SessionDescription
    plan: MediaPlan

    def __init__(self, sdp: SessionDescription, plan: MediaPlan) -> None:
        object.__setattr__(self, "sdp", sdp)
        object.__setattr__(self, "plan", plan)


quick_init(Answer)


def _intersect(theirs_mirrored: Direction, ours: Direction) -> Direction:
    send = theirs_mirrored in ("sendrecv", "sendonly") and ours in ("sendrecv", "sendonly")
    recv = theirs_mirrored in ("sendrecv", "recvonly") and ours in ("sendrecv", "recvonly")
    return (
        "sendrecv" if send and recv else "sendonly" if send else "recvonly" if recv else "inactive"
    )


def _local(
    local_address: str, local_port: int, username: str, session_id: int, session_version: int
) -> tuple[Origin, Connection]:
    connection = Connection.for_address(local_address)
    if not 0 < local_port <= 65535:
        raise LocalProtocolError(f"RTP port {local_port} is out of range", 500)
    if not (0 <= session_id < 1 << 64 and 0 <= session_version < 1 << 64):
        raise LocalProtocolError("SDP session id and version must be 0 <= n < 2^64", 500)
    origin = Origin(username, session_id, session_version, local_address, connection.addr_type)
    return origin, connection


def _audio_attributes(
    codecs: Iterable[tuple[int, Codec]],
    telephone_event: int | None,
    event_fmtp: str | None,
    ptime: int,
    direction: Direction,
) -> tuple[tuple[str, ...], tuple[Attribute, ...]]:
    formats: list[str] = []
    attributes: list[Attribute] = []
    for pt, codec in codecs:
        formats.append(str(pt))
        attributes.append(Attribute("rtpmap", f"{pt} {codec.value}/8000"))
    if telephone_event is not None:
        formats.append(str(telephone_event))
        attributes.append(Attribute("rtpmap", f"{telephone_event} {TELEPHONE_EVENT}/8000"))
        if event_fmtp:
            attributes.append(Attribute("fmtp", f"{telephone_event} {event_fmtp}"))
    attributes.append(Attribute("ptime", str(ptime)))
    attributes.append(Attribute(direction))
    return tuple(formats), tuple(attributes)


def answer_offer(
    offer: SessionDescription,
    *,
    local_address: str,
    local_port: int,
    session_id: int,
    session_version: int,
    codecs: Sequence[Codec] = (Codec.PCMU, Codec.PCMA),
    direction: Direction = "sendrecv",
    ptime: int = 20,
    username: str = "huntgroup",
) -> Answer:
    """Our answer to ``offer``; raises SdpNotAcceptable (488) if no stream fits.

    ``direction`` is what we would like (e.g. ``sendonly`` for music only);
    the answer's direction is that, intersected with the mirror of the offer's.
    """
    origin, connection = _local(local_address, local_port, username, session_id, session_version)
    streams: list[MediaDescription] = []
    plan: MediaPlan | None = None
    for index, m in enumerate(offer.media):
        chosen = None
        if plan is None and m.media == "audio" and m.port != 0 and m.proto == "RTP/AVP":
            chosen = next(((pt, c) for pt, c in m.codecs() if c in codecs), None)
        remote = offer.connection_of(m)
        if chosen is None or remote is None:
            streams.append(MediaDescription(m.media, 0, m.proto, m.formats))
            continue
        ours = _intersect(_MIRROR[m.direction(offer.direction)], direction)
        event = m.telephone_event()
        formats, attributes = _audio_attributes(
            [chosen], event, m.fmtp(event) if event is not None else None, ptime, ours
        )
        streams.append(
            MediaDescription("audio", local_port, "RTP/AVP", formats, attributes=attributes)
        )
        plan = MediaPlan(
            codec=chosen[1],
            payload_type=chosen[0],
            telephone_event=event,
            remote_address=remote.address.split("/", 1)[0],
            remote_port=m.port,
            direction=ours,
            remote_ptime=m.ptime,
            stream_index=index,
        )
    if plan is None:
        names = "/".join(c.value for c in codecs)
        raise SdpNotAcceptable(f"the offer has no RTP/AVP audio stream with {names}")
    sdp = SessionDescription(origin=origin, connection=connection, media=tuple(streams))
    return Answer(sdp, plan)


def make_offer(
    *,
    local_address: str,
    local_port: int,
    session_id: int,
    session_version: int,
    codecs: Sequence[Codec] = (Codec.PCMU, Codec.PCMA),
    telephone_event: int | None = 101,
    direction: Direction = "sendrecv",
    ptime: int = 20,
    username: str = "huntgroup",
) -> SessionDescription:
    """Our own offer: one audio stream with ``codecs`` in order of preference."""
    origin, connection = _local(local_address, local_port, username, session_id, session_version)
    if not codecs:
        raise LocalProtocolError("an offer needs at least one codec", 500)
    if telephone_event is not None and not 96 <= telephone_event <= 127:
        raise LocalProtocolError("telephone-event needs a dynamic payload type (96-127)", 500)
    formats, attributes = _audio_attributes(
        [(c.payload_type, c) for c in codecs], telephone_event, "0-16", ptime, direction
    )
    audio = MediaDescription("audio", local_port, "RTP/AVP", formats, attributes=attributes)
    return SessionDescription(origin=origin, connection=connection, media=(audio,))


def audio_endpoint(sdp: SessionDescription) -> tuple[str, int] | None:
    """Where the first active audio stream of ``sdp`` wants RTP: (address, port).

    None when no audio stream has a port and a connection address; any codec
    counts (a pass-through of media does not need to understand it).
    """
    for m in sdp.media:
        if m.media != "audio" or m.port == 0:
            continue
        conn = sdp.connection_of(m)
        if conn is not None:
            return conn.address.split("/", 1)[0], m.port
    return None


def accept_answer(offer: SessionDescription, answer: SessionDescription) -> MediaPlan:
    """The plan agreed by the peer's ``answer`` to our ``offer``.

    Raises SdpNotAcceptable if the answer breaks RFC 3264 (another number of
    streams) or accepts no audio stream with a G.711 payload type we offered.
    """
    if len(answer.media) != len(offer.media):
        raise SdpNotAcceptable(
            f"the answer has {len(answer.media)} media streams, the offer {len(offer.media)}"
        )
    for index, (ours, theirs) in enumerate(zip(offer.media, answer.media, strict=True)):
        if theirs.media != "audio" or theirs.port == 0 or ours.port == 0:
            continue
        offered = dict(ours.codecs())
        chosen = next(((pt, c) for pt, c in theirs.codecs() if offered.get(pt) is c), None)
        if chosen is None:
            continue
        remote = answer.connection_of(theirs)
        if remote is None:
            continue
        mine = _intersect(
            _MIRROR[theirs.direction(answer.direction)], ours.direction(offer.direction)
        )
        event = theirs.telephone_event()
        return MediaPlan(
            codec=chosen[1],
            payload_type=chosen[0],
            telephone_event=event
            if event is not None and event == ours.telephone_event()
            else None,
            remote_address=remote.address.split("/", 1)[0],
            remote_port=theirs.port,
            direction=mine,
            remote_ptime=theirs.ptime,
            stream_index=index,
        )
    raise SdpNotAcceptable("the answer accepts no audio stream with a codec we offered")
