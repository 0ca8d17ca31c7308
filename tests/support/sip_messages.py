"""What a test peer received, or a SIPp log recorded: one view of a SIP message.

Theory of operation: :func:`parse_message` reads the bytes with huntgroup's own
parser (:func:`huntgroup.engine.sip.parse_datagram`: compact names expanded,
folded lines joined, list headers split, body cut to Content-Length). A message
the parser refuses but whose head it could split (a SIPp log excerpt without
From or To, say) is still read, from the headers the parse error carries: the
tests look at what a peer sent, they do not validate it. :class:`SipMessage`
gives the accessors the tests assert on (``method``, ``status``, ``header``,
``call_id``, ``cseq``, ``tag``...), with ``source`` (the UDP sender) or ``time``
and ``direction`` (a SIPp log entry) beside the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from huntgroup.engine.sip import (
    Headers,
    SipParseError,
    canonical_name,
    parse_cseq,
    parse_datagram,
    parse_name_address,
)
from huntgroup.engine.sip.headers import LIST_HEADERS

Direction = Literal["sent", "received"]


@dataclass(frozen=True, slots=True)
class SipMessage:
    """One SIP message as a test sees it: start line, headers, body (text)."""

    start: str
    headers: Headers
    body: str
    source: tuple[str, int] | None = None  # who sent it (a datagram received by a test phone)
    time: float = 0.0  # seconds since the epoch (a SIPp log's local-time stamp)
    direction: Direction = "received"

    @property
    def is_request(self) -> bool:
        return not self.start.startswith("SIP/2.0")

    @property
    def method(self) -> str | None:
        """The request method, or None for a response."""
        return self.start.split(" ", 1)[0] if self.is_request else None

    @property
    def status(self) -> int | None:
        """The response status, or None for a request."""
        return None if self.is_request else int(self.start.split(" ", 2)[1])

    @property
    def request_uri(self) -> str | None:
        return self.start.split(" ")[1] if self.is_request else None

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (any case, compact form too), None when absent.

        The values of a list header (Via, Supported...) come back joined by
        commas, as one header line would hold them.
        """
        values = self.headers.get_all(name)
        if not values:
            return None
        return ", ".join(values) if canonical_name(name).lower() in LIST_HEADERS else values[0]

    def headers_named(self, name: str) -> list[str]:
        """Every value of header ``name``: one per line, list headers split on commas."""
        return self.headers.get_all(name)

    all = headers_named

    @property
    def call_id(self) -> str:
        return self.header("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        cseq = parse_cseq(self.header("CSeq") or "")
        return cseq.number, cseq.method

    @property
    def cseq_method(self) -> str:
        """The method of the CSeq, "" when there is none."""
        cseq = self.header("CSeq") or ""
        return cseq.split()[-1] if cseq else ""

    def tag(self, name: str) -> str | None:
        """The tag parameter of the From or To header ``name``."""
        value = self.header(name)
        return None if value is None else parse_name_address(value).tag

    def __str__(self) -> str:
        return f"{self.direction} {self.start}"


def parse_message(
    data: bytes,
    *,
    source: tuple[str, int] | None = None,
    time: float = 0.0,
    direction: Direction = "received",
) -> SipMessage:
    """``data`` (one whole message) read by huntgroup's parser.

    Raises :class:`SipParseError` only when not even the head can be split
    into header fields.
    """
    try:
        message = parse_datagram(data)
    except SipParseError as exc:
        if exc.partial is None:
            raise
        headers = exc.partial.headers
        rest = data.partition(b"\r\n\r\n")[2]
        length = headers.get("Content-Length")
        body = rest[: int(length)] if length is not None and length.isdigit() else rest
    else:
        headers, body = message.headers, message.body
    start = data.lstrip(b"\r\n").partition(b"\r\n")[0].decode("utf-8", "replace")
    return SipMessage(
        start=start.strip(),
        headers=headers,
        body=body.decode("utf-8", "replace"),
        source=source,
        time=time,
        direction=direction,
    )
