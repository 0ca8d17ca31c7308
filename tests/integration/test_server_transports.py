"""The live server on UDP and TCP, IPv4 and IPv6: answers, Via rport, TCP framing errors."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tests.support.ports import PortAllocator
from tests.support.sip_harness import HuntgroupServer, server_config

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]


def options(host: str, port: int, transport: str, branch: str) -> bytes:
    bracket = f"[{host}]" if ":" in host else host
    return (
        f"OPTIONS sip:ping@{bracket}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {bracket}:9;branch=z9hG4bK{branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:t@{bracket}>;tag=t{branch}\r\n"
        f"To: <sip:ping@{bracket}>\r\n"
        f"Call-ID: {branch}@test\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def udp_exchange(host: str, port: int, data: bytes) -> bytes:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(15)
        sock.bind((host, 0))
        sock.sendto(data, (host, port))
        reply, _ = sock.recvfrom(65535)
        return reply


def tcp_read_message(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65535)
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture
def dual_stack(tmp_path: Any, ports: PortAllocator) -> Any:
    config = server_config(ports, lines=[{"number": "0102030405", "password": "pw"}])
    v4 = config["server"]["listen"][0].split(":")[2]
    v6 = ports.port()
    config["server"]["listen"] += [f"udp:[::1]:{v6}", f"tcp:[::1]:{v6}"]
    server = HuntgroupServer(config=config, workdir=tmp_path / "server").start()
    try:
        yield server, int(v4), v6
    finally:
        assert server.stop() == 0, server.log()


def test_options_over_udp_v4_and_v6_with_rport(dual_stack: Any) -> None:
    _server, v4, v6 = dual_stack
    reply = udp_exchange("127.0.0.1", v4, options("127.0.0.1", v4, "UDP", "a1"))
    assert reply.startswith(b"SIP/2.0 200 ")
    assert b";rport=" in reply and b"received=127.0.0.1" in reply
    reply6 = udp_exchange("::1", v6, options("::1", v6, "UDP", "a2"))
    assert reply6.startswith(b"SIP/2.0 200 ")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_options_and_register_over_tcp_reuse_the_connection(dual_stack: Any, host: str) -> None:
    _server, v4, v6 = dual_stack
    port = v6 if ":" in host else v4
    with socket.create_connection((host, port), timeout=15) as sock:
        sock.sendall(options(host, port, "TCP", "t1"))
        assert tcp_read_message(sock).startswith(b"SIP/2.0 200 ")
        register = (
            options(host, port, "TCP", "t2")
            .replace(b"OPTIONS sip:ping@", b"REGISTER sip:")
            .replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 REGISTER")
            .replace(b"To: <sip:ping@", b"To: <sip:0102030405@")
        )
        sock.sendall(register)
        reply = tcp_read_message(sock)
        assert reply.startswith(b"SIP/2.0 401 "), reply[:200]
        assert b"WWW-Authenticate: Digest" in reply


def test_garbage_on_tcp_gets_400_and_the_server_goes_on(dual_stack: Any) -> None:
    server, v4, _v6 = dual_stack
    with socket.create_connection(("127.0.0.1", v4), timeout=15) as sock:
        bad = options("127.0.0.1", v4, "TCP", "g1").replace(b"SIP/2.0\r\nVia", b"SIP/9.9\r\nVia")
        sock.sendall(bad)
        reply = tcp_read_message(sock)
        assert reply.startswith(b"SIP/2.0 505 "), reply[:200]
    reply = udp_exchange("127.0.0.1", v4, options("127.0.0.1", v4, "UDP", "g2"))
    assert reply.startswith(b"SIP/2.0 200 ")
    assert "internal error" not in server.log()
