"""``huntgroup serve``: the asyncio driver of the B2BUA.

Theory of operation
-------------------
A thin driver, aioquic-style: sockets feed bytes to the sans-I/O
:class:`B2BUA` with ``now = loop.time()``, the outputs are carried out
(``Transmit`` on the right socket, media commands on :class:`MediaEngine`),
and ONE ``loop.call_at`` is re-armed at ``b2bua.get_timer()`` after every
input. UDP uses one datagram endpoint per ``server.listen`` entry (with
ICMP errors read, see :mod:`udp_errors`); TCP and TLS one server per entry,
with a :class:`StreamParser` per connection. Requests to a TCP or TLS peer
we have no connection to open one (TLS checked per :mod:`tls`); a connection
that cannot be opened fails the requests it was to carry. Responses never
open a connection nor resolve a name: they go back on the connection their
request came on (dropped when it is gone), or to the UDP source address.

Connections (``server.connections``, :mod:`connections`): the open-files
limit is raised at start, and the TCP/TLS connections get what it leaves once
the RTP ports are set aside; a connection beyond the cap per source or the
cap on accepted connections (the total cap less ``outgoing_reserve``, kept for
the connections we open) is closed at once (before any TLS handshake). An
accepted connection must deliver its first complete message within
``message_timeout`` of its accept (keep-alives do not count until then); from
then on each message must be complete within ``message_timeout`` of its first
byte, and something (an RFC 5626 CRLF keep-alive, answered with a CRLF,
counts) must arrive every ``idle_timeout``. A peer that does not read what we
send is cut off.

Saturation: every :data:`PROBE_INTERVAL` a callback measures how late the
event loop ran it (or the SIP datagrams queued in the kernel will be read),
which share of a CPU the process used since the last one, and which share of
the time the loop's thread was runnable but waiting for a core
(``/proc/thread-self/schedstat``, Linux); they go to the B2BUA's admission
as facts (``loop_lag``, ``loop_load``), which sheds new INVITEs when the lag
lasts past ``server.limits.max_loop_lag`` or the busy share passes
``max_load`` (see :mod:`huntgroup.engine.b2bua.admission`).

Shutdown (SIGINT/SIGTERM): newcomers and OPTIONS probes get 503, calls in progress may finish
for ``server.shutdown_grace`` seconds, then the B2BUA ends them with BYE; the
process exits once no call is left.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import resource
import secrets
import socket
import ssl
import time
from dataclasses import dataclass
from typing import cast

from huntgroup.config.diff import config_changes
from huntgroup.config.loader import load_config
from huntgroup.config.models import LISTEN_RE, Config, GroupConfig
from huntgroup.engine.aio import systemd, tls, udp_errors
from huntgroup.engine.aio.file_checks import FILE_CHECKS
from huntgroup.engine.aio.loop_timer import LoopTimer
from huntgroup.engine.aio.media_io import MediaEngine
from huntgroup.engine.aio.records.reports import Reports
from huntgroup.engine.aio.records.sinks import open_sinks
from huntgroup.engine.aio.redis_bindings import RedisBindings
from huntgroup.engine.aio.redis_connect import redact
from huntgroup.engine.aio.redis_state import RedisStateSync, default_node_id
from huntgroup.engine.aio.resolver import HostResolver, is_address
from huntgroup.engine.b2bua import B2BUA, Output, Transmit, connections, stats
from huntgroup.engine.b2bua.call_records import RecordOutput
from huntgroup.engine.b2bua.shared_bindings import BindingsOutput, check_node_name
from huntgroup.engine.sip.address import Peer, bracket
from huntgroup.engine.sip.parser import SipParseError, StreamParser
from huntgroup.errors import ConfigError, MediaError, StateError
from huntgroup.media.commands import RtpTimedOut
from huntgroup.media.offer_answer import MediaPlanner
from huntgroup.queue.actions import Claim
from huntgroup.queue.state.journal import JournalingStore

log = logging.getLogger("huntgroup.server")

PROBE_INTERVAL = 0.05
"""Seconds between two saturation probes (loop lag and CPU share, see ``Server._probe``)."""
UDP_RECEIVE_BUFFER = 4 << 20
"""Bytes of kernel receive buffer asked for each SIP UDP socket: a burst waits there
(and is measured, see ``Server._probe``) rather than being dropped at once."""
SKB_OVERHEAD = 1400
"""Bytes the kernel accounts per queued datagram beyond its payload (Linux truesize,
about 2.3 KB for a 900-byte INVITE), to count the datagrams in a receive queue."""
FULL_QUEUE = 0.9
"""Share of its ``SO_RCVBUF`` a SIP UDP receive queue may fill before it counts as full:
the kernel is dropping datagrams (see :func:`input_lag`)."""
FULL_LAG = 4.0
"""A full receive queue counts as input this many times ``max_loop_lag`` late."""
_SO_MEMINFO = 55  # Linux: getsockopt(SOL_SOCKET) -> u32[9], the first the receive queue bytes
SCHEDSTAT = "/proc/thread-self/schedstat"
"""Linux: the calling thread's time on a CPU, time runnable but waiting for one (ns), and
time slices; read by the event loop's thread at each probe (see :func:`run_delay`)."""


TLS_HANDSHAKE_TIMEOUT = 10.0
"""Seconds an accepted TLS connection has to complete its handshake."""

MAX_WRITE_BUFFER = 1 << 20
"""Bytes queued on one TCP/TLS connection whose peer does not read, before it is closed."""

REPORT_INTERVAL = 10.0
"""Seconds between two log lines about refused or timed-out connections (counted meanwhile)."""

CLOSE_LINGER = 5.0
"""Seconds a closed TCP/TLS connection may take to send what is queued on it."""


def parse_listen(entry: str) -> Peer:
    """A ``server.listen`` entry (``udp:host:port``) as the address it names."""
    m = LISTEN_RE.match(entry)
    if m is None:
        raise ValueError(f"bad listen address {entry!r}")
    return Peer(m.group(2).strip("[]"), int(m.group(3)), m.group(1).upper())


def _udp_socket(host: str, port: int) -> socket.socket:
    """A bound, non-blocking UDP socket for SIP, with ICMP errors reported (Linux)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.bind(address)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    udp_errors.enable(sock)
    for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if option is None:
            continue
        try:  # FORCE passes net.core.rmem_max when allowed (root); else as much as allowed
            sock.setsockopt(socket.SOL_SOCKET, option, UDP_RECEIVE_BUFFER)
            break
        except OSError:
            continue
    return sock


def run_delay() -> float | None:
    """Seconds the calling thread has spent runnable but waiting for a core since it
    started (the second field of :data:`SCHEDSTAT`), or None where it cannot be read."""
    try:
        with open(SCHEDSTAT, "rb") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def udp_backlog(sock: socket.socket) -> int | None:
    """Bytes waiting in ``sock``'s receive queue (Linux SO_MEMINFO), None when unknown."""
    try:
        return int.from_bytes(sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, 36)[:4], "little")
    except OSError:
        return None


def udp_queue_full(sock: socket.socket, backlog: int) -> bool:
    """``backlog`` bytes fill ``sock``'s receive queue (:data:`FULL_QUEUE` of its
    ``SO_RCVBUF``): the kernel drops what comes next."""
    try:
        capacity = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    except OSError:
        return False
    return capacity > 0 and backlog >= FULL_QUEUE * capacity


def input_lag(
    late: float,
    backlog: int,
    *,
    full: bool,
    read: int,
    read_bytes: int,
    elapsed: float,
    max_loop_lag: float | None,
) -> float:
    """How late input is handled: the larger of how late the probe ran (``late``) and
    how long the ``backlog`` bytes queued in the kernel will wait, at the rate
    (``read`` datagrams of ``read_bytes`` bytes over ``elapsed`` seconds) they were
    read lately. A full queue (``full``) counts at least :data:`FULL_LAG` times
    ``max_loop_lag``: its wait is capped by its size (185 INVITEs in the 416 KiB an
    unprivileged process gets by default, a fraction of a second at a fast read rate),
    while the kernel drops the excess unmeasured."""
    lag = late
    if elapsed > 0 and backlog:
        size = read_bytes / read if read else 0.0
        queued = backlog / (size + SKB_OVERHEAD)
        lag = max(lag, queued / (read / elapsed) if read else elapsed)
    if full and max_loop_lag is not None:
        lag = max(lag, FULL_LAG * max_loop_lag)
    return lag


def _buffered(transport: asyncio.DatagramTransport) -> int:
    """Bytes asyncio holds for ``transport``, waiting for the socket to be writable."""
    size = getattr(transport, "get_write_buffer_size", None)
    return int(size()) if size is not None else 0


def _same(protocol: _Udp) -> _Udp:
    """A protocol factory that gives the protocol already made for a bound socket."""
    return protocol


class _Udp(asyncio.DatagramProtocol):
    """One SIP UDP socket; ICMP errors on it fail the transaction they concern."""

    def __init__(self, server: Server, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.server.datagrams += 1
        self.server.datagram_bytes += len(data)
        peer = Peer(str(addr[0]), int(str(addr[1])), "UDP")
        self.server.run(lambda now: self.server.b2bua.receive_datagram(data, peer, now=now))

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)
        self._report(udp_errors.drain(self.sock))

    def send(self, data: bytes, destination: tuple[str, int]) -> None:
        transport = self.transport
        assert transport is not None
        if _buffered(transport):  # keep the order of what is queued
            transport.sendto(data, destination)
            return
        try:
            self._report(udp_errors.send(self.sock, data, destination))
        except BlockingIOError:
            transport.sendto(data, destination)  # the socket buffer is full: queue it
        except OSError as err:
            log.debug("UDP send to %s:%d failed: %s", *destination, err)
            self._report([udp_errors.Undelivered(data, destination, err.errno or 0)])

    def _report(self, undelivered: list[udp_errors.Undelivered]) -> None:
        for item in undelivered:
            peer = Peer(item.destination[0], item.destination[1], "UDP")
            self.server.loop.call_soon(self.server.undelivered, item.data, peer)


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload did: ``changes`` applied (one line each), or the file's ``error``."""

    applied: bool
    changes: tuple[str, ...]
    error: str


class Server:
    def __init__(self, config: Config, *, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.loop = loop
        self._udp: list[tuple[Peer, _Udp]] = []
        self._tcp_servers: list[asyncio.Server] = []
        # stream connections (TCP and TLS), by (transport, host, port) of the peer
        self._tcp: dict[Peer, asyncio.StreamWriter] = {}
        self._pending_tcp: dict[Peer, list[bytes]] = {}
        self._tls_client: ssl.SSLContext | None = None
        self._tls_server: ssl.SSLContext | None = None
        self._limiter = connections.ConnectionLimiter(max_per_source=1, max_total=1)  # start()
        self._refusal_log = connections.ReportThrottle(REPORT_INTERVAL)
        self._timeout_log = connections.ReportThrottle(REPORT_INTERVAL)
        self.conn_counters = stats.ConnectionCounters()
        self._conn_settings = config.server.connections
        self._timer = LoopTimer(loop, self._on_timer)
        self.b2bua: B2BUA
        self.media: MediaEngine
        self.stopped = asyncio.Event()
        # call records and member changes, to every report sink (engine/aio/records/)
        self.reports = Reports()
        self.state_sync: RedisStateSync | None = None
        self.bindings: RedisBindings | None = None  # registrations shared (several nodes)
        self._claim_tasks: set[asyncio.Task[None]] = set()
        self._probe_handle: asyncio.TimerHandle | None = None
        self._probe_due = 0.0
        self._probe_last = 0.0
        self._cpu_last = 0.0
        self._waited_last: float | None = None  # run_delay() at the last probe
        self.datagrams = 0  # SIP datagrams read, and their bytes (for the probe)
        self.datagram_bytes = 0
        self._datagrams_last = 0
        self._bytes_last = 0
        self.listening = False  # every SIP listener is open (readiness)
        self.config_path: str | None = None  # the file a reload reads (set by node.serve)
        self.notifier = systemd.Notifier(None)  # sd_notify around a reload (node.serve sets it)
        self._reload_lock = asyncio.Lock()  # a SIGHUP and an API reload never overlap

    async def start(self) -> None:
        cfg = self.config
        for sink in open_sinks(cfg.records):  # OSError, ConfigError: the server does not start
            self.reports.add(sink)
        rng = random.Random(secrets.randbits(64))
        media_cfg = cfg.server.media
        self.media = MediaEngine(
            self.loop,
            media_cfg.address,
            rng=rng,
            latch_window=media_cfg.latch_window,
            rtp_timeout=media_cfg.rtp_timeout,
            on_timeout=self._media_timed_out,
        )
        # Music is decoded and encoded before the first call can arrive: a caller
        # queued in the first second must not stall every other stream.
        await self._preload_music(cfg)
        self._limiter = connection_limiter(cfg)  # ResourceLimitError: refuses to start
        locals_: list[Peer] = []
        self._tls_client = tls.client_context(cfg.server.tls)  # for sips: and transport=tls
        for entry in cfg.server.listen:
            addr = parse_listen(entry)
            # Bound now (the ports go in the B2BUA's own addresses), read from only once
            # the B2BUA exists (_start_serving): nothing is handled half-built.
            if addr.transport == "UDP":
                sock = _udp_socket(addr.host, addr.port)
                port = sock.getsockname()[1]
                self._udp.append((Peer(addr.host, port, "UDP"), _Udp(self, sock)))
            else:  # TCP or TLS (TLS is started per connection, once it is within the caps)
                if addr.transport == "TLS" and self._tls_server is None:
                    self._tls_server = tls.server_context(cfg.server.tls)  # once for every entry
                server = await asyncio.start_server(
                    functools.partial(self._accept, addr.transport),
                    addr.host,
                    addr.port,
                    start_serving=False,
                )
                port = server.sockets[0].getsockname()[1]
                self._tcp_servers.append(server)
            locals_.append(Peer(self._advertised(addr.host), port, addr.transport))
            log.info("listening on %s:%s:%d", addr.transport.lower(), bracket(addr.host), port)
        families = [socket.AF_INET6 if ":" in a.host else socket.AF_INET for a, _ in self._udp]
        self._resolver = HostResolver(self.loop, sorted(families))  # IPv4 first
        secret = os.environ.get("HUNTGROUP_SECRET", "").encode() or secrets.token_bytes(32)
        planner = MediaPlanner(
            media_cfg.address,
            media_cfg.port_range,
            rng,
            mode=media_cfg.mode,
            port_rng=random.SystemRandom(),  # RTP ports nobody can predict (security.md)
        )
        store = None
        # one id per node: names it in the shared state, and binds its digest nonces to it
        node_id = os.environ.get("HUNTGROUP_NODE_ID") or default_node_id()
        try:  # the same name in every key and every share of this node
            check_node_name(node_id)
        except ValueError as err:
            raise StateError(f"HUNTGROUP_NODE_ID: {err}") from None
        if cfg.server.state != "memory":
            journal = JournalingStore(node_id)
            self.state_sync = RedisStateSync(
                cfg.server.state, journal, auth=cfg.server.state_auth, tls=cfg.server.state_tls
            )
            await self.state_sync.start()  # StateError: the server refuses to start
            store = journal
            log.info("shared state: %s (node %s)", redact(cfg.server.state), journal.node_id)
        self.b2bua = B2BUA(
            cfg,
            now=self.loop.time(),
            locals_=locals_,
            rng=rng,
            secret=secret,
            media=planner,
            wall=time.time(),
            store=store,
            # a restart forgets the replay table: the challenges of the last run go stale
            node_id=f"{node_id}/{secrets.token_hex(8)}",
        )
        await self._start_serving()
        if self.state_sync is not None:
            self.state_sync.on_change = lambda: self.run(
                lambda now: self.b2bua.state_changed(now=now)
            )
            self.b2bua.core.claims = True  # a member is claimed in Redis before it rings
            self.state_sync.claims.on_lost = lambda call_id, member: self.run(
                lambda now: self.b2bua.claim_answered(call_id, member, False, now=now)
            )
            # registrations: every node reaches the lines registered on any other one
            self.bindings = RedisBindings(
                cfg.server.state,
                node_id,
                on_share=lambda value: self.run(
                    lambda now: self.b2bua.bindings_received(value, now=now)
                ),
                on_reload=lambda values: self.run(
                    lambda now: self.b2bua.bindings_reloaded(list(values), now=now)
                ),
                auth=cfg.server.state_auth,
                tls=cfg.server.state_tls,
                lines=lambda: [line.number for line in self.b2bua.config.lines],
            )
            self.b2bua.share_bindings = True
            await self.bindings.start()
        log.info("media: %s, RTP ports %d-%d", media_cfg.mode, *media_cfg.port_range)
        self._rearm()
        self._probe_last = self.loop.time()
        self._cpu_last = time.process_time()
        self._waited_last = run_delay()
        self._probe_due = self._probe_last + PROBE_INTERVAL
        self._probe_handle = self.loop.call_at(self._probe_due, self._probe)
        self.listening = True

    async def _start_serving(self) -> None:
        """Read the bound SIP sockets and accept on the listeners (the B2BUA exists)."""
        for _, protocol in self._udp:
            await self.loop.create_datagram_endpoint(
                functools.partial(_same, protocol), sock=protocol.sock
            )
        for server in self._tcp_servers:
            await server.start_serving()

    def readiness(self) -> dict[str, bool]:
        """What ``/readyz`` checks: every one must hold for the node to take calls."""
        sync = self.state_sync
        return {
            "listening": self.listening,
            "state_store": sync is None or sync.connected,
            "accepting": self.listening and self.b2bua.accepting,
        }

    def _probe(self) -> None:
        """Measure how late inputs are handled, the CPU share and the share of time spent
        waiting for a core, hand them to admission as facts, and come back in
        :data:`PROBE_INTERVAL`.

        The lag is the larger of two: how late this callback runs, and how long the
        SIP datagrams waiting in the kernel will wait (their count, from the receive
        queue's bytes, over the rate they were read at lately). asyncio reads one
        datagram per loop turn, so a saturated server keeps its loop on time while
        its queue grows: the queue is where saturation shows. A queue at its size
        counts as input well past ``max_loop_lag`` (see :func:`input_lag`).
        """
        now = self.loop.time()
        cpu = time.process_time()
        waited = run_delay()
        elapsed = now - self._probe_last
        admission = self.b2bua.admission
        backlog, full = 0, False
        if elapsed > 0:
            for _, proto in self._udp:
                queued = udp_backlog(proto.sock) or 0
                backlog += queued
                full = full or (queued > 0 and udp_queue_full(proto.sock, queued))
        lag = input_lag(
            now - self._probe_due,
            backlog,
            full=full,
            read=self.datagrams - self._datagrams_last,
            read_bytes=self.datagram_bytes - self._bytes_last,
            elapsed=elapsed,
            max_loop_lag=admission.max_loop_lag,
        )
        admission.loop_lag(lag, now=now)  # first: it steers the share refused
        if elapsed > 0:
            off_cpu = 0.0
            if waited is not None and self._waited_last is not None:
                off_cpu = (waited - self._waited_last) / elapsed
            admission.loop_load((cpu - self._cpu_last) / elapsed, now=now, waiting=off_cpu)
        self.b2bua.wall_clock_read(time.time(), now=now)
        self._datagrams_last, self._bytes_last = self.datagrams, self.datagram_bytes
        self._probe_last, self._cpu_last, self._waited_last = now, cpu, waited
        self._probe_due = now + PROBE_INTERVAL
        self._probe_handle = self.loop.call_at(self._probe_due, self._probe)

    def _media_timed_out(self, fact: RtpTimedOut) -> None:
        """A relayed call fell silent (server.media.rtp_timeout): the B2BUA ends it."""
        self.run(lambda now: self.b2bua.media_timed_out(fact, now=now))

    def _advertised(self, host: str) -> str:
        if host in ("0.0.0.0", "::"):
            media = self.config.server.media.address
            if (":" in media) == (":" in host):
                return media
            return "127.0.0.1" if host == "0.0.0.0" else "::1"
        return host

    # ---------------------------------------------------------------- driving
    def run(self, step: object) -> None:
        """Run one B2BUA input (a callable taking ``now``) and carry out its outputs."""
        assert callable(step)
        try:
            outputs: list[Output] = step(self.loop.time())
        except Exception:  # a bug must not kill the server or other calls
            log.exception("internal error while handling an input")
            outputs = []
        self._execute(outputs)
        self._rearm()

    def _execute(self, outputs: list[Output]) -> None:
        for out in outputs:
            try:
                if isinstance(out, Transmit):
                    self._transmit(out)
                elif isinstance(out, RecordOutput):
                    self.reports.deliver(out.record)  # a failing sink is its own problem
                elif isinstance(out, Claim):
                    self._claim(out)
                elif isinstance(out, BindingsOutput):
                    if self.bindings is not None:
                        self.bindings.offer(out)
                else:
                    self.media.execute(out)
            except (OSError, ValueError) as err:  # one bad address must not stop the rest
                log.warning("could not carry out %s: %s", type(out).__name__, err)

    def _claim(self, claim: Claim) -> None:
        """Ask Redis for the member of ``claim``, then tell the core (several nodes)."""
        state = self.state_sync
        assert state is not None, "claims are on only with a shared state"

        async def ask() -> None:
            member, call_id = claim.member, claim.call_id
            granted = await state.claims.claim(
                member,
                call_id,
                call_waiting=claim.call_waiting,
                group=claim.group,
                arrival=claim.arrival,
            )
            self.run(lambda now: self.b2bua.claim_answered(call_id, member, granted, now=now))

        task = self.loop.create_task(ask(), name="claim")
        self._claim_tasks.add(task)
        task.add_done_callback(self._claim_tasks.discard)

    def _transmit(self, out: Transmit) -> None:
        dest = out.destination
        response = out.data.startswith(b"SIP/2.0 ")
        if dest.transport in ("TCP", "TLS"):
            if response:  # only on the connection its request came on, never a new one
                self._respond_on_stream(dest, out.data)
            else:
                self._send_tcp(dest, out.data)
            return
        if is_address(dest.host):
            self._send_udp(out.data, dest.host, dest.port)
            return
        if response:  # never resolve a name for a response (it goes to a source address)
            log.debug("response for %s:%d dropped: not an address", dest.host, dest.port)
            return

        # A host name: resolved off the event loop, then sent (or failed: 503).
        def failed() -> None:
            self.loop.call_soon(self.undelivered, out.data, dest)

        self._resolver.resolve(
            dest.host, lambda address: self._send_udp(out.data, address, dest.port), failed
        )

    def _send_udp(self, data: bytes, host: str, port: int) -> None:
        v6 = ":" in host
        for addr, proto in self._udp:
            if (":" in addr.host) == v6 and proto.transport is not None:
                proto.send(data, (host, port))
                return
        for _, proto in self._udp:
            if proto.transport is not None:
                proto.send(data, (host, port))
                return
        log.warning("no UDP socket to reach %s:%d", host, port)

    def gauges(self) -> dict[str, int]:
        """What is in progress now: the B2BUA's gauges, media sessions, connections (the
        stats line's and ``/metrics``')."""
        return {
            **self.b2bua.gauges(),
            "media_sessions": self.media.sessions,
            "connections": self._limiter.open,
        }

    def log_stats(self) -> str:
        """Log (and return) the stats line: gauges and counters (see :mod:`stats`)."""
        now = self.loop.time()
        admission = self.b2bua.admission
        gauges = {
            **self.gauges(),
            "loop_lag_ms": round(admission.lag(now=now) * 1000),
            "load_percent": round(admission.load(now=now) * 100),
            **self.reports.counters(),
        }
        line = stats.stats_line(
            gauges, self.b2bua.counters, self.media.counters, self.conn_counters
        )
        log.info("stats: %s", line)
        return line

    async def report_stats(self, interval: float) -> None:
        """Every ``interval`` seconds, the stats line, when a counter moved."""
        last = ""
        while True:
            await asyncio.sleep(interval)
            now = stats.stats_line({}, self.b2bua.counters, self.media.counters, self.conn_counters)
            if now != last:
                self.log_stats()
                last = now

    def undelivered(self, data: bytes, destination: Peer) -> None:
        """What we sent to ``destination`` came back undeliverable (ICMP, TCP refused)."""
        self.run(lambda now: self.b2bua.send_failed(data, destination, now=now))

    def _rearm(self) -> None:
        self._timer.arm(self.b2bua.get_timer())

    def _on_timer(self) -> None:
        self.run(lambda now: self.b2bua.handle_timer(now=now))

    # -------------------------------------------------------------------- TCP
    async def _accept(
        self, transport: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """A TCP connection arrived on a tcp: or tls: listener: capped, then served.

        The caps apply before any TLS handshake (which the connection then has
        :data:`TLS_HANDSHAKE_TIMEOUT` seconds to complete, ``message_timeout`` if
        shorter): a handshake in progress holds a descriptor too. The first
        complete message must arrive ``message_timeout`` after the accept,
        handshake included (:meth:`_read_tcp`).
        """
        accepted_at = self.loop.time()
        peername = writer.get_extra_info("peername")
        host, port = str(peername[0]), int(peername[1])
        source = connections.source_of(host)
        refusal = self._limiter.accept(source)
        if refusal is not None:
            self._refused(refusal, transport, host, source)
            writer.transport.abort()
            return
        self.conn_counters.conn_accepted += 1
        try:
            if transport == "TLS":
                assert self._tls_server is not None
                try:
                    await writer.start_tls(
                        self._tls_server,
                        ssl_handshake_timeout=min(
                            TLS_HANDSHAKE_TIMEOUT, self._conn_settings.message_timeout
                        ),
                    )
                except (OSError, TimeoutError) as err:  # ssl.SSLError included
                    log.debug("TLS handshake with %s:%d failed: %s", host, port, err)
                    return
            peer = Peer(host, port, transport)
            self._tcp[peer] = writer
            first_by = accepted_at + self._conn_settings.message_timeout
            await self._read_tcp(peer, reader, writer, first_by=first_by)
        finally:
            self._limiter.release(source)
            self._close(writer)

    def _refused(
        self, refusal: connections.Refusal, transport: str, host: str, source: str
    ) -> None:
        if refusal == "total":
            self.conn_counters.conn_refused_total += 1
            cap = (
                f"total cap ({self._limiter.max_accepted} incoming; "
                f"{self._limiter.outgoing_reserve} more kept for outgoing)"
            )
        else:
            self.conn_counters.conn_refused_source += 1
            cap = f"cap per source ({self._limiter.max_per_source} from {source})"
        held = self._refusal_log.due(now=self.loop.time())
        if held is not None:
            log.warning(
                "%s connection from %s refused: %s reached (%d more refused since the last "
                "such line)",
                transport,
                host,
                cap,
                held,
            )

    async def _read_tcp(
        self,
        peer: Peer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        first_by: float | None = None,
    ) -> None:
        """Read messages until the peer closes, or a deadline passes.

        ``first_by`` (loop time; accepted connections): the first complete message
        must have arrived by then, or the connection is closed; CRLF keep-alives
        before it are answered but do not extend it, so a connection that never
        says anything cannot hold a descriptor longer than ``message_timeout``.
        After the first message (from the start on connections we opened,
        ``first_by`` None), a message must be complete ``message_timeout`` seconds
        after its first byte, and a connection that receives nothing (CRLF
        keep-alives count) for ``idle_timeout`` is closed."""
        parser = StreamParser()
        limits = self._conn_settings  # as at start: changes under server: need a restart
        loop = self.loop
        started: float | None = None  # when the first byte of the message being read came
        greeted = first_by is None  # a complete message came (or we opened the connection)
        first = loop.time() + limits.idle_timeout if first_by is None else first_by
        try:
            async with asyncio.timeout_at(first) as deadline:
                while data := await reader.read(65536):
                    now = loop.time()
                    try:
                        messages = parser.feed(data)
                    except SipParseError as err:
                        self.run(lambda now, e=err: self.b2bua.parse_failed(e, peer))
                        break  # framing is lost on this connection
                    pings = parser.take_pings()
                    if pings:  # RFC 5626 §4.4.1: each double CRLF gets a single CRLF
                        self.conn_counters.keepalive_pongs += pings
                        self._write(writer, b"\r\n" * pings)
                    for message in messages:
                        self.run(
                            lambda now, m=message: self.b2bua.receive_message(m, peer, now=now)
                        )
                    if messages:
                        greeted = True
                    if not greeted:
                        continue  # the deadline stays at first_by
                    if parser.in_message:
                        if started is None or messages:
                            started = now
                        deadline.reschedule(
                            min(started + limits.message_timeout, now + limits.idle_timeout)
                        )
                    else:
                        started = None
                        deadline.reschedule(now + limits.idle_timeout)
        except TimeoutError:
            if not greeted:
                self.conn_counters.conn_message_timeouts += 1
                why = f"no complete message {limits.message_timeout:g} s after it was accepted"
            elif started is not None:
                self.conn_counters.conn_message_timeouts += 1
                why = f"no complete message {limits.message_timeout:g} s after its first byte"
            else:
                self.conn_counters.conn_idle_timeouts += 1
                why = f"idle for {limits.idle_timeout:g} s"
            held = self._timeout_log.due(now=loop.time())
            if held is not None:
                log.info(
                    "%s connection with %s:%d closed: %s (%d more since the last such line)",
                    peer.transport,
                    bracket(peer.host),
                    peer.port,
                    why,
                    held,
                )
        except (ConnectionError, OSError):
            pass
        finally:
            if self._tcp.get(peer) is writer:
                del self._tcp[peer]
            self._close(writer)

    def _close(self, writer: asyncio.StreamWriter) -> None:
        """Close a connection: what is queued may still leave for :data:`CLOSE_LINGER`
        seconds, then the socket goes (a peer that does not read cannot keep it)."""
        transport = writer.transport
        writer.close()
        if transport.get_write_buffer_size():
            self.loop.call_later(CLOSE_LINGER, transport.abort)

    def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        """Queue ``data`` on a connection; one whose peer does not read (more than
        :data:`MAX_WRITE_BUFFER` bytes queued) is closed instead."""
        transport = writer.transport
        if transport.get_write_buffer_size() + len(data) > MAX_WRITE_BUFFER:
            self.conn_counters.conn_write_overflows += 1
            log.debug("connection closed: its peer does not read what we send")
            transport.abort()
            return
        writer.write(data)

    def _respond_on_stream(self, dest: Peer, data: bytes) -> None:
        """A response over TCP or TLS: on its request's connection, or dropped when it is
        gone (never a new connection, whatever §18.2.2 or the Via says)."""
        writer = self._tcp.get(dest)
        if writer is None or writer.is_closing():
            self.conn_counters.responses_dropped += 1
            log.debug("response to %s:%d dropped: its connection is gone", dest.host, dest.port)
            return
        self._write(writer, data)

    def _send_tcp(self, dest: Peer, data: bytes) -> None:
        writer = self._tcp.get(dest)
        if writer is not None and not writer.is_closing():
            self._write(writer, data)
            return
        queued = self._pending_tcp.get(dest)
        if queued is not None:
            queued.append(data)
            return
        if not self._limiter.connect():
            self.conn_counters.conn_refused_total += 1
            held = self._refusal_log.due(now=self.loop.time())
            if held is not None:
                log.warning(
                    "no %s connection opened to %s:%d: total cap (%d, outgoing reserve "
                    "included) reached (%d more refused since the last such line)",
                    dest.transport,
                    bracket(dest.host),
                    dest.port,
                    self._limiter.max_total,
                    held,
                )
            self.loop.call_soon(self.undelivered, data, dest)
            return
        self._pending_tcp[dest] = [data]
        self.loop.create_task(self._connect_tcp(dest))

    async def _connect_tcp(self, dest: Peer) -> None:
        """Open a connection we need (counted by the limiter), send what waits for it, read."""
        context = self._tls_client if dest.transport == "TLS" else None
        try:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(
                        dest.host,
                        dest.port,
                        ssl=context,
                        server_hostname=dest.host if context is not None else None,
                    ),
                    timeout=5,
                )
            except (OSError, TimeoutError) as err:  # ssl.SSLError (a bad certificate) included
                log.info(
                    "%s connection to %s:%d failed: %s", dest.transport, dest.host, dest.port, err
                )
                for data in self._pending_tcp.pop(dest, []):
                    self.undelivered(data, dest)
                return
            self._tcp[dest] = writer
            for data in self._pending_tcp.pop(dest, []):
                self._write(writer, data)
            await self._read_tcp(dest, reader, writer)
        finally:
            self._limiter.release(None)

    async def reload(self, path: str | None = None) -> ReloadResult:
        """SIGHUP (and ``POST /api/v1/reload``): the record files are opened again
        (logrotate moved them), and the configuration file read again (``path``, else
        the one the node was started with); a bad file is reported and changes nothing.
        One reload at a time, each between systemd's ``RELOADING=1`` and ``READY=1``."""
        async with self._reload_lock:
            return await self.notifier.reload(self._reload(path))

    async def _reload(self, path: str | None) -> ReloadResult:
        self.reports.reopen()
        path = path if path is not None else self.config_path
        if path is None:
            return ReloadResult(False, (), "the server was not started from a file")
        try:
            config = await asyncio.to_thread(
                functools.partial(load_config, path, checks=FILE_CHECKS)
            )
        except ConfigError as err:
            log.error("reload refused, the running configuration stays:\n%s", err)
            return ReloadResult(False, (), str(err))
        await self._preload_music(config)
        if config.records != self.config.records:  # the sinks were opened at start
            log.warning("reload: changes under 'records' take effect at the next restart")
            config = config.model_copy(update={"records": self.config.records})
        changes = config_changes(self.config, config)
        for change in changes:
            log.info("reload: %s", change)
        if not changes:
            log.info("reload: the file did not change")
        self.config = config
        self.run(lambda now: self.b2bua.reload(config, now=now))
        return ReloadResult(True, tuple(changes), "")

    async def _preload_music(self, config: Config) -> None:
        """Load and encode every music file (the server's default, each line's, each
        group's) off the event loop, before it is needed."""
        owners = [("server.media", config.server.media.music)]
        owners += [(f"line {line.number}", line.music) for line in config.lines]
        owners += [(f"group {group.name}", group.queue.music) for group in config.groups]
        for owner, music in owners:
            if music is None:
                continue
            try:
                await asyncio.to_thread(self.media.library.get, music)
            except MediaError as err:
                log.error("%s: hold music unusable, built-in music used: %s", owner, err)
        for group in config.groups:
            await self._preload_announcements(group)

    async def _preload_announcements(self, group: GroupConfig) -> None:
        """Load and encode the group's announcement files off the event loop."""
        for path in group.queue.announcements.files():
            try:
                await asyncio.to_thread(self.media.library.get, path)
            except MediaError as err:
                log.error(
                    "group %s: announcement unusable, it will be skipped: %s", group.name, err
                )

    # --------------------------------------------------------------- shutdown
    async def shutdown(self) -> None:
        grace = self.config.server.shutdown_grace
        log.info(
            "shutting down: %d call(s) in progress, grace %.0f s", self.b2bua.active_calls, grace
        )
        self.run(lambda now: self.b2bua.begin_shutdown(now=now, grace=grace))
        deadline = self.loop.time() + grace + 5
        while self.b2bua.active_calls and self.loop.time() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.2)  # let the last BYEs and responses leave
        for task in list(self._claim_tasks):
            task.cancel()
        if self.bindings is not None:
            await self.bindings.stop()
        if self.state_sync is not None:
            await self.state_sync.stop()
        self.close()

    def close(self) -> None:
        # the calls still up (a BYE unanswered) get their records before the sinks close
        if hasattr(self, "b2bua"):  # started
            self.run(lambda now: self.b2bua.abandon_all(now=now))
        self._timer.cancel()
        if self.bindings is not None:
            self.bindings.cancel()  # stopped already after a shutdown
        if self._probe_handle is not None:
            self._probe_handle.cancel()
        for _, proto in self._udp:
            if proto.transport is not None:
                proto.transport.close()
            else:  # bound, never read (start() failed before serving)
                proto.sock.close()
        for server in self._tcp_servers:
            server.close()
        for writer in list(self._tcp.values()):
            writer.close()
        self.media.close_all()
        self.reports.close()  # the records still pending are written (PostgreSQL: a while)
        self.stopped.set()


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (logged); return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:  # Linux refuses more than fs.nr_open
        try:
            with open("/proc/sys/fs/nr_open") as f:
                target = int(f.read())
        except (OSError, ValueError):
            target = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as err:
            log.warning(
                "open files: could not raise the limit from %d to %d: %s", soft, target, err
            )
            return soft
        log.info("open files: limit raised from %d to %d (the hard limit)", soft, target)
        return target
    if soft == resource.RLIM_INFINITY:
        soft = target
    log.info("open files: limit %d (the hard limit)", soft)
    return soft


def connection_limiter(config: Config) -> connections.ConnectionLimiter:
    """The caps on TCP/TLS connections, within what the open-files limit leaves once
    the RTP ports have their sockets (raises ResourceLimitError when they do not fit)."""
    low, high = config.server.media.port_range
    limits = config.server.connections
    total = connections.connection_budget(
        raise_open_files_limit(),
        rtp_ports=high - low + 1,
        max_total=limits.max_total,
        outgoing_reserve=limits.outgoing_reserve,
    )
    log.info(
        "connections: at most %d TCP/TLS in total, of which %d kept for outgoing ones; "
        "%d per source; %d descriptors kept for RTP",
        total,
        limits.outgoing_reserve,
        limits.max_per_source,
        high - low + 1,
    )
    return connections.ConnectionLimiter(
        max_per_source=limits.max_per_source,
        max_total=total,
        outgoing_reserve=limits.outgoing_reserve,
    )
