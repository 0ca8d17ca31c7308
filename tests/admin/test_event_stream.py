"""The server-sent-events machinery on its own: first snapshot at once, a new one only on a
change, heartbeats, the client bound, and a client that reads nothing dropped without
slowing the others (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from huntgroup.admin.event_stream import EventStream
from tests.support.sse import next_event, next_snapshot
from tests.support.waiting import async_wait_until


class Source:
    """A snapshot the test changes, counting how often the stream computed it."""

    def __init__(self) -> None:
        self.value: dict[str, Any] = {"n": 0, "pad": ""}
        self.computed = 0

    def produce(self) -> dict[str, Any]:
        self.computed += 1
        return dict(self.value)


Body = Callable[[EventStream, Source, str], Awaitable[None]]


def _run(body: Body, **options: Any) -> None:
    async def scenario() -> None:
        source = Source()
        stream = EventStream(source.produce, lambda s: s, **options)
        app = web.Application()
        app.router.add_get("/events", stream.handle)
        app.on_shutdown.append(stream.close)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        try:
            await body(stream, source, f"http://{host}:{port}/events")
        finally:
            await runner.cleanup()  # on_shutdown ends the streams: no wait for them

    asyncio.run(scenario())


def test_the_first_snapshot_at_once_then_one_per_change() -> None:
    async def body(stream: EventStream, source: Source, url: str) -> None:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/event-stream"
            assert await next_snapshot(response) == {"n": 0, "pad": ""}
            # computed again and again, unchanged: nothing is sent
            await async_wait_until(lambda: source.computed >= 4, timeout=30)
            source.value["n"] = 1
            assert await next_snapshot(response) == {"n": 1, "pad": ""}

    _run(body, max_clients=4, interval=0.02)


def test_a_heartbeat_comment_when_nothing_changes() -> None:
    async def body(stream: EventStream, source: Source, url: str) -> None:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            await next_snapshot(response)
            event = await next_event(response)
            assert (event.name, event.data) == (":", "keepalive")

    _run(body, max_clients=4, interval=0.02, heartbeat=0.1)


def test_clients_beyond_the_bound_get_503() -> None:
    async def body(stream: EventStream, source: Source, url: str) -> None:
        async with aiohttp.ClientSession() as session, session.get(url) as first:
            await next_snapshot(first)
            async with session.get(url) as second:
                assert second.status == 503 and second.headers["Retry-After"]
            assert stream.refused == 1
        # the first one gone, its place is free again
        await async_wait_until(lambda: not stream.clients, timeout=30)
        async with aiohttp.ClientSession() as session, session.get(url) as again:
            assert again.status == 200

    _run(body, max_clients=1, interval=0.02)


def test_a_client_that_reads_nothing_is_dropped_and_the_others_go_on() -> None:
    async def body(stream: EventStream, source: Source, url: str) -> None:
        host, port = url.removeprefix("http://").split("/")[0].split(":")
        _reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")  # and never reads
        await async_wait_until(lambda: len(stream.clients) == 1, timeout=30)
        async with aiohttp.ClientSession() as session, session.get(url) as fast:
            await next_snapshot(fast)
            n = 0
            while stream.dropped == 0:  # big snapshots until the stuck client's buffers fill
                n += 1
                source.value = {"n": n, "pad": "x" * 400_000}
                assert (await next_snapshot(fast))["n"] == n  # the fast one gets every one
                assert n < 2000, "the stuck client was never dropped"
            assert len(stream.clients) == 1
            n += 1
            source.value = {"n": n, "pad": ""}
            assert (await next_snapshot(fast))["n"] == n
        writer.close()

    _run(body, max_clients=4, interval=0.02, max_pending=2)


def test_a_snapshot_that_fails_costs_an_update_not_the_stream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def body(stream: EventStream, source: Source, url: str) -> None:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert (await next_snapshot(response))["n"] == 0
            source.value = {"n": float("nan")}  # not JSON: the snapshot cannot be sent
            await async_wait_until(lambda: source.computed >= 5, timeout=30)
            source.value = {"n": 2}
            assert (await next_snapshot(response))["n"] == 2
        failures = [r for r in caplog.records if "could not be computed" in r.getMessage()]
        assert len(failures) == 1  # once, then held back: no line per second

    _run(body, max_clients=4, interval=0.02)
