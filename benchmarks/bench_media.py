"""Media capacity of one core: hold-music streams and relayed calls, against naive asyncio.

Two measurements, each for a growing number N of streams or calls, on loopback:

* **Hold music.** The engine process runs :class:`MediaEngine` on an asyncio
  loop and starts N ``PlayMusic`` sessions (one socket each, PCMU, the built-in
  music): one :class:`PacingScheduler` timer sends every packet. A receiver
  process reads every packet with its kernel receive time (``SO_TIMESTAMPNS``,
  so the receiver's own scheduling does not count) and computes, per stream,
  the packet-interval jitter ``|gap - 20 ms|``. A level of N passes when the
  p99 jitter is under 2 ms and no packet is lost.
* **Relay.** The engine process starts N ``StartRelay`` sessions (two sockets
  each). A traffic process sends 50 packets a second each way for every call
  (caller -> engine -> member and back) and counts what comes out. A level
  passes when nothing is lost.

Baseline, measured in the same run with the same sockets and packets: the
naive design, one asyncio task per music stream doing
``await asyncio.sleep(0.02)`` then ``sendto``, and for the relay one asyncio
``DatagramProtocol`` per socket forwarding in ``datagram_received``.

The engine is one asyncio thread in its own process, and the receivers and
the traffic generator run in another process, so the engine's core is what is
measured (CPU = engine process time over wall time in the measurement
window); ``--pin`` also pins the engine to CPU 0 and the peers to CPU 1.
Each level is run 3 times; the table shows medians. Every loop is bounded in count and in time.

Run: .venv/bin/python benchmarks/bench_media.py [--runs 3] [--seconds 3] [--pin] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing as mp
import os
import random
import selectors
import socket
import statistics
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import write_section

from huntgroup.engine.aio.media_io import MediaEngine
from huntgroup.media.commands import PlayMusic, StartRelay
from huntgroup.media.g711 import Codec
from huntgroup.media.music import default_music
from huntgroup.media.rtp import RtpPacket, RtpStream

HOST = "127.0.0.1"
ENGINE_CPU, PEER_CPU = 0, 1
BASE_PORT = 10000  # engine ports: below the ephemeral range the peers' sockets use
MUSIC_LEVELS = (1, 100, 250, 500, 1000, 1500, 2000, 2500, 3000, 4000)
RELAY_LEVELS = (1, 100, 250, 500, 750, 1000, 1500, 2000, 2500, 3000)
RECEIVER_SOCKETS = 64
JITTER_LIMIT_MS = 2.0
WARMUP = 1.0
INTERVAL = 0.020
SO_TIMESTAMPNS = 35  # Linux
SO_RCVBUFFORCE = 33  # Linux, root: a receive buffer above rmem_max
PROCESS_TIMEOUT = 60.0
PIN = False


def _pin(cpu: int) -> None:
    """Pin to ``cpu`` with --pin; by default the scheduler places the processes.

    The engine is one asyncio thread, so it never uses more than one core either
    way; pinning only matters on an otherwise idle machine.
    """
    if PIN:
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setaffinity(0, {cpu % (os.cpu_count() or 1)})


def _big_buffer(sock: socket.socket, size: int) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def free_even_ports(count: int) -> list[int]:
    """``count`` even ports from BASE_PORT up that nothing else holds now (other programs
    on the machine may use some: a session on a taken port would count as loss)."""
    ports: list[int] = []
    port = BASE_PORT
    while len(ports) < count and port < 32000:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.bind((HOST, port))
            ports.append(port)
        except OSError:
            pass
        finally:
            probe.close()
        port += 2
    if len(ports) < count:
        raise RuntimeError(f"only {len(ports)} free even ports from {BASE_PORT}")
    return ports


def _percentile(values: np.ndarray[Any, Any], q: float) -> float:
    return float(np.percentile(values, q)) if values.size else float("nan")


# ===================================================================== music
def music_receiver(conn: Connection, seconds: float) -> None:
    """Bind the sockets the streams go to, record (ssrc, seq, kernel time) per packet."""
    _pin(PEER_CPU)
    socks = []
    sel = selectors.DefaultSelector()
    for _ in range(RECEIVER_SOCKETS):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((HOST, 0))
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        _big_buffer(s, 8 << 20)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    conn.send([s.getsockname() for s in socks])
    ssrcs: list[int] = []
    seqs: list[int] = []
    times: list[float] = []
    space = socket.CMSG_SPACE(16)
    header = struct.Struct("!H4xI")
    stamp = struct.Struct("qq")
    deadline = time.monotonic() + seconds  # bound, in case the parent never answers
    window: tuple[float, float] | None = None
    stop_at = deadline
    while time.monotonic() < min(deadline, stop_at):
        if window is None and conn.poll():
            window = conn.recv()  # the engine is done: drain what is queued, then stop
            stop_at = time.monotonic() + 0.3
        for key, _ in sel.select(timeout=0.05):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            for _ in range(4096):  # bounded drain of one socket
                try:
                    data, anc, _flags, _addr = sock.recvmsg(512, space)
                except BlockingIOError:
                    break
                if len(data) < 12 or not anc:
                    continue
                seq, ssrc = header.unpack_from(data, 2)
                sec, nsec = stamp.unpack_from(anc[0][2])
                ssrcs.append(ssrc)
                seqs.append(seq)
                times.append(sec + nsec * 1e-9)
    if window is None:
        window = conn.recv()
    conn.send(_music_stats(np.array(ssrcs), np.array(seqs), np.array(times), window))
    for s in socks:
        s.close()


def _music_stats(
    ssrc: np.ndarray[Any, Any],
    seq: np.ndarray[Any, Any],
    t: np.ndarray[Any, Any],
    window: tuple[float, float],
) -> dict[str, float]:
    inside = (t >= window[0]) & (t <= window[1])
    ssrc, seq, t = ssrc[inside], seq[inside], t[inside]
    if not t.size:
        return {"p50": float("nan"), "p99": float("nan"), "lost": float("nan"), "packets": 0}
    order = np.lexsort((t, ssrc))
    ssrc, seq, t = ssrc[order], seq[order], t[order]
    same = ssrc[1:] == ssrc[:-1]
    gaps = np.diff(t)[same]
    jitter_ms = np.abs(gaps - INTERVAL) * 1000
    steps = (seq[1:].astype(np.int64) - seq[:-1]) % 65536
    lost = int(np.sum(steps[same] - 1))
    return {
        "p50": _percentile(jitter_ms, 50),
        "p99": _percentile(jitter_ms, 99),
        "lost": lost,
        "packets": int(t.size),
    }


def music_engine(
    conn: Connection, design: str, n: int, remotes: list[tuple[str, int]], measure: float
) -> None:
    _pin(ENGINE_CPU)
    logging.disable(logging.WARNING)
    default_music()  # built before the clock starts, as the server preloads it
    result = asyncio.run(_music_engine(design, n, remotes, measure))
    conn.send(result)


async def _music_engine(
    design: str, n: int, remotes: list[tuple[str, int]], measure: float
) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + WARMUP + measure + 0.5
    tasks: list[asyncio.Task[None]] = []
    socks: list[socket.socket] = []
    engine = MediaEngine(loop, HOST, rng=random.Random(1))
    ports = free_even_ports(n)
    if design == "engine":
        for i in range(n):
            engine.execute(
                PlayMusic(f"s{i}", ports[i], remotes[i % len(remotes)], Codec.PCMU, 0, None)
            )
        started = engine.sessions
    else:
        rng = random.Random(1)
        music = default_music()
        for i in range(n):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            try:
                sock.bind((HOST, ports[i]))
            except OSError:
                sock.close()
                continue
            socks.append(sock)
            cursor = music.cursor(Codec.PCMU, now=loop.time(), epoch=0.0)
            stream = RtpStream(cursor, payload_type=0, rng=rng)
            tasks.append(
                loop.create_task(_naive_stream(sock, stream, remotes[i % len(remotes)], stop_at))
            )
        started = len(tasks)
    await asyncio.sleep(WARMUP)
    t0, c0 = time.time(), time.process_time()
    await asyncio.sleep(measure)
    t1, c1 = time.time(), time.process_time()
    engine.close_all()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for sock in socks:
        sock.close()
    return {"t0": t0, "t1": t1, "cpu": (c1 - c0) / (t1 - t0), "started": started}


async def _naive_stream(
    sock: socket.socket, stream: RtpStream, remote: tuple[str, int], stop_at: float
) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < stop_at:
        await asyncio.sleep(INTERVAL)
        packet = stream.tick()
        if packet is not None:
            with contextlib.suppress(OSError):
                sock.sendto(packet, remote)


def run_music(design: str, n: int, measure: float) -> dict[str, float]:
    ctx = mp.get_context("fork")
    rx_parent, rx_child = ctx.Pipe()
    receiver = ctx.Process(target=music_receiver, args=(rx_child, PROCESS_TIMEOUT))
    receiver.start()
    remotes = rx_parent.recv()
    en_parent, en_child = ctx.Pipe()
    engine = ctx.Process(target=music_engine, args=(en_child, design, n, remotes, measure))
    engine.start()
    try:
        if not en_parent.poll(PROCESS_TIMEOUT):
            raise RuntimeError(f"music engine ({design}, N={n}) did not finish")
        result = en_parent.recv()
        rx_parent.send((result["t0"], result["t1"]))
        if not rx_parent.poll(PROCESS_TIMEOUT):
            raise RuntimeError("music receiver did not finish")
        stats = rx_parent.recv()
    finally:
        for proc in (engine, receiver):
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    if result["started"] != n:
        raise RuntimeError(f"music ({design}): {result['started']} of {n} streams started")
    expected = result["started"] * (result["t1"] - result["t0"]) / INTERVAL
    return {**result, **stats, "expected": expected}


# ===================================================================== relay
def relay_peers(conn: Connection, n: int) -> None:
    """Two sockets per call (caller, member): send 50 pps each way, count what comes back."""
    _pin(PEER_CPU)
    callers, members = [], []
    for _ in range(n):
        for side in (callers, members):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((HOST, 0))
            s.setblocking(False)
            side.append(s)
    conn.send(([s.getsockname() for s in callers], [s.getsockname() for s in members]))
    engine_ports, start_at, seconds = conn.recv()
    sel = selectors.DefaultSelector()
    for s in callers + members:
        sel.register(s, selectors.EVENT_READ)
    targets = [
        (callers[i], (HOST, engine_ports[i][0]), members[i], (HOST, engine_ports[i][1]))
        for i in range(n)
    ]
    packet = RtpPacket(0, 1, 160, 0x1234, b"\xff" * 160).to_bytes()
    buf = bytearray(2048)
    sent = received = send_errors = 0
    while time.time() < start_at:
        time.sleep(0.001)
    c0, t0 = time.process_time(), time.time()
    tick, ticks = 0, round(seconds / INTERVAL)
    end = start_at + seconds + 1.0
    while time.time() < end:
        now = time.time()
        if tick < ticks and now >= start_at + tick * INTERVAL:
            for caller, to_caller_port, member, to_member_port in targets:
                try:
                    caller.sendto(packet, to_caller_port)
                    member.sendto(packet, to_member_port)
                    sent += 2
                except OSError:
                    send_errors += 1
            tick += 1
            continue
        wait = start_at + tick * INTERVAL - time.time() if tick < ticks else 0.02
        for key, _ in sel.select(timeout=max(0.0, wait)):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            for _ in range(256):
                try:
                    sock.recv_into(buf)
                except BlockingIOError:
                    break
                received += 1
    c1, t1 = time.process_time(), time.time()
    conn.send(
        {
            "sent": sent,
            "received": received,
            "peer_send_errors": send_errors,
            "peer_cpu": (c1 - c0) / (t1 - t0),
        }
    )
    for s in callers + members:
        s.close()


class _NaiveSide(asyncio.DatagramProtocol):
    def __init__(self, remote: tuple[str, int]) -> None:
        self.remote = remote
        self.other: _NaiveSide | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.relayed = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        other = self.other
        if other is not None and other.transport is not None:
            other.transport.sendto(data, other.remote)
            self.relayed += 1


def relay_engine(
    conn: Connection,
    design: str,
    callers: list[tuple[str, int]],
    members: list[tuple[str, int]],
) -> None:
    _pin(ENGINE_CPU)
    logging.disable(logging.WARNING)
    asyncio.run(_relay_engine(conn, design, callers, members))


async def _relay_engine(
    conn: Connection,
    design: str,
    callers: list[tuple[str, int]],
    members: list[tuple[str, int]],
) -> None:
    loop = asyncio.get_running_loop()
    engine = MediaEngine(loop, HOST, rng=random.Random(1))
    naive: list[_NaiveSide] = []
    ports = []
    free = free_even_ports(2 * len(callers))
    for i, (caller, member) in enumerate(zip(callers, members, strict=True)):
        cp, mp_ = free[2 * i], free[2 * i + 1]
        ports.append((cp, mp_))
        if design == "engine":
            engine.execute(StartRelay(f"r{i}", cp, caller, mp_, member))
            continue
        _, a = await loop.create_datagram_endpoint(
            lambda c=caller: _NaiveSide(c), local_addr=(HOST, cp)
        )
        _, b = await loop.create_datagram_endpoint(
            lambda m=member: _NaiveSide(m), local_addr=(HOST, mp_)
        )
        a.other, b.other = b, a
        naive += [a, b]
    conn.send(ports)
    start_at, seconds = await loop.run_in_executor(None, conn.recv)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    c0, t0 = time.process_time(), time.time()
    await asyncio.sleep(seconds)
    c1, t1 = time.process_time(), time.time()
    await asyncio.sleep(1.2)  # the last packets in flight
    relayed = engine.counters.relayed + sum(side.relayed for side in naive)
    started = engine.sessions if design == "engine" else len(naive) // 2
    engine.close_all()
    for side in naive:
        if side.transport is not None:
            side.transport.close()
    conn.send({"cpu": (c1 - c0) / (t1 - t0), "relayed": relayed, "started": started})


def run_relay(design: str, n: int, measure: float) -> dict[str, float]:
    ctx = mp.get_context("fork")
    peer_parent, peer_child = ctx.Pipe()
    peers = ctx.Process(target=relay_peers, args=(peer_child, n))
    peers.start()
    en_parent, en_child = ctx.Pipe()
    engine: mp.process.BaseProcess | None = None
    try:
        if not peer_parent.poll(PROCESS_TIMEOUT):
            raise RuntimeError("relay peers did not start")
        callers, members = peer_parent.recv()
        engine = ctx.Process(target=relay_engine, args=(en_child, design, callers, members))
        engine.start()
        if not en_parent.poll(PROCESS_TIMEOUT):
            raise RuntimeError(f"relay engine ({design}, N={n}) did not start")
        ports = en_parent.recv()
        start_at = time.time() + 0.3
        seconds = WARMUP + measure
        peer_parent.send((ports, start_at, seconds))
        en_parent.send((start_at, seconds))
        if not peer_parent.poll(PROCESS_TIMEOUT) or not en_parent.poll(PROCESS_TIMEOUT):
            raise RuntimeError(f"relay run ({design}, N={n}) did not finish")
        traffic = peer_parent.recv()
        result = en_parent.recv()
    finally:
        for proc in (engine, peers):
            if proc is None:
                continue
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    if result["started"] != n:
        raise RuntimeError(f"relay ({design}): {result['started']} of {n} sessions started")
    lost = traffic["sent"] - traffic["received"]
    # where: not read by the engine (its socket buffers overflowed) or lost on the way back
    return {**result, **traffic, "lost": lost, "lost_in": traffic["sent"] - result["relayed"]}


# ==================================================================== driver
@dataclass
class Level:
    n: int
    rows: list[dict[str, float]]

    def med(self, key: str) -> float:
        return statistics.median(r[key] for r in self.rows)


def sweep(
    levels: tuple[int, ...],
    runs: int,
    run: Callable[[int], dict[str, float]],
    passes: Callable[[Level], bool],
    saturated: Callable[[Level], bool],
    label: str,
) -> list[Level]:
    """Every level in turn, until one saturates (the design cannot keep up at all)."""
    out: list[Level] = []
    for n in levels:
        level = Level(n, [run(n) for _ in range(runs)])
        out.append(level)
        ok = passes(level)
        print(f"{label} N={n}: {_describe(level)} -> {'ok' if ok else 'FAIL'}", flush=True)
        if saturated(level):
            break
    return out


def _describe(level: Level) -> str:
    keys = ("p50", "p99", "cpu", "lost", "lost_in", "peer_cpu", "packets", "expected")
    keys = tuple(k for k in keys if k in level.rows[0])
    return ", ".join(f"{k}={level.med(k):.3g}" for k in keys)


def music_ok(level: Level) -> bool:
    return (
        level.med("p99") < JITTER_LIMIT_MS
        and level.med("lost") == 0
        and level.med("packets") >= 0.99 * level.med("expected")
    )


def relay_ok(level: Level) -> bool:
    return level.med("lost") == 0


def music_saturated(level: Level) -> bool:
    """The engine's core is full, or half the packets are missing: higher levels are moot."""
    return level.med("cpu") > 0.95 or level.med("packets") < 0.5 * level.med("expected")


def relay_saturated(level: Level) -> bool:
    return not relay_ok(level)


def best(levels: list[Level], ok: Callable[[Level], bool]) -> int:
    passed = [lv.n for lv in levels if ok(lv)]
    return max(passed) if passed else 0


def music_table(engine: list[Level], naive: list[Level]) -> str:
    rows = [
        "| N streams | design | jitter p50 (ms) | jitter p99 (ms) | sent (% of 50/s) | lost "
        "| engine CPU (%) | verdict |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, levels in (("huntgroup MediaEngine", engine), ("baseline: task per stream", naive)):
        for lv in levels:
            rows.append(
                f"| {lv.n:,} | {name} | {lv.med('p50'):.3f} | {lv.med('p99'):.3f} | "
                f"{100 * lv.med('packets') / lv.med('expected'):.1f} | "
                f"{lv.med('lost'):.0f} | {100 * lv.med('cpu'):.0f} | "
                f"{'ok' if music_ok(lv) else 'over limit'} |"
            )
    return "\n".join(rows)


def relay_table(engine: list[Level], naive: list[Level]) -> str:
    rows = [
        "| N calls | design | packets/s relayed | lost | engine CPU (%) | traffic CPU (%) "
        "| verdict |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    for name, levels in (("huntgroup MediaEngine", engine), ("baseline: DatagramProtocol", naive)):
        for lv in levels:
            rows.append(
                f"| {lv.n:,} | {name} | {lv.n * 100:,} | {lv.med('lost'):.0f} | "
                f"{100 * lv.med('cpu'):.0f} | {100 * lv.med('peer_cpu'):.0f} | "
                f"{'ok' if relay_ok(lv) else 'loss'} |"
            )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="measurement window per run")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch the docs")
    parser.add_argument("--max-music", type=int, default=MUSIC_LEVELS[-1])
    parser.add_argument("--max-relay", type=int, default=RELAY_LEVELS[-1])
    parser.add_argument("--pin", action="store_true", help="engine on CPU 0, peers on CPU 1")
    args = parser.parse_args()
    global PIN
    PIN = args.pin
    music_levels = tuple(n for n in MUSIC_LEVELS if n <= args.max_music)
    relay_levels = tuple(n for n in RELAY_LEVELS if n <= args.max_relay)

    def music(design: str) -> list[Level]:
        return sweep(
            music_levels,
            args.runs,
            lambda n: run_music(design, n, args.seconds),
            music_ok,
            music_saturated,
            f"music/{design}",
        )

    def relay(design: str) -> list[Level]:
        return sweep(
            relay_levels,
            args.runs,
            lambda n: run_relay(design, n, args.seconds),
            relay_ok,
            relay_saturated,
            f"relay/{design}",
        )

    load_before = os.getloadavg()
    music_engine_levels, music_naive_levels = music("engine"), music("naive")
    relay_engine_levels, relay_naive_levels = relay("engine"), relay("naive")
    m_best, m_naive = best(music_engine_levels, music_ok), best(music_naive_levels, music_ok)
    r_best, r_naive = best(relay_engine_levels, relay_ok), best(relay_naive_levels, relay_ok)
    load_after = os.getloadavg()
    verdict = "met" if m_best >= 1000 else "NOT met"
    body = f"""Media capacity of one core: the engine is one asyncio thread in its own process; the
receivers and the traffic generator run in another process.
Median of {args.runs} runs per level, {args.seconds:g} s measured after {WARMUP:g} s of warm-up.
Jitter is `|inter-arrival gap - 20 ms|` per stream, from kernel receive timestamps.
"Sent" is the packets received over those due at 50 per second per stream: under 100%
a design fell behind (the engine skips ticks it is late for, timestamps moving on; the
naive tasks drift, as `sleep(0.02)` plus the work is longer than 20 ms); "lost" counts
gaps in sequence numbers.
CPU is the engine process's CPU time over wall time (100% = one core). The music
sweep stops when the engine's core is full or packets go missing; the relay sweep
at the first level with loss. Machine load average (1 min) before/after the run:
{load_before[0]:.2f} / {load_after[0]:.2f} (other work on the 2 cores adds jitter).

**Hold music**: {m_best:,} concurrent streams with p99 jitter under {JITTER_LIMIT_MS:g} ms
(target 1,000: {verdict}); the naive baseline (one asyncio task per stream,
`await asyncio.sleep(0.02)` then `sendto`) sustains {m_naive:,}.

{music_table(music_engine_levels, music_naive_levels)}

**Relay**: {r_best:,} calls (50 packets/s each way) relayed with no loss; the baseline
(one asyncio `DatagramProtocol` per socket) reaches {r_naive:,}. When the traffic
process's CPU nears 100%, the limit may be the generator's, not the engine's.

{relay_table(relay_engine_levels, relay_naive_levels)}
"""
    print(body)
    if not args.no_write:
        command = f"python benchmarks/bench_media.py --runs {args.runs} --seconds {args.seconds}"
        write_section("media", command + (" --pin" if args.pin else ""), body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
