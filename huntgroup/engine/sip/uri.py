"""SIP, SIPS and tel URIs (RFC 3261 §19.1 and §25.1, RFC 3966).

Theory of operation: :func:`parse_uri` reads one URI as it appears inside
``<...>`` or on the Request-Line and returns a :class:`SipUri`, a
:class:`TelUri`, or an :class:`AbsoluteUri` for any other scheme. Text keeps
its escaped form (``%41`` stays ``%41``): RFC 3261 compares URIs after
unescaping, which :func:`unescape` provides, but a proxy or a B2BUA must be
able to send a URI on unchanged, so the parser never rewrites it.

Invariants:

- ``str(parse_uri(s)) == s`` for every URI this module accepts whose host is
  not written in mixed case (hosts are lower-cased) and whose scheme is lower
  case; in every case ``parse_uri(str(u)) == u``.
- Malformed input raises ``RemoteProtocolError`` (400), nothing else.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from urllib.parse import unquote_to_bytes

from huntgroup.engine.sip.grammar import (
    ALPHANUM,
    Params,
    bad,
    format_params,
    param_lookup,
    set_param,
)
from huntgroup.memo import bounded_memo
from huntgroup.quick_init import quick_init

_MARK = frozenset("-_.!~*'()")
_UNRESERVED = ALPHANUM | _MARK
_USER_CHARS = _UNRESERVED | frozenset("&=+$,;?/%")
_PASSWORD_CHARS = _UNRESERVED | frozenset("&=+$,%")
_PARAM_CHARS = _UNRESERVED | frozenset("[]/:&+$%")
_HEADER_CHARS = _UNRESERVED | frozenset("[]/?:+$%")
_HOST_CHARS = ALPHANUM | frozenset("-.")
_SCHEME_CHARS = ALPHANUM | frozenset("+-.")
_TEL_CHARS = ALPHANUM | frozenset("+-.()*#%")
# Anything printable that cannot end a URI inside a header or Request-Line.
_ABSOLUTE_CHARS = _UNRESERVED | frozenset(";/?:@&=+$,%#[]")


def _check_escapes(text: str, what: str) -> None:
    i = text.find("%")
    while i >= 0:
        digits = text[i + 1 : i + 3]
        if len(digits) != 2 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise bad(f"Invalid {what}: bad %-escape")
        i = text.find("%", i + 3)


def _check_chars(text: str, allowed: frozenset[str], what: str) -> None:
    if any(c not in allowed for c in text):
        raise bad(f"Invalid {what}")
    _check_escapes(text, what)


def unescape(text: str) -> str:
    """Resolve ``%HH`` escapes (UTF-8, invalid bytes kept via surrogateescape)."""
    if "%" not in text:
        return text
    return unquote_to_bytes(text).decode("utf-8", "surrogateescape")


def parse_host(text: str) -> str:
    """Validate a host (hostname, IPv4 or ``[IPv6]``); return it lower-cased."""
    if not text:
        raise bad("Invalid host: empty")
    if text[0] == "[":
        if text[-1] != "]":
            raise bad("Invalid host: unterminated IPv6 reference")
        try:
            ipaddress.IPv6Address(text[1:-1])
        except ValueError:
            raise bad("Invalid host: bad IPv6 address") from None
        return text.lower()
    if any(c not in _HOST_CHARS for c in text):
        raise bad(f"Invalid host {text!r}")
    labels = text[:-1].split(".") if text.endswith(".") else text.split(".")
    if any(not label or label[0] == "-" or label[-1] == "-" for label in labels):
        raise bad(f"Invalid host {text!r}")
    return text.lower()


@bounded_memo()
def parse_hostport(text: str) -> tuple[str, int | None]:
    """``host[:port]`` -> ``(host, port or None)``. Memoized (:mod:`huntgroup.memo`): the
    same few peers (Via sent-by, Contact and Request-URI hosts) come back in every
    message."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise bad("Invalid host: unterminated IPv6 reference")
        host_text, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise bad("Invalid host: junk after IPv6 reference")
        port_text = rest[1:] if rest else None
    else:
        host_text, sep, after = text.partition(":")
        port_text = after if sep else None
    port: int | None = None
    if port_text is not None:
        if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
            raise bad("Invalid port")
        port = int(port_text)
        if port > 65535:
            raise bad("Invalid port")
    return parse_host(host_text), port


def format_hostport(host: str, port: int | None) -> str:
    """``host`` or ``host:port``."""
    return host if port is None else f"{host}:{port}"


@dataclass(frozen=True, slots=True, init=False)
class SipUri:
    """A ``sip:`` or ``sips:`` URI. ``user``/``password`` keep their escapes."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()
    scheme: str = "sip"

    def __init__(
        self,
        host: str,
        user: str | None = None,
        password: str | None = None,
        port: int | None = None,
        params: Params = (),
        headers: tuple[tuple[str, str], ...] = (),
        scheme: str = "sip",
    ) -> None:
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "user", user)
        object.__setattr__(self, "password", password)
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "headers", headers)
        object.__setattr__(self, "scheme", scheme)

    @property
    def secure(self) -> bool:
        """True for ``sips:``."""
        return self.scheme == "sips"

    def param(self, name: str) -> str | None:
        """Value of URI parameter ``name`` (``""`` for a bare name, None if absent)."""
        present, value = param_lookup(self.params, name)
        if not present:
            return None
        return "" if value is None else value

    def has_param(self, name: str) -> bool:
        """True when the URI carries parameter ``name`` (any case)."""
        return param_lookup(self.params, name)[0]

    def with_param(self, name: str, value: str | None = None) -> SipUri:
        """A copy with parameter ``name`` set (bare when ``value`` is None)."""
        return replace(self, params=set_param(self.params, name, value))

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(format_hostport(self.host, self.port))
        out.append(format_params(self.params))
        if self.headers:
            out.append("?" + "&".join(f"{n}={v}" for n, v in self.headers))
        return "".join(out)


quick_init(SipUri)


@dataclass(frozen=True, slots=True)
class TelUri:
    """A ``tel:`` URI (RFC 3966): the number with its parameters."""

    number: str
    params: Params = ()

    @property
    def scheme(self) -> str:
        """Always ``tel``."""
        return "tel"

    @property
    def is_global(self) -> bool:
        """True for a global number (``+`` followed by digits)."""
        return self.number.startswith("+")

    def __str__(self) -> str:
        return "tel:" + self.number + format_params(self.params)


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """A URI with another scheme, kept as opaque text after the colon."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


Uri = SipUri | TelUri | AbsoluteUri


def _parse_uri_params(text: str, what: str) -> Params:
    params: list[tuple[str, str | None]] = []
    for item in text.split(";"):
        name, sep, value = item.partition("=")
        if not name:
            raise bad(f"Invalid {what}: empty URI parameter")
        _check_chars(name, _PARAM_CHARS, what)
        if sep:
            if not value:
                raise bad(f"Invalid {what}: empty URI parameter value")
            _check_chars(value, _PARAM_CHARS, what)
            params.append((name, value))
        else:
            params.append((name, None))
    return tuple(params)


def _parse_sip(scheme: str, text: str) -> SipUri:
    what = "SIP URI"
    user: str | None = None
    password: str | None = None
    rest = text
    if rest.count("@") > 1:
        raise bad(f"Invalid {what}: several '@'")
    if "@" in rest:
        userinfo, _, rest = rest.partition("@")
        user, colon, pw = userinfo.partition(":")
        if not user:
            raise bad(f"Invalid {what}: empty user")
        _check_chars(user, _USER_CHARS, what)
        if colon:
            _check_chars(pw, _PASSWORD_CHARS, what)
            password = pw
    rest, qmark, header_text = rest.partition("?")
    headers: list[tuple[str, str]] = []
    if qmark:
        for item in header_text.split("&"):
            hname, eq, hvalue = item.partition("=")
            if not hname or not eq:
                raise bad(f"Invalid {what}: bad header")
            _check_chars(hname, _HEADER_CHARS, what)
            _check_chars(hvalue, _HEADER_CHARS, what)
            headers.append((hname, hvalue))
    hostport, semi, param_text = rest.partition(";")
    host, port = parse_hostport(hostport)
    params = _parse_uri_params(param_text, what) if semi else ()
    return SipUri(
        host=host,
        user=user,
        password=password,
        port=port,
        params=params,
        headers=tuple(headers),
        scheme=scheme,
    )


def _parse_tel(text: str) -> TelUri:
    number, semi, param_text = text.partition(";")
    if not number or any(c not in _TEL_CHARS for c in number):
        raise bad("Invalid tel URI")
    digits = number[1:] if number.startswith("+") else number
    if not digits:
        raise bad("Invalid tel URI")
    params = _parse_uri_params(param_text, "tel URI") if semi else ()
    return TelUri(number=number, params=params)


@bounded_memo()
def parse_uri(text: str) -> Uri:
    """Parse one URI (no surrounding ``<>``, no whitespace). Memoized (:mod:`huntgroup.memo`)."""
    scheme, colon, rest = text.partition(":")
    if not colon or not scheme or not scheme[0].isalpha():
        raise bad("Invalid URI: no scheme")
    if any(c not in _SCHEME_CHARS for c in scheme):
        raise bad("Invalid URI scheme")
    lower = scheme.lower()
    if lower in ("sip", "sips"):
        return _parse_sip(lower, rest)
    if lower == "tel":
        return _parse_tel(rest)
    if not rest or any(c not in _ABSOLUTE_CHARS for c in rest):
        raise bad("Invalid URI")
    return AbsoluteUri(scheme=lower, rest=rest)
