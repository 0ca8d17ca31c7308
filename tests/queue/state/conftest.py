"""Fixtures of the shared-state tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.state_harness import RedisServer


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
