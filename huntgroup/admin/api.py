"""The operators' JSON API on the admin listener: views, member control, reload.

Theory of operation
-------------------
Every route is a thin shell over the B2BUA's control and views
(:mod:`huntgroup.engine.b2bua.control`, :mod:`huntgroup.engine.b2bua.views`)
or the server's reload, run on the server's own event loop with
``now = loop.time()``; what the routes answer is described, route by route,
in ``openapi.yaml`` (OpenAPI 3.1, served at ``GET /api/v1/openapi.yaml``):

- ``GET /api/v1/status``, ``/queues``, ``/members/{group}``, ``/calls``: the
  views, as JSON objects; ``?limit=N`` (1 to :data:`MAX_LIST`, the default)
  bounds the calls and each queue's waiting callers, so a huge queue cannot
  make a huge answer (``/calls`` also says how many there are in ``total``);
- ``POST /api/v1/members/{group}/{member}/{login|logout|pause|unpause}``, an
  optional JSON body ``{"reason": "..."}`` (at most :data:`MAX_CONTROL_BODY`
  bytes): the answer of :meth:`B2BUA.control` with its status (200, 400, 404,
  409); a member is named by its key, its line number or its ``uri:`` URI
  (percent-encoded in the path);
- ``POST /api/v1/reload``: the configuration file read again, as SIGHUP does;
  200 with the changes applied, 422 with the file's errors (nothing changed),
  409 when the node was not started from a file.

Errors are ``{"error": "..."}``. The bearer token, the connection cap and the
overall body cap are the listener's (:mod:`huntgroup.admin.listener`).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web

from huntgroup.engine.b2bua.context import Output
from huntgroup.engine.b2bua.control import CONTROL_OPS, ControlResult

if TYPE_CHECKING:
    from huntgroup.engine.aio.server import Server

PREFIX = "/api/v1"
MAX_CONTROL_BODY = 1024
"""The largest body of a control request, in bytes (413 beyond): a reason is short."""
SPEC = resources.files("huntgroup.admin").joinpath("openapi.yaml")
"""The OpenAPI description of this API, shipped with the package."""
MAX_LIST = 1000
"""The most calls, or waiting callers of a queue, one answer holds (``?limit=``)."""


def add_routes(app: web.Application, server: Server) -> None:
    api = _Api(server)
    app.router.add_get(f"{PREFIX}/status", api.status)
    app.router.add_get(f"{PREFIX}/queues", api.queues)
    app.router.add_get(f"{PREFIX}/members/{{group}}", api.members)
    app.router.add_get(f"{PREFIX}/calls", api.calls)
    app.router.add_post(f"{PREFIX}/members/{{group}}/{{member}}/{{op}}", api.control)
    app.router.add_post(f"{PREFIX}/reload", api.reload)
    spec_text = SPEC.read_text(encoding="utf-8")  # once: it never changes while running

    async def openapi(request: web.Request) -> web.StreamResponse:
        return web.Response(text=spec_text, content_type="application/yaml")

    app.router.add_get(f"{PREFIX}/openapi.yaml", openapi)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class _Api:
    """The handlers, over one server."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def _now(self) -> float:
        return self.server.loop.time()

    async def status(self, request: web.Request) -> web.StreamResponse:
        server = self.server
        view = server.b2bua.view_status(now=self._now())
        return web.json_response({**view, "ready": server.readiness()})

    async def queues(self, request: web.Request) -> web.StreamResponse:
        limit = _limit(request)
        if isinstance(limit, web.Response):
            return limit
        queues = self.server.b2bua.view_queues(now=self._now())
        return web.json_response(
            {"queues": [{**q, "waiting": q["waiting"][:limit]} for q in queues]}
        )

    async def members(self, request: web.Request) -> web.StreamResponse:
        group = request.match_info["group"]
        view = self.server.b2bua.view_members(group, now=self._now())
        if view is None:
            return _error(404, f"no group {group!r}")
        return web.json_response({"group": group, "members": view})

    async def calls(self, request: web.Request) -> web.StreamResponse:
        limit = _limit(request)
        if isinstance(limit, web.Response):
            return limit
        calls = self.server.b2bua.view_calls(now=self._now())
        return web.json_response({"calls": calls[:limit], "total": len(calls)})

    async def control(self, request: web.Request) -> web.StreamResponse:
        group, member, op = (request.match_info[k] for k in ("group", "member", "op"))
        if op not in CONTROL_OPS:
            return _error(404, f"no operation {op!r}: one of {', '.join(CONTROL_OPS)}")
        reason = await _reason(request)
        if isinstance(reason, web.Response):
            return reason
        answers: list[ControlResult] = []

        def step(now: float) -> list[Output]:
            result, outputs = self.server.b2bua.control(op, group, member, reason=reason, now=now)
            answers.append(result)
            return outputs

        self.server.run(step)
        if not answers:  # the step raised: logged by the server
            return _error(500, "internal error: see the server's log")
        result = answers[0]
        body = {"group": group, "member": member, "action": op, "message": result.message}
        if result.status >= 400:
            body["error"] = result.message
        return web.json_response(body, status=result.status)

    async def reload(self, request: web.Request) -> web.StreamResponse:
        if self.server.config_path is None:
            return _error(409, "the server was not started from a configuration file")
        result = await self.server.reload()
        if not result.applied:
            return web.json_response({"applied": False, "error": result.error}, status=422)
        return web.json_response({"applied": True, "changes": list(result.changes)})


async def _reason(request: web.Request) -> str | web.Response:
    """The optional ``reason`` of a control request's JSON body, or the error answer."""
    if request.content_length is not None and request.content_length > MAX_CONTROL_BODY:
        return _error(413, f"the body is larger than {MAX_CONTROL_BODY} bytes")
    raw = await request.content.read(MAX_CONTROL_BODY + 1)
    if len(raw) > MAX_CONTROL_BODY:
        return _error(413, f"the body is larger than {MAX_CONTROL_BODY} bytes")
    if not raw.strip():
        return ""
    try:
        data: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return _error(400, 'the body is not JSON: send {"reason": "..."} or nothing')
    if not isinstance(data, dict) or set(data) - {"reason"}:
        return _error(400, 'the body must be {"reason": "..."}')
    reason = data.get("reason", "")
    if not isinstance(reason, str):
        return _error(400, "the reason must be a string")
    return reason


def _limit(request: web.Request) -> int | web.Response:
    """``?limit=`` (1 to :data:`MAX_LIST`, the default), or the error answer."""
    raw = request.query.get("limit")
    if raw is None:
        return MAX_LIST
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_LIST:
        return _error(400, f"limit must be a whole number from 1 to {MAX_LIST}")
    return int(raw)
