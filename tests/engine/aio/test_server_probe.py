"""The saturation probe's measurement of the SIP receive queue (engine/aio/server.py)."""

from __future__ import annotations

import socket
from pathlib import Path

from huntgroup.engine.aio.server import UDP_RECEIVE_BUFFER, _udp_socket, udp_backlog


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
