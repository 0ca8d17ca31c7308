"""``huntgroup serve`` against real peers: session timers on the wire, and a flood
from one source refused while another source's call goes through (issue 9,
points 10 and 11).

Expiry and refreshes are proven by the sans-I/O tests with a scripted clock
(``tests/engine/b2bua/test_b2bua_session_timers.py``): the shortest session
interval RFC 4028 allows is 90 s, too long for this suite. Here the headers
negotiated on both legs are checked on the wire. Every wait is bounded.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.ports import PortAllocator
from tests.support.sip_harness import HOST, HuntgroupServer, Sipp, group, server_config

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

PILOT = "0140000000"
StartServer = Callable[[dict[str, Any]], HuntgroupServer]


def _invite(number: str, port: int, local: tuple[str, int], *, extra: str = "") -> bytes:
    host, local_port = local
    branch = f"z9hG4bK{secrets.token_hex(8)}"
    return (
        f"INVITE sip:{number}@{HOST}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{local_port};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:0611111111@{host}>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:{number}@{HOST}>\r\n"
        f"Call-ID: {secrets.token_hex(8)}@{host}\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:0611111111@{host}:{local_port}>\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _finals(sock: socket.socket, *, seconds: float) -> list[str]:
    """The final responses received within ``seconds``, each once (a 4xx to an INVITE
    is retransmitted until ACKed; nobody ACKs here)."""
    out: list[str] = []
    deadline = time.monotonic() + seconds
    for _ in range(1000):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data = sock.recv(65535)
        except TimeoutError:
            break
        text = data.decode(errors="replace")
        if not text.startswith("SIP/2.0 1") and text not in out:
            out.append(text)
    return out


def test_session_timers_are_negotiated_with_caller_and_member(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    member = sipp.member("m1", "timer", answer_ms=100)
    server = start_server(server_config(ports, groups=[group("G", PILOT, "linear", [member.uri])]))
    caller = sipp.call("caller", server.port, PILOT, "uac_timer.xml", duration_ms=300)
    caller.expect_success()
    (invite,) = member.received("INVITE")
    assert invite.header("Session-Expires") == "1800"
    assert invite.header("Min-SE") == "90"
    assert "timer" in (invite.header("Supported") or "")
    ok = caller.received(200)[0]
    assert ok.header("Session-Expires") == "600;refresher=uac", "the caller refreshes"
    assert ok.header("Require") == "timer"
    assert len(member.received("BYE")) == 1


def test_too_short_a_session_interval_gets_422_with_min_se(
    ports: PortAllocator, start_server: StartServer
) -> None:
    server = start_server(server_config(ports, groups=[group("G", PILOT, "linear", [])]))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        local = (HOST, int(sock.getsockname()[1]))
        extra = "Supported: timer\r\nSession-Expires: 30\r\n"
        sock.sendto(_invite(PILOT, server.port, local, extra=extra), (HOST, server.port))
        (final,) = _finals(sock, seconds=2.0)
    assert final.startswith("SIP/2.0 422 ")
    assert "\r\nMin-SE: 90\r\n" in final


def test_a_flooding_source_gets_503_then_silence_while_another_source_calls(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    member = sipp.member("m1", "answer", answer_ms=100)
    config = server_config(ports, groups=[group("G", PILOT, "linear", [member.uri])])
    config["server"]["limits"] = {
        "per_source_invite_rate": 1,
        "per_source_invite_burst": 4,
        "max_loop_lag": None,  # a busy test machine must not shed the calls of this test
        "max_load": None,
    }
    server = start_server(config)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.2", 0))  # the flooder: another loopback address
        local = ("127.0.0.2", int(sock.getsockname()[1]))
        for _ in range(12):  # to an unknown number: the admitted ones get 404
            sock.sendto(_invite("0999999999", server.port, local), (HOST, server.port))
        finals = _finals(sock, seconds=1.5)
    statuses = [f.split(" ", 2)[1] for f in finals]
    assert statuses.count("404") == 4, statuses  # the burst
    assert statuses.count("503") == 4, statuses  # then refused, then no answer at all
    assert len(statuses) == 8
    assert all("\r\nRetry-After: 4\r\n" in f for f in finals if " 503 " in f)
    caller = sipp.call("caller", server.port, PILOT, "uac_call.xml", duration_ms=200)
    caller.expect_success()  # from 127.0.0.1: its own bucket
    assert len(member.received("INVITE")) == 1
