"""The admin HTTP listener: health and readiness, the bearer token, the connection cap,
and the configuration rules that keep it off the network without a token (real HTTP on
127.0.0.1, the server running in this process)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from huntgroup.admin.listener import AdminListener
from huntgroup.admin.token import AdminTokenError, authorized, read_token
from huntgroup.config.loader import load_config_text
from huntgroup.config.models import AdminConfig, Config, ServerConfig
from huntgroup.engine.aio.server import Server
from huntgroup.errors import ConfigError
from huntgroup.node import start_admin

TOKEN = "s3cret-token-of-32-characters-xx"


def _config(**admin: Any) -> Config:
    return Config(
        server=ServerConfig(
            listen=("udp:127.0.0.1:0",), admin=AdminConfig(listen="127.0.0.1:0", **admin)
        )
    )


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
            await admin.stop()
            server.close()

    asyncio.run(scenario())


async def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as r:
        return r.status, await r.json()


def test_health_and_readiness_turn_503_when_the_node_drains() -> None:
    async def body(server: Server, admin: AdminListener, base: str) -> None:
        assert await _get(f"{base}/healthz") == (200, {"status": "ok"})
        status, ready = await _get(f"{base}/readyz")
        assert status == 200 and ready["ready"] is True
        assert ready["checks"] == {"listening": True, "state_store": True, "accepting": True}
        server.run(lambda now: server.b2bua.begin_shutdown(now=now, grace=30))
        status, ready = await _get(f"{base}/readyz")
        assert status == 503 and ready["checks"]["accepting"] is False
        assert (await _get(f"{base}/healthz"))[0] == 200  # alive all the same

    _run(_config(), body)


def test_a_token_guards_everything_but_healthz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HG_ADMIN_TOKEN", TOKEN)

    async def body(server: Server, admin: AdminListener, base: str) -> None:
        assert (await _get(f"{base}/healthz"))[0] == 200
        status, answer = await _get(f"{base}/readyz")
        assert status == 401 and "Bearer" in answer["error"]
        wrong = {"Authorization": "Bearer " + TOKEN[:-1] + "y"}
        assert (await _get(f"{base}/readyz", wrong))[0] == 401
        assert (await _get(f"{base}/readyz", {"Authorization": f"Basic {TOKEN}"}))[0] == 401
        assert (await _get(f"{base}/readyz", {"Authorization": f"Bearer {TOKEN}"}))[0] == 200
        assert admin.unauthorized == 3

    _run(_config(token_env="HG_ADMIN_TOKEN"), body)


def test_connections_beyond_the_cap_are_closed_at_once() -> None:
    async def body(server: Server, admin: AdminListener, base: str) -> None:
        assert admin.address is not None
        host, port = admin.address
        first_r, first_w = await asyncio.open_connection(host, port)
        first_w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await first_r.readline()).startswith(b"HTTP/1.1 200")  # kept alive
        second_r, second_w = await asyncio.open_connection(host, port)
        second_w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await second_r.read() == b""  # closed without an answer
        assert admin.refused == 1
        first_w.close()
        second_w.close()

    _run(_config(max_connections=1), body)


def _load(admin: str) -> Config:
    return load_config_text(f"server:\n  admin:\n{admin}", "t.yaml", Path("/etc/huntgroup"))


def test_outside_loopback_the_config_requires_a_token() -> None:
    with pytest.raises(ConfigError, match="needs a token"):
        _load("    listen: 0.0.0.0:9090\n")
    with pytest.raises(ConfigError, match="needs a token"):
        _load("    listen: '[2001:db8::1]:9090'\n")
    for loopback in ("127.0.0.1:9090", "'[::1]:9090'", "localhost:9090", "127.0.0.2:1"):
        assert _load(f"    listen: {loopback}\n").server.admin.listen is not None
    cfg = _load("    listen: 0.0.0.0:9090\n    token_file: admin.token\n")
    assert cfg.server.admin.token_file == "/etc/huntgroup/admin.token"  # next to the file
    with pytest.raises(ConfigError, match="not both"):
        _load("    listen: 127.0.0.1:9090\n    token_env: T\n    token_file: f\n")
    with pytest.raises(ConfigError):
        _load("    listen: 'http://127.0.0.1:9090'\n")


def test_the_token_is_read_strictly(tmp_path: Path) -> None:
    with pytest.raises(AdminTokenError, match="unset or empty"):
        read_token(AdminConfig(token_env="HG_T"), environ={})
    with pytest.raises(AdminTokenError, match="16 to"):
        read_token(AdminConfig(token_env="HG_T"), environ={"HG_T": "short"})
    assert read_token(AdminConfig(token_env="HG_T"), environ={"HG_T": f" {TOKEN}\n"}) == TOKEN
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    os.chmod(path, 0o644)
    with pytest.raises(AdminTokenError, match="readable by others"):
        read_token(AdminConfig(token_file=str(path)))
    os.chmod(path, 0o600)
    assert read_token(AdminConfig(token_file=str(path))) == TOKEN
    with pytest.raises(AdminTokenError, match="cannot read"):
        read_token(AdminConfig(token_file=str(tmp_path / "missing")))
    assert read_token(AdminConfig()) is None
    assert authorized(f"Bearer {TOKEN}", TOKEN) and authorized(f"bearer {TOKEN}", TOKEN)
    assert not authorized(None, TOKEN) and not authorized(TOKEN, TOKEN)


def test_an_unusable_token_stops_the_server_from_starting() -> None:
    async def scenario() -> None:
        server = Server(_config(token_env="HG_UNSET_TOKEN"), loop=asyncio.get_running_loop())
        await server.start()
        try:
            with pytest.raises(AdminTokenError):
                await start_admin(server)
        finally:
            server.close()

    os.environ.pop("HG_UNSET_TOKEN", None)
    asyncio.run(scenario())


async def _half_request(host: str, port: int, source: str) -> tuple[Any, Any]:
    """A connection from ``source`` that sends a request head and never finishes it."""
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    writer.write(b"GET /readyz HTTP/1.1\r\nHost: x\r\n")
    await writer.drain()
    return reader, writer


def test_one_source_cannot_take_every_connection_nor_the_reserved_ones() -> None:
    async def body(server: Server, admin: AdminListener, base: str) -> None:
        assert admin.address is not None
        host, port = admin.address
        # 127.0.0.2 to 127.0.0.8 stand for hosts on the network: only 127.0.0.1 is local
        admin.admission.trusted = lambda source: source == "127.0.0.1"
        held = [await _half_request(host, port, "127.0.0.2") for _ in range(2)]
        reader, writer = await _half_request(host, port, "127.0.0.2")  # its third
        assert await asyncio.wait_for(reader.read(), 60) == b""  # closed at once
        writer.close()
        for n in range(3, 8):  # 7 open: the last of the 8 slots is kept for loopback
            held.append(await _half_request(host, port, f"127.0.0.{n}"))
        reader, writer = await _half_request(host, port, "127.0.0.8")
        assert await asyncio.wait_for(reader.read(), 60) == b""
        writer.close()
        assert admin.refused_per_source == 2
        assert (await _get(f"{base}/healthz"))[0] == 200  # a local probe still gets in
        for _, w in held:
            w.close()

    _run(_config(max_connections=8), body)


def test_a_connection_without_a_complete_request_head_is_closed() -> None:
    async def body(server: Server, admin: AdminListener, base: str) -> None:
        assert admin.address is not None
        host, port = admin.address
        admin.head_deadline = 0.2
        reader, writer = await _half_request(host, port, "127.0.0.1")
        assert await asyncio.wait_for(reader.read(), 60) == b""
        assert admin.too_slow == 1
        writer.close()
        # a head in two pieces, the blank line split across them, is a complete head
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r")
        await writer.drain()
        writer.write(b"\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        writer.close()
        assert admin.too_slow == 1

    _run(_config(max_connections=2), body)
