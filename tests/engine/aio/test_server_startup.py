"""Start-up order: the SIP sockets are bound first (their ports name the B2BUA's own
addresses) but read only once the B2BUA exists.

A datagram that lands while the server is still starting (between two listeners,
or while the shared state connects) used to be handed to a B2BUA not built yet: an
internal error with a traceback, and no answer. It now waits in the socket's
buffer and is answered once the server serves.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import pytest

from huntgroup.config.models import Config, ServerConfig
from huntgroup.engine.aio.server import Server


def _options(port: int, call_id: str) -> bytes:
    return (
        f"OPTIONS sip:ping@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK{call_id}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@127.0.0.1>;tag={call_id}\r\n"
        f"To: <sip:ping@127.0.0.1:{port}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def test_a_datagram_sent_during_start_up_is_answered_once_the_server_serves(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_start_server = asyncio.start_server
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(5.0)
    sent_while_starting: list[bool] = []
    loop_errors: list[dict[str, Any]] = []

    async def start_server_after_a_ping(*args: Any, **kwargs: Any) -> asyncio.Server:
        # the UDP listener is bound already; the TCP one is being opened: a peer's
        # datagram arrives now, and the loop runs before the start-up goes on
        server: Server = started[0]
        port = server._udp[0][0].port
        client.sendto(_options(port, "early1"), ("127.0.0.1", port))
        sent_while_starting.append(not hasattr(server, "b2bua"))
        await asyncio.sleep(0.2)
        return await real_start_server(*args, **kwargs)

    started: list[Server] = []
    monkeypatch.setattr(asyncio, "start_server", start_server_after_a_ping)
    config = Config(server=ServerConfig(listen=("udp:127.0.0.1:0", "tcp:127.0.0.1:0")))

    async def scenario() -> bytes:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
        server = Server(config, loop=loop)
        started.append(server)
        await server.start()
        try:
            return await loop.run_in_executor(None, lambda: client.recvfrom(65535)[0])
        finally:
            server.close()

    with caplog.at_level(logging.ERROR):
        answer = asyncio.run(scenario())
    client.close()
    assert sent_while_starting == [True]  # the ping really came before the B2BUA
    assert answer.startswith(b"SIP/2.0 ") and b"Call-ID: early1" in answer
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert loop_errors == []


def test_a_start_that_fails_after_binding_frees_its_sockets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A start that stops after the sockets are bound (here: the TCP listener's port is
    taken) leaves nothing open once the server is closed: the port can be bound again."""
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    tcp_port = busy.getsockname()[1]
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    udp_port = probe.getsockname()[1]
    probe.close()
    config = Config(
        server=ServerConfig(listen=(f"udp:127.0.0.1:{udp_port}", f"tcp:127.0.0.1:{tcp_port}"))
    )

    async def scenario() -> None:
        server = Server(config, loop=asyncio.get_running_loop())
        try:
            with pytest.raises(OSError):
                await server.start()
        finally:
            server.close()

    try:
        asyncio.run(scenario())
    finally:
        busy.close()
    again = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    again.bind(("127.0.0.1", udp_port))  # OSError (address in use) if it leaked
    again.close()
