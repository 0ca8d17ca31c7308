"""TCP connections to a live server are bounded: a deadline for the first message after
the accept and for each message, an idle timeout that RFC 5626 keep-alives hold off, caps
per source and in total with a reserve for the server's own connections, counted and
logged."""

from __future__ import annotations

import contextlib
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.ports import PortAllocator, tcp_accept_backlog, tcp_server_side_open
from tests.support.sip_harness import (
    REPO_ROOT,
    HuntgroupServer,
    Sipp,
    group,
    server_config,
)
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]


def options(port: int, branch: str, local: tuple[str, int]) -> bytes:
    return (
        f"OPTIONS sip:ping@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP {local[0]}:{local[1]};branch=z9hG4bK{branch}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:t@127.0.0.1>;tag=t{branch}\r\n"
        "To: <sip:ping@127.0.0.1>\r\n"
        f"Call-ID: {branch}@conn\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    return sock


def answered(sock: socket.socket, port: int, branch: str) -> bool:
    """An OPTIONS on ``sock`` gets its 200 on it."""
    try:
        sock.sendall(options(port, branch, sock.getsockname()))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65535)
            if not chunk:
                return False
            data += chunk
    except OSError:
        return False
    return data.lstrip(b"\r\n").startswith(b"SIP/2.0 200 ")


def closed_by_server(sock: socket.socket, within: float) -> float | None:
    """Seconds until the server closes ``sock`` (reads it dry), or None if it stays open."""
    start = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - start < within:
        try:
            chunk = sock.recv(65535)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - start
        if not chunk:
            return time.monotonic() - start
    return None


@pytest.fixture
def make_server(tmp_path: Path, ports: PortAllocator) -> Iterator[Any]:
    servers: list[HuntgroupServer] = []

    def start(**connections: Any) -> HuntgroupServer:
        config = server_config(ports)
        config["server"]["connections"] = connections
        server = HuntgroupServer(config=config, workdir=tmp_path / f"s{len(servers)}")
        servers.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in servers:
            server.kill()


def stats_line(server: HuntgroupServer, count: int) -> dict[str, int]:
    assert server.popen is not None
    server.popen.send_signal(signal.SIGUSR1)
    server.wait_for_log(r"stats: .*conn_accepted=", count=count)
    line = [ln for ln in server.log().splitlines() if "stats: " in ln][-1]
    return {k: int(v) for k, v in (f.split("=") for f in line.split("stats: ")[1].split())}


def test_a_half_sent_message_is_closed_after_the_message_deadline(make_server: Any) -> None:
    server = make_server(message_timeout=1.0, idle_timeout=30)
    with connect(server.port) as slow, connect(server.port) as good:
        assert answered(slow, server.port, "h0")  # past its first message...
        assert answered(good, server.port, "h3")
        slow.sendall(options(server.port, "h1", slow.getsockname())[:60])  # ...one never finished
        started = time.monotonic()
        for _ in range(4):  # a byte now and then is no activity that saves it
            time.sleep(0.2)  # the behaviour: a byte now and then
            slow.sendall(b"X")
        closed = closed_by_server(slow, within=6.0)
        assert closed is not None, "a half-sent message held the connection"
        assert 0.8 <= time.monotonic() - started <= 6.0
        assert answered(good, server.port, "h2")  # the other connection is untouched
    stats = stats_line(server, 1)
    assert stats["conn_message_timeouts"] == 1 and stats["conn_idle_timeouts"] == 0
    assert "no complete message 1 s after its first byte" in server.log()


def test_idle_connections_close_but_crlf_keepalives_keep_theirs_with_pongs(
    make_server: Any,
) -> None:
    server = make_server(message_timeout=1.0, idle_timeout=1.5)
    with connect(server.port) as idle, connect(server.port) as phone:
        # a first complete message on each: from then on the idle timeout applies
        assert answered(idle, server.port, "k0") and answered(phone, server.port, "k2")
        pongs = b""
        phone.settimeout(0.5)
        idle_closed = None
        start = time.monotonic()
        while time.monotonic() - start < 4.5:  # three idle timeouts
            phone.sendall(b"\r\n\r\n")  # RFC 5626 ping
            with contextlib.suppress(TimeoutError):
                pongs += phone.recv(16)
            if idle_closed is None:
                idle.settimeout(0.01)
                try:
                    if idle.recv(1) == b"":
                        idle_closed = time.monotonic() - start
                except TimeoutError:
                    pass
                except ConnectionResetError:
                    idle_closed = time.monotonic() - start
            time.sleep(0.3)  # the behaviour: pings at a pace
        assert idle_closed is not None and 1.2 <= idle_closed <= 4.5, idle_closed
        assert pongs and set(pongs.split(b"\r\n")) == {b""}  # single CRLFs only
        assert len(pongs) >= 2 * 8
        phone.settimeout(5)
        assert answered(phone, server.port, "k1")  # still open, still working
    stats = stats_line(server, 1)
    assert stats["conn_idle_timeouts"] == 1 and stats["keepalive_pongs"] >= 8


def test_per_source_cap_refuses_extra_connections_and_existing_ones_keep_working(
    make_server: Any,
) -> None:
    server = make_server(max_per_source=5, max_total=100)
    kept = [connect(server.port) for _ in range(5)]
    extra = [connect(server.port) for _ in range(3)]  # the TCP handshake completes...
    try:
        for sock in extra:  # ...but the server closes them at once
            assert closed_by_server(sock, within=3.0) is not None
        for i, sock in enumerate(kept):
            assert answered(sock, server.port, f"p{i}")
        with connect(server.port, "127.0.0.2") as other:  # another source is not concerned
            assert answered(other, server.port, "p-other")
        closing = kept.pop()
        peer = closing.getsockname()
        closing.close()
        wait_until(lambda: not tcp_server_side_open(server.port, peer), timeout=10)
        with connect(server.port) as again:  # a place is free again
            assert answered(again, server.port, "p-again")
    finally:
        for sock in kept + extra:
            sock.close()
    stats = stats_line(server, 1)
    assert stats["conn_refused_source"] == 3 and stats["conn_refused_total"] == 0
    assert stats["conn_accepted"] == 7
    assert server.log().count("refused: cap per source (5 from 127.0.0.1) reached") == 1


def test_total_cap_refuses_extra_connections_from_any_source(make_server: Any) -> None:
    server = make_server(max_per_source=3, max_total=7, outgoing_reserve=2)
    kept = [connect(server.port, f"127.0.0.{2 + i // 3}") for i in range(5)]
    extra = [connect(server.port, f"127.0.0.{10 + i}") for i in range(3)]
    try:
        for sock in extra:
            assert closed_by_server(sock, within=3.0) is not None
        for i, sock in enumerate(kept):
            assert answered(sock, server.port, f"t{i}")
    finally:
        for sock in kept + extra:
            sock.close()
    stats = stats_line(server, 1)
    assert stats["conn_refused_total"] == 3 and stats["conn_refused_source"] == 0
    assert "refused: total cap (5 incoming; 2 more kept for outgoing) reached" in server.log()


def test_a_connection_that_never_completes_a_message_is_closed_after_message_timeout(
    make_server: Any,
) -> None:
    """Silence, or keep-alives alone, do not hold a connection until the idle timeout:
    the first complete message must come ``message_timeout`` after the accept."""
    server = make_server(message_timeout=1.0, idle_timeout=30)
    started = time.monotonic()
    with (
        connect(server.port) as silent,
        connect(server.port) as pinger,
        connect(server.port) as phone,
    ):
        assert answered(phone, server.port, "s1")  # a complete message: idle_timeout now
        silent.settimeout(0.01)
        closed: dict[str, float] = {}
        pongs = 0
        while len(closed) < 2 and time.monotonic() - started < 10:  # bounded
            if "pinger" not in closed:
                try:
                    pinger.sendall(b"\r\n\r\n")  # RFC 5626 pings, never a message
                    pinger.settimeout(0.2)
                    got = pinger.recv(64)
                    pongs += got.count(b"\r\n")
                    if not got:
                        closed["pinger"] = time.monotonic() - started
                except TimeoutError:
                    pass
                except OSError:
                    closed["pinger"] = time.monotonic() - started
            if "silent" not in closed:
                try:
                    if silent.recv(1) == b"":
                        closed["silent"] = time.monotonic() - started
                except TimeoutError:
                    pass
                except OSError:
                    closed["silent"] = time.monotonic() - started
            time.sleep(0.1)  # the behaviour: pings at a pace
        assert set(closed) == {"silent", "pinger"}, closed
        assert all(0.8 <= t <= 6.0 for t in closed.values()), closed  # idle_timeout is 30
        assert pongs >= 1  # keep-alives were answered, they just did not extend the deadline
        phone.settimeout(5)
        assert answered(phone, server.port, "s2")  # past message_timeout, still open
    stats = stats_line(server, 1)
    assert stats["conn_message_timeouts"] == 2 and stats["conn_idle_timeouts"] == 0
    assert "no complete message 1 s after it was accepted" in server.log()


def test_an_incoming_flood_leaves_outgoing_connections_their_reserve(
    tmp_path: Path, ports: PortAllocator, sipp: Sipp
) -> None:
    """Incoming connections filling their cap do not stop a call from reaching a member
    the server must open a TCP connection to."""
    member = sipp.member("m1", "answer", answer_ms=200, transport="tcp")
    pilot = "0140000000"
    config = server_config(
        ports, groups=[group("G", pilot, "linear", [member.uri], no_answer_timeout=5)]
    )
    config["server"]["connections"] = {
        "max_per_source": 100,
        "max_total": 12,
        "outgoing_reserve": 2,
        "message_timeout": 60,
    }
    server = HuntgroupServer(config=config, workdir=tmp_path / "reserve").start()
    flood = [connect(server.port) for _ in range(15)]  # 3 more than max_total
    try:
        # the server accepts every connection and closes the refused ones at once
        wait_until(lambda: tcp_accept_backlog(server.port) == 0, timeout=10)
        kept = [sock for sock in flood if closed_by_server(sock, within=0.2) is None]
        assert len(kept) == 10  # max_total - outgoing_reserve: the incoming cap is full
        caller = sipp.call("caller", server.port, pilot, "uac_call.xml", duration_ms=300)
        caller.expect_success()
        assert len(member.received("INVITE")) == 1
        assert all(closed_by_server(sock, within=0.05) is None for sock in kept)
    finally:
        for sock in flood:
            sock.close()
        server.kill()
    assert "refused: total cap (10 incoming; 2 more kept for outgoing) reached" in server.log()


def test_limit_raised_at_start_and_a_cap_that_does_not_fit_refused(
    make_server: Any, ports: PortAllocator, tmp_path: Path
) -> None:
    server = make_server()
    assert "open files: limit" in server.log()
    assert "connections: at most" in server.log()
    config = server_config(ports)
    config["server"]["connections"] = {"max_total": 10**9}
    path = tmp_path / "too-many.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "huntgroup", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert result.returncode != 0
    assert "server.connections.max_total (1000000000) does not fit" in result.stderr


def test_tls_caps_apply_before_the_handshake(tmp_path: Path, ports: PortAllocator) -> None:
    """Connections that never start their TLS handshake are capped like any other."""
    cert = REPO_ROOT / "examples" / "tls" / "example-cert.pem"
    key = REPO_ROOT / "examples" / "tls" / "example-key.pem"
    config = server_config(ports)
    tls_port = ports.port()
    config["server"]["listen"].append(f"tls:127.0.0.1:{tls_port}")
    config["server"]["tls"] = {"certificate": str(cert), "private_key": str(key)}
    config["server"]["connections"] = {"max_per_source": 2}
    server = HuntgroupServer(config=config, workdir=tmp_path / "tls").start()
    try:
        silent = [connect(tls_port) for _ in range(2)]  # no ClientHello, ever
        extra = connect(tls_port)
        try:
            assert closed_by_server(extra, within=3.0) is not None
            assert all(closed_by_server(s, within=0.5) is None for s in silent)
            context = ssl.create_default_context(cafile=str(cert))
            with (
                connect(tls_port, "127.0.0.2") as raw,
                context.wrap_socket(raw, server_hostname="127.0.0.1") as phone,
            ):
                assert answered(phone, tls_port, "tls1")  # type: ignore[arg-type]
        finally:
            for sock in [*silent, extra]:
                sock.close()
        stats = stats_line(server, 1)
        assert stats["conn_refused_source"] == 1
    finally:
        server.kill()
