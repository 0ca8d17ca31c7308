"""The saturation probe's measures (engine/aio/server.py): the SIP receive queue, and
the time the event loop's thread waits for a core."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from huntgroup.engine.aio import server
from huntgroup.engine.aio.server import UDP_RECEIVE_BUFFER, _udp_socket, run_delay, udp_backlog


def test_the_receive_queue_is_measured_in_bytes_and_drains_to_zero() -> None:
    sock = _udp_socket("127.0.0.1", 0)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert udp_backlog(sock) == 0
        for _ in range(10):
            sender.sendto(b"x" * 900, sock.getsockname())
        queued = udp_backlog(sock)
        assert queued is not None and queued >= 10 * 900, "payload plus the kernel's overhead"
        for _ in range(10):
            sock.recv(2048)
        assert udp_backlog(sock) == 0
    finally:
        sock.close()
        sender.close()


def test_sip_udp_sockets_ask_for_a_deep_receive_buffer() -> None:
    sock = _udp_socket("127.0.0.1", 0)
    try:
        rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
        granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        # Linux doubles what it grants; without privilege it caps at rmem_max
        assert granted >= 2 * min(UDP_RECEIVE_BUFFER, rmem_max)
    finally:
        sock.close()


def test_the_wait_for_a_core_is_read_and_grows_under_contention() -> None:
    """More busy processes than cores: this thread, kept runnable, waits for a core
    now and then, and that wait is what is read."""
    before = run_delay()
    assert before is not None and before >= 0.0, "Linux: /proc/thread-self/schedstat"
    spin = [sys.executable, "-c", "while True: pass"]
    spinners = [subprocess.Popen(spin) for _ in range(2 * (os.cpu_count() or 1))]
    try:
        waited = before
        for _ in range(20_000):  # bounded by work, not by time
            sum(range(5_000))
            waited = run_delay() or 0.0
            if waited > before:
                break
    finally:
        for proc in spinners:
            proc.kill()
            proc.wait()
    assert waited > before


def test_no_schedstat_means_no_wait_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "SCHEDSTAT", "/nonexistent/schedstat")
    assert run_delay() is None
