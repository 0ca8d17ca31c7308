"""The driver's stream sends: a response never opens a connection (it goes on its request's
connection or is dropped), and a request beyond the total connection cap fails at once."""

from __future__ import annotations

import asyncio

import pytest

from huntgroup.config.models import Config
from huntgroup.engine.aio.server import Server
from huntgroup.engine.b2bua import Transmit
from huntgroup.engine.b2bua.connections import ConnectionLimiter
from huntgroup.engine.sip.address import Peer

RESPONSE = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
REQUEST = b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n"


def test_a_response_whose_connection_is_gone_is_dropped_not_reconnected() -> None:
    async def scenario() -> Server:
        server = Server(Config(), loop=asyncio.get_running_loop())
        for transport in ("TCP", "TLS"):
            server._transmit(Transmit(RESPONSE, Peer("127.0.0.1", 9, transport)))
        server._transmit(Transmit(RESPONSE, Peer("victim.example.com", 9, "UDP")))
        await asyncio.sleep(0)
        return server

    server = asyncio.run(scenario())
    assert server._pending_tcp == {}  # no connection attempted
    assert server._limiter.open == 0
    assert server.conn_counters.responses_dropped == 2


def test_a_request_beyond_the_total_cap_fails_at_once() -> None:
    failed: list[tuple[bytes, Peer]] = []

    async def scenario() -> Server:
        server = Server(Config(), loop=asyncio.get_running_loop())
        server._limiter = ConnectionLimiter(max_per_source=1, max_total=1)
        assert server._limiter.accept("192.0.2.1") is None  # the only place is taken
        server.undelivered = lambda data, peer: failed.append((data, peer))  # type: ignore[method-assign]
        server._transmit(Transmit(REQUEST, Peer("127.0.0.1", 9, "TCP")))
        await asyncio.sleep(0)
        return server

    server = asyncio.run(scenario())
    assert failed == [(REQUEST, Peer("127.0.0.1", 9, "TCP"))]
    assert server._pending_tcp == {} and server.conn_counters.conn_refused_total == 1


def test_the_node_id_binds_the_b2buas_digest_nonces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Review finding 9: the driver gives the B2BUA the node id (HUNTGROUP_NODE_ID, else a
    fresh default) and a part drawn at each start, so its nonces are refused as stale by
    every other node, and by itself once restarted (its replay table is gone)."""
    from huntgroup.config.models import ServerConfig

    config = Config(server=ServerConfig(listen=("udp:127.0.0.1:0",)))

    async def start() -> Server:
        server = Server(config, loop=asyncio.get_running_loop())
        await server.start()
        server.close()
        return server

    monkeypatch.setenv("HUNTGROUP_NODE_ID", "node-7")
    monkeypatch.setenv("HUNTGROUP_SECRET", "a shared secret of 32 bytes......")
    named, restarted = asyncio.run(start()), asyncio.run(start())
    assert named.b2bua.auth.node_id.startswith("node-7/")
    assert restarted.b2bua.auth.node_id.startswith("node-7/")
    assert named.b2bua.auth.node_id != restarted.b2bua.auth.node_id
    monkeypatch.delenv("HUNTGROUP_NODE_ID")
    first, second = asyncio.run(start()), asyncio.run(start())
    assert first.b2bua.auth.node_id and first.b2bua.auth.node_id != second.b2bua.auth.node_id
