"""MediaEngine keeps RTP sockets between calls: reused, drained, bounded."""

from __future__ import annotations

import asyncio
import itertools
import socket

import pytest

from huntgroup.engine.aio import media_io
from huntgroup.engine.aio.media_io import MediaEngine
from huntgroup.media.commands import (
    CloseMedia,
    ConfirmMedia,
    OpenPort,
    PlayMusic,
    RtpTimedOut,
    StartRelay,
)
from huntgroup.media.g711 import Codec
from tests.support.waiting import async_wait_until


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
        await _settle(engine)
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


def test_every_even_port_of_any_range_can_stay_bound() -> None:
    """The allocator hands out the ports that cooled down longest, at random, never the
    ones just released: a pool smaller than the range keeps the wrong sockets, and every
    leg opens, binds and closes one again. The bound covers every even port there is."""
    assert len(range(0, 65536, 2)) <= media_io.MAX_IDLE_SOCKETS


def test_idle_sockets_are_bounded() -> None:
    async def scenario() -> None:
        saved = media_io.MAX_IDLE_SOCKETS
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
            media_io.MAX_IDLE_SOCKETS = saved

    asyncio.run(scenario())


class _Peers:
    """UDP sockets on loopback standing for phones and attackers."""

    def __init__(self, count: int, *, hosts: tuple[str, ...] = ()) -> None:
        """``count`` sockets; the i-th on ``hosts[i]`` (a loopback alias), else 127.0.0.1."""
        self.socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
        for i, s in enumerate(self.socks):
            s.bind((hosts[i] if i < len(hosts) else "127.0.0.1", 0))
            s.setblocking(False)

    def addr(self, i: int) -> tuple[str, int]:
        host, port = self.socks[i].getsockname()[:2]
        return str(host), int(port)

    def received(self, i: int) -> list[bytes]:
        out: list[bytes] = []
        while True:
            try:
                out.append(self.socks[i].recv(2048))
            except BlockingIOError:
                return out

    def close(self) -> None:
        for s in self.socks:
            s.close()


def _rtp(tag: bytes) -> bytes:
    return b"\x80\x00" + bytes(10) + tag


def _read_all(engine: MediaEngine) -> bool:
    """True when no datagram waits on any of the engine's ports (each one read is handled
    in the same loop callback: relayed, answered or dropped)."""
    for sock in engine._sockets.values():
        try:
            sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue
        except OSError:  # a pending ICMP error: no datagram
            continue
        return False
    return True


async def _settle(engine: MediaEngine) -> None:
    """Wait until the engine has read what was sent to it on loopback."""
    await async_wait_until(lambda: _read_all(engine), timeout=10)


def test_a_peer_behind_nat_latches_from_its_signalling_ip_then_the_address_is_fixed() -> None:
    """SDP names a private address; RTP comes from the NAT (here 127.0.0.1, any port)."""

    async def scenario() -> None:
        engine = MediaEngine(asyncio.get_running_loop(), "127.0.0.1", latch_window=30)
        caller_port, member_port = free_even_port(), free_even_port() + 2
        peers = _Peers(3)  # 0: the caller behind NAT, 1: the member, 2: another port there
        try:
            engine.execute(
                StartRelay(
                    "s1",
                    caller_port,
                    ("10.1.2.3", 4000),  # the caller's private SDP address
                    member_port,
                    peers.addr(1),
                    caller_nat="127.0.0.1",
                )
            )
            peers.socks[0].sendto(_rtp(b"hello"), ("127.0.0.1", caller_port))
            await _settle(engine)
            assert peers.received(1) == [_rtp(b"hello")], "relayed: latched from the NAT"
            peers.socks[1].sendto(_rtp(b"answer"), ("127.0.0.1", member_port))
            await _settle(engine)
            assert peers.received(0) == [_rtp(b"answer")], "sent back to the latched address"
            # The latch is fixed: the same IP from another port is a stranger now.
            peers.socks[2].sendto(_rtp(b"hijack"), ("127.0.0.1", caller_port))
            await _settle(engine)
            assert peers.received(1) == [] and engine.counters.dropped_unexpected_source == 1
            peers.socks[1].sendto(_rtp(b"again"), ("127.0.0.1", member_port))
            await _settle(engine)
            assert peers.received(0) == [_rtp(b"again")] and peers.received(2) == []
        finally:
            engine.close_all()
            peers.close()

    asyncio.run(scenario())


def test_after_the_latch_window_a_nat_peer_cannot_latch_and_strangers_never_do() -> None:
    async def scenario() -> None:
        engine = MediaEngine(asyncio.get_running_loop(), "127.0.0.1", latch_window=0.05)
        caller_port, member_port = free_even_port(), free_even_port() + 2
        peers = _Peers(2)  # 0: the caller behind NAT, too late; 1: the member
        try:
            engine.execute(
                StartRelay(
                    "s1",
                    caller_port,
                    ("10.1.2.3", 4000),
                    member_port,
                    peers.addr(1),
                    caller_nat="127.0.0.1",
                )
            )
            # A stranger (not the member's SDP address, no NAT there) never latches.
            peers.socks[0].sendto(_rtp(b"x"), ("127.0.0.1", member_port))
            await asyncio.sleep(0.1)  # the behaviour: the caller's window (0.05 s) runs out
            peers.socks[0].sendto(_rtp(b"late"), ("127.0.0.1", caller_port))
            await _settle(engine)
            assert peers.received(1) == [] and peers.received(0) == []
            assert engine.counters.dropped_unexpected_source == 2
            assert engine.counters.relayed == 0
        finally:
            engine.close_all()
            peers.close()

    asyncio.run(scenario())


def test_a_silent_watched_relay_is_reported_once_and_a_held_one_never() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        reported: list[RtpTimedOut] = []
        done = asyncio.Event()

        def on_timeout(fact: RtpTimedOut) -> None:
            reported.append(fact)
            done.set()

        engine = MediaEngine(loop, "127.0.0.1", rtp_timeout=0.2, on_timeout=on_timeout)
        ports = [free_even_port() for _ in range(2)]
        peers = _Peers(4)
        try:
            # s1 is watched; its caller keeps talking, its member is silent.
            engine.execute(StartRelay("s1", ports[0], peers.addr(0), ports[0] + 1, peers.addr(1)))
            # s2 is on hold: nobody talks, nothing is reported.
            engine.execute(
                StartRelay("s2", ports[1], peers.addr(2), ports[1] + 1, peers.addr(3), watch=False)
            )
            for _ in range(100):  # bounded: the report comes after 0.2 s
                peers.socks[0].sendto(_rtp(b"talk"), ("127.0.0.1", ports[0]))
                if done.is_set():
                    break
                await asyncio.sleep(0.02)  # the caller talks at the RTP pace meanwhile
            assert reported == [RtpTimedOut("s1", ("member",), 0.2)]
            assert engine.counters.rtp_timeouts == 1
            # Real time passing is the behaviour: no second report, and none for the held call.
            await asyncio.sleep(0.5)
            assert len(reported) == 1
        finally:
            engine.close_all()
            peers.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("latch_from", ["signalling ip", "sdp address"])
def test_an_unverified_sdp_address_gets_no_music_until_a_packet_latches(latch_from: str) -> None:
    """One forged INVITE from 127.0.0.2 names the victim 127.0.0.1:v (review finding 3):
    the victim receives nothing; a packet from the caller's signalling IP (any port)
    or from the SDP address itself latches, and the music goes there only."""

    async def scenario() -> None:
        engine = MediaEngine(asyncio.get_running_loop(), "127.0.0.1", latch_window=30)
        port = free_even_port()
        peers = _Peers(2, hosts=("127.0.0.1", "127.0.0.2"))  # 0: the victim, 1: the caller
        try:
            engine.execute(
                PlayMusic("s1", port, peers.addr(0), Codec.PCMU, 0, None, nat="127.0.0.2")
            )
            await asyncio.sleep(0.3)  # the behaviour: some fifteen music packets fall due
            assert peers.received(0) == [], "music reflected at the SDP address"
            assert engine.counters.music_packets == 0
            sender = 1 if latch_from == "signalling ip" else 0
            peers.socks[sender].sendto(_rtp(b"hello"), ("127.0.0.1", port))
            got: list[bytes] = []
            await async_wait_until(
                lambda: got.extend(peers.received(sender)) or len(got) >= 5, timeout=10
            )
            assert len(got) >= 5, "the music follows the latched address"
            assert peers.received(1 - sender) == []
            # Latched: another port of the signalling IP is a stranger now.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
                other.bind(("127.0.0.2", 0))
                other.sendto(_rtp(b"move"), ("127.0.0.1", port))
                await _settle(engine)
            assert engine.counters.dropped_unexpected_source == 1
            assert peers.received(1 - sender) == []
        finally:
            engine.close_all()
            peers.close()

    asyncio.run(scenario())


def test_an_alg_peer_latches_from_its_signalling_ip_is_relayed_and_stays_alive() -> None:
    """A SIP ALG / STUN caller (review finding 8): its SDP names 127.0.0.3:p, its SIP and
    its RTP come from 127.0.0.2 (another port). Nothing goes to the SDP address; once
    latched its RTP is relayed both ways and counts as liveness for rtp_timeout."""

    async def scenario() -> None:
        reported: list[RtpTimedOut] = []
        engine = MediaEngine(
            asyncio.get_running_loop(),
            "127.0.0.1",
            latch_window=30,
            rtp_timeout=0.3,
            on_timeout=reported.append,
        )
        caller_port, member_port = free_even_port(), free_even_port() + 2
        # 0: the address the caller's SDP names, 1: where its RTP comes from, 2: the member
        peers = _Peers(3, hosts=("127.0.0.3", "127.0.0.2", "127.0.0.1"))
        try:
            engine.execute(
                StartRelay(
                    "s1",
                    caller_port,
                    peers.addr(0),
                    member_port,
                    peers.addr(2),
                    caller_nat="127.0.0.2",
                )
            )
            heard = {1: 0, 2: 0}
            for i in range(60):  # 1.2 s of audio, four times rtp_timeout
                peers.socks[2].sendto(_rtp(b"m%d" % i), ("127.0.0.1", member_port))
                if i >= 5:  # the member speaks first: nothing may reach the SDP address
                    peers.socks[1].sendto(_rtp(b"c%d" % i), ("127.0.0.1", caller_port))
                await asyncio.sleep(0.02)  # both talk at the RTP pace: liveness is the behaviour
                for j in heard:
                    heard[j] += len(peers.received(j))
            await _settle(engine)
            for j in heard:
                heard[j] += len(peers.received(j))
            assert peers.received(0) == [], "sent to the unverified SDP address"
            assert heard[2] >= 50, "the caller's RTP was not relayed"
            assert heard[1] >= 50, "the member's RTP did not reach the latched caller"
            assert reported == [], "a talking call was ended by rtp_timeout"
            assert engine.counters.rtp_timeouts == 0
        finally:
            engine.close_all()
            peers.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("released_by", ["confirm", "packet"])
def test_an_unconfirmed_caller_gets_no_music_until_its_ack_or_its_first_packet(
    released_by: str,
) -> None:
    """Second review, finding B: a UDP INVITE forged with the victim's source names the
    victim's own address, so the address is vouched for; while the caller's dialog is
    not confirmed the music goes nowhere. ConfirmMedia (its ACK) or its first packet
    from the SDP address releases it; a stranger's packet releases nothing."""

    async def scenario() -> None:
        engine = MediaEngine(asyncio.get_running_loop(), "127.0.0.1", latch_window=0.05)
        port = free_even_port()
        peers = _Peers(2, hosts=("127.0.0.1", "127.0.0.2"))  # 0: the caller, 1: a stranger
        try:
            engine.execute(OpenPort("s1", port, "caller"))
            engine.execute(
                PlayMusic("s1", port, peers.addr(0), Codec.PCMU, 0, None, unconfirmed=True)
            )
            peers.socks[1].sendto(_rtp(b"stranger"), ("127.0.0.1", port))
            await asyncio.sleep(0.3)  # the behaviour: fifteen music packets due, the window over
            assert peers.received(0) == [] and peers.received(1) == []
            assert engine.counters.music_packets == 0
            assert engine.counters.dropped_unexpected_source == 1
            if released_by == "confirm":
                engine.execute(ConfirmMedia("s1", port))
            else:  # any time: the latch window is for unverified addresses only
                peers.socks[0].sendto(_rtp(b"hello"), ("127.0.0.1", port))
            got: list[bytes] = []
            await async_wait_until(
                lambda: got.extend(peers.received(0)) or len(got) >= 5, timeout=10
            )
            assert len(got) >= 5, "the music starts once released"
            assert got[0][1] & 0x80, "the first packet sent starts a talkspurt (marker)"
            assert not any(p[1] & 0x80 for p in got[1:])
            assert peers.received(1) == []
        finally:
            engine.close_all()
            peers.close()

    asyncio.run(scenario())


def test_an_unconfirmed_caller_is_relayed_nothing_until_confirmed() -> None:
    async def scenario() -> None:
        engine = MediaEngine(asyncio.get_running_loop(), "127.0.0.1", latch_window=30)
        caller_port, member_port = free_even_port(), free_even_port() + 2
        peers = _Peers(2)  # 0: the caller (victim's address), 1: the member
        try:
            relay = StartRelay(
                "s1",
                caller_port,
                peers.addr(0),
                member_port,
                peers.addr(1),
                caller_unconfirmed=True,
            )
            engine.execute(relay)
            peers.socks[1].sendto(_rtp(b"early"), ("127.0.0.1", member_port))
            await _settle(engine)
            assert peers.received(0) == [] and engine.counters.relayed == 0
            engine.execute(relay)  # the same command again holds it still
            engine.execute(ConfirmMedia("s1", caller_port))
            peers.socks[1].sendto(_rtp(b"answer"), ("127.0.0.1", member_port))
            await _settle(engine)
            assert peers.received(0) == [_rtp(b"answer")]
        finally:
            engine.close_all()
            peers.close()

    asyncio.run(scenario())


def test_music_after_a_bridge_stops_the_relay_and_its_silence_watch() -> None:
    """A transfer plays music to a caller that was bridged: the old member is no longer
    relayed to it, and its silence is no dead call."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        reported: list[RtpTimedOut] = []
        engine = MediaEngine(loop, "127.0.0.1", rtp_timeout=0.2, on_timeout=reported.append)
        caller_port = free_even_port()
        member_port = caller_port + 1
        peers = _Peers(2)
        try:
            engine.execute(StartRelay("s1", caller_port, peers.addr(0), member_port, peers.addr(1)))
            peers.socks[1].sendto(_rtp(b"before"), ("127.0.0.1", member_port))
            await _settle(engine)
            await async_wait_until(lambda: bool(peers.received(0)), timeout=10)
            engine.execute(PlayMusic("s1", caller_port, peers.addr(0), Codec.PCMU, 0, None, None))
            peers.socks[1].sendto(_rtp(b"after"), ("127.0.0.1", member_port))
            await _settle(engine)
            # Real time passing is the behaviour: past rtp_timeout, with the member silent.
            await asyncio.sleep(0.5)
            heard = peers.received(0)
            assert heard, "the caller hears the music"
            assert not any(data.endswith(b"after") for data in heard), "old member relayed"
            assert reported == [], "a caller on music was taken for a dead call"
        finally:
            engine.close_all()
            peers.close()

    asyncio.run(scenario())


def test_a_hold_plays_music_to_the_member_stops_the_relay_and_its_watch_then_resumes() -> None:
    """PlayMusic(side="member") on a relayed call: the member gets the music out of its
    own port (one stream, consecutive sequence numbers, +160 per packet), the caller's
    audio is no longer relayed nor watched; StartRelay relays again."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        reported: list[RtpTimedOut] = []
        engine = MediaEngine(loop, "127.0.0.1", rtp_timeout=0.2, on_timeout=reported.append)
        caller_port = free_even_port()
        member_port = caller_port + 1
        peers = _Peers(2)
        caller, member = peers.addr(0), peers.addr(1)
        try:
            engine.execute(StartRelay("s1", caller_port, caller, member_port, member))
            engine.execute(PlayMusic("s1", member_port, member, Codec.PCMU, 0, None, side="member"))
            packets: list[bytes] = []

            def music_arrived() -> bool:
                packets.extend(peers.received(1))
                return len(packets) >= 20

            await async_wait_until(music_arrived, timeout=10)
            assert engine.counters.music_packets >= 20 and not reported
            seqs = [int.from_bytes(p[2:4], "big") for p in packets]
            stamps = [int.from_bytes(p[4:8], "big") for p in packets]
            ssrcs = {p[8:12] for p in packets}
            assert len(ssrcs) == 1
            assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs))
            steps = [(b - a) % (1 << 32) for a, b in itertools.pairwise(stamps)]
            # 160 per 20 ms tick; a tick the loop was too late for is skipped, not sent
            assert all(step and step % 160 == 0 for step in steps)
            assert steps.count(160) >= 0.8 * len(steps)
            # the holder's audio goes nowhere, and its silence (0.2 s) ends nothing
            peers.socks[0].sendto(_rtp(b"holder"), ("127.0.0.1", caller_port))
            await _settle(engine)
            await asyncio.sleep(0.4)  # real time passing is the behaviour: past rtp_timeout
            assert not any(p.endswith(b"holder") for p in peers.received(1))
            assert not reported
            engine.execute(StartRelay("s1", caller_port, caller, member_port, member))
            peers.received(1)
            music = engine.counters.music_packets
            peers.socks[0].sendto(_rtp(b"again"), ("127.0.0.1", caller_port))
            await _settle(engine)
            assert any(p.endswith(b"again") for p in peers.received(1))
            assert engine.counters.music_packets == music, "the music stopped"
        finally:
            engine.close_all()
            peers.close()

    asyncio.run(scenario())
