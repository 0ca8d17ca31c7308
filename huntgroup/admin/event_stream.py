"""Server-sent events (text/event-stream): one snapshot to a bounded set of HTTP clients.

Theory of operation
-------------------
:class:`EventStream` serves one ``GET`` endpoint whose response never ends:
each client gets the current snapshot at once (``event: snapshot``, one line
of JSON), then a new one whenever it changes, and a comment line every
``heartbeat`` seconds without a change so that proxies keep the connection.

One task, started with the first client and ended with the last, computes the
snapshot at most every ``interval`` seconds and hands it to every client when
it differs (``key``) from the last one sent. A client that connects gets the
last one, computed afresh when it is older than ``interval``.

Bounds, so that no client can cost the server more than a few kilobytes or
block its event loop:

- at most ``max_clients`` clients at a time; one more gets 503 with
  ``Retry-After``;
- each client has a queue of at most ``max_pending`` events not yet written;
  it fills only while the client's socket does not drain (its own coroutine
  is stuck in ``write``, the kernel and aiohttp buffers full): the client is
  then dropped, its connection aborted. Handing an event out never awaits.
- a client whose connection closed is dropped at the next tick.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from huntgroup.engine.b2bua.connections import ReportThrottle

log = logging.getLogger("huntgroup.admin")

HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",  # nginx: pass each event on at once
}
RETRY_MS = 3000
"""How long a browser waits before it reconnects after a lost stream (the ``retry:`` field)."""
HEARTBEAT = b": keepalive\n\n"
FAILURE_REPORT_INTERVAL = 60.0
"""Seconds between two log lines about snapshots that cannot be computed."""


def event(name: str, data: dict[str, Any]) -> bytes:
    """One server-sent event carrying ``data`` as one line of JSON."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return f"event: {name}\ndata: {text}\n\n".encode()


class _Client:
    __slots__ = ("dropped", "pending", "transport", "wake")

    def __init__(self, transport: asyncio.Transport | None) -> None:
        self.transport = transport
        self.pending: deque[bytes] = deque()
        self.wake = asyncio.Event()
        self.dropped = False


class EventStream:
    """A snapshot pushed to its clients (see the module docstring)."""

    def __init__(
        self,
        produce: Callable[[], dict[str, Any]],
        key: Callable[[dict[str, Any]], object],
        *,
        max_clients: int,
        interval: float = 1.0,
        heartbeat: float = 15.0,
        max_pending: int = 8,
        name: str = "snapshot",
    ) -> None:
        self.produce = produce
        self.key = key
        self.max_clients = max_clients
        self.interval = interval
        self.heartbeat = heartbeat
        self.max_pending = max_pending
        self.name = name
        self.clients: set[_Client] = set()
        self.dropped = 0  # clients dropped: too slow, or gone
        self.refused = 0  # clients refused: max_clients reached
        self._last: bytes | None = None
        self._last_key: object = None
        self._computed_at = float("-inf")
        self._sent_at = 0.0
        self._ticker: asyncio.Task[None] | None = None
        self._closed = False
        self._failures = ReportThrottle(FAILURE_REPORT_INTERVAL)

    # ------------------------------------------------------------- the endpoint
    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET``: the stream (503 when ``max_clients`` are connected)."""
        if self._closed or len(self.clients) >= self.max_clients:
            self.refused += 1
            return web.json_response(
                {"error": "too many event-stream clients"},
                status=503,
                headers={"Retry-After": "10"},
            )
        response = web.StreamResponse(headers=HEADERS)
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        if self._last is None or loop.time() - self._computed_at >= self.interval:
            self._refresh(loop.time())  # before this client joins: it gets it below
        client = _Client(request.transport)
        self.clients.add(client)  # from now on every change is queued for it
        if self._ticker is None or self._ticker.done():
            self._ticker = loop.create_task(self._tick())
        try:
            await response.write(f"retry: {RETRY_MS}\n\n".encode() + (self._last or b""))
            while not client.dropped:
                await client.wake.wait()
                client.wake.clear()
                while client.pending and not client.dropped:
                    await response.write(client.pending.popleft())
        except ConnectionError:
            pass  # the client went (or was dropped): nothing to finish
        finally:
            self._forget(client)
        return response

    # ------------------------------------------------------------ the snapshots
    def _refresh(self, now: float) -> None:
        """Compute the snapshot; hand it to every client if it changed."""
        self._computed_at = now
        try:
            snapshot = self.produce()
            key = self.key(snapshot)
            if self._last is not None and key == self._last_key:
                return
            data = event(self.name, snapshot)
        except Exception as err:  # a bug costs an update, never the stream
            held = self._failures.due(now=now)
            if held is not None:  # one line a minute at most, with a traceback
                log.error(
                    "event stream: the snapshot could not be computed%s",
                    f" ({held} more failure(s) since the last report)" if held else "",
                    exc_info=err,
                )
            return
        self._last, self._last_key = data, key
        self._send(data, now)

    def _send(self, data: bytes, now: float) -> None:
        """Queue ``data`` for every client, dropping those whose queue is full."""
        self._sent_at = now
        for client in list(self.clients):
            if len(client.pending) >= self.max_pending:
                self._drop(client)
            else:
                client.pending.append(data)
                client.wake.set()

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while self.clients:
            await asyncio.sleep(self.interval)
            for client in list(self.clients):
                if client.transport is None or client.transport.is_closing():
                    self._drop(client)
            if not self.clients:
                break
            now = loop.time()
            self._refresh(now)
            if now - self._sent_at >= self.heartbeat:
                self._send(HEARTBEAT, now)

    # -------------------------------------------------------------- the clients
    def _drop(self, client: _Client) -> None:
        """End ``client``'s stream now: its connection is aborted, its coroutine woken."""
        if client.dropped:
            return
        self.dropped += 1
        client.dropped = True
        client.pending.clear()
        self.clients.discard(client)
        if client.transport is not None:
            client.transport.abort()
        client.wake.set()

    def _forget(self, client: _Client) -> None:
        client.dropped = True
        client.pending.clear()
        self.clients.discard(client)

    async def close(self, _app: web.Application | None = None) -> None:
        """End every stream and refuse new ones (the listener stops)."""
        self._closed = True
        for client in list(self.clients):
            self._drop(client)
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
