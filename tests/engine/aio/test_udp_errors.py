"""ICMP errors on a UDP socket: read from the error queue, and never costing another datagram."""

from __future__ import annotations

import errno
import select
import socket
from collections.abc import Iterator

import pytest

from huntgroup.engine.aio import udp_errors
from huntgroup.engine.sip.layer import client_key_of_datagram

INVITE = (
    b"INVITE sip:m1@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKdead1;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:caller@example.net>;tag=a\r\n"
    b"To: <sip:m1@127.0.0.1>\r\n" + b"X-Filler: " + b"x" * 900 + b"\r\n"
    b"Call-ID: dead@test\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
)


@pytest.fixture
def sender() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    assert udp_errors.enable(sock)
    yield sock
    sock.close()


def dead_port() -> int:
    """A loopback UDP port nothing listens on: datagrams to it get ICMP port unreachable."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_error(sock: socket.socket) -> None:
    poller = select.poll()
    poller.register(sock, select.POLLERR)
    assert poller.poll(5000), "no ICMP error came back"


def test_an_unreachable_port_comes_back_with_the_datagram_and_its_destination(
    sender: socket.socket,
) -> None:
    port = dead_port()
    sender.sendto(INVITE, ("127.0.0.1", port))
    wait_for_error(sender)
    [item] = udp_errors.drain(sender)
    assert item.destination == ("127.0.0.1", port)
    assert item.error == errno.ECONNREFUSED
    assert INVITE.startswith(item.data), "the payload is the start of what we sent"
    key = client_key_of_datagram(item.data)
    assert key is not None and (key.branch, key.method) == ("z9hG4bKdead1", "INVITE")
    assert udp_errors.drain(sender) == [], "the queue is empty once read"


def test_a_pending_error_does_not_cost_the_next_datagram(sender: socket.socket) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as live:
        live.bind(("127.0.0.1", 0))
        live.settimeout(5)
        port = dead_port()
        # Without care, the error of the first datagram is returned by the next sendto,
        # and that one is not sent at all:
        sender.sendto(b"first", ("127.0.0.1", port))
        wait_for_error(sender)
        with pytest.raises(ConnectionRefusedError):
            sender.sendto(b"lost", live.getsockname())
        udp_errors.drain(sender)
        # udp_errors.send reads the earlier error and sends again.
        sender.sendto(b"second", ("127.0.0.1", port))
        wait_for_error(sender)
        earlier = udp_errors.send(sender, b"kept", live.getsockname())
        assert [e.destination for e in earlier] == [("127.0.0.1", port)]
        assert live.recv(100) == b"kept"


def test_client_keys_are_read_from_truncated_requests_only() -> None:
    assert client_key_of_datagram(INVITE[:200]) is not None
    assert client_key_of_datagram(INVITE[:60]) is None, "the Via line is cut: unknown"
    assert client_key_of_datagram(b"ACK sip:a@b SIP/2.0\r\n" + INVITE.split(b"\r\n", 1)[1]) is None
    assert client_key_of_datagram(b"SIP/2.0 200 OK\r\n" + INVITE.split(b"\r\n", 1)[1]) is None
    assert client_key_of_datagram(b"\x00\xff garbage") is None
    assert client_key_of_datagram(b"INVITE sip:a@b SIP/2.0\r\nVia: nonsense\r\n\r\n") is None
