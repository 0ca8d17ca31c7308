"""Media capacity of one core: hold-music streams and relayed calls, against baselines.

Two measurements on loopback, each run inside its own network namespace with
only loopback (``unshare -n -m`` then ``ip link set lo up`` and a sysfs mounted
for that namespace; ``--no-netns`` to stay in this one):

* **Hold music.** The sender process plays N streams (one bound UDP socket
  each, PCMU, 50 packets/s) to a receiver process that reads every packet with
  its kernel receive time (``SO_TIMESTAMPNS``) by polling its sockets every
  2 ms (a receiver asleep in epoll would be woken per packet, and on loopback
  the sender pays that wake-up), and computes per stream the jitter
  ``|gap - 20 ms|``. A level passes when the median p99 jitter is under 2 ms,
  no sequence number is missing and 99% of the due packets arrive. Designs,
  alternating run by run at the fixed levels (``--levels``, ``--runs`` each):
  ``engine`` (:class:`MediaEngine` and ``PlayMusic``, as the server runs it),
  ``scheduler`` (the sender before the phased pacer: ``PacingScheduler``, a
  packet object per packet), ``floor`` (one timer, a prebuilt packet patched
  and sent per socket: what a Python sender cannot go below) and ``naive`` (a
  task per stream). Then the most streams that pass is searched for
  (``--search``): doubling from ``--search-start``, bisection to
  ``--search-step``. Every music run is made in each receive-path mode
  (``--rx``): ``rps`` sets the namespace's ``lo`` to steer each packet's receive
  path (IP, UDP, the socket queue) to the receiver's CPU with RPS, as in
  production, where the server never pays its callers' receive path;
  ``loopback`` leaves it in the sender's ``sendto``, charged to the sender (the
  figure of earlier runs); ``discard`` sends through a network device that drops every
  packet at its transmit (a veth whose peer is down) and stamps one stream in 16 with a
  packet socket on a second device: the sender's own cost, with no receive path at all.
  The NET_RX softirqs of each CPU in the window
  (``/proc/softirqs``) show where the receive path ran.
* **Relay.** The engine process starts N ``StartRelay`` sessions (two sockets
  each). A traffic process sends 50 packets a second each way for every call
  (caller -> engine -> member and back) and counts what comes out. A level
  passes when nothing is lost. Baseline: one asyncio ``DatagramProtocol`` per
  socket forwarding in ``datagram_received``.

The sender is pinned to CPU 0 and the peers to CPU 1 (``--no-pin``), and the
music processes run at SCHED_FIFO priority 1 (``--no-rt``): other work sharing
the machine then delays a timer wake-up by microseconds, not by a time slice.
CPU is the sender's process time over wall time in the measurement window.
Figures are medians with (min-max) over the runs. Every loop is bounded in
count and in time; a run lasts warm-up + ``--seconds``.

Run: .venv/bin/python benchmarks/bench_media.py [--only music] [--runs 5] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import multiprocessing as mp
import os
import random
import re
import selectors
import shutil
import socket
import statistics
import struct
import subprocess
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

from huntgroup.engine.aio.loop_timer import LoopTimer
from huntgroup.engine.aio.media_io import MediaEngine
from huntgroup.media.commands import PlayMusic, StartRelay
from huntgroup.media.g711 import Codec
from huntgroup.media.music import default_music
from huntgroup.media.rtp import PacingScheduler, RtpPacket, RtpStream

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
REALTIME = False
POLL = 0.002  # the music receiver reads its sockets every 2 ms
LO_RPS = Path("/sys/class/net/lo/queues/rx-0/rps_cpus")
RX_MODES = {
    "rps": "receive path on CPU 1 (RPS)",
    "loopback": "receive path on the sender (plain loopback)",
    "discard": "sent through a device that discards them; sampled streams tapped",
}
# The discard mode's two veth pairs, made in the benchmark's own namespace only. Every
# stream goes to the first pair's far address (10.77.0.2) but one in DISCARD_SAMPLE, which
# goes to the second's (10.78.0.2). The first pair's peer stays down: each packet runs the
# whole send path (UDP, IP, routing, a permanent neighbour, the device's queue) and is
# dropped there, as a NIC would take it to send, with no receive path anywhere. The
# second pair is up, so that its packets reach the device's transmit, where a packet
# socket (ETH_P_ALL: taps see only what is transmitted) stamps them; its peer drops them
# at once (another host's MAC). Only the sampled share pays the tap and that drop.
DISCARD_DEVICES = {
    # device: (peer, our address, the far address, the far end's MAC)
    "hgm0": ("hgm1", "10.77.0.1", "10.77.0.2", "02:00:00:00:77:02"),
    "hgs0": ("hgs1", "10.78.0.1", "10.78.0.2", "02:00:00:00:78:02"),
}
DISCARD_SAMPLE = 16  # one stream in 16 is tapped (measured for jitter and loss)
DISCARD_UP = {"hgs1"}  # the sampled pair's peer is up (see above)
ETH_P_ALL, ETH_P_IP = 0x0003, 0x0800
PACKET_OUTGOING = 4


def rps_mask(cpus: set[int]) -> str:
    """The hexadecimal CPU mask ``rps_cpus`` takes ("0": RPS off)."""
    return format(sum(1 << cpu for cpu in cpus), "x")


def rx_mode_value(mode: str) -> str:
    """What the namespace's ``lo`` gets in ``rps_cpus`` for a receive-path ``mode``:
    ``rps`` steers every packet's receive path (IP, UDP, the socket queue) to the
    receiver's CPU; ``loopback`` leaves it in the sender's context, as plain loopback does."""
    if mode == "rps":
        return rps_mask({PEER_CPU})
    if mode in ("loopback", "discard"):
        return "0"  # discard: nothing reaches lo
    raise ValueError(f"unknown receive-path mode {mode!r}")


def own_sysfs() -> bool:
    """True only inside the benchmark's own namespaces (``_in_netns``: ``unshare -n -m``
    and a sysfs mounted there, which shows the namespace's ``lo`` alone): the host's
    ``lo`` is never written to."""
    if os.environ.get("HG_BENCH_SYSFS") != "1":
        return False
    try:
        devices = set(os.listdir("/sys/class/net"))
    except OSError:
        return False
    # lo, and the discard mode's devices once made (by this process, in this namespace)
    return "lo" in devices and devices <= {"lo", *DISCARD_DEVICES, *own_peers()}


def own_peers() -> set[str]:
    return {peer for peer, *_ in DISCARD_DEVICES.values()}


def setup_discard() -> None:
    """Make the discard mode's devices (idempotent); only in the benchmark's own
    namespaces, never in the host's."""
    if not own_sysfs():
        raise RuntimeError("the discard mode needs the benchmark's own namespace (unshare -n -m)")
    present = set(os.listdir("/sys/class/net"))
    for dev, (peer, local, far, mac) in DISCARD_DEVICES.items():
        if dev in present:
            continue
        commands = [
            f"ip link add {dev} type veth peer name {peer}",
            f"ip link set {dev} up",
            f"ip addr add {local}/24 dev {dev}",
            f"ip neigh add {far} lladdr {mac} dev {dev} nud permanent",
        ]
        if peer in DISCARD_UP:
            commands.append(f"ip link set {peer} up")
        for name in (dev, peer):  # no IPv6 chatter in the devices' counts
            with contextlib.suppress(OSError):
                Path(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6").write_text("1\n")
        for command in commands:
            subprocess.run(command.split(), check=True, capture_output=True)


def device_tx(text: str | None = None) -> dict[str, int]:
    """Packets each device took to send so far, sent or dropped (``/proc/net/dev``, this
    namespace's): the discard devices count every packet as a transmit drop."""
    if text is None:
        text = Path("/proc/net/dev").read_text()
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, colon, rest = line.partition(":")
        fields = rest.split()
        if not colon or len(fields) < 16 or not fields[0].isdigit():
            continue
        out[name.strip()] = int(fields[9]) + int(fields[11])  # TX packets + TX drop
    return out


def set_rx_mode(mode: str, path: Path = LO_RPS) -> None:
    """Put the namespace's ``lo`` in receive-path ``mode`` (see :func:`rx_mode_value`)."""
    value = rx_mode_value(mode)
    if path == LO_RPS and not own_sysfs():
        if mode == "loopback":
            return  # plain loopback is the default: nothing to do
        raise RuntimeError("RPS needs the benchmark's own namespace and sysfs (unshare -n -m)")
    path.write_text(value + "\n")
    if int(path.read_text().strip().replace(",", "") or "0", 16) != int(value, 16):
        raise RuntimeError(f"{path} did not take {value}")


def net_rx_softirqs(text: str | None = None) -> list[int]:
    """NET_RX softirqs run so far, per CPU (``/proc/softirqs``): where receive paths ran."""
    if text is None:
        text = Path("/proc/softirqs").read_text()
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "NET_RX:":
            return [int(x) for x in fields[1:]]
    return []


def _pin(cpu: int, *, realtime: bool = False) -> None:
    """Pin to ``cpu`` (unless --no-pin); ``realtime``: SCHED_FIFO priority 1 (the music
    processes, unless --no-rt), so that other work sharing the core cannot delay a timer
    wake-up by a whole time slice: the jitter measured is the sender's, not the load's.
    The engine is one asyncio thread: it never uses more than one core either way.
    """
    if PIN:
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setaffinity(0, {cpu % (os.cpu_count() or 1)})
    if realtime:
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))


def _big_buffer(sock: socket.socket, size: int) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def free_even_ports(count: int, host: str = HOST) -> list[int]:
    """``count`` even ports from BASE_PORT up that nothing else holds now (other programs
    on the machine may use some: a session on a taken port would count as loss)."""
    ports: list[int] = []
    port = BASE_PORT
    while len(ports) < count and port < 32000:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.bind((host, port))
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
class _Stamps:
    """(ssrc, seq, kernel time) of every RTP packet a receiver read."""

    STAMP = struct.Struct("qq")  # the SO_TIMESTAMPNS control message: a timespec

    def __init__(self) -> None:
        self.ssrcs: list[int] = []
        self.seqs: list[int] = []
        self.times: list[float] = []

    def add(self, seq: int, ssrc: int, stamp: bytes) -> None:
        sec, nsec = self.STAMP.unpack_from(stamp)
        self.ssrcs.append(ssrc)
        self.seqs.append(seq)
        self.times.append(sec + nsec * 1e-9)


def _poll_and_report(conn: Connection, seconds: float, drain: Callable[[_Stamps], int]) -> None:
    """A receiver's loop: ``drain`` reads what is queued (how many packets) every
    ``POLL`` until the engine's window arrives on ``conn`` (plus 0.3 s for what is still
    queued) or ``seconds`` pass; then the window's statistics go back on ``conn``.

    Polled, not selected: a receiver asleep in epoll would be woken by every packet, and
    on loopback the sender pays that wake-up (an IPI, a VM exit here), which a sender on
    a real network never does. The kernel time stamps the packets, so reading them a few
    ms later changes nothing measured."""
    stamps = _Stamps()
    deadline = time.monotonic() + seconds  # bound, in case the parent never answers
    window: tuple[float, float] | None = None
    stop_at = deadline
    c0, w0 = time.process_time(), time.monotonic()
    while time.monotonic() < min(deadline, stop_at):
        if window is None and conn.poll():
            window = conn.recv()  # the engine is done: drain what is queued, then stop
            stop_at = time.monotonic() + 0.3
        if drain(stamps) < 64:
            time.sleep(POLL)
    rx_cpu = (time.process_time() - c0) / max(1e-9, time.monotonic() - w0)
    if window is None:
        window = conn.recv()
    arrays = (np.array(stamps.ssrcs), np.array(stamps.seqs), np.array(stamps.times))
    conn.send({**_music_stats(*arrays, window), "rx_cpu": rx_cpu})


def music_receiver(conn: Connection, seconds: float) -> None:
    """Bind the sockets the streams go to, record (ssrc, seq, kernel time) per packet."""
    _pin(PEER_CPU, realtime=REALTIME)
    socks = []
    for _ in range(RECEIVER_SOCKETS):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((HOST, 0))
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        _big_buffer(s, 8 << 20)
        socks.append(s)
    readers = [s.recvmsg for s in socks]
    conn.send([s.getsockname() for s in socks])
    space = socket.CMSG_SPACE(16)
    header = struct.Struct("!H4xI")

    def drain(stamps: _Stamps) -> int:
        got = 0
        for recvmsg in readers:
            for _ in range(4096):  # bounded drain of one socket
                try:
                    data, anc, _flags, _addr = recvmsg(16, space)  # the header is enough
                except BlockingIOError:
                    break
                got += 1
                if len(data) >= 12 and anc:
                    seq, ssrc = header.unpack_from(data, 2)
                    stamps.add(seq, ssrc, anc[0][2])
        return got

    _poll_and_report(conn, seconds, drain)
    for s in socks:
        s.close()


def rtp_of_ip(packet: bytes) -> tuple[int, int] | None:
    """(sequence number, SSRC) of an RTP packet in an IPv4/UDP datagram as a packet
    socket gives it (from the IP header on), or None when it is not one."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != socket.IPPROTO_UDP:
        return None
    rtp = (packet[0] & 0x0F) * 4 + 8
    if len(packet) < rtp + 12:
        return None
    seq, ssrc = struct.unpack_from("!H4xI", packet, rtp + 2)
    return seq, ssrc


def tap_receiver(conn: Connection, seconds: float) -> None:
    """Discard mode: a packet socket on the sampled device records (ssrc, seq, kernel
    time) of every packet the engine sends there; the time is stamped as the device
    takes the packet to send (the tap), the moment a NIC would."""
    _pin(PEER_CPU, realtime=REALTIME)
    dev = "hgs0"
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    sock.bind((dev, ETH_P_ALL))
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    _big_buffer(sock, 32 << 20)
    far = DISCARD_DEVICES["hgm0"][2], DISCARD_DEVICES[dev][2]
    # stream i goes to remotes[i % DISCARD_SAMPLE]: the first is tapped
    remotes = [(far[1], 40000)] + [(far[0], 40000 + 2 * k) for k in range(1, DISCARD_SAMPLE)]
    conn.send(remotes)
    space = socket.CMSG_SPACE(16)

    def drain(stamps: _Stamps) -> int:
        got = 0
        for _ in range(65536):  # bounded drain
            try:
                data, anc, _flags, addr = sock.recvmsg(64, space)
            except BlockingIOError:
                break
            got += 1
            fields = rtp_of_ip(data)
            if fields is not None and anc and addr[1:3] == (ETH_P_IP, PACKET_OUTGOING):
                stamps.add(*fields, anc[0][2])
        return got

    _poll_and_report(conn, seconds, drain)
    sock.close()


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
    conn: Connection,
    design: str,
    n: int,
    remotes: list[tuple[str, int]],
    measure: float,
    host: str = HOST,
) -> None:
    _pin(ENGINE_CPU, realtime=REALTIME)
    logging.disable(logging.WARNING)
    default_music()  # built before the clock starts, as the server preloads it
    result = asyncio.run(_music_engine(design, n, remotes, measure, host))
    conn.send(result)


class _Sender:
    """The sockets of a reference sender (one per stream, bound like the engine's)."""

    def __init__(self, n: int, remotes: list[tuple[str, int]], host: str = HOST) -> None:
        self.socks: list[socket.socket] = []
        self.remotes: list[tuple[str, int]] = []
        for i, port in enumerate(free_even_ports(n, host)):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind((host, port))
            self.socks.append(sock)
            self.remotes.append(remotes[i % len(remotes)])

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


def _start_scheduler(
    loop: asyncio.AbstractEventLoop, n: int, remotes: list[tuple[str, int]], host: str
) -> tuple[_Sender, Callable[[], None]]:
    """Today's sender before the phased pacer (the engine up to this change): one
    ``PacingScheduler`` timer for every stream, a packet object and new bytes per packet,
    then a look-up of the session's socket and address and a ``sendto``."""
    sender = _Sender(n, remotes, host)
    sched: PacingScheduler[str] = PacingScheduler()
    table: dict[str, tuple[socket.socket, tuple[str, int]]] = {}
    rng = random.Random(1)
    music = default_music()
    epoch = loop.time()
    for i, sock in enumerate(sender.socks):
        stream = RtpStream(None, payload_type=0, rng=rng)
        sched.add(f"s{i}", stream, now=loop.time())
        start = sched.next_tick_time(f"s{i}")
        stream.set_source(music.cursor(Codec.PCMU, now=start, epoch=epoch))
        table[f"s{i}"] = (sock, sender.remotes[i])

    def tick() -> None:
        for session, packet in sched.handle_timer(now=loop.time()):
            entry = table.get(session)
            if entry is None:
                continue
            with contextlib.suppress(OSError):
                entry[0].sendto(packet, entry[1])
        timer.arm(sched.get_timer())

    timer = LoopTimer(loop, tick)
    timer.arm(sched.get_timer())
    return sender, timer.cancel


def _start_floor(
    loop: asyncio.AbstractEventLoop, n: int, remotes: list[tuple[str, int]], host: str
) -> tuple[_Sender, Callable[[], None]]:
    """The minimal reference: one timer on a 20 ms grid, one loop over the sockets that
    patches a sequence number and timestamp into a prebuilt packet and sends it. No
    per-stream state beyond that, no source, no catch-up: the cost floor of a Python
    sender on this kernel (the ``sendto`` itself)."""
    sender = _Sender(n, remotes, host)
    buffers = [bytearray(RtpPacket(0, 0, 0, 1000 + i, b"\xff" * 160).to_bytes()) for i in range(n)]
    pairs = list(zip(sender.socks, sender.remotes, buffers, strict=True))
    patch = struct.Struct("!HI").pack_into
    origin = loop.time()
    state = {"tick": 0}
    handle: list[asyncio.TimerHandle] = []

    def tick() -> None:
        k = state["tick"]
        seq, ts = k & 0xFFFF, (k * 160) & 0xFFFFFFFF
        for sock, remote, buf in pairs:
            patch(buf, 2, seq, ts)
            with contextlib.suppress(OSError):
                sock.sendto(buf, remote)
        state["tick"] = k + 1
        handle[:] = [loop.call_at(origin + (k + 1) * INTERVAL, tick)]

    handle.append(loop.call_at(origin, tick))
    return sender, lambda: handle[0].cancel()


async def _music_engine(
    design: str, n: int, remotes: list[tuple[str, int]], measure: float, host: str = HOST
) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + WARMUP + measure + 0.5
    tasks: list[asyncio.Task[None]] = []
    socks: list[socket.socket] = []
    engine = MediaEngine(loop, host, rng=random.Random(1))
    stop: Callable[[], None] = lambda: None  # noqa: E731
    sender: _Sender | None = None
    if design == "engine":
        ports = free_even_ports(n, host)
        for i in range(n):
            engine.execute(
                PlayMusic(f"s{i}", ports[i], remotes[i % len(remotes)], Codec.PCMU, 0, None)
            )
        started = engine.sessions
    elif design == "scheduler":
        sender, stop = _start_scheduler(loop, n, remotes, host)
        started = len(sender.socks)
    elif design == "floor":
        sender, stop = _start_floor(loop, n, remotes, host)
        started = len(sender.socks)
    else:
        rng = random.Random(1)
        music = default_music()
        ports = free_even_ports(n, host)
        for i in range(n):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            try:
                sock.bind((host, ports[i]))
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
    rx0, tx0 = net_rx_softirqs(), device_tx()
    t0, c0 = time.time(), time.process_time()
    await asyncio.sleep(measure)
    t1, c1 = time.time(), time.process_time()
    rx1, tx1 = net_rx_softirqs(), device_tx()
    engine.close_all()
    stop()
    if sender is not None:
        sender.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for sock in socks:
        sock.close()
    net_rx = [b - a for a, b in zip(rx0, rx1, strict=True)] + [0, 0]
    return {
        "t0": t0,
        "t1": t1,
        "cpu": (c1 - c0) / (t1 - t0),
        "started": started,
        "net_rx_sender": float(net_rx[ENGINE_CPU]),
        "net_rx_peer": float(net_rx[PEER_CPU]),
        "device_sent": float(sum(tx1.get(d, 0) - tx0.get(d, 0) for d in DISCARD_DEVICES)),
    }


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


def run_music(design: str, n: int, measure: float, mode: str = "loopback") -> dict[str, float]:
    set_rx_mode(mode)
    discard = mode == "discard"
    if discard:
        setup_discard()
    host = DISCARD_DEVICES["hgm0"][1] if discard else HOST
    ctx = mp.get_context("fork")
    rx_parent, rx_child = ctx.Pipe()
    receiver = ctx.Process(
        target=tap_receiver if discard else music_receiver, args=(rx_child, PROCESS_TIMEOUT)
    )
    receiver.start()
    remotes = rx_parent.recv()
    en_parent, en_child = ctx.Pipe()
    engine = ctx.Process(target=music_engine, args=(en_child, design, n, remotes, measure, host))
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
    if discard:  # every packet counted by the devices; jitter and loss of the sampled
        return {**result, **stats, **discard_counts(result, stats, n), "expected": expected}
    return {**result, **stats, "expected": expected}


def discard_counts(result: dict[str, float], stats: dict[str, float], n: int) -> dict[str, float]:
    """Discard mode: ``packets`` is what the devices took in the window (every stream);
    the tap's own count must match its share, or sampled packets were missed."""
    sampled = len(range(0, n, DISCARD_SAMPLE))
    due = sampled * (result["t1"] - result["t0"]) / INTERVAL
    return {
        "packets": result["device_sent"],
        "sampled_packets": stats["packets"],
        "sampled_due": due,
    }


# ===================================================================== relay
def relay_peers(conn: Connection, n: int) -> None:
    """Two sockets per call (caller, member): send 50 pps each way, count what comes back."""
    _pin(PEER_CPU)
    callers: list[socket.socket] = []
    members: list[socket.socket] = []
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
            functools.partial(_NaiveSide, caller), local_addr=(HOST, cp)
        )
        _, b = await loop.create_datagram_endpoint(
            functools.partial(_NaiveSide, member), local_addr=(HOST, mp_)
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

    def spread(self, key: str, scale: float = 1.0, fmt: str = ".2f") -> str:
        """median (min-max) over the runs."""
        values = [scale * r[key] for r in self.rows]
        return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


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


def search(
    runs: int,
    run: Callable[[int], dict[str, float]],
    label: str,
    *,
    start: int,
    step: int,
    limit: int,
) -> tuple[int, list[Level]]:
    """The most streams that pass (:func:`music_ok`), to ``step``: doubling from ``start``
    until a level fails, then bisecting between the last pass and the first failure.
    Every level is ``runs`` runs (median); at most ``limit`` streams."""
    tried: dict[int, Level] = {}

    def ok(n: int) -> bool:
        if n not in tried:
            tried[n] = Level(n, [run(n) for _ in range(runs)])
            level = tried[n]
            verdict = "ok" if music_ok(level) else "FAIL"
            print(f"{label} N={n}: {_describe(level)} -> {verdict}", flush=True)
        return music_ok(tried[n])

    good, bad = 0, start
    while bad <= limit and ok(bad):
        good, bad = bad, min(2 * bad, limit) if bad < limit else limit + 1
    bad = min(bad, limit + step)
    while bad - good > step:
        mid = (good + bad) // 2 // step * step
        if mid in (good, bad):
            break
        good, bad = (mid, bad) if ok(mid) else (good, mid)
    return good, [tried[n] for n in sorted(tried)]


def _describe(level: Level) -> str:
    every = ("p50", "p99", "cpu", "rx_cpu", "lost", "lost_in", "peer_cpu", "packets", "expected")
    keys = [k for k in every if k in level.rows[0]]
    return ", ".join(f"{k}={level.med(k):.3g}" for k in keys)


def music_ok(level: Level) -> bool:
    tapped = "sampled_due" not in level.rows[0] or (
        level.med("sampled_packets") >= 0.99 * level.med("sampled_due")
    )
    return (
        level.med("p99") < JITTER_LIMIT_MS
        and level.med("lost") == 0
        and level.med("packets") >= 0.99 * level.med("expected")
        and tapped
    )


def relay_ok(level: Level) -> bool:
    return level.med("lost") == 0


def relay_saturated(level: Level) -> bool:
    return not relay_ok(level)


def best(levels: list[Level], ok: Callable[[Level], bool]) -> int:
    passed = [lv.n for lv in levels if ok(lv)]
    return max(passed) if passed else 0


DESIGNS = {
    "engine": "huntgroup MediaEngine (phased pacer)",
    "scheduler": "baseline: today's sender (PacingScheduler, packet objects)",
    "floor": "reference: bare sendto loop, prebuilt packets",
    "naive": "baseline: asyncio task per stream",
}


def music_table(levels: list[tuple[str, str, Level]]) -> str:
    """One row per (design, receive-path mode, level): medians, (min-max) over the runs."""
    rows = [
        "| N streams | design | receive path | jitter p50 (ms) | jitter p99 (ms) "
        "| engine CPU (%) | CPU per packet (µs) | NET_RX per packet, CPU 0 / CPU 1 "
        "| sent (% of 50/s) | lost | receiver CPU (%) | verdict |",
        "|---:|---|---|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for design, mode, lv in levels:
        # per packet sent (a saturated design sends fewer than are due)
        per_packet = [
            1e6 * r["cpu"] * (r["t1"] - r["t0"]) / max(1.0, r["packets"]) for r in lv.rows
        ]
        packets = max(1.0, lv.med("packets"))
        net_rx = (
            f"{lv.med('net_rx_sender') / packets:.2f} / {lv.med('net_rx_peer') / packets:.2f}"
            if "net_rx_sender" in lv.rows[0]
            else "-"
        )
        rows.append(
            f"| {lv.n:,} | {DESIGNS[design]} | {mode} | {lv.spread('p50')} | "
            f"{lv.spread('p99')} | {lv.spread('cpu', 100, '.0f')} | "
            f"{statistics.median(per_packet):.2f} | {net_rx} | "
            f"{100 * lv.med('packets') / lv.med('expected'):.1f} | {lv.med('lost'):.0f} | "
            f"{100 * lv.med('rx_cpu'):.0f} | {'ok' if music_ok(lv) else 'over limit'} |"
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


def _in_netns() -> None:
    """Run again inside a new network namespace with only loopback (``unshare -n``), as
    every load run of the project does; nothing changes when that is impossible."""
    if os.environ.get("HG_BENCH_NETNS") or not shutil.which("unshare"):
        return
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        print("bench_media: unshare -n refused, running in this namespace", flush=True)
        return
    os.environ["HG_BENCH_NETNS"] = "1"
    os.environ.pop("HG_BENCH_SYSFS", None)  # set by the script below only, once mounted
    # -m: a mount namespace too (private), where a sysfs mounted shows this network
    # namespace's devices (its lo alone): RPS is set on that lo, never on the host's.
    # Without -m nothing is mounted (that would cover the host's /sys).
    probe = subprocess.run(["unshare", "-n", "-m", "true"], capture_output=True, check=False)
    flags = ["-n", "-m"] if probe.returncode == 0 else ["-n"]
    sysfs = (
        "if mount -t sysfs sysfs /sys 2>/dev/null; then export HG_BENCH_SYSFS=1; fi && "
        if "-m" in flags
        else ""
    )
    script = f'ip link set lo up && {sysfs}exec "$0" "$@"'
    os.execvp("unshare", ["unshare", *flags, "sh", "-c", script, sys.executable, *sys.argv])


RX_MODES_TEXT = """Receive-path modes (`--rx`). On loopback the kernel delivers each packet into
the receiving socket (IP and UDP receive, the socket queue) inside the sender's `sendto`,
on the sender's CPU, unless Receive Packet Steering (RPS) moves it; in production (a NIC,
the callers on other machines) the server pays none of that.

- **rps**: the namespace's `lo` has `rps_cpus` set to CPU 1 (written into a sysfs mounted
  inside the benchmark's own network and mount namespaces, `unshare -n -m`; the host's
  `lo` is never touched), so the receive path runs in a NET_RX softirq on CPU 1, with the
  receiver. RFS stays off (`rps_sock_flow_entries` is 0, a host-wide setting left alone):
  with one CPU in the mask it adds nothing.
- **loopback**: RPS off, the receive path charged to the sender, as in the runs before
  2026-12-07 evening.
- **discard** (since 2026-12-07 night): no receiver at all. The streams go out of a
  veth device whose peer is down, to a far address with a permanent neighbour entry:
  each packet runs the sender's whole path (system call, UDP, IP, routing, neighbour,
  the device's queue) and is dropped where a NIC's driver would take it, so the CPU per
  packet is the sender's own, with no receive path and no IPI. One stream in
  16 goes out of a second veth pair instead, whose peer is up: a packet socket there
  (a tap, `ETH_P_ALL`) stamps each of their packets as the device transmits it, and
  those give the jitter and the loss; the count of every packet (`sent`) is the
  devices' own (`/proc/net/dev`). The sampled sixteenth pays the tap's copy and its
  drop at the peer (NET_RX per packet about 0.06 on CPU 0). What a real NIC adds (the
  driver, its doorbell) is still not counted.

`NET_RX per packet, CPU 0 / CPU 1` counts the NET_RX softirqs of each CPU in the window
(`/proc/softirqs`, the whole machine: other work adds a little) per packet received: in
loopback mode about 1 / 0 (every receive on the sender's CPU); in rps mode about 1 / 1:
the receive on CPU 1, and on CPU 0 a softirq that only sends CPU 1 an inter-processor
interrupt (IPI) to wake it.

What RPS changes, measured apart (`perf record -g -C 0`, 4 kHz, on a bare `sendto` loop
pinned to CPU 0: 1,000 sockets at 50 packets/s, 250,000 packets per run, the
receiver polling on CPU 1, in the same namespaces; two rounds, 2026-12-07, the machine
shared; shares of the sender's samples):

| | CPU per packet | in softirqs | receive path (`process_backlog`) | IPI (`net_rps_send_ipi`) |
|---|---:|---:|---:|---:|
| loopback | 8.6 and 10.3 µs | 13-30% | 10-15% (0.8-1.6 µs) | - |
| rps | 9.3 and 11.5 µs | 34% (second round) | none | 23-30% (2.6-2.8 µs) |

RPS does take the receive path off the sender (no `process_backlog` left in its samples,
NET_RX moves to CPU 1), but each packet then costs the sender an IPI: almost all of it is
the write of the x2APIC register (`native_write_msr`, 21-27% of the samples), a VM exit on
this Firecracker guest, paid once per packet because CPU 1 empties its queue before the
next packet comes. On this VM that costs the sender about as much as the receive path did
or more, so the rps rows do not show less CPU per packet than the loopback rows. The rps
mode is the
one that models production for *where* the work runs and for the jitter (no receive path
on the sender's timeline; the receive time is stamped as the packet is queued,
`netdev_tstamp_prequeue` is 1). For the CPU per packet neither mode is production: the
loopback figure includes the receive path, the rps figure the IPI; the sender's own cost
(Python, the system call, UDP send, routing, loopback transmit) is the loopback figure
less its softirqs or its receive path, 7.3-8.7 µs per packet on the bare loop in these two
rounds; what production pays per packet on top (a NIC's doorbell, shared by a batch of
packets) is not measured here."""


TIME_GOES = """Where the sender's time goes (cProfile of the sender alone, 2,000 streams for 3 s;
callgrind of a fixed script, below; 2026-12-07):

- **`sendto`** is most of it, and not ours to cut: the system call, the UDP/IP send path,
  routing and the loopback transmit, plus the receive path (loopback mode) or an IPI (rps
  mode), all on the sender's CPU (see the split above). The reference design is the bare
  loop of `sendto` calls.
- **Today's sender** (before the phased pacer) added about 4-5 µs of Python per packet:
  a frozen `RtpPacket` built and checked, `to_bytes` joining a list into new bytes, the
  scheduler's three passes over its streams per tick, a look-up of the session, its side
  and its socket; its one timer sent every stream in one burst, so p99 jitter grew with N.
- **The phased pacer** leaves about 1 µs of Python per packet: the header and the music
  frame (prebuilt once per music position, shared by every caller) packed with one
  `pack_into` into the stream's own buffer, the side kept with the stream, then
  `sendto`. Timers: 500 wake-ups a second (10 slots), under 1% of a core. Spreading the
  streams over 10 slots of 2 ms keeps the p99 jitter near 1 ms where a burst per tick
  (the reference) is over 2 ms.
- **Instructions per packet** of the hot loop (callgrind, user space only: the kernel's
  share is not counted; a fixed script drives `MediaEngine._tick` by hand for 10,000
  packets of 1,000 streams, real sockets): 9,710 before this round; 8,562 with header and
  frame in one `pack_into` (`buffer[12:] = frame` copied the frame into a temporary
  bytearray first: 1,430 instructions); 8,335 with the sequence and timestamp wraps
  compared with literals (a mask on a 32-bit int builds a new int, and `SEQ_MOD - 1` was
  computed per packet): -14% in all. A `sendto` bound once per side was tried and measured
  worse (8,451), not kept. Of the 8,335, `sendto`'s C wrapper (argument and address
  parsing, the GIL released and taken back) is 1,920 and `pack_into` 1,140; the rest is
  the interpreter running `_tick`, `write_into` and the music cursor.

The target (4,000 streams per core at p99 under 2 ms) is **not met on this machine**,
and no Python sender could meet it here: 4,000 streams are 200,000 packets/s, 5 µs per
packet for a whole core, and the kernel's send path alone costs more on this VM. The
discard mode (2026-12-07 night) measures the sender's own path with no receive path
anywhere. In two runs of it (2026-12-07 night, the first with other work on the
machine, the second alone) the bare `sendto` loop (prebuilt packets, nothing else)
cost 5.6-7.0 µs per packet, so even it would need 1.1-1.4 cores for 4,000 streams;
the engine cost 7.7-9.6 µs per packet (its Python, 1-2 µs, and the pacer's timers on
top of the same `sendto`) and held 2,000 and 1,750 streams at 77-79% of a core with
a p99 jitter of 1.0-1.7 ms, 2,200-2,600 streams per full core at that cost, with a
lower p99 than the bare loop (whose one burst per tick reaches 2.5-5 ms at 1,000-2,000
streams). The same tree's figures move by 10-20 % between runs on this VM. What would lower
the kernel's share, not done here: `connect()`ed sockets (`send` measured 4.6 against
6.0 µs for `sendto` with an address on loopback; the kernel also skips the route
look-up), but a connected UDP socket takes packets from its peer only, so latching (a
peer that may come from its signalling IP on any port) and the count of strangers
would need a second, unconnected socket on the same port (`SO_REUSEADDR`, which lets
another local program bind that port too: a security review first); even then the
floor would stay above 4 µs per packet here. `sendmmsg` and io_uring batching are not
in Python's standard library, and `sendmmsg` cannot batch across sockets (one source
port per stream)."""


def music_section(args: argparse.Namespace) -> str:
    designs = [d for d in args.designs.split(",") if d]
    modes = [m for m in args.rx.split(",") if m]
    fixed: list[tuple[str, str, Level]] = []
    for n in args.levels:
        rows: dict[tuple[str, str], list[dict[str, float]]] = {
            (d, m): [] for m in modes for d in designs
        }
        for _ in range(args.runs):  # designs and modes alternate run by run: drift hits all
            for mode in modes:
                for design in designs:
                    rows[design, mode].append(run_music(design, n, args.seconds, mode))
        for (design, mode), runs in rows.items():
            level = Level(n, runs)
            fixed.append((design, mode, level))
            print(f"music/{design}/{mode} N={n}: {_describe(level)}", flush=True)
    found: dict[tuple[str, str], tuple[int, list[Level]]] = {}
    for mode in modes:
        for design in [d for d in designs if d in args.search.split(",")]:
            found[design, mode] = search(
                args.search_runs,
                lambda n, d=design, m=mode: run_music(d, n, args.seconds, m),  # type: ignore[misc]
                f"search/{design}/{mode}",
                start=args.search_start,
                step=args.search_step,
                limit=args.search_limit,
            )
    return render_music(args, fixed, found)


def best_line(key: tuple[str, str], found: tuple[int, list[Level]], step: int) -> str:
    """The most streams a design held in one receive-path mode, and its per-core figure."""
    design, mode = key
    n, levels = found
    level = next((lv for lv in levels if lv.n == n), None)
    if level is None:
        return f"**{DESIGNS[design]}**, {mode}: no level passed"
    per_core = n / level.med("cpu")
    return (
        f"**{DESIGNS[design]}**, {mode}: {n:,} streams (to {step}), at "
        f"{100 * level.med('cpu'):.0f}% of a core, p99 jitter {level.spread('p99')} ms "
        f"-> {per_core:,.0f} streams per full core at that CPU cost"
    )


DESIGN_NOTES = {
    "engine": "the engine as the server runs it (`PlayMusic`)",
    "scheduler": "the engine's sender before the phased pacer, rebuilt from the same classes",
    "floor": "one timer and one `sendto` per packet with nothing else, what any Python "
    "sender pays on this kernel",
    "naive": "an asyncio task per stream",
}


def designs_text(designs: list[str]) -> str:
    """The designs of this run, each with what it is."""
    return "Designs: " + "; ".join(f"**{DESIGNS[d]}**, {DESIGN_NOTES[d]}" for d in designs) + "."


def render_music(
    args: argparse.Namespace,
    fixed: list[tuple[str, str, Level]],
    found: dict[tuple[str, str], tuple[int, list[Level]]],
) -> str:
    searched = (
        "\n".join(f"- {best_line(k, v, args.search_step)}" for k, v in found.items())
        or "(not searched)"
    )
    tried = music_table([(d, m, lv) for (d, m), (_, levels) in found.items() for lv in levels])
    return f"""### Hold music

Every run: the sender process (pinned to CPU {ENGINE_CPU}) plays N streams (one bound UDP
socket each, PCMU, 50 packets/s) to a receiver process (pinned to CPU {PEER_CPU}) that
reads every packet with its kernel receive time (`SO_TIMESTAMPNS`: the receiver's own
scheduling does not count). Jitter is `|inter-arrival gap - 20 ms|` per stream over
{args.seconds:g} s after {WARMUP:g} s of warm-up. A level passes when the median p99 jitter
is under {JITTER_LIMIT_MS:g} ms, no sequence number is missing and at least 99% of the due
packets arrive. CPU is the sender's CPU time over wall time (100% = one core). Figures are
the median (min-max) of {args.runs} runs; the designs and the receive-path modes alternate
run by run.

{RX_MODES_TEXT}

{designs_text(sorted({d for d, _, _ in fixed} | {d for d, _ in found}, key=list(DESIGNS).index))}

{music_table(fixed)}

Most streams with p99 jitter under {JITTER_LIMIT_MS:g} ms (doubling from
{args.search_start:,}, then bisection to {args.search_step}; {args.search_runs} runs per
level, median; target: 4,000 per core):

{searched}

{tried}

{TIME_GOES}
"""


def _earlier_relay() -> str:
    """The relay part of the section as it stands (``--only music`` does not re-run it)."""
    from report import DOC

    text = DOC.read_text() if DOC.exists() else ""
    section = re.search(r"<!-- media:start -->(.*?)<!-- media:end -->", text, re.S)
    if section is None:
        return ""
    body = section.group(1)
    dated = re.search(r"as measured on (\S+)\)", body) or re.search(r"- date: (\S+)", body)
    for marker in ("### Relay", "**Relay**"):
        if marker in body:
            relay = body[body.index(marker) :].split("\n\n", 1)[1] if marker == "### Relay" else ""
            relay = relay.strip() or body[body.index(marker) :].strip()
            when = dated.group(1) if dated else "an earlier run"
            return f"### Relay (not re-run here: as measured on {when})\n\n{relay}\n"
    return ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per fixed level")
    parser.add_argument("--seconds", type=float, default=2.0, help="measurement window per run")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch the docs")
    parser.add_argument("--only", choices=("music", "relay", "all"), default="all")
    parser.add_argument(
        "--levels",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[1000, 4000],
        help="music: fixed levels, every design",
    )
    parser.add_argument(
        "--designs",
        default="engine,scheduler,floor",
        help="music designs: engine, scheduler, floor, naive",
    )
    parser.add_argument(
        "--search",
        default="engine,scheduler",
        help="music designs whose most streams are searched for",
    )
    parser.add_argument(
        "--rx",
        default="rps,loopback",
        help="music: receive-path modes, rps (on the receiver's CPU), loopback "
        "(charged to the sender) and/or discard (no receive path: a device drops them, "
        "a sample is tapped); rps and discard need the benchmark's own namespace",
    )
    parser.add_argument("--search-runs", type=int, default=3)
    parser.add_argument("--search-start", type=int, default=1000)
    parser.add_argument("--search-step", type=int, default=250)
    parser.add_argument("--search-limit", type=int, default=8000)
    parser.add_argument("--max-relay", type=int, default=RELAY_LEVELS[-1])
    parser.add_argument("--no-pin", action="store_true", help="let the scheduler place them")
    parser.add_argument("--no-rt", action="store_true", help="music: no SCHED_FIFO")
    parser.add_argument("--no-netns", action="store_true", help="stay in this namespace")
    args = parser.parse_args()
    if not args.no_netns:
        _in_netns()
    global PIN, REALTIME
    PIN, REALTIME = not args.no_pin, not args.no_rt
    for mode in args.rx.split(","):
        rx_mode_value(mode)  # an unknown mode fails here, not after minutes of runs
    own = {"rps", "discard"} & set(args.rx.split(","))
    if own and not own_sysfs():
        print(f"bench_media: no namespace of our own with its sysfs: no {', '.join(sorted(own))}")
        args.rx = ",".join(m for m in args.rx.split(",") if m not in own) or "loopback"
    relay_levels = tuple(n for n in RELAY_LEVELS if n <= args.max_relay)

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
    clock = time.monotonic()
    parts = []
    if args.only in ("music", "all"):
        parts.append(music_section(args))
    if args.only in ("relay", "all"):
        relay_engine_levels, relay_naive_levels = relay("engine"), relay("naive")
        r_best = best(relay_engine_levels, relay_ok)
        r_naive = best(relay_naive_levels, relay_ok)
        parts.append(f"""### Relay

{r_best:,} calls (50 packets/s each way) relayed with no loss; the baseline
(one asyncio `DatagramProtocol` per socket) reaches {r_naive:,}. When the traffic
process's CPU nears 100%, the limit may be the generator's, not the engine's.
Median of {args.runs} runs per level.

{relay_table(relay_engine_levels, relay_naive_levels)}
""")
    if args.only == "music":
        parts.append(_earlier_relay())
    load_after = os.getloadavg()
    with contextlib.suppress(OSError, RuntimeError):
        set_rx_mode("loopback")
    netns = (
        "its own network and mount namespaces (`unshare -n -m`, loopback only)"
        if own_sysfs()
        else "its own network namespace (`unshare -n`, loopback only)"
        if os.environ.get("HG_BENCH_NETNS")
        else "the host's network namespace"
    )
    body = f"""Media capacity of one core, on loopback in {netns}; the sender
{"pinned to CPU 0, the receivers and traffic on CPU 1" if PIN else "not pinned"}{
        ", the music processes at SCHED_FIFO priority 1" if REALTIME else ""
    }.
The machine's 2 cores are shared with other work (other sessions' tests and benchmarks
run at the same time): load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f}
after; {time.monotonic() - clock:.0f} s in all. Compare designs within one run only.

""" + "\n".join(parts)
    print(body)
    if not args.no_write:
        command = "python benchmarks/bench_media.py " + " ".join(sys.argv[1:])
        write_section("media", command.strip(), body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
