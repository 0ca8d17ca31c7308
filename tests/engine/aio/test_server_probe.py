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
from huntgroup.engine.aio.server import (
    FULL_LAG,
    UDP_RECEIVE_BUFFER,
    _udp_socket,
    input_lag,
    run_delay,
    udp_backlog,
    udp_queue_full,
)


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


def test_a_receive_queue_at_its_size_is_full_and_no_longer_once_read() -> None:
    """Review M1: a small buffer (an unprivileged process) fills; the kernel drops the
    rest, so the queue's own wait no longer tells how far behind the node is."""
    sock = _udp_socket("127.0.0.1", 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _ in range(200):  # far more than fits: the excess is dropped
            sender.sendto(b"x" * 900, sock.getsockname())
        queued = udp_backlog(sock)
        assert queued is not None and udp_queue_full(sock, queued)
        while True:
            try:
                sock.recv(2048)
            except BlockingIOError:
                break
        assert not udp_queue_full(sock, udp_backlog(sock) or 0)
    finally:
        sock.close()
        sender.close()


def test_a_full_receive_queue_counts_as_input_well_past_the_lag_limit() -> None:
    """185 INVITEs queued (416 KiB) read at 4000 a second wait 46 ms: under a 100 ms
    limit, while the kernel drops the flood. Full, they count four times the limit."""
    facts = {"backlog": 185 * 2300, "read": 200, "read_bytes": 200 * 900, "elapsed": 0.05}
    assert input_lag(0.0, full=False, max_loop_lag=0.1, **facts) < 0.1
    assert input_lag(0.0, full=True, max_loop_lag=0.1, **facts) == FULL_LAG * 0.1
    assert input_lag(0.0, full=True, max_loop_lag=None, **facts) < 0.1, "no lag limit"
    assert input_lag(0.7, full=True, max_loop_lag=0.1, **facts) == 0.7, "the larger"


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
    if before is None:  # a kernel feature, not a peer: fail, do not skip
        pytest.fail(
            f"this kernel lacks {server.SCHEDSTAT} (CONFIG_SCHED_INFO): the wait for a core "
            "cannot be read, and max_load sees the CPU share alone"
        )
    assert before >= 0.0
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
