"""Fixtures for the real-peer tests: ports, SIPp peers, the server under test.

Tests marked ``needs_server`` drive ``huntgroup serve``; they are deselected
(and counted as such in pytest's summary) unless HUNTGROUP_SERVER_TESTS=1.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sip_harness import HuntgroupServer, PortAllocator, Sipp, sipp_binary

SERVER_GATE = "HUNTGROUP_SERVER_TESTS"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"needs_server: drives `huntgroup serve`; deselected unless {SERVER_GATE}=1",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(SERVER_GATE) == "1":
        return
    gated = [item for item in items if item.get_closest_marker("needs_server")]
    if gated:
        config.hook.pytest_deselected(items=gated)
        items[:] = [item for item in items if not item.get_closest_marker("needs_server")]


@pytest.fixture(scope="session")
def ports() -> PortAllocator:
    return PortAllocator()


@pytest.fixture(scope="session")
def sipp_path() -> str:
    """Fails (never skips) when sipp is missing: scripts/setup.sh installs it."""
    return sipp_binary()


@pytest.fixture
def sipp(tmp_path: Path, ports: PortAllocator, sipp_path: str) -> Iterator[Sipp]:
    peers = Sipp(tmp_path=tmp_path, ports=ports, binary=sipp_path)
    try:
        yield peers
    finally:
        peers.close()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], HuntgroupServer]]:
    """Starts ``huntgroup serve`` on a config dict; every server is stopped at teardown."""
    servers: list[HuntgroupServer] = []

    def start(config: dict[str, Any]) -> HuntgroupServer:
        server = HuntgroupServer(config=config, workdir=tmp_path / f"server{len(servers)}")
        servers.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in servers:
            server.kill()
