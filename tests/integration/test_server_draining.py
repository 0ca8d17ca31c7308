"""A draining node (SIGTERM, calls in progress) says so: OPTIONS gets 503 with Retry-After."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.ports import PortAllocator
from tests.support.sip_harness import HuntgroupServer, Sipp, group, options_ping, server_config

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

PILOT = "0140000000"
StartServer = Callable[[dict[str, Any]], HuntgroupServer]


def test_options_gets_503_while_a_call_keeps_the_node_draining(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    m1 = sipp.member("m1", "answer", answer_ms=100)
    config = server_config(
        ports, groups=[group("support", PILOT, "linear", [m1.uri])], shutdown_grace=6
    )
    server = start_server(config)
    assert options_ping(server.port) == 200
    sipp.call("talking", server.port, PILOT, duration_ms=20_000)
    server.wait_for_log(r"call \S+: bridged to sip:m1@")
    assert server.popen is not None
    server.popen.send_signal(signal.SIGTERM)
    server.wait_for_log(r"shutting down: 1 call\(s\) in progress")
    statuses = [options_ping(server.port, wait=1.0) for _ in range(3)]
    assert statuses == [503, 503, 503], statuses
    assert server.popen.poll() is None  # still draining: the call is in progress
    with contextlib.suppress(subprocess.TimeoutExpired):  # the call ends, then the server
        server.popen.wait(timeout=20)
    assert server.popen.returncode == 0, server.log()[-3000:]
