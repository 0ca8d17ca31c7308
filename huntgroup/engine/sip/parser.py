"""Parsing and framing of SIP messages (RFC 3261 §7, §18.3, §25).

Theory of operation:

- :func:`parse_datagram` parses one UDP datagram. The body is what follows the
  blank line, cut to Content-Length when present (extra octets are ignored, as
  §18.3 requires); a Content-Length larger than what arrived is an error.
- :class:`StreamParser` buffers a TCP byte stream and returns each complete
  message, framed by Content-Length (mandatory on streams). CRLFs between
  messages (RFC 5626 keep-alives) are skipped.
- Both run the same head parser: split on CRLF, unfold continuation lines,
  read the start line, split the list headers on commas, expand compact names,
  then validate the fields the SIP core relies on (Via, From, To, Call-ID,
  CSeq, Max-Forwards, Content-Length, Contact, Route, Record-Route, Expires,
  Date) and the Request-URI. The split also fills the lookup index that
  :class:`Headers` keeps, so validation and later look-ups do not walk the
  fields again; what a header name canonicalises to is memoized.
- Content-Length is framing, not content: it is used to cut the body and then
  dropped from the message's headers; serialisation writes it from the body.

Invariants:

- Any malformed input raises :class:`SipParseError` (a
  ``RemoteProtocolError``) whose ``status`` is the response to send (400, 413,
  416 or 505) and whose ``partial`` holds the headers read so far when the head
  could be split into fields; :func:`error_response` turns that into the
  response. Nothing else is ever raised.
- Size limits (whole message, header count, line length) are checked before
  the work they bound, so a hostile peer cannot make the parser buffer or scan
  without limit. A :class:`StreamParser` that raised stays broken: framing is
  lost and the connection must be closed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from huntgroup.engine.sip.fields import (
    MAX_DELTA_SECONDS,
    parse_call_id,
    parse_cseq,
    parse_date,
    parse_name_address,
    parse_via,
)
from huntgroup.engine.sip.grammar import WSP, bad, is_token, parse_uint, split_list
from huntgroup.engine.sip.headers import LIST_HEADERS, Headers, canonical_name
from huntgroup.engine.sip.message import Message, Request, Response, reason_phrase
from huntgroup.engine.sip.uri import SipUri, Uri, parse_uri
from huntgroup.errors import HuntgroupError, RemoteProtocolError
from huntgroup.memo import bounded_memo

DEFAULT_MAX_MESSAGE_SIZE = 65536
DEFAULT_MAX_HEADERS = 256
DEFAULT_MAX_LINE_LENGTH = 8192
SUPPORTED_REQUEST_SCHEMES = frozenset({"sip", "sips", "tel"})

_VERSION = re.compile(r"SIP/(\d+)\.(\d+)", re.ASCII | re.IGNORECASE)
# (name, lookup key) pairs of the fields _validate_headers checks.
_SINGLE = tuple(
    (name, name.lower())
    for name in ("From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Length", "Expires")
)
_REQUIRED = tuple((name, name.lower()) for name in ("Via", "From", "To", "Call-ID", "CSeq"))
_ADDRESS_LISTS = ("route", "record-route")

Index = dict[str, tuple[str, ...]]
"""Header values by lower-case canonical name, in message order (what Headers looks up)."""


@dataclass(frozen=True, slots=True)
class PartialMessage:
    """What could be read of a malformed message: its start line and headers.

    ``method`` is set for a request, ``status`` for a response (either may be
    None when the start line itself was unreadable).
    """

    start_line: str
    headers: Headers
    method: str | None = None
    status: int | None = None


class SipParseError(RemoteProtocolError):
    """A malformed SIP message. ``status`` is the status to answer with;
    ``partial`` the headers read before the problem, when any."""

    def __init__(
        self, message: str, status: int = 400, *, partial: PartialMessage | None = None
    ) -> None:
        super().__init__(message, status)
        self.partial = partial


@dataclass(frozen=True, slots=True)
class ParserLimits:
    """Bounds on what one message may hold."""

    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_headers: int = DEFAULT_MAX_HEADERS
    max_line_length: int = DEFAULT_MAX_LINE_LENGTH


_DEFAULT_LIMITS = ParserLimits()  # frozen: one for every message parsed without its own


def _wrap(exc: RemoteProtocolError, partial: PartialMessage | None) -> SipParseError:
    if isinstance(exc, SipParseError):
        return exc
    return SipParseError(str(exc), exc.status, partial=partial)


def _check_version(text: str) -> None:
    if text == "SIP/2.0":  # what every peer writes: no regular expression
        return
    match = _VERSION.fullmatch(text)
    if match is None:
        raise bad("Invalid SIP version")
    if (int(match.group(1)), int(match.group(2))) != (2, 0):
        raise RemoteProtocolError(f"Unsupported version {text}", status=505)


@bounded_memo(maxsize=1024)
def _field_name(name: str) -> tuple[str, str, bool] | None:
    """``(canonical name, lookup key, is a list header)`` for a received header
    name (trailing whitespace allowed), or None when it is not a token. Memoized:
    peers send the same few names in every message."""
    name = name.rstrip(WSP)
    if not is_token(name):
        return None
    canon = canonical_name(name)
    key = canon.lower()
    return canon, key, key in LIST_HEADERS


def _unfold(lines: list[str]) -> list[str]:
    """The header lines (after the start line) with continuation lines joined."""
    logical: list[str] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            if not logical:
                raise bad("Continuation line before any header")
            logical[-1] = logical[-1].rstrip(WSP) + " " + line.lstrip(WSP)
        else:
            logical.append(line)
    return logical


def _split_head(
    head: str, limits: ParserLimits
) -> tuple[str, list[tuple[str, str]], Index, RemoteProtocolError | None]:
    """Start line, unfolded ``(name, value)`` lines with list headers split, their
    lookup index, and the first list that could not be split (kept whole,
    reported afterwards so that the error can carry the other headers)."""
    lines = head.split("\r\n")
    if max(map(len, lines)) > limits.max_line_length:
        raise bad("Header line too long")
    # Every CR and LF must belong to a CRLF separator.
    separators = len(lines) - 1
    if head.count("\r") != separators or head.count("\n") != separators:
        raise bad("Bare CR or LF in header section")
    start_line = lines[0]
    folded = "\r\n " in head or "\r\n\t" in head
    logical = _unfold(lines) if folded else lines[1:]
    if len(logical) > limits.max_headers:
        raise bad("Too many header fields")
    items: list[tuple[str, str]] = []
    index: Index = {}
    deferred: RemoteProtocolError | None = None
    append = items.append
    field_name = _field_name
    for line in logical:
        name, colon, value = line.partition(":")
        known = field_name(name)
        if known is None or not colon:
            raise bad("Invalid header line")
        canon, key, is_list = known
        value = value.strip(WSP)
        if is_list and ("," in value or '"' in value):
            values = index.get(key, ())
            try:
                elements = split_list(value)
            except RemoteProtocolError as exc:
                deferred = deferred or bad(f"Invalid {canon}: {exc}")
                elements = [value]
            items.extend([(canon, element) for element in elements])
            index[key] = (*values, *elements)
        else:  # the usual case: one plain element
            append((canon, value))
            before = index.get(key)
            index[key] = (value,) if before is None else (*before, value)
    if len(items) > limits.max_headers:
        raise bad("Too many header fields")
    return start_line, items, index, deferred


_REQUIRED_KEYS = frozenset(key for _, key in _REQUIRED)


def _validate_headers(index: Index) -> None:
    # The usual message has every required field and no field twice: both checked in C
    # (a key set, a count of values); the loops that name the culprit run otherwise.
    if not index.keys() >= _REQUIRED_KEYS:
        for name, key in _REQUIRED:
            if key not in index:
                raise bad(f"Missing {name} header")
    if sum(map(len, index.values())) != len(index):  # some field given more than once
        for name, key in _SINGLE:
            values = index.get(key)
            if values is not None and len(values) > 1:
                raise bad(f"Several {name} headers")
    for value in index["via"]:
        parse_via(value)
    for name, key in (("From", "from"), ("To", "to")):
        try:
            parse_name_address(index[key][0])
        except RemoteProtocolError as exc:
            raise bad(f"Invalid {name}: {exc}") from None
    parse_call_id(index["call-id"][0])
    parse_cseq(index["cseq"][0])
    values = index.get("max-forwards")
    if values is not None:
        value = values[0]
        # 1 to 3 ASCII digits up to 255 is what parse_uint accepts there; anything else
        # goes through it (and its error). String methods, not a regular expression.
        if not (len(value) <= 3 and value.isascii() and value.isdigit()) or int(value) > 255:
            parse_uint(value, what="Max-Forwards", maximum=255)
    values = index.get("expires")
    if values is not None:
        parse_uint(values[0], what="Expires", maximum=MAX_DELTA_SECONDS)
    values = index.get("date")
    if values is not None:
        parse_date(values[0])
    contacts = index.get("contact", ())
    if "*" in contacts:  # values are stripped by _split_head
        if len(contacts) != 1:
            raise bad("Invalid Contact: '*' mixed with addresses")
    else:
        for value in contacts:
            address = parse_name_address(value)
            if "expires" in value.lower():  # else no parameter can be called so
                expires_param = address.param("expires")
                if expires_param is not None:
                    parse_uint(expires_param, what="Contact expires", maximum=MAX_DELTA_SECONDS)
    for key in _ADDRESS_LISTS:
        for value in index.get(key, ()):
            parse_name_address(value)


def _content_length(index: Index) -> int | None:
    values = index.get("content-length")
    if values is None:
        return None
    try:
        return parse_uint(values[0], what="Content-Length", maximum=2**31 - 1)
    except RemoteProtocolError:
        raise bad("Invalid Content-Length") from None


class _Head:
    """A parsed, validated head waiting for its body."""

    __slots__ = ("content_length", "headers", "index", "method", "start_line", "status", "uri")

    def __init__(
        self,
        start_line: str,
        headers: Headers,
        index: Index,
        content_length: int | None,
        *,
        method: str | None = None,
        uri: Uri | None = None,
        status: int | None = None,
    ) -> None:
        self.start_line = start_line
        self.headers = headers
        self.index = index
        self.content_length = content_length
        self.method = method
        self.uri = uri
        self.status = status

    @property
    def partial(self) -> PartialMessage:
        """What an error found after the head (in the body's framing) carries. Take it
        before :meth:`build`: that drops Content-Length from the shared index in place."""
        return PartialMessage(self.start_line, self.headers, self.method, self.status)

    def build(self, body: bytes) -> Message:
        headers = self.headers
        index = self.index
        if "content-length" in index:
            # Content-Length is framing: the message's body length says it. The index
            # is this head's own, and the head is done with once built: changed in place.
            del index["content-length"]
            # one Content-Length at most (_validate_headers)
            headers = headers.without_single("Content-Length", index)
        if self.method is not None and self.uri is not None:
            return Request(method=self.method, uri=self.uri, headers=headers, body=body)
        assert self.status is not None
        line = self.start_line
        reason = line.split(" ", 2)[2] if line.count(" ") >= 2 else ""
        return Response(status=self.status, reason=reason, headers=headers, body=body)


def _parse_head(raw: bytes, limits: ParserLimits) -> _Head:
    head = raw.decode("utf-8", "surrogateescape")
    try:
        start_line, items, index, deferred = _split_head(head, limits)
    except RemoteProtocolError as exc:
        raise _wrap(exc, None) from None
    # Names are tokens (so canonical_name accepts them) and no value holds CR or LF.
    headers = Headers._trusted(tuple(items), index)
    method: str | None = None
    status: int | None = None
    try:
        if deferred is not None:
            method = _best_effort_partial_from(start_line, headers).method
            raise deferred
        if start_line[:4].upper() == "SIP/":
            parts = start_line.split(" ", 2)
            _check_version(parts[0])
            code_text = parts[1] if len(parts) > 1 else ""
            if len(code_text) != 3 or not code_text.isascii() or not code_text.isdigit():
                raise bad("Invalid status code")
            if int(code_text) < 100:
                raise bad("Invalid status code")
            status = int(code_text)
            _validate_headers(index)
            return _Head(start_line, headers, index, _content_length(index), status=status)
        first = start_line.split(" ", 1)[0]
        first_is_token = is_token(first)
        if first_is_token:
            method = first
        parts = start_line.split(" ")
        if len(parts) != 3 or not all(parts):
            raise bad("Invalid Request-Line")
        method_text, uri_text, version = parts
        if not first_is_token:  # method_text is ``first``: checked above
            raise bad("Invalid method")
        method = method_text
        _check_version(version)
        _validate_headers(index)
        try:
            uri = parse_uri(uri_text)
        except RemoteProtocolError:
            raise bad("Invalid Request-URI") from None
        if uri.scheme not in SUPPORTED_REQUEST_SCHEMES:
            raise RemoteProtocolError(f"Unsupported URI scheme {uri.scheme}", status=416)
        if isinstance(uri, SipUri) and uri.headers:
            raise bad("Invalid Request-URI: headers are not allowed")
        if parse_cseq(index["cseq"][0]).method != method:
            raise bad("CSeq method does not match the Request-Line")
        return _Head(start_line, headers, index, _content_length(index), method=method, uri=uri)
    except RemoteProtocolError as exc:
        raise _wrap(exc, PartialMessage(start_line, headers, method, status)) from None


def _best_effort_partial(raw: bytes, limits: ParserLimits) -> PartialMessage | None:
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        return None
    try:
        head = raw[:end].decode("utf-8", "surrogateescape")
        start_line, items, index, _ = _split_head(head, limits)
    except HuntgroupError:
        return None
    headers = Headers._trusted(tuple(items), index)
    return _best_effort_partial_from(start_line, headers)


def _best_effort_partial_from(start_line: str, headers: Headers) -> PartialMessage:
    first = start_line.split(" ", 1)[0]
    method = first if is_token(first) else None
    return PartialMessage(start_line=start_line, headers=headers, method=method)


def _too_large(raw: bytes, limits: ParserLimits) -> SipParseError:
    return SipParseError("Message too large", 413, partial=_best_effort_partial(raw, limits))


def parse_datagram(data: bytes, *, limits: ParserLimits | None = None) -> Message:
    """Parse one message received as a datagram (UDP)."""
    limits = limits or _DEFAULT_LIMITS
    if len(data) > limits.max_message_size:
        raise _too_large(data[: limits.max_message_size], limits)
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        raise SipParseError("Incomplete header section", 400)
    head = _parse_head(data[start:end], limits)
    available = data[end + 4 :]
    if head.content_length is None:
        body = available
    elif head.content_length > len(available):
        raise SipParseError("Content-Length larger than the datagram", 400, partial=head.partial)
    else:
        body = available[: head.content_length]
    return head.build(bytes(body))


class StreamParser:
    """Frames messages out of a byte stream (TCP). Feed bytes, get messages.

    CRLFs between messages are skipped; each double CRLF among them is an RFC
    5626 keep-alive ping (§3.5.1), counted for :meth:`take_pings` so that the
    driver answers it with a single CRLF (the pong).
    """

    __slots__ = ("_buffer", "_crlfs", "_error", "_head", "_head_size", "_pings", "limits")

    def __init__(self, *, limits: ParserLimits | None = None) -> None:
        self.limits = limits or _DEFAULT_LIMITS
        self._buffer = bytearray()
        self._head: _Head | None = None
        self._head_size = 0
        self._error: SipParseError | None = None
        self._crlfs = 0  # CRLFs seen since the last message or ping
        self._pings = 0

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a complete message."""
        return len(self._buffer)

    @property
    def in_message(self) -> bool:
        """True when part of a message is held (more than keep-alive CRLFs)."""
        return self._head is not None or (bool(self._buffer) and self._buffer != b"\r")

    def take_pings(self) -> int:
        """Keep-alive pings (double CRLFs between messages) received since the last call."""
        pings, self._pings = self._pings, 0
        return pings

    def feed(self, data: bytes) -> list[Message]:
        """Add received bytes; return every message now complete, in order.

        Raises :class:`SipParseError` on malformed input; once it has raised,
        every later call raises the same error.
        """
        if self._error is not None:
            raise self._error
        self._buffer += data
        messages: list[Message] = []
        try:
            while True:
                message = self._next()
                if message is None:
                    return messages
                messages.append(message)
        except SipParseError as exc:
            self._error = exc
            raise

    def _next(self) -> Message | None:
        buf = self._buffer
        limits = self.limits
        if self._head is None:
            skip = 0
            while buf.startswith(b"\r\n", skip):
                skip += 2
            if skip:
                del buf[:skip]
                crlfs = self._crlfs + skip // 2
                self._pings += crlfs // 2
                self._crlfs = crlfs % 2
            if not buf or buf == b"\r":
                return None
            self._crlfs = 0  # a message starts
            end = buf.find(b"\r\n\r\n", 0, limits.max_message_size + 4)
            if end < 0:
                if len(buf) > limits.max_message_size:
                    raise _too_large(bytes(buf[: limits.max_message_size]), limits)
                return None
            head = _parse_head(bytes(buf[:end]), limits)
            if head.content_length is None:
                raise SipParseError(
                    "Content-Length is required on stream transports", 400, partial=head.partial
                )
            if end + 4 + head.content_length > limits.max_message_size:
                raise SipParseError("Message too large", 413, partial=head.partial)
            self._head = head
            self._head_size = end + 4
        head = self._head
        assert head.content_length is not None
        total = self._head_size + head.content_length
        if len(buf) < total:
            return None
        body = bytes(buf[self._head_size : total])
        del buf[:total]
        self._head = None
        return head.build(body)


def error_response(error: SipParseError) -> Response | None:
    """The response to send for ``error``, or None when it cannot be formed.

    It needs a request whose Via, From, To, Call-ID and CSeq fields were read;
    they are copied as received (RFC 3261 §8.2.6), with the error text as reason.
    """
    partial = error.partial
    if partial is None or partial.method is None or partial.method == "ACK":
        return None
    items: list[tuple[str, str]] = [("Via", v) for v in partial.headers.get_all("Via")]
    if not items:
        return None
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = partial.headers.get(name)
        if value is None:
            return None
        items.append((name, value))
    reason = str(error).replace("\r", " ").replace("\n", " ")[:120] or reason_phrase(error.status)
    return Response(status=error.status, reason=reason, headers=Headers(items))
