"""The wallboard on the admin listener, over real HTTP on 127.0.0.1 (the server runs in this
process): the page and its files, the event stream's snapshots, and how a browser gets in
when a token is set (the login page, the cookie, and what the cookie does not open)."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from huntgroup.admin.browser_session import COOKIE, LOGIN_PATHS, cookie_value
from huntgroup.admin.listener import AdminListener
from huntgroup.config.loader import load_config_text
from huntgroup.config.models import Config
from huntgroup.engine.aio.server import Server
from huntgroup.engine.b2bua.call_records import CallRecord
from huntgroup.node import start_admin
from tests.support.sse import next_snapshot

TOKEN = "wallboard-token-of-32-characters"
CONFIG = """
server:
  listen: ["udp:127.0.0.1:0"]
  admin: {{listen: "127.0.0.1:0", service_level: 15{admin}}}
lines:
  - {{number: "201", name: "Alice", password: "pw-201-secret"}}
groups:
  - name: sales
    pilot: "600"
    members: [{{line: "201", position: 1}}]
"""


def _record(outcome: str, *, wait: float) -> CallRecord:
    """A group call of "sales" that ended now."""
    end = time.time()
    answer = end - 10 if outcome == "answered" else None
    arrival = (answer or end) - wait
    return CallRecord(
        call_id=f"{outcome}-{wait}",
        node="n1",
        kind="group",
        group="sales",
        pilot="600",
        caller="0611000001",
        callee="600",
        identity="0611000001",
        arrival=arrival,
        answer=answer,
        end=end,
        wait=wait,
        talk=0.0 if answer is None else 10.0,
        member="201" if answer else None,
        outcome=outcome,
        release_code=200 if answer else 487,
        offers=(),
    )


def _config(admin: str = "") -> Config:
    return load_config_text(CONFIG.format(admin=admin), "t.yaml", Path("/etc/huntgroup"))


Body = Callable[[Server, AdminListener, str], Awaitable[None]]


def _run(config: Config, body: Body) -> None:
    async def scenario() -> None:
        server = Server(config, loop=asyncio.get_running_loop())
        await server.start()
        admin = await start_admin(server)
        assert admin is not None and admin.address is not None
        try:
            host, port = admin.address
            await body(server, admin, f"http://{host}:{port}")
        finally:
            await admin.stop()  # ends the open event streams at once
            server.close()

    asyncio.run(scenario())


def test_the_page_and_its_files_are_served_with_a_strict_policy() -> None:
    async def body(server: Server, admin: AdminListener, base: str) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/") as r:
                assert r.status == 200 and r.content_type == "text/html"
                page = await r.text()
                policy = r.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
            # everything the page loads is ours: no CDN, no other origin
            for src in re.findall(r'(?:src|href)="([^"]+)"', page):
                assert src.startswith("/static/"), src
                async with session.get(f"{base}{src}") as r:
                    assert r.status == 200, src
                    assert r.headers["X-Content-Type-Options"] == "nosniff"
            async with session.get(f"{base}/static/wallboard.js") as r:
                script = await r.text()
                assert r.content_type == "text/javascript"
            assert 'new EventSource("/events")' in script and "innerHTML" not in script
            async with session.get(f"{base}/static/../listener.py") as r:
                assert r.status == 404

    _run(_config(), body)


def test_events_send_a_snapshot_at_once_and_another_on_a_change() -> None:
    async def body(server: Server, admin: AdminListener, base: str) -> None:
        async with aiohttp.ClientSession() as session, session.get(f"{base}/events") as r:
            assert r.status == 200 and r.headers["Content-Type"] == "text/event-stream"
            first = await next_snapshot(r)
            assert first["service_level_seconds"] == 15 and first["draining"] is False
            (sales,) = first["groups"]
            assert sales["group"] == "sales" and sales["pilot"] == "600"
            assert sales["callers"] == 0 and sales["oldest_since"] is None
            assert sales["service_level"]["percent"] is None
            (alice,) = sales["members"]
            assert alice["member"] == "201" and alice["name"] == "Alice"
            assert alice["state"] == "unavailable"  # no phone registered
            assert abs(alice["since"] - first["time"]) < 5
            # a call record reaches the report sinks: the service level moves
            server.reports.deliver(_record("answered", wait=4.0))
            server.reports.deliver(_record("abandoned", wait=40.0))
            changed = (await next_snapshot(r))["groups"][0]
            assert changed["members"] == sales["members"]  # same state, same since: stable
            level = changed["service_level"]
            assert (level["percent"], level["answered_within"], level["unanswered_after"]) == (
                50.0,
                1,
                1,
            )
            # an operator pauses the member: its state and reason, a new since
            pause = functools.partial(server.b2bua.control, "pause", "sales", "201", reason="lunch")
            server.run(lambda now: pause(now=now)[1])
            (paused,) = (await next_snapshot(r))["groups"][0]["members"]
            assert (paused["state"], paused["paused_reason"]) == ("paused", "lunch")
            assert paused["since"] >= alice["since"]
            server.run(lambda now: server.b2bua.begin_shutdown(now=now, grace=30))
            assert (await next_snapshot(r))["draining"] is True

    _run(_config(), body)


def test_a_browser_signs_in_once_and_its_cookie_opens_the_wallboard_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HG_WALLBOARD_TOKEN", TOKEN)

    async def body(server: Server, admin: AdminListener, base: str) -> None:
        jar = aiohttp.CookieJar(unsafe=True)  # keeps cookies of an IP address host
        async with aiohttp.ClientSession(cookie_jar=jar) as browser:
            async with browser.get(f"{base}/", allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/login"
            for open_path in sorted(LOGIN_PATHS):
                async with browser.get(f"{base}{open_path}") as r:
                    assert r.status == 200, open_path
            for closed in ("/events", "/static/wallboard.js", "/readyz"):
                async with browser.get(f"{base}{closed}") as r:
                    assert r.status == 401, closed
            wrong = {"Authorization": "Bearer " + TOKEN[:-1] + "x"}
            async with browser.post(f"{base}/session", headers=wrong) as r:
                assert r.status == 401
            assert not jar.filter_cookies(URL(base))
            right = {"Authorization": f"Bearer {TOKEN}"}
            async with browser.post(f"{base}/session", headers=right) as r:
                assert r.status == 204
                set_cookie = r.headers["Set-Cookie"]
            assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
            assert TOKEN not in set_cookie  # an HMAC of it, never the token
            # the cookie opens the page, its script and the stream ...
            async with browser.get(f"{base}/") as r:
                assert r.status == 200 and r.content_type == "text/html"
            async with browser.get(f"{base}/static/wallboard.js") as r:
                assert r.status == 200
            async with browser.get(f"{base}/events") as r:
                assert r.status == 200
                assert (await next_snapshot(r))["groups"][0]["group"] == "sales"
            # ... and nothing else: not the other endpoints, never a POST
            async with browser.get(f"{base}/readyz") as r:
                assert r.status == 401
            async with browser.post(f"{base}/session") as r:
                assert r.status == 401
        # a forged or stale cookie is worth nothing
        for value in ("0" * 64, cookie_value(TOKEN + "old"), TOKEN):
            async with (
                aiohttp.ClientSession(cookies={COOKIE: value}) as other,
                other.get(f"{base}/events") as r,
            ):
                assert r.status == 401, value

    _run(_config(", token_env: HG_WALLBOARD_TOKEN"), body)


def test_without_a_token_no_cookie_is_needed_nor_given() -> None:
    async def body(server: Server, admin: AdminListener, base: str) -> None:
        async with aiohttp.ClientSession() as session, session.post(f"{base}/session") as r:
            assert r.status == 204 and "Set-Cookie" not in r.headers

    _run(_config(), body)


def test_event_stream_clients_are_bounded_by_half_the_connections() -> None:
    async def body(server: Server, admin: AdminListener, base: str) -> None:
        async with aiohttp.ClientSession() as session:
            first = await session.get(f"{base}/events")
            second = await session.get(f"{base}/events")
            assert (first.status, second.status) == (200, 200)
            async with session.get(f"{base}/events") as third:
                assert third.status == 503
                assert json.loads(await third.text())["error"]
            async with session.get(f"{base}/readyz") as r:  # room left for the rest
                assert r.status == 200
            first.close()
            second.close()

    _run(_config(", max_connections: 5"), body)
