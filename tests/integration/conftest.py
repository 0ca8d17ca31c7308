"""Fixtures for the real-peer tests: ports, SIPp peers, the server under test.

Tests marked ``needs_server`` drive ``huntgroup serve``; they always run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import browser as browser  # the fixture, for the wallboard test
from tests.support.ports import PortAllocator
from tests.support.sip_harness import Baresip, HuntgroupServer, Sipp, baresip_binary, sipp_binary


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_server: drives `huntgroup serve`")


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
def start_server(tmp_path: Path) -> Iterator[Callable[..., HuntgroupServer]]:
    """Starts ``huntgroup serve`` on a config dict, with more arguments of serve if any
    (``"--log-format", "json"``); every server is stopped at teardown."""
    servers: list[HuntgroupServer] = []

    def start(config: dict[str, Any], *args: str) -> HuntgroupServer:
        server = HuntgroupServer(
            config=config, workdir=tmp_path / f"server{len(servers)}", args=args
        )
        servers.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in servers:
            server.kill()


@pytest.fixture
def baresips() -> Iterator[list[Baresip]]:
    """A list the test appends its started baresip phones to; each is stopped at teardown.
    Fails (never skips) when baresip is not installed."""
    baresip_binary()  # fails with the install hint when missing
    phones: list[Baresip] = []
    yield phones
    for phone in phones:
        phone.stop()
