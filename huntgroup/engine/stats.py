"""Operating counters of a running server, as one log line an operator can read or grep.

Theory of operation
-------------------
The B2BUA counts what happens to SIP (:class:`SipCounters`: messages in,
those refused as malformed, requests the network could not deliver, calls
taken in, bridged); the media engine counts RTP (music packets
sent, packets relayed, packets dropped for a bad header, an unexpected
source or an idle port, send errors). :func:`stats_line` puts them, with
the gauges of the moment (calls, queued callers, media sessions, RTP ports
in use, registered contacts, open transactions), on one ``key=value`` line.

The server logs that line every :data:`INTERVAL` seconds when a counter
moved, on ``SIGUSR1`` at once, and when it stops. Counters only grow; they
restart at zero with the process.
"""

from __future__ import annotations

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
    overload_refused: int = 0  # new INVITEs refused (503) while the node was saturated
    flood_refused: int = 0  # INVITEs/REGISTERs over their source's rate (503)
    flood_dropped: int = 0  # ... past twice that rate: no answer
    session_refreshes: int = 0  # session refreshes we sent (RFC 4028)
    sessions_expired: int = 0  # calls ended: no refresh in time, or our refresh failed
    max_duration_ended: int = 0  # calls ended by server.calls.max_duration


def stats_line(gauges: dict[str, int], *counters: Any) -> str:
    """``gauges`` (values of the moment), then each counters dataclass, as key=value pairs."""
    fields: dict[str, int] = dict(gauges)
    for group in counters:
        fields.update(asdict(group))
    return " ".join(f"{name}={value}" for name, value in fields.items())
