"""Who may hold the admin listener's connections: caps per source and a deadline for a head.

Theory of operation
-------------------
A slow client ("slowloris") opens connections and sends a request head a byte
at a time, or never finishes it: aiohttp waits for it, so 64 such connections
would take every slot of ``server.admin.max_connections`` and a liveness probe
of ``/healthz`` would be refused (and the node restarted). Each accepted
connection goes through a :class:`GuardedConnection`, which wraps aiohttp's
protocol and:

- is closed at once when the cap is reached, when its source address (not a
  loopback one) already holds :func:`per_source_cap` connections (a quarter of
  the cap, at least 2), so one host cannot take them all, or when only the
  slots reserved for loopback sources (an eighth of the cap) are left, so a
  probe on the machine still gets in;
- is closed when its first request head (up to the blank line) has not
  arrived within :data:`HEAD_DEADLINE` seconds of the accept; later requests
  on a kept-alive connection are bounded by aiohttp's keep-alive timeout.

The listener counts refusals. Every method of the
protocol is forwarded to aiohttp's, whose handler registers itself as usual.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter
from collections.abc import Callable
from typing import cast

HEAD_DEADLINE = 10.0
"""Seconds a new connection has to send its first complete request head."""
END_OF_HEAD = b"\r\n\r\n"


def per_source_cap(max_connections: int) -> int:
    """Connections one source address (not a loopback one) may hold at once."""
    return min(max_connections, max(2, max_connections // 4))


def reserved_for_loopback(max_connections: int) -> int:
    """Slots of the cap only loopback sources may take (a probe on the machine)."""
    return max_connections // 8


def is_loopback_source(source: str) -> bool:
    try:
        return ipaddress.ip_address(source.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class Admission:
    """Whether one more connection may open, by source address (module docstring).

    Loopback sources (probes, a reverse proxy on the machine, ``huntgroup ctl``) are
    spared the per-source cap, which would make one of every client behind a local
    proxy, and they alone may take the last :func:`reserved_for_loopback` slots.
    """

    def __init__(self, max_connections: int) -> None:
        self.max_connections = max_connections
        self.per_source = per_source_cap(max_connections)
        self.reserved = reserved_for_loopback(max_connections)
        self.trusted: Callable[[str], bool] = is_loopback_source
        self._open: Counter[str] = Counter()

    def take(self, source: str, total: int) -> str | None:
        """Count a connection from ``source`` while ``total`` are open; or why not."""
        if self.trusted(source):
            if total >= self.max_connections:
                return "cap"
        elif total >= self.max_connections - self.reserved:
            return "reserved"
        elif self._open[source] >= self.per_source:
            return "per_source"
        self._open[source] += 1
        return None

    def give_back(self, source: str) -> None:
        self._open[source] -= 1
        if self._open[source] <= 0:
            del self._open[source]


class GuardedConnection(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the cap per source and the deadline."""

    def __init__(
        self,
        inner: asyncio.Protocol,
        admission: Admission,
        total: Callable[[], int],
        deadline: float,
        refused: Callable[[str], None],
    ) -> None:
        self._inner = inner
        self._admission = admission
        self._total = total
        self._deadline = deadline
        self._refused = refused
        self._source: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""  # the head's last bytes so far, to find its end across reads
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        source = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        why = self._admission.take(source, self._total())
        if why is not None:
            self._refused(why)
            transport.close()
            return
        self._source = source
        self._transport = cast(asyncio.Transport, transport)
        self._timer = asyncio.get_running_loop().call_later(self._deadline, self._too_slow)
        self._inner.connection_made(transport)

    def _too_slow(self) -> None:
        self._timer = None
        self._refused("head_deadline")
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            seen = self._tail + data
            if END_OF_HEAD in seen:
                self._timer.cancel()
                self._timer = None
                self._tail = b""
            else:
                self._tail = seen[-(len(END_OF_HEAD) - 1) :]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._source is None:
            return  # refused: aiohttp never saw it
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._admission.give_back(self._source)
        self._source = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()
