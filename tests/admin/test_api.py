"""The operators' JSON API: real HTTP on 127.0.0.1 to a server in this process; every
answer is checked against huntgroup/admin/openapi.yaml."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import yaml

from huntgroup.admin.api import MAX_CONTROL_BODY
from huntgroup.admin.listener import AdminListener
from huntgroup.config.loader import load_config
from huntgroup.engine.aio.server import Server
from huntgroup.node import start_admin
from tests.support.openapi_check import check_answer, resolve, spec

TOKEN = "api-token-of-at-least-32-chars-x"
AGENT = "sip:agent@127.0.0.1:5999"
OURS = ("/healthz", "/readyz")

CONFIG = """\
server:
  listen: ["udp:127.0.0.1:0"]
  admin:
    listen: "127.0.0.1:0"
    token_env: HG_API_TOKEN
lines:
  - {number: "0102030405", name: "Alice Martin", password: "s3cret-pass"}
groups:
  - name: Support
    pilot: "0140000000"
    algorithm: ring_all
    members:
      - {line: "0102030405", position: 1}
      - {uri: "AGENT", position: 2}
""".replace("AGENT", AGENT)


class Client:
    """HTTP to the API with the token; every answer checked against the OpenAPI file."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base = session, base
        self.headers = {"Authorization": f"Bearer {TOKEN}"}

    async def call(
        self, method: str, path: str, *, body: bytes | None = None, raw: bool = False
    ) -> tuple[int, Any]:
        async with self.session.request(
            method, self.base + path, headers=self.headers, data=body
        ) as r:
            answer: Any = await (r.text() if raw else r.json())
            status = r.status
        check_answer(method, path, status, answer)
        return status, answer

    async def get(self, path: str) -> tuple[int, Any]:
        return await self.call("GET", path)

    async def post(self, path: str, body: bytes | None = None) -> tuple[int, Any]:
        return await self.call("POST", path, body=body)


Body = Callable[[Server, AdminListener, Client, Path], Awaitable[None]]


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: Body) -> None:
    monkeypatch.setenv("HG_API_TOKEN", TOKEN)
    path = tmp_path / "huntgroup.yaml"
    path.write_text(CONFIG)

    async def scenario() -> None:
        server = Server(load_config(path), loop=asyncio.get_running_loop())
        server.config_path = str(path)
        await server.start()
        admin = await start_admin(server)
        assert admin is not None and admin.address is not None
        try:
            host, port = admin.address
            async with aiohttp.ClientSession() as session:
                await body(server, admin, Client(session, f"http://{host}:{port}"), path)
        finally:
            await admin.stop()
            server.close()

    asyncio.run(scenario())


def member_path(member: str, op: str, group: str = "Support") -> str:
    return f"/api/v1/members/{quote(group, safe='')}/{quote(member, safe='')}/{op}"


def test_every_route_of_the_app_is_described(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body(server: Server, admin: AdminListener, client: Client, path: Path) -> None:
        assert admin._runner is not None
        described = {
            (method.upper(), template)
            for template, item in spec()["paths"].items()
            for method in item
        }
        routes = {
            (route.method, route.resource.canonical)
            for route in admin._runner.app.router.routes()
            if route.method != "HEAD" and route.resource is not None
        }
        assert routes - described == set()  # every route of the app is described
        # what the file describes of this module and the listener exists (other route
        # modules, /metrics..., are described here too and checked once they are added)
        ours = {d for d in described if d[1].startswith("/api/") or d[1] in OURS}
        assert ours - routes == set()

    run(tmp_path, monkeypatch, body)


def test_views_answer_what_the_file_describes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body(server: Server, admin: AdminListener, client: Client, path: Path) -> None:
        status, view = await client.get("/api/v1/status")
        assert status == 200 and view["draining"] is False and view["groups"] == 1
        assert view["ready"]["accepting"] is True
        status, view = await client.get("/api/v1/queues")
        assert status == 200
        assert view["queues"][0]["group"] == "Support" and view["queues"][0]["callers"] == 0
        status, view = await client.get("/api/v1/members/Support")
        assert status == 200
        members = {m["member"]: m for m in view["members"]}
        assert members["0102030405"]["name"] == "Alice Martin"
        assert members["0102030405"]["state"] == "unavailable"  # never registered
        assert members[AGENT]["state"] == "free"
        status, view = await client.get("/api/v1/calls")
        assert (status, view) == (200, {"calls": []})
        status, view = await client.get("/api/v1/members/Nope")
        assert status == 404 and "Nope" in view["error"]
        status, text = await client.call("GET", "/api/v1/openapi.yaml", raw=True)
        assert status == 200 and yaml.safe_load(text)["openapi"] == "3.1.0"
        client.headers = {}
        status, view = await client.get("/api/v1/queues")
        assert status == 401

    run(tmp_path, monkeypatch, body)


def test_pause_and_login_through_the_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def body(server: Server, admin: AdminListener, client: Client, path: Path) -> None:
        status, answer = await client.post(
            member_path(AGENT, "pause"), b'{"reason": "d\xc3\xa9jeuner"}'
        )
        assert status == 200 and answer["message"].endswith("paused")
        assert server.b2bua.core.paused("Support", AGENT) is not None
        status, view = await client.get("/api/v1/members/Support")
        agent = next(m for m in view["members"] if m["member"] == AGENT)
        assert agent["state"] == "paused" and agent["paused_reason"] == "déjeuner"
        status, answer = await client.post(member_path(AGENT, "pause"))
        assert status == 200 and "already" in answer["message"]
        status, answer = await client.post(member_path(AGENT, "unpause"), b"")
        assert status == 200 and server.b2bua.core.paused("Support", AGENT) is None
        status, answer = await client.post(member_path(AGENT, "logout"))
        assert status == 200
        status, answer = await client.post(member_path(AGENT, "pause"))
        assert status == 409 and "log it in" in answer["error"]
        status, answer = await client.post(member_path(AGENT, "login"))
        assert status == 200
        status, view = await client.get("/api/v1/status")
        assert view["members_paused"] == 0

    run(tmp_path, monkeypatch, body)


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        (member_path(AGENT, "pause", group="Nope"), None, 404),
        (member_path("sip:nobody@127.0.0.1", "pause"), None, 404),
        (member_path(AGENT, "explode"), None, 404),
        (member_path(AGENT, "pause"), b"not json", 400),
        (member_path(AGENT, "pause"), b'["reason"]', 400),
        (member_path(AGENT, "pause"), b'{"reason": 5}', 400),
        (member_path(AGENT, "pause"), b'{"reason": "x", "other": 1}', 400),
        (member_path(AGENT, "pause"), b'{"reason": "' + b"x" * 129 + b'"}', 400),
        (member_path(AGENT, "pause"), b'{"reason": "a\\nb"}', 400),
        (member_path(AGENT, "pause"), b'{"reason": "\\ud800"}', 400),
        (member_path(AGENT, "pause"), b'{"reason": "' + b"x" * MAX_CONTROL_BODY + b'"}', 413),
    ],
)
def test_hostile_control_requests_are_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    body: bytes | None,
    status: int,
) -> None:
    async def scenario(server: Server, admin: AdminListener, client: Client, _p: Path) -> None:
        got, answer = await client.post(path, body)
        assert got == status and answer["error"]
        assert server.b2bua.core.paused("Support", AGENT) is None

    run(tmp_path, monkeypatch, scenario)


def test_reload_answers_what_it_did_or_the_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body(server: Server, admin: AdminListener, client: Client, path: Path) -> None:
        status, answer = await client.post("/api/v1/reload")
        assert (status, answer) == (200, {"applied": True, "changes": []})
        path.write_text(CONFIG.replace("algorithm: ring_all", "algorithm: linear"))
        status, answer = await client.post("/api/v1/reload")
        assert status == 200 and any("algorithm" in c for c in answer["changes"])
        assert server.config.groups[0].algorithm == "linear"
        path.write_text(CONFIG.replace("algorithm: ring_all", "algorithm: sideways"))
        status, answer = await client.post("/api/v1/reload")
        assert status == 422 and answer["applied"] is False and "sideways" in answer["error"]
        assert server.config.groups[0].algorithm == "linear"
        server.config_path = None
        status, answer = await client.post("/api/v1/reload")
        assert status == 409

    run(tmp_path, monkeypatch, body)


def test_the_openapi_file_declares_every_path_parameter_and_resolves_its_refs() -> None:
    document = spec()
    assert document["openapi"].startswith("3.1")
    for template, item in document["paths"].items():
        wanted = set(re.findall(r"\{([^}]+)\}", template))
        for method, op in item.items():
            declared = set()
            for parameter in op.get("parameters", ()):
                resolved = resolve(document, parameter)
                assert resolved["in"] == "path" and resolved["required"] is True
                declared.add(resolved["name"])
            assert declared == wanted, (method, template)
            for status, response in op["responses"].items():
                resolved = resolve(document, response)
                assert resolved["description"], (method, template, status)
                for media in resolved.get("content", {}).values():
                    resolve(document, media["schema"])
