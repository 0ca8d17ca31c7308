"""Telling systemd how the server is doing: the sd_notify protocol, spoken directly.

Theory of operation
-------------------
Under a ``Type=notify`` unit, systemd passes ``$NOTIFY_SOCKET``: the address of a
Unix datagram socket, a path (``/run/systemd/notify``) or, starting with ``@``, a
name in Linux's abstract namespace. Each message is one datagram of
newline-separated ``KEY=VALUE`` assignments (sd_notify(3)); no library is needed.
The server sends:

- ``READY=1`` once every listener is open, so ``systemctl start`` returns (and units
  ordered after it start) only when SIP is answered;
- ``STATUS=…`` (``3 call(s), 1 queued``), shown by ``systemctl status``, when it
  changes (looked at every :data:`STATUS_INTERVAL` seconds, or at each watchdog
  ping when those come sooner);
- ``STOPPING=1`` when draining begins (SIGTERM);
- ``RELOADING=1`` with ``MONOTONIC_USEC`` when a SIGHUP reload begins, ``READY=1``
  once it is done (what ``Type=notify-reload``, systemd 253, expects);
- ``WATCHDOG=1`` every half of ``$WATCHDOG_USEC`` (set by ``WatchdogSec=``), when
  ``$WATCHDOG_PID`` is unset or ours. The ping is a callback of the event loop: a
  loop stuck in a callback stops pinging, and systemd kills and restarts the
  service — the very failure the watchdog is there for.

Without ``$NOTIFY_SOCKET`` (not under systemd) :class:`Notifier` does nothing.
A send never blocks nor fails the server: the socket is non-blocking, and an error
is logged once (debug afterwards). Unsupported addresses (``vsock:``) are logged
and ignored.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger("huntgroup.systemd")

STATUS_INTERVAL = 5.0
"""Seconds between two checks of the ``STATUS=`` text (sent only when it changed)."""


def socket_address(value: str) -> str | bytes | None:
    """The ``socket.sendto`` address of ``$NOTIFY_SOCKET`` ``value``: a path, or the
    abstract name (``@name`` → ``b"\\0name"``); None when it is neither."""
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


def message(fields: Mapping[str, str]) -> bytes:
    """One notification: ``KEY=VALUE`` lines (a value's line breaks become spaces, the
    protocol has no escape)."""
    lines = []
    for key, value in fields.items():
        if not key or not key.isupper() or "=" in key:
            raise ValueError(f"bad sd_notify field name {key!r}")
        lines.append(f"{key}={' '.join(value.splitlines())}")
    return ("\n".join(lines) + "\n").encode()


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between two ``WATCHDOG=1`` (half of ``$WATCHDOG_USEC``), or None when
    there is no watchdog for this process."""
    usec = environ.get("WATCHDOG_USEC", "")
    owner = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and (not owner.isdigit() or int(owner) != pid):
        return None
    return int(usec) / 2 / 1_000_000


def status_line(gauges: Mapping[str, int], *, draining: bool) -> str:
    """The ``STATUS=`` text: calls in progress, callers queued, whether draining."""
    line = f"{gauges.get('calls_active', 0)} call(s), {gauges.get('queued', 0)} queued"
    return f"draining: {line}" if draining else line


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds (``MONOTONIC_USEC=``, with ``RELOADING=1``)."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """The server's side of sd_notify; every method is a no-op when not under systemd."""

    def __init__(self, address: str | bytes | None, *, watchdog: float | None = None) -> None:
        self.address = address
        self.watchdog = watchdog if address is not None else None
        self._sock: socket.socket | None = None
        self._failed = False
        self._status = ""
        self._handle: asyncio.TimerHandle | None = None
        if address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, *, pid: int | None = None
    ) -> Notifier:
        """The notifier ``$NOTIFY_SOCKET`` and ``$WATCHDOG_USEC``/``$WATCHDOG_PID`` ask for."""
        env = os.environ if environ is None else environ
        value = env.get("NOTIFY_SOCKET", "")
        address = socket_address(value) if value else None
        if value and address is None:
            log.warning("NOTIFY_SOCKET=%s: unsupported address, systemd is not told", value)
        interval = watchdog_interval(env, os.getpid() if pid is None else pid)
        return cls(address, watchdog=interval)

    @property
    def active(self) -> bool:
        return self._sock is not None

    def send(self, **fields: str) -> None:
        """Send ``KEY=VALUE`` fields in one datagram (nothing when not under systemd)."""
        if self._sock is None or self.address is None:
            return
        try:
            self._sock.sendto(message(fields), self.address)
        except OSError as err:
            level = logging.DEBUG if self._failed else logging.WARNING
            log.log(level, "could not notify systemd (%s): %s", ", ".join(fields), err)
            self._failed = True

    def ready(self, status: str = "") -> None:
        self.send(READY="1", **({"STATUS": status} if status else {}))
        self._status = status or self._status

    def stopping(self, status: str = "draining") -> None:
        self.send(STOPPING="1", STATUS=status)
        self._status = status

    async def reload(self, work: Awaitable[T]) -> T:
        """``RELOADING=1`` (with ``MONOTONIC_USEC``), ``work`` (the reload), then
        ``READY=1`` again, whatever the reload's outcome; returns what ``work`` did."""
        self.send(RELOADING="1", MONOTONIC_USEC=str(monotonic_usec()), STATUS="reloading")
        try:
            return await work
        finally:
            self.send(READY="1", STATUS=self._status or "ready")

    def status(self, text: str) -> None:
        """``STATUS=text``, when it differs from the last one sent."""
        if text != self._status:
            self._status = text
            self.send(STATUS=text)

    def start(self, loop: asyncio.AbstractEventLoop, status: Callable[[], str]) -> None:
        """Ping the watchdog (if any) and refresh ``STATUS=`` from the event loop, every
        half watchdog interval or :data:`STATUS_INTERVAL` seconds, the shorter."""
        if self._sock is None:
            return
        period = min(STATUS_INTERVAL, self.watchdog or STATUS_INTERVAL)

        def tick() -> None:
            self._handle = loop.call_later(period, tick)  # first: nothing below stops it
            if self.watchdog is not None:
                self.send(WATCHDOG="1")
            try:
                self.status(status())
            except Exception:  # a bug in the status line must not stop the pings
                log.exception("systemd: the STATUS= line failed")

        tick()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
