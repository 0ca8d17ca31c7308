"""The admin HTTP listener: one aiohttp application on ``server.admin.listen``.

Theory of operation
-------------------
The listener is off unless ``server.admin.listen`` is set. It serves the
operators' endpoints on the SIP server's own event loop: ``/healthz`` (the
process runs), ``/readyz`` (the node listens, reaches its state store, and is
not draining), and whatever the route modules of :data:`ROUTE_MODULES` add
(metrics, the JSON control API, the wallboard). Each route module exposes
``add_routes(app, server)``.

Every endpoint but ``/healthz`` needs ``Authorization: Bearer TOKEN`` when a
token is configured (``server.admin.token_env`` or ``token_file``, read by
:mod:`.token`), or, for the wallboard's reads only, the browser cookie of
:mod:`.browser_session` (a browser without it is sent to ``/login``); without a
token the configuration only lets the listener bind a loopback address.
Connections are capped (``server.admin.max_connections``; one past the cap is
closed at once), request bodies are capped at :data:`MAX_BODY` bytes, and idle
keep-alive connections close after :data:`KEEPALIVE` seconds. The listener stays
up while the node drains, so a load balancer sees ``/readyz`` turn 503, and
closes with the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from huntgroup.admin import api, metrics, wallboard
from huntgroup.admin.browser_session import (
    COOKIE_VALUE,
    LOGIN_PATHS,
    browser_authorized,
    cookie_value,
)
from huntgroup.admin.token import authorized, read_token
from huntgroup.config.models import AdminConfig

if TYPE_CHECKING:
    from huntgroup.engine.aio.server import Server

log = logging.getLogger("huntgroup.admin")

RouteAdder = Callable[[web.Application, "Server"], None]
ROUTE_MODULES: tuple[RouteAdder, ...] = (api.add_routes, metrics.add_routes, wallboard.add_routes)
"""The ``add_routes`` of every route module, applied in this order."""

OPEN_PATHS = frozenset({"/healthz"}) | LOGIN_PATHS
"""Paths served without the token: a liveness probe carries no credentials, nor does a
browser on the wallboard's sign-in page (which holds no data)."""
MAX_BODY = 64 * 1024
"""The largest request body accepted, in bytes (413 beyond)."""
KEEPALIVE = 15.0
"""Seconds an idle keep-alive connection stays open."""
SERVER_KEY: web.AppKey[Server] = web.AppKey("server")
"""The running :class:`~huntgroup.engine.aio.server.Server`, for the route modules."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Refused(asyncio.Protocol):
    """A connection past the cap: closed as soon as it is accepted."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class AdminListener:
    """The admin HTTP listener of one :class:`Server` (see the module docstring)."""

    def __init__(self, server: Server, config: AdminConfig) -> None:
        self.server = server
        self.config = config
        self.refused = 0  # connections closed at once: the cap was reached
        self.unauthorized = 0  # requests answered 401
        self.address: tuple[str, int] | None = None
        self._token: str | None = None
        self._cookie: str | None = None  # the wallboard's browser cookie (browser_session)
        self._runner: web.AppRunner | None = None
        self._listening: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        """Read the token, bind, and serve; return the (host, port) bound.

        Raises :class:`~.token.AdminTokenError` for an unusable token and ``OSError``
        when the address cannot be bound: the server refuses to start either way.
        """
        where = self.config.host_port
        assert where is not None
        self._token = read_token(self.config)
        self._cookie = None if self._token is None else cookie_value(self._token)
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_BODY)
        app[SERVER_KEY] = self.server
        app[COOKIE_VALUE] = self._cookie
        app.router.add_get("/healthz", _healthz)
        app.router.add_get("/readyz", _readyz)
        for add_routes in ROUTE_MODULES:
            add_routes(app, self.server)
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, keepalive_timeout=KEEPALIVE
        )
        await runner.setup()
        self._runner = runner
        loop = asyncio.get_running_loop()
        self._listening = await loop.create_server(
            self._protocol, where[0], where[1], reuse_address=True
        )
        bound = self._listening.sockets[0].getsockname()
        self.address = (bound[0], bound[1])
        log.info(
            "admin listener on http://%s:%d/ (%s)",
            f"[{bound[0]}]" if ":" in bound[0] else bound[0],
            bound[1],
            "bearer token required" if self._token else "no token: loopback only",
        )
        return self.address

    def _protocol(self) -> asyncio.BaseProtocol:
        assert self._runner is not None and self._runner.server is not None
        handlers = self._runner.server
        if len(handlers.connections) >= self.config.max_connections:
            self.refused += 1
            return _Refused()
        return handlers()

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        token, cookie = self._token, self._cookie
        if (
            token is not None
            and cookie is not None
            and request.path not in OPEN_PATHS
            and not authorized(request.headers.get("Authorization"), token)
            and not browser_authorized(request, cookie)
        ):
            self.unauthorized += 1
            if request.path == "/" and request.method == "GET":  # a browser: sign in first
                raise web.HTTPSeeOther("/login", headers={"Cache-Control": "no-store"})
            return web.json_response(
                {"error": "unauthorized: send Authorization: Bearer TOKEN"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="huntgroup"'},
            )
        return await handler(request)

    def close(self) -> None:
        """Stop listening and drop the open connections at once (the server closes)."""
        if self._listening is not None:
            self._listening.close()
            self._listening = None
        if self._runner is not None and self._runner.server is not None:
            for handler in self._runner.server.connections:
                handler.force_close()

    async def stop(self) -> None:
        """Stop listening, let the requests in progress end, and free everything."""
        if self._listening is not None:
            self._listening.close()
            self._listening = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def _healthz(request: web.Request) -> web.StreamResponse:
    """200 while the process runs (its event loop answers)."""
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.StreamResponse:
    """200 when the node takes calls: listening, state store reachable, not draining."""
    checks = request.app[SERVER_KEY].readiness()
    ready = all(checks.values())
    return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)
