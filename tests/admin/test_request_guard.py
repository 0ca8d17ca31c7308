"""What a web page in a browser must not make the admin listener do: a cross-site ``POST``
without a preflight, a request from another origin, a request through a rebound DNS name
(real HTTP on 127.0.0.1, no token: the example's setup)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from huntgroup.admin.listener import AdminListener
from huntgroup.admin.request_guard import CLIENT_HEADER
from huntgroup.config.loader import load_config_text
from huntgroup.engine.aio.server import Server
from huntgroup.errors import ConfigError
from tests.admin.test_listener import TOKEN, _config, _run


async def _call(
    method: str, url: str, headers: dict[str, str] | None = None, data: bytes | None = None
) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=headers, data=data) as r,
    ):
        await r.read()
        return r.status


def test_a_post_a_page_could_send_without_a_preflight_is_refused() -> None:
    async def body(server: Server, admin: AdminListener, base: str) -> None:
        reload = f"{base}/api/v1/reload"
        assert await _call("POST", reload) == 415  # an empty form post: no header at all
        plain = {"Content-Type": "text/plain"}
        assert await _call("POST", reload, plain, b"{}") == 415
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        assert await _call("POST", reload, form, b"a=b") == 415
        # what a script or huntgroup ctl sends needs a preflight from a page: let through
        json_type = {"Content-Type": "application/json; charset=utf-8"}
        assert await _call("POST", reload, json_type) not in (403, 415, 421)
        assert await _call("POST", reload, {CLIENT_HEADER: "ctl"}) not in (403, 415, 421)
        assert admin.forbidden == 3

    _run(_config(), body)


def test_another_origin_is_refused_the_own_one_served() -> None:
    async def body(server: Server, admin: AdminListener, base: str) -> None:
        calls = f"{base}/api/v1/calls"
        for origin in (
            "http://evil.example",
            "null",
            f"https://evil.example:{base.rsplit(':', 1)[1]}",
        ):
            assert await _call("GET", calls, {"Origin": origin}) == 403, origin
        hostile = {"Origin": "http://evil.example", "Content-Type": "application/json"}
        assert await _call("POST", f"{base}/api/v1/reload", hostile) == 403
        assert await _call("GET", calls, {"Origin": base}) == 200  # the wallboard's own page
        own = {"Origin": base, "Authorization": "Bearer "}  # the sign-in form, same origin
        assert await _call("POST", f"{base}/session", own) == 204

    _run(_config(), body)


def test_a_rebound_name_is_refused_loopback_and_allowed_names_served() -> None:
    async def body(server: Server, admin: AdminListener, base: str) -> None:
        port = base.rsplit(":", 1)[1]
        calls = f"{base}/api/v1/calls"
        assert await _call("GET", calls, {"Host": f"evil.example:{port}"}) == 421
        assert await _call("GET", f"{base}/", {"Host": f"rebind.evil.example:{port}"}) == 421
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "admin.lan"):
            assert await _call("GET", calls, {"Host": host}) == 200, host
        assert await _call("GET", f"{base}/healthz", {"Host": "evil.example"}) == 200  # a probe

    _run(_config(allowed_hosts=("Admin.LAN",)), body)


def test_allowed_hosts_are_names() -> None:
    def load(hosts: str) -> Any:
        text = f"server:\n  admin:\n    listen: 127.0.0.1:9090\n    allowed_hosts: {hosts}\n"
        return load_config_text(text, "t.yaml", Path("/etc/huntgroup"))

    assert load("[wallboard.example.net]").server.admin.allowed_hosts == ("wallboard.example.net",)
    for bad in ("['a b']", "['evil/x']", "['']"):
        with pytest.raises(ConfigError):
            load(bad)


def test_with_a_token_any_host_name_is_served_with_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HG_ADMIN_TOKEN", TOKEN)

    async def body(server: Server, admin: AdminListener, base: str) -> None:
        named = {"Host": "node1.example.net:9090"}  # a scraper naming the node
        assert await _call("GET", f"{base}/readyz", named) == 401
        named["Authorization"] = f"Bearer {TOKEN}"
        assert await _call("GET", f"{base}/readyz", named) == 200
        hostile = {**named, "Origin": "http://evil.example"}
        assert await _call("GET", f"{base}/readyz", hostile) == 403  # Origin still checked

    _run(_config(token_env="HG_ADMIN_TOKEN"), body)
