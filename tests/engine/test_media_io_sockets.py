"""MediaEngine keeps RTP sockets between calls: reused, drained, bounded."""

from __future__ import annotations

import asyncio
import socket

from huntgroup.engine import media_io
from huntgroup.engine.media_io import MediaEngine
from huntgroup.engine.media_plan import CloseMedia, OpenPort, StartRelay


def free_even_port() -> int:
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port % 2 == 0 and port < 65000:
            return port
    raise AssertionError("no even port")


def test_a_port_is_reused_by_the_next_call_without_stale_packets() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        engine = MediaEngine(loop, "127.0.0.1")
        caller_port, member_port = free_even_port(), free_even_port() + 2
        peer_a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer_b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer_a.bind(("127.0.0.1", 0))
        peer_b.bind(("127.0.0.1", 0))
        peer_b.settimeout(10)  # only bounds a failure: the relay answers in microseconds
        a, b = peer_a.getsockname(), peer_b.getsockname()
        engine.execute(OpenPort("s1", caller_port, "caller"))
        first = engine._sockets[caller_port]
        engine.execute(CloseMedia("s1", (caller_port,)))
        assert caller_port in engine._sockets and engine.sessions == 0
        # a late packet of the old call lands on the idle port: it must not be relayed
        peer_a.sendto(b"\x80\x00" + bytes(10) + b"late", ("127.0.0.1", caller_port))
        await asyncio.sleep(0.05)
        engine.execute(StartRelay("s2", caller_port, a, member_port, b))
        assert engine._sockets[caller_port] is first, "the bound socket was reused"
        peer_a.sendto(b"\x80\x00" + bytes(10) + b"voice", ("127.0.0.1", caller_port))
        data = await loop.run_in_executor(None, peer_b.recv, 2048)
        assert data.endswith(b"voice")
        assert engine.counters.dropped_idle >= 1
        engine.close_all()
        assert not engine._sockets
        peer_a.close()
        peer_b.close()

    asyncio.run(scenario())


def test_idle_sockets_are_bounded() -> None:
    async def scenario() -> None:
        media_io.MAX_IDLE_SOCKETS = 2
        try:
            engine = MediaEngine(asyncio.get_running_loop(), "127.0.0.1")
            ports = [free_even_port() for _ in range(4)]
            for i, port in enumerate(ports):
                engine.execute(OpenPort(f"s{i}", port, "caller"))
                engine.execute(CloseMedia(f"s{i}", (port,)))
            assert len(engine._sockets) == 2
            assert set(engine._sockets) == set(ports[-2:]), "the oldest idle ones are closed"
            engine.close_all()
        finally:
            media_io.MAX_IDLE_SOCKETS = 1024

    asyncio.run(scenario())
