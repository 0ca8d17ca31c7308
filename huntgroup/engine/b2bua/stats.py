"""Operating counters of a running server, as one log line an operator can read or grep.

Theory of operation
-------------------
The B2BUA counts what happens to SIP (:class:`SipCounters`: messages in,
those refused as malformed, requests the network could not deliver, calls
taken in, bridged); the media engine counts RTP (music packets
sent, packets relayed, packets dropped for a bad header, an unexpected
source or an idle port, send errors); the server counts TCP and TLS
connections (:class:`ConnectionCounters`: taken in, refused by a cap, closed
by a deadline, keep-alives answered, responses whose connection was gone).
:func:`stats_line` puts them, with
the gauges of the moment (calls, queued callers, media sessions, RTP ports
in use, registered contacts, open transactions, connections), on one
``key=value`` line.

:class:`SipTraffic` counts the SIP messages themselves, for ``/metrics``:
requests received and sent by method, responses received and sent by status
code. Each is one dict increment where every message passes (received: once
parsed, :meth:`B2BUA._receive`, or refused from its bytes by
:func:`~huntgroup.engine.b2bua.shedding.quick_shed`; sent: :meth:`Context.send`
and the stateless 503 of ``quick_shed``), retransmissions included. The keys
are bounded: a method outside the known ones counts as :data:`OTHER_METHOD`,
a status outside 100-699 as :data:`OTHER_STATUS`.

The server logs that line every :data:`INTERVAL` seconds when a counter
moved, on ``SIGUSR1`` at once, and when it stops. Counters only grow; they
restart at zero with the process.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

INTERVAL = 60.0
"""Seconds between two periodic stats lines (skipped when nothing moved)."""


@dataclass(slots=True)
class SipCounters:
    messages_in: int = 0
    malformed: int = 0  # refused by the parser (400 sent when a response could be formed)
    undeliverable: int = 0  # requests failed by an ICMP error or a refused connection
    invites: int = 0  # INVITEs that would start a call
    calls: int = 0  # of those, taken in as calls (feature codes included); others refused
    over_limits: int = 0  # of the refused, those refused by server.limits (503)
    bridged: int = 0  # calls connected to a member, a forward target or the upstream
    request_errors: int = 0  # requests whose handling failed: answered 400 or 500 anyway
    internal_errors: int = 0  # of all inputs, those that hit a bug (one WARNING line each)
    auth_failures: int = 0  # wrong digest answers, unknown usernames, another line's credentials
    auth_lockouts: int = 0  # sources or lines locked out by server.auth (a WARNING line each)
    auth_locked_out: int = 0  # requests refused (503) while their source or line was locked out
    overload_refused: int = 0  # new INVITEs refused (503) while the node was saturated
    flood_refused: int = 0  # INVITEs/REGISTERs over their source's rate (503)
    flood_dropped: int = 0  # ... past twice that rate: no answer
    session_refreshes: int = 0  # session refreshes we sent (RFC 4028)
    sessions_expired: int = 0  # calls ended: no refresh in time, or our refresh failed
    max_duration_ended: int = 0  # calls ended by server.calls.max_duration


@dataclass(slots=True)
class ConnectionCounters:
    """TCP and TLS connections (docs/security.md, "Connection exhaustion")."""

    conn_accepted: int = 0  # connections taken in (within the caps)
    conn_refused_source: int = 0  # closed at once: server.connections.max_per_source reached
    conn_refused_total: int = 0  # closed at once (or not opened): the total cap reached
    conn_message_timeouts: int = 0  # closed: a message incomplete after message_timeout
    conn_idle_timeouts: int = 0  # closed: nothing received for idle_timeout
    conn_write_overflows: int = 0  # closed: the peer did not read what we sent
    keepalive_pongs: int = 0  # RFC 5626 CRLF keep-alives answered
    responses_dropped: int = 0  # responses whose TCP/TLS connection was gone (never reopened)


OTHER_METHOD = "other"
"""The key of every request method outside the known ones."""
OTHER_STATUS = 0
"""The key of every status code outside 100-699."""


class SipTraffic:
    """SIP messages in and out, by method and by status code (see the module docstring)."""

    __slots__ = ("requests_in", "requests_out", "responses_in", "responses_out")

    def __init__(self, methods: Iterable[str]) -> None:
        known = sorted(set(methods))
        self.requests_in: dict[str, int] = dict.fromkeys([*known, OTHER_METHOD], 0)
        self.requests_out: dict[str, int] = dict.fromkeys([*known, OTHER_METHOD], 0)
        self.responses_in: dict[int, int] = {}
        self.responses_out: dict[int, int] = {}

    def request_in(self, method: str) -> None:
        counts = self.requests_in
        counts[method if method in counts else OTHER_METHOD] += 1

    def request_out(self, method: str) -> None:
        counts = self.requests_out
        counts[method if method in counts else OTHER_METHOD] += 1

    def response_in(self, status: int) -> None:
        key = status if 100 <= status <= 699 else OTHER_STATUS
        self.responses_in[key] = self.responses_in.get(key, 0) + 1

    def response_out(self, status: int) -> None:
        key = status if 100 <= status <= 699 else OTHER_STATUS
        self.responses_out[key] = self.responses_out.get(key, 0) + 1


def stats_line(gauges: dict[str, int], *counters: Any) -> str:
    """``gauges`` (values of the moment), then each counters dataclass, as key=value pairs."""
    fields: dict[str, int] = dict(gauges)
    for group in counters:
        fields.update(asdict(group))
    return " ".join(f"{name}={value}" for name, value in fields.items())
