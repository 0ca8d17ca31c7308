"""Fixtures of the shared-state tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.state_harness import NodeBody, RedisServer, on_node


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free port; the test FAILS if redis-server is missing."""
    try:
        server = RedisServer(tmp_path)
    except RuntimeError as err:
        pytest.fail(str(err))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def node_a(redis_server: RedisServer) -> Callable[..., None]:
    """``node_a(body, **options)`` runs ``await body(sync, client)`` in a fresh event loop:
    ``sync`` a started ``RedisStateSync`` of node "A" on the test's redis-server
    (``options``: its keyword arguments), its first flush done; ``client`` a client of that
    server. Both closed after (``state_harness.on_node``)."""

    def drive(body: NodeBody, **options: Any) -> None:
        asyncio.run(on_node(redis_server.url, body, **options))

    return drive
