"""TCP and TLS connection bookkeeping: caps per source and in total, and the
descriptor budget that keeps media working (docs/security.md, "Connection
exhaustion").

Theory of operation
-------------------
Every TCP or TLS connection holds a file descriptor, and so does every RTP
port the media engine binds. Without a bound, idle connections use up the
process's open-files limit (RLIMIT_NOFILE) and RTP sockets can no longer be
created: calls lose their audio. So:

- :func:`connection_budget` says how many connections the process may hold:
  what the open-files limit leaves once every RTP port of
  ``server.media.rtp_ports`` and :data:`RESERVED_DESCRIPTORS` (listening
  sockets, logs, Redis, resolver threads, audio files...) are set aside. A
  configured ``server.connections.max_total`` that does not fit is refused
  at start with :class:`ResourceLimitError`, which says what to change.
- :class:`ConnectionLimiter` counts open connections in total (both
  directions) and accepted ones per source (an IPv4 address, or the /64 of
  an IPv6 address: one host owns a whole /64). A connection beyond a cap is
  refused; the driver closes it at once. Accepted connections may hold at
  most ``max_total - outgoing_reserve``: the last ``outgoing_reserve``
  places are for connections the server opens itself (to the upstream, to
  TCP/TLS members), so a flood of incoming connections cannot stop calls
  from reaching their members.
- :class:`ReportThrottle` keeps a log line an attacker can trigger to one per
  interval, with the count of those it held back.

Invariants: pure bookkeeping, no clock (``now`` is passed in) and no socket;
the per-source table holds only sources with an open connection, so it never
has more entries than the cap on accepted connections; accepted connections
never number more than ``max_total - outgoing_reserve``, and all of them
together never more than ``max_total``.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from huntgroup.errors import HuntgroupError

RESERVED_DESCRIPTORS = 64
"""Descriptors never given to connections nor RTP: listening sockets, stdio, logs,
Redis, the resolver's threads, audio files being read, the event loop's own."""

MIN_CONNECTIONS = 16
"""The fewest TCP/TLS connections a node must be able to hold to start."""

Refusal = Literal["per-source", "total"]


class ResourceLimitError(HuntgroupError):
    """The process's limits cannot hold what the configuration asks for."""


def connection_budget(
    open_files: int, *, rtp_ports: int, max_total: int | None, outgoing_reserve: int = 0
) -> int:
    """How many TCP/TLS connections the process may hold at once (both directions).

    ``open_files`` is the open-files limit (RLIMIT_NOFILE, soft, once raised),
    ``rtp_ports`` the size of the RTP port range (one socket each at most),
    ``max_total`` the configured cap (None: all that is left) and
    ``outgoing_reserve`` the places within it kept for connections the server
    opens. Raises :class:`ResourceLimitError` when the cap, or the reserve plus
    :data:`MIN_CONNECTIONS` accepted ones, does not fit beside the media's sockets.
    """
    available = open_files - rtp_ports - RESERVED_DESCRIPTORS
    fix = (
        "raise the hard open-files limit (ulimit -Hn; LimitNOFILE= in a systemd unit), "
        "narrow server.media.rtp_ports"
    )
    wanted = outgoing_reserve + MIN_CONNECTIONS if max_total is None else max_total
    if wanted > available:
        if max_total is not None:
            what = f"server.connections.max_total ({max_total})"
            lower = ", or lower server.connections.max_total"
        else:
            what = (
                f"the minimum of {MIN_CONNECTIONS} TCP/TLS connections plus "
                f"server.connections.outgoing_reserve ({outgoing_reserve})"
            )
            lower = ", or lower server.connections.outgoing_reserve"
        raise ResourceLimitError(
            f"{what} does not fit in the open-files limit: {open_files} descriptors - "
            f"{rtp_ports} RTP ports (server.media.rtp_ports) - {RESERVED_DESCRIPTORS} reserved "
            f"leave {max(available, 0)} for connections; {fix}{lower}"
        )
    if max_total is not None and max_total <= outgoing_reserve:
        raise ResourceLimitError(
            f"server.connections.max_total ({max_total}) leaves no place for incoming "
            f"connections beside server.connections.outgoing_reserve ({outgoing_reserve}); "
            "raise max_total or lower outgoing_reserve"
        )
    return wanted if max_total is not None else available


def source_of(host: str) -> str:
    """The source a connection from ``host`` counts against: the IPv4 address, or
    the /64 network of an IPv6 address (an IPv4-mapped one counts as IPv4)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class ConnectionLimiter:
    """Open TCP/TLS connections: in total (both directions), accepted ones in total
    (at most ``max_total - outgoing_reserve``) and per source."""

    __slots__ = (
        "_by_source",
        "accepted",
        "max_per_source",
        "max_total",
        "open",
        "outgoing_reserve",
    )

    def __init__(self, *, max_per_source: int, max_total: int, outgoing_reserve: int = 0) -> None:
        if max_per_source < 1 or max_total < 1:
            raise ValueError("caps must be at least 1")
        if not 0 <= outgoing_reserve < max_total:
            raise ValueError("outgoing_reserve must leave a place for accepted connections")
        self.max_per_source = max_per_source
        self.max_total = max_total
        self.outgoing_reserve = outgoing_reserve
        self.open = 0
        self.accepted = 0
        self._by_source: dict[str, int] = {}

    @property
    def max_accepted(self) -> int:
        """The cap on accepted connections: the total cap less the outgoing reserve."""
        return self.max_total - self.outgoing_reserve

    def accept(self, source: str) -> Refusal | None:
        """A connection from ``source`` arrived: None when it is taken (counted), else why
        it is refused (not counted)."""
        if self.open >= self.max_total or self.accepted >= self.max_accepted:
            return "total"
        held = self._by_source.get(source, 0)
        if held >= self.max_per_source:
            return "per-source"
        self._by_source[source] = held + 1
        self.accepted += 1
        self.open += 1
        return None

    def connect(self) -> bool:
        """We want to open a connection: True when it fits (counted). Accepted
        connections never take the last ``outgoing_reserve`` places."""
        if self.open >= self.max_total:
            return False
        self.open += 1
        return True

    def release(self, source: str | None) -> None:
        """A connection counted by :meth:`accept` (``source``) or :meth:`connect` (None)
        is closed."""
        self.open = max(self.open - 1, 0)
        if source is None:
            return
        self.accepted = max(self.accepted - 1, 0)
        held = self._by_source.get(source, 0) - 1
        if held > 0:
            self._by_source[source] = held
        else:
            self._by_source.pop(source, None)

    def held_by(self, source: str) -> int:
        return self._by_source.get(source, 0)

    @property
    def sources(self) -> int:
        """Sources with at least one accepted connection open."""
        return len(self._by_source)


class ReportThrottle:
    """At most one report per ``interval`` seconds; the reports held back are counted."""

    __slots__ = ("_next", "held_back", "interval")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next: float | None = None
        self.held_back = 0

    def due(self, *, now: float) -> int | None:
        """None when this report must be held back; else how many were held back since
        the last one (the report is then made, and the count restarts)."""
        if self._next is not None and now < self._next:
            self.held_back += 1
            return None
        self._next = now + self.interval
        held, self.held_back = self.held_back, 0
        return held
