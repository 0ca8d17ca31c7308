"""A real ``huntgroup serve`` on loopback for the live-mode tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.waiting import WaitTimeout, wait_until

REPO = Path(__file__).resolve().parents[2]
OUTCOMES = (
    "answered",
    "abandoned",
    "timed_out",
    "rejected_full",
    "forwarded",
    "no_answer",
    "unfinished",
)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_tcp_range(size: int = 200) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        low = 10000 + int(s.getsockname()[1]) % 20000  # below the ephemeral ports (32768+)
    return f"{low}-{low + size - 1}"


def options_ok(port: int) -> bool:
    """True once the server answers an OPTIONS with 200."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.2)
        me = s.getsockname()[1]
        request = (
            "OPTIONS sip:live.test SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-probe{time.monotonic_ns()}\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\n"
            "To: <sip:live.test>\r\nCall-ID: probe@127.0.0.1\r\nCSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        s.sendto(request.encode(), ("127.0.0.1", port))
        try:
            data = s.recv(65536)
        except OSError:
            return False
    return data.startswith(b"SIP/2.0 200")


@contextmanager
def serving(directory: Path, config: dict[str, Any], port: int) -> Iterator[None]:
    """``huntgroup serve`` on ``config`` (listening on udp 127.0.0.1:``port``) until exit."""
    served = directory / "served.yaml"
    served.write_text(yaml.safe_dump(config))
    log = (directory / "server.log").open("w")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "huntgroup", "serve", "--config", str(served)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        # generous: a loaded machine starts Python slowly
        with contextlib.suppress(WaitTimeout):
            wait_until(
                lambda: process.poll() is not None or options_ok(port), timeout=60, interval=0.1
            )
        if process.poll() is not None or not options_ok(port):
            log.flush()
            pytest.fail("huntgroup serve did not start:\n" + (directory / "server.log").read_text())
        yield
    finally:
        process.kill()
        process.wait()
        log.close()
