"""``huntgroup serve`` under a fake systemd: a datagram socket named by ``$NOTIFY_SOCKET``.

The test binds the socket (a path in a short temporary directory, or a name in the
abstract namespace), starts the server with ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC``
set, and reads what it is told: READY=1 only once the SIP port answers OPTIONS and
the admin listener answers ``/healthz``,
WATCHDOG=1 again and again, RELOADING=1 then READY=1 around a SIGHUP reload,
STOPPING=1 after SIGTERM; then the process exits 0.
"""

from __future__ import annotations

import secrets
import signal
import socket
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.ports import PortAllocator
from tests.support.sip_harness import (
    HarnessError,
    HuntgroupServer,
    group,
    member_uri,
    options_ping,
    server_config,
)
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

PILOT = "0140000000"
WATCHDOG_USEC = 400_000  # a ping every 0.2 s


@contextmanager
def fake_systemd(kind: str) -> Iterator[tuple[str, socket.socket]]:
    """(``$NOTIFY_SOCKET``, the bound socket): a path (kept short, a Unix socket path
    has at most 107 bytes) or an abstract name."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setblocking(False)
    with tempfile.TemporaryDirectory(prefix="hg-", dir="/tmp") as directory:
        try:
            if kind == "path":
                path = f"{directory}/notify"
                sock.bind(path)
                yield path, sock
            else:
                name = f"huntgroup-test-{secrets.token_hex(8)}"
                sock.bind(b"\0" + name.encode())
                yield f"@{name}", sock
        finally:
            sock.close()


class Received:
    """The notifications read so far, each as a dict of its fields."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.all: list[dict[str, str]] = []

    def read(self) -> list[dict[str, str]]:
        try:
            while True:
                data = self.sock.recv(4096).decode()
                self.all.append(dict(line.split("=", 1) for line in data.splitlines()))
        except BlockingIOError:
            return self.all

    def having(self, key: str, value: str = "1") -> list[int]:
        return [i for i, fields in enumerate(self.read()) if fields.get(key) == value]


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_ready_watchdog_reload_and_stopping_reach_a_fake_notify_socket(
    kind: str, ports: PortAllocator, tmp_path: Path
) -> None:
    config = server_config(ports, groups=[group("Support", PILOT, "linear", [member_uri("m1", 9)])])
    admin = f"127.0.0.1:{ports.port()}"
    config["server"]["admin"] = {"listen": admin}
    with fake_systemd(kind) as (address, sock):
        server = HuntgroupServer(
            config,
            tmp_path / "server",
            env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": str(WATCHDOG_USEC)},
        )
        got = Received(sock)
        try:
            popen = server.launch()

            def ready() -> bool:
                if popen.poll() is not None:
                    raise HarnessError(f"huntgroup serve exited:\n{server.log()[-4000:]}")
                seen = got.read()  # one read: READY=1 may land between two
                if any(fields.get("READY") == "1" for fields in seen):
                    return True
                assert not seen, "nothing before READY=1"
                return False

            wait_until(ready, timeout=60, interval=0.005)
            # told READY: the SIP port and the admin listener answer now (they were open
            # before the datagram left)
            assert options_ping(server.port, wait=2) == 200
            with urllib.request.urlopen(f"http://{admin}/healthz", timeout=10) as health:
                assert health.status == 200
            assert got.all[0] == {"READY": "1", "STATUS": "0 call(s), 0 queued"}

            wait_until(lambda: len(got.having("WATCHDOG")) >= 3, timeout=30)

            popen.send_signal(signal.SIGHUP)
            wait_until(lambda: got.having("RELOADING"), timeout=30)
            (reloading,) = got.having("RELOADING")
            assert int(got.all[reloading]["MONOTONIC_USEC"]) > 0
            wait_until(lambda: [i for i in got.having("READY") if i > reloading], timeout=30)
            server.wait_for_log("reload: the file did not change")

            popen.send_signal(signal.SIGTERM)
            wait_until(lambda: got.having("STOPPING"), timeout=30)
            (stopping,) = got.having("STOPPING")
            assert got.all[stopping]["STATUS"] == "draining: 0 call(s), 0 queued"
            assert popen.wait(timeout=30) == 0, server.log()[-3000:]
        finally:
            server.kill()
