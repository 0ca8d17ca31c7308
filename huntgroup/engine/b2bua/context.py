"""What every part of the B2BUA works on: its state, and the plumbing to send SIP.

Theory of operation
-------------------
:class:`Context` holds the shared parts of one B2BUA: the configuration, the
SIP stack (transaction layer, registrar, digest authenticator), the group
core, the media planner, the index of calls (:mod:`index`), the one timer
heap, the counters (and :class:`SipTraffic`, every message sent counted in
:meth:`Context.send`), the admission limits, and the output buffer of the input
being handled. The concern modules (:mod:`inbound`, :mod:`lines`,
:mod:`caller_leg`, :mod:`member_legs`, :mod:`relay`, :mod:`direct_media`,
:mod:`session_refresh`, :mod:`core_actions`, :mod:`shedding`, :mod:`teardown`)
are functions over it; the facade :class:`~huntgroup.engine.b2bua.facade.B2BUA`
is a Context with the public inputs, and dispatches what the transaction
layer reports (:meth:`Context.tx_actions`).

The timer heap holds ``(due, seq, kind, call key, which)`` entries, one per
armed timer: a 2xx retransmission to the caller, a session timer of one of a
call's dialogs, a call's maximum duration, a direct-media re-INVITE to try
again, a queued caller's next announcement, the end of a shutdown's grace, a hold
re-INVITE to try again. An entry is never removed when its timer changes: it is
skipped when it fires or
reaches the head and no longer matches (:meth:`Context.timer_live`), and the
heap is compacted when it has grown to twice its live entries.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import IntEnum

from huntgroup.config.models import Config
from huntgroup.engine.b2bua.admission import CallAdmission, SourceLimiter
from huntgroup.engine.b2bua.auth_guard import AuthGuard
from huntgroup.engine.b2bua.call_records import CallRecords, RecordOutput
from huntgroup.engine.b2bua.calls import CallState
from huntgroup.engine.b2bua.index import CallIndex
from huntgroup.engine.b2bua.shared_bindings import BindingsOutput, SharedBindings
from huntgroup.engine.b2bua.stats import SipCounters, SipTraffic
from huntgroup.engine.b2bua.subscription_table import SubscriptionTable, WatchTable
from huntgroup.engine.b2bua.trust import TrustDomain
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.digest import DecoyAlgorithms, DigestAuthenticator, NonceCounts
from huntgroup.engine.sip.layer import TransactionLayer
from huntgroup.engine.sip.message import Request, Response, make_response, new_tag
from huntgroup.engine.sip.registrar import Registrar
from huntgroup.engine.sip.transaction import TimerConfig, TransactionKey, TransactionOutput
from huntgroup.errors import ProtocolError
from huntgroup.media.commands import MediaCommand
from huntgroup.media.offer_answer import MediaPlanner
from huntgroup.queue.actions import Claim
from huntgroup.queue.core import RoutingCore
from huntgroup.queue.events import Event, MemberReachable
from huntgroup.queue.state.store import StateStore
from huntgroup.quick_init import quick_init

log = logging.getLogger("huntgroup.calls")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, REFER, SUBSCRIBE, NOTIFY"
ALLOW_EVENTS = "dialog"
"""The event packages a SUBSCRIBE may ask for (RFC 6665 Allow-Events)."""
KNOWN_METHODS = frozenset([*ALLOW.replace(" ", "").split(","), "PRACK", "PUBLISH", "MESSAGE"])
TRUSTED_PEER_REGISTER_FACTOR = 10
"""A trusted peer's REGISTERs may come this many times faster (rate and burst) than the
per-source limit: an SBC registers every phone behind it from one address."""


@dataclass(frozen=True, slots=True, init=False)
class Transmit:
    """Output: send ``data`` to ``destination``."""

    data: bytes
    destination: Peer

    def __init__(self, data: bytes, destination: Peer) -> None:
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "destination", destination)


quick_init(Transmit)


Output = Transmit | MediaCommand | RecordOutput | Claim | BindingsOutput
"""A ``Claim`` (several nodes only) goes to the driver, which asks the shared state and
answers with :meth:`B2BUA.claim_answered <huntgroup.engine.b2bua.facade.B2BUA.claim_answered>`;
a ``BindingsOutput`` (several nodes only: ``share_bindings``) is this node's share of an
AOR's registrations, for the other nodes (:mod:`shared_bindings`)."""


class TimerKind(IntEnum):
    """What a timer entry is for."""

    RETRANSMIT_2XX = 1  # our 2xx to the caller, until its ACK (§13.3.1.4)
    SESSION = 2  # a dialog's session timer (RFC 4028); ``which``: "" caller, else a leg id
    MAX_DURATION = 3  # server.calls.max_duration of an answered call
    MEDIA_RETRY = 4  # direct media: re-INVITE the side ``which`` again
    SHUTDOWN = 5  # the grace of begin_shutdown is over
    ANNOUNCE = 6  # a queued caller's next announcement (periodic message, position)
    TRANSFER = 7  # a transfer's implicit subscription ran out (engine/b2bua/transfer.py)
    HOLD_RETRY = 8  # direct media: re-INVITE ``which`` onto the hold music again (491)


TimerEntry = tuple[float, int, TimerKind, str, str]
"""(due, seq, kind, call key, which)."""


class Context(ABC):
    """The shared state of one B2BUA and the plumbing every concern module uses."""

    def __init__(
        self,
        config: Config,
        *,
        now: float,
        locals_: list[Peer],
        rng: random.Random,
        secret: bytes,
        media: MediaPlanner,
        store: StateStore | None = None,
        wall: float | None = None,
        nonce_counts: NonceCounts | None = None,
        node_id: str = "",
    ) -> None:
        if not locals_:
            raise ValueError("at least one local address is needed")
        self.config = config
        self.node_id = node_id
        self.rng = rng
        self.locals = locals_
        self.media = media
        self.timers = TimerConfig(
            t1=config.server.timers.t1, t2=config.server.timers.t2, t4=config.server.timers.t4
        )
        # 100 Trying is ours to send: not when a 180 or a final answer leaves at once.
        self.layer = TransactionLayer(timers=self.timers, send_trying=False)
        self.core = RoutingCore(config, now=now, store=store, observed=True)
        self.registrar = Registrar()
        # the other nodes' registrations (several nodes only; engine/b2bua/shared_bindings.py)
        self.shared = SharedBindings(max_contacts=self.registrar.max_contacts)
        self.share_bindings = False  # the driver shares them: our own go out as outputs
        # No line has a registered contact yet: none can be offered a call until it
        # registers (lines.report_contacts tells the core of every change).
        for line in config.lines:
            self.core.handle(MemberReachable(line.number, False), now=now)
        auth = config.server.auth
        self.auth = DigestAuthenticator(
            config.server.domain,
            secret,
            nonce_lifetime=300.0,
            algorithms=config.server.digest_algorithms,
            max_tracked_nonces=auth.max_tracked,
            allow_legacy=auth.allow_legacy_digest,
            nonce_counts=nonce_counts,
            node_id=node_id,  # nonces are bound to this node: no replay on another one
        )
        self.decoys = DecoyAlgorithms(self.auth, config.lines)
        if auth.allow_legacy_digest:
            log.warning(
                "server.auth.allow_legacy_digest is on: RFC 2069 digest answers (no qop, "
                "no nc) are accepted, and a sniffed one can be replayed for 300 s"
            )
        self.guard = AuthGuard(
            window=auth.failure_window,
            max_failures_per_source=auth.max_failures_per_source,
            max_failures_per_line=auth.max_failures_per_line,
            lockout_base=auth.lockout_base,
            lockout_max=auth.lockout_max,
            max_entries=auth.max_tracked,
        )
        # the hosts that name this server in a Request-URI (digest uri binding)
        self.our_hosts = frozenset(
            [config.server.domain.lower(), *(me.host.strip("[]").lower() for me in locals_)]
        )
        # wall-clock time minus ``now``: digest nonces carry wall time, so that a
        # nonce issued by one node is judged alike by every node sharing the key.
        # The driver reads the clock, at start (``wall``) and then on every probe
        # (``B2BUA.wall_clock_read``); without one, wall time is ``now``.
        self.wall_offset = 0.0 if wall is None else wall - now
        self.now = now
        self.run_started = now  # bindings registered before it are a previous run's
        # call records (engine/b2bua/call_records.py), under the node's name (its id up to
        # the "/" that the server adds to bind digest nonces to this run)
        # the live queue events go out with the outputs of the input being handled
        self.records = CallRecords(node_id.partition("/")[0], lambda item: self.out.append(item))
        self.out: list[Output] = []
        self.events: list[Event] = []
        self.index = CallIndex()
        self.subscriptions = SubscriptionTable()  # RFC 4235 dialog events we serve
        self.watches = WatchTable()  # our subscriptions to members' phones
        self.untried: list[tuple[TransactionKey, Request]] = []  # INVITEs of this input
        self.timer_heap: list[TimerEntry] = []
        self.compact_at = 64  # heap size that triggers dropping stale entries
        self.seq = itertools.count(1)
        # B2BUA.get_timer: the earliest due time of the sources that change rarely, and
        # the sum of their change counters when it was asked (-1: never asked)
        self.quiet_due: float | None = None
        self.quiet_stamp = -1
        self.accepting = True
        self.shutdown_at: float | None = None
        self.counters = SipCounters()
        self.traffic = SipTraffic(KNOWN_METHODS)  # messages by method and status (/metrics)
        limits = config.server.limits
        self.admission = CallAdmission(
            limits.max_calls,
            limits.max_call_rate,
            now=now,
            max_loop_lag=limits.max_loop_lag,
            max_load=limits.max_load,
        )
        self.source_limits: dict[str, SourceLimiter] = {}
        for method, rate, burst in (
            ("INVITE", limits.per_source_invite_rate, limits.per_source_invite_burst),
            ("REGISTER", limits.per_source_register_rate, limits.per_source_register_burst),
        ):
            if rate is not None:
                self.source_limits[method] = SourceLimiter(
                    rate, burst, table_size=limits.per_source_table
                )
        # REGISTERs of server.trusted_peers (an SBC registers every phone behind it)
        self.peer_register_limits: SourceLimiter | None = None
        register_rate = limits.per_source_register_rate
        if register_rate is not None and config.server.trusted_peers:
            self.peer_register_limits = SourceLimiter(
                register_rate * TRUSTED_PEER_REGISTER_FACTOR,
                limits.per_source_register_burst * TRUSTED_PEER_REGISTER_FACTOR,
                table_size=limits.per_source_table,
            )
        self.overloaded = False  # for one log line per overload episode
        self.trust = TrustDomain(config.server.trusted_peers, config.server.upstream)
        if self.trust.upstream_named:
            log.warning(
                "server.upstream names a host: list its addresses in server.trusted_peers, "
                "or the identities it asserts (P-Asserted-Identity) are dropped"
            )

    # ------------------------------------------------------------ dispatch
    @abstractmethod
    def tx_actions(self, actions: list[TransactionOutput]) -> None:
        """Carry out what the transaction layer returned (the facade dispatches what it
        reports: requests, responses, failures)."""

    # ------------------------------------------------------------ plumbing
    def flush(self) -> list[Output]:
        out, self.out = self.out, []
        return out

    def send(self, message: Request | Response, destination: Peer) -> None:
        if isinstance(message, Response):
            self.traffic.response_out(message.status)
        else:
            self.traffic.request_out(message.method)
        self.out.append(Transmit(message.to_bytes(), destination))

    def respond(
        self,
        key: TransactionKey,
        request: Request,
        status: int,
        *,
        to_tag: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
    ) -> Response:
        tag = to_tag if to_tag is not None else (new_tag(self.rng) if status > 100 else None)
        response = make_response(request, status, to_tag=tag, headers=headers, body=body)
        if status >= 300 and key not in self.index.by_invite:  # a refused INVITE: its record
            self.records.refused(self.out, request, status, self.core, wall=self.wall())
        try:
            self.tx_actions(self.layer.send_response(key, response, now=self.now))
        except ProtocolError as err:
            log.info("could not answer %s %s: %s", request.method, status, err)
        return response

    def wall(self) -> float:
        """Wall-clock time (epoch seconds) of this input: ``now`` plus the driver's offset."""
        return self.now + self.wall_offset

    def start(self, request: Request, destination: Peer) -> TransactionKey:
        key, actions = self.layer.send_request(request, destination, now=self.now)
        self.tx_actions(actions)
        return key

    def tell_core(self, event: Event) -> None:
        """Queue ``event`` for the core (handed over when the input is drained)."""
        self.events.append(event)

    # -------------------------------------------------------------- timers
    def arm(self, due: float, kind: TimerKind, key: str = "", which: str = "") -> None:
        """Push a timer entry (see the module docstring)."""
        heapq.heappush(self.timer_heap, (due, next(self.seq), kind, key, which))
        if len(self.timer_heap) > self.compact_at:
            self.compact_timers()

    def timer_live(self, entry: TimerEntry) -> bool:
        """``entry`` still stands for an armed timer (its token, the due time, matches)."""
        due, _, kind, key, which = entry
        if kind is TimerKind.SHUTDOWN:
            return self.shutdown_at == due
        call = self.index.calls.get(key)
        if call is None or call.state is CallState.ENDED:
            return False
        if kind is TimerKind.RETRANSMIT_2XX:
            retransmit = call.retransmit
            return retransmit is not None and retransmit.get_timer() == due
        if kind is TimerKind.SESSION:
            timer = call.session_of(which)[0]
            return timer is not None and timer.scheduled == due
        if kind is TimerKind.ANNOUNCE:
            announcing = call.announcing
            return call.music is not None and announcing is not None and announcing.due == due
        return True

    def next_timer(self) -> float | None:
        """The due time of the first live entry; stale entries are dropped on the way."""
        heap = self.timer_heap
        while heap and not self.timer_live(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def compact_timers(self) -> None:
        """Drop the entries of calls that ended, or superseded by another entry."""
        kept = [entry for entry in self.timer_heap if self.timer_live(entry)]
        heapq.heapify(kept)
        self.timer_heap = kept
        self.compact_at = max(64, 2 * len(kept))  # amortised: the heap doubles first

    def local_for(self, peer: Peer) -> Peer:
        v6 = ":" in peer.host
        for me in self.locals:
            if me.transport == peer.transport and (":" in me.host) == v6:
                return me
        for me in self.locals:
            if me.transport == peer.transport:
                return me
        return self.locals[0]

    def internal_error(self, what: str, source: Peer, err: Exception) -> None:
        """One WARNING line for a failure that is not the message's fault (traceback at
        DEBUG)."""
        self.counters.internal_errors += 1
        log.warning(
            "internal error %s from %s:%s: %s: %s",
            what,
            source.host,
            source.port,
            type(err).__name__,
            err,
        )
        log.debug("traceback of that internal error", exc_info=err)
