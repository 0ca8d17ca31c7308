"""The wallboard: ``GET /``, a live page for supervisors, fed by ``GET /events``.

Theory of operation
-------------------
The page (``static/wallboard.html``, ``.js``, ``.css``: plain files shipped
with the package, no build step, nothing fetched from elsewhere) opens an
``EventSource`` on ``/events`` and renders each snapshot it receives: per
group the callers waiting, the oldest wait, today's service level, and the
members with their state and time in state; the page makes the times tick
between two snapshots. The snapshots come from
:class:`~huntgroup.admin.wallboard_data.WallboardData` and are pushed by an
:class:`~huntgroup.admin.event_stream.EventStream`: computed at most once a
second, sent only when they change, a heartbeat every 15 s, at most half of
``server.admin.max_connections`` streams at a time (the other half stays for
the API and the scrapes).

Authentication is the listener's (``_guard``): with a token, a browser signs
in once at ``/login`` and gets a cookie that opens the wallboard only
(:mod:`huntgroup.admin.browser_session`). Every page carries a strict
``Content-Security-Policy`` (scripts, styles and connections from this
listener only, no inline script, no framing).
"""

from __future__ import annotations

import time
from importlib import resources
from typing import TYPE_CHECKING

from aiohttp import web

from huntgroup.admin.browser_session import COOKIE_VALUE, set_cookie
from huntgroup.admin.event_stream import EventStream
from huntgroup.admin.wallboard_data import TodaysServiceLevels, WallboardData, without_time

if TYPE_CHECKING:
    from huntgroup.engine.aio.server import Server

STATIC = {
    "wallboard.js": "text/javascript",
    "login.js": "text/javascript",
    "wallboard.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
"""The files served under ``/static/``, with their media types."""
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _read(name: str) -> bytes:
    return resources.files("huntgroup.admin").joinpath("static", name).read_bytes()


def _file(body: bytes, content_type: str) -> web.Response:
    return web.Response(body=body, content_type=content_type, charset="utf-8", headers=PAGE_HEADERS)


def add_routes(app: web.Application, server: Server) -> None:
    """``/`` (the page), ``/events``, ``/login``, ``/session`` and ``/static/`` files."""
    admin = server.config.server.admin
    levels = TodaysServiceLevels(admin.service_level, lambda: server.config, wall=time.time())
    server.reports.add(levels)  # every call record from now on
    data = WallboardData(server, levels)
    stream = EventStream(
        lambda: data.snapshot(now=server.loop.time(), wall=time.time()),
        without_time,
        max_clients=max(1, admin.max_connections // 2),
    )
    app.on_shutdown.append(stream.close)
    page, login = _read("wallboard.html"), _read("login.html")
    files = {name: (_read(name), kind) for name, kind in STATIC.items()}

    async def wallboard(request: web.Request) -> web.StreamResponse:
        return _file(page, "text/html")

    async def login_page(request: web.Request) -> web.StreamResponse:
        return _file(login, "text/html")

    async def static(request: web.Request) -> web.StreamResponse:
        found = files.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        return _file(*found)

    async def session(request: web.Request) -> web.StreamResponse:
        """The guard let the bearer token through: give the browser its cookie."""
        response = web.Response(status=204, headers={"Cache-Control": "no-store"})
        value = request.app[COOKIE_VALUE]
        if value is not None:
            set_cookie(response, value, secure=request.secure)
        return response

    app.router.add_get("/", wallboard)
    app.router.add_get("/events", stream.handle, allow_head=False)
    app.router.add_get("/login", login_page)
    app.router.add_post("/session", session)
    app.router.add_get("/static/{name}", static)
