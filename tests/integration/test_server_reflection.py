"""The live server never answers where a request's Via points: no reflection, no connection.

A UDP request whose Via names another port, a ``maddr``, or TCP is answered over
UDP at its real source only; a "victim" listening on the port the Via names (UDP
and TCP) receives nothing and is never connected to.
"""

from __future__ import annotations

import secrets
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.ports import PortAllocator
from tests.support.sip_harness import HOST, HuntgroupServer, server_config

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]


@pytest.fixture
def server(tmp_path: Any, ports: PortAllocator) -> Iterator[HuntgroupServer]:
    config = server_config(ports, lines=[{"number": "0102030405", "password": "pw"}])
    live = HuntgroupServer(config=config, workdir=tmp_path / "server").start()
    try:
        yield live
    finally:
        assert live.stop() == 0, live.log()


def request(method: str, server_port: int, via: str) -> bytes:
    tag = secrets.token_hex(4)
    ruri = f"sip:0999999999@{HOST}:{server_port}"
    body = (
        b""
        if method != "INVITE"
        else (
            f"v=0\r\no=- 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
            "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        ).encode()
    )
    head = (
        f"{method} {ruri} SIP/2.0\r\n"
        f"Via: {via};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:attacker@{HOST}>;tag={tag}\r\n"
        f"To: <{ruri}>\r\n"
        f"Call-ID: steer-{tag}@test\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Contact: <sip:attacker@{HOST}>\r\n"
        + ("Content-Type: application/sdp\r\n" if body else "")
        + f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def test_udp_requests_steering_the_answer_elsewhere_are_answered_at_their_source(
    server: HuntgroupServer, ports: PortAllocator
) -> None:
    victim_port = ports.port()
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as victim_udp,
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as victim_tcp,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker,
    ):
        victim_udp.bind((HOST, victim_port))
        victim_tcp.bind((HOST, victim_port))
        victim_tcp.listen(8)
        attacker.bind((HOST, 0))
        steering = [
            f"SIP/2.0/UDP {HOST}:{victim_port}",  # sent-by port, no rport
            f"SIP/2.0/UDP {HOST}:{victim_port};maddr={HOST}",  # maddr
            f"SIP/2.0/UDP 192.0.2.1:{victim_port};maddr={HOST};rport",
            f"SIP/2.0/TCP {HOST}:{victim_port}",  # a transport it did not come over
            f"SIP/2.0/TLS {HOST}:{victim_port};rport",
        ]
        sent = 0
        for via in steering:
            for method in ("OPTIONS", "INVITE"):
                attacker.sendto(request(method, server.port, via), (HOST, server.port))
                sent += 1
        # INVITE answers are retransmitted (timer G: 0.5 s, 1 s, 2 s...): wait for some.
        finals: set[bytes] = set()
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            ready, _, _ = select.select([attacker, victim_udp, victim_tcp], [], [], 0.1)
            assert victim_udp not in ready, victim_udp.recv(65535)[:200]
            assert victim_tcp not in ready, "the server connected to the Via's TCP port"
            if attacker in ready:
                data = attacker.recv(65535)
                assert data.startswith(b"SIP/2.0 ")
                if not data.startswith(b"SIP/2.0 1"):
                    call_id = next(h for h in data.split(b"\r\n") if h.startswith(b"Call-ID"))
                    finals.add(call_id)
        assert len(finals) == sent  # every request was answered, at its real source
    assert "connection to" not in server.log()
