"""``/readyz`` follows the state store: a real redis-server stopped, then started again,
under a node serving its admin listener in this process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from huntgroup.config.models import AdminConfig, Config, ServerConfig
from huntgroup.engine.aio.server import Server
from huntgroup.node import start_admin
from tests.support.state_harness import RedisServer


async def _readyz(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as r:
        return r.status, await r.json()


def test_readyz_turns_503_while_redis_is_unreachable_and_200_once_it_is_back(
    tmp_path: Path,
) -> None:
    try:
        redis_server = RedisServer(tmp_path)
    except RuntimeError as err:
        pytest.fail(str(err))
    redis_server.start()
    config = Config(
        server=ServerConfig(
            listen=("udp:127.0.0.1:0",),
            state=redis_server.url,
            admin=AdminConfig(listen="127.0.0.1:0"),
        )
    )

    async def scenario() -> None:
        server = Server(config, loop=asyncio.get_running_loop())
        await server.start()
        admin = await start_admin(server)
        assert admin is not None and admin.address is not None
        host, port = admin.address
        url = f"http://{host}:{port}/readyz"

        async def until(status: int) -> Any:
            """Poll ``/readyz`` until it answers ``status`` (generous: a loaded machine)."""
            deadline = time.monotonic() + 60
            while True:
                got, answer = await _readyz(url)
                if got == status:
                    return answer
                assert time.monotonic() < deadline, (got, answer)
                await asyncio.sleep(0.05)  # the polling period, not a synchronisation

        try:
            status, ready = await _readyz(url)
            assert status == 200 and ready["checks"]["state_store"] is True
            redis_server.stop()  # killed: its connections drop
            assert (await until(503))["checks"] == {
                "listening": True,
                "state_store": False,
                "accepting": True,
            }
            redis_server.start()  # the same port
            assert (await until(200))["checks"]["state_store"] is True
        finally:
            await admin.stop()
            server.close()

    try:
        asyncio.run(scenario())
    finally:
        redis_server.stop()
