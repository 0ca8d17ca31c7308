"""Batched reading of the SIP UDP sockets (engine/aio/server.py, ``_Udp``): one loop turn
handles the datagrams already waiting, and re-arms the B2BUA's timer once."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, cast

from huntgroup.engine.aio.server import READ_BATCH, Server, _Udp, _udp_socket
from huntgroup.engine.sip.address import Peer


class _FakeB2BUA:
    def __init__(self) -> None:
        self.received: list[tuple[bytes, Peer]] = []

    def receive_datagram(self, data: bytes, source: Peer, *, now: float) -> list[object]:
        self.received.append((data, source))
        return []


class _FakeServer:
    """What ``_Udp`` uses of the Server: counters, run and rearm."""

    def __init__(self) -> None:
        self.b2bua = _FakeB2BUA()
        self.datagrams = 0
        self.datagram_bytes = 0
        self.rearms = 0
        self.runs_rearming = 0

    def run(self, step: Callable[[float], object], *, rearm: bool = True) -> None:
        step(0.0)
        self.runs_rearming += rearm

    def rearm(self) -> None:
        self.rearms += 1


class _OpenTransport:
    def is_closing(self) -> bool:
        return False


def _protocol(sock: socket.socket) -> tuple[_Udp, _FakeServer]:
    server = _FakeServer()
    protocol = _Udp(cast(Server, server), sock)
    protocol.transport = cast(Any, _OpenTransport())
    return protocol, server


def test_waiting_datagrams_are_read_in_one_turn_and_the_timer_rearmed_once() -> None:
    sock = _udp_socket("127.0.0.1", 0)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(5):
            sender.sendto(b"OPTIONS %d" % i, sock.getsockname())
        protocol, server = _protocol(sock)
        first, addr = sock.recvfrom(2048)  # what asyncio reads before calling the protocol
        protocol.datagram_received(first, addr)
        assert [data for data, _ in server.b2bua.received] == [b"OPTIONS %d" % i for i in range(5)]
        source = server.b2bua.received[0][1]
        assert (source.host, source.port, source.transport) == (
            "127.0.0.1",
            sender.getsockname()[1],
            "UDP",
        )
        assert server.datagrams == 5 and server.datagram_bytes == 5 * len(b"OPTIONS 0")
        assert server.rearms == 1 and server.runs_rearming == 0
    finally:
        sock.close()
        sender.close()


def test_one_turn_reads_at_most_a_batch() -> None:
    sock = _udp_socket("127.0.0.1", 0)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(READ_BATCH + 3):
            sender.sendto(b"%d" % i, sock.getsockname())
        protocol, server = _protocol(sock)
        first, addr = sock.recvfrom(2048)
        protocol.datagram_received(first, addr)
        assert len(server.b2bua.received) == READ_BATCH
        left = []
        sock.setblocking(False)
        while True:
            try:
                left.append(sock.recv(2048))
            except BlockingIOError:
                break
        assert left == [b"%d" % i for i in range(READ_BATCH, READ_BATCH + 3)]
    finally:
        sock.close()
        sender.close()
