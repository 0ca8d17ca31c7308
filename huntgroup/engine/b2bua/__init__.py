"""The back-to-back user agent: SIP calls in, group-core decisions, SIP calls out.

Theory of operation
-------------------
``B2BUA`` is sans-I/O like the rest of the engine. The asyncio driver
(:mod:`huntgroup.engine.aio.server`) hands it every datagram or framed message
with its source and ``now``, re-arms one timer at :meth:`get_timer`, and
carries out the outputs: :class:`Transmit` (bytes to a peer) and the media
commands of :mod:`huntgroup.media.offer_answer`.

Inside, four sans-I/O parts are chained: the transaction layer (RFC 3261
§17), the registrar with digest authentication, the :class:`RoutingCore` of
the groups, and the call legs kept here. A caller's INVITE to a pilot or a
line becomes a core event; the core's actions become SIP:

- ``Ringback`` → 180 to the caller; ``Hold`` → 200 (or 183) with our SDP and
  hold music; ``Ring`` → an INVITE per registered contact of the member (or to
  its fixed URI); ``Cancel`` → CANCEL (or ACK+BYE for a leg that answered too
  late); ``Bridge`` → ACK the member, 200 to the caller if not answered yet,
  media relayed between the two; ``Release`` → final response or BYE;
  ``Forward`` (a target outside the server) → 302 (caller not answered) or a
  new leg to the target (caller answered). A forward to one of our own numbers
  is followed by the core itself: ``Reroute`` is only noted (logged, and the
  number the call is at now), ``RefuseForward`` ends the call (482/483).

Every member leg is its own dialog (own Call-ID and tags). Media is anchored:
the caller always talks to the port we answered with, so switching from music
to a member needs no re-INVITE toward the caller.

Dead calls end on their own: every dialog (the caller's, each confirmed
leg's) has a session timer (RFC 4028, :mod:`session_timer`): the refresher
side refreshes at half the interval (we send an UPDATE or a re-INVITE), the
other side gives up when no refresh came, and a failed refresh (408, 481,
no answer) or an expired session ends the call like a BYE; an optional
``server.calls.max_duration`` caps any answered call. Their due times live
in one heap, one entry per timer, with ``handle_timer``.

Overload: a new INVITE or REGISTER is refused before it takes any state when
its source is over its rate or the node is saturated (:mod:`admission`); over
UDP the decision is taken on the datagram's bytes, before the parser
(``_quick_shed``), and the 503 is stateless. Requests inside a dialog,
retransmissions, ACK, CANCEL and responses always go through.

Invariants: each caller leg ends exactly once (final response, or BYE once
answered); every member leg we started ends with a final response, a CANCEL
or a BYE; no state outlives its call (indexes are cleaned in ``_forget``);
whatever raises while one message is handled stays with it: a request gets
400 or 500 and its call is ended (``_request_failed``), nothing escapes.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from huntgroup.config.models import Config
from huntgroup.engine.b2bua.admission import (
    DROP,
    PASS,
    REFUSE,
    CallAdmission,
    Refusal,
    SourceLimiter,
    Verdict,
)
from huntgroup.engine.b2bua.auth_guard import AuthGuard, address_of
from huntgroup.engine.b2bua.connections import source_of
from huntgroup.engine.b2bua.session_timer import (
    SessionTimer,
    has_option,
    min_se_of,
    negotiate_as_uac,
    negotiate_as_uas,
    request_headers,
    uas_refusal,
)
from huntgroup.engine.b2bua.stats import SipCounters
from huntgroup.engine.b2bua.trust import TrustDomain
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.dialogs import Dialog, uac_dialog, uas_dialog
from huntgroup.engine.sip.digest import (
    AuthOutcome,
    DecoyAlgorithms,
    DigestAuthenticator,
    NonceCounts,
    parse_credentials,
    uri_matches,
    usable_algorithms,
)
from huntgroup.engine.sip.fields import Via, parse_name_address, parse_via
from huntgroup.engine.sip.grammar import quote, split_list
from huntgroup.engine.sip.headers import Headers
from huntgroup.engine.sip.layer import TransactionLayer, client_key_of_datagram, server_key
from huntgroup.engine.sip.message import (
    Message,
    Request,
    Response,
    make_cancel,
    make_response,
    new_call_id,
    new_tag,
)
from huntgroup.engine.sip.next_hop import (
    check_max_forwards,
    next_hop_max_forwards,
    response_destination,
    stamp_via,
)
from huntgroup.engine.sip.parser import SipParseError, error_response, parse_datagram
from huntgroup.engine.sip.registrar import (
    Registrar,
    contact_on_source,
    parse_contact_values,
)
from huntgroup.engine.sip.transaction import (
    AckTimedOut,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    SendFailed,
    SendMessage,
    TimerConfig,
    TransactionKey,
    TransactionOutput,
    TransactionTimedOut,
    TransportFailed,
    TwoXXRetransmitter,
)
from huntgroup.engine.sip.uri import SipUri, TelUri, Uri, parse_uri, unescape
from huntgroup.errors import LocalProtocolError, ProtocolError
from huntgroup.media.nat import behind_nat
from huntgroup.media.offer_answer import CallMedia, MediaCommand, MediaPlanner, RtpTimedOut
from huntgroup.queue.actions import (
    Action,
    Bridge,
    Cancel,
    Forward,
    Hold,
    Identity,
    RefuseForward,
    Release,
    Reroute,
    Ring,
    Ringback,
)
from huntgroup.queue.core import RoutingCore
from huntgroup.queue.events import (
    CallAnswered,
    CallArrived,
    CallHungUp,
    DirectCallArrived,
    Event,
    MemberAnswered,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberUnreachable,
    OutgoingCallStarted,
)
from huntgroup.queue.state.store import StateStore

log = logging.getLogger("huntgroup.calls")

FEATURE_CODE = re.compile(r"\*(51|52)(\+?[0-9]{2,15})?")
"""*51 joins, *52 leaves: every group of the calling line, or the group of the pilot."""

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE"
RELAYED_IN_DIALOG = ("INVITE", "UPDATE", "INFO")
MAX_MEDIA_UPDATES = 4
"""Direct media: re-INVITEs per call before giving up on end-to-end media."""
MediaSide = Literal["caller", "member"]
MAX_ASSERTED = 2
"""RFC 3325 §9.1: at most two P-Asserted-Identity values (one sip:/sips:, one tel:)."""
MAX_SESSION_INTERVAL = 7200
"""The longest session interval a member's 422 can make us ask for (RFC 4028 §7.4)."""
SHED_TAG = "shed-"
"""The To tag of our stateless 503s starts so: their ACK is recognised without parsing
(our other tags are base62, without a dash)."""
_SHED_ACK = re.compile(rb"\r\n(?:To|t)[ \t]*:[^\r\n]*;[ \t]*tag=shed-", re.IGNORECASE)
_TO_TAG = re.compile(rb";[ \t]*tag[ \t]*=", re.IGNORECASE)
_QUICK_FIELDS = {
    b"via": "via",
    b"v": "via",
    b"from": "from",
    b"f": "from",
    b"to": "to",
    b"t": "to",
    b"call-id": "call-id",
    b"i": "call-id",
    b"cseq": "cseq",
}
ANONYMOUS = "anonymous"
"""The caller's number when it has none or hides it (From: sip:anonymous@anonymous.invalid)."""
KNOWN_METHODS = frozenset(
    [*ALLOW.replace(" ", "").split(","), "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH", "MESSAGE"]
)


@dataclass(frozen=True, slots=True)
class Transmit:
    """Output: send ``data`` to ``destination``."""

    data: bytes
    destination: Peer


Output = Transmit | MediaCommand
_CallerIdentity = tuple[str | None, tuple[str, ...]]
"""The line a caller is authenticated as (or None), and the PAI values presented for it."""


@dataclass(slots=True)
class _Leg:
    """One INVITE we sent: to a member's contact, or to a forwarding target."""

    id: str
    call: str
    member: str  # "" for a forwarding leg
    invite: Request
    tx: TransactionKey
    destination: Peer
    me: Peer
    state: str = "calling"  # calling | proceeding | confirmed | ended
    cancel_pending: bool = False
    cancelled: bool = False
    dialog: Dialog | None = None
    session: SessionTimer | None = None  # RFC 4028, once the leg is confirmed


@dataclass(slots=True)
class _Call:
    """The caller's leg and everything hanging off it."""

    key: str
    invite: Request
    tx: TransactionKey
    source: Peer
    me: Peer
    to_tag: str
    media: CallMedia
    number: str  # our number the call is at: the one dialled, then each forward to ours
    state: str = "early"  # early | answered | ended
    ringing_sent: bool = False
    early_media: bool = False  # a 183 with our SDP went to the caller (queue.answer: false)
    dialog: Dialog | None = None
    retransmit: TwoXXRetransmitter | None = None
    legs: dict[str, _Leg] = field(default_factory=dict)
    bridged: str | None = None  # leg id
    core_id: str = ""  # its id in the group core, for its whole life (forwards included)
    outgoing_line: str | None = None  # a line's own call out through the upstream
    caller_line_id: str | None = None  # core id of the calling line's own activity
    feature: bool = False  # a feature-code call (*51/*52): answered, then hung up
    dialog_keys: list[tuple[str, str, str]] = field(default_factory=list)
    reinvite_pending: bool = False
    media_update_after_ack: bool = False  # direct media: re-INVITE the caller once it ACKs
    media_updates: int = 0  # re-INVITEs sent to put the media end to end
    music: str | None = None  # while held: the music file ("" = built-in); None otherwise
    # RFC 3325: the line the caller is authenticated as (None: an outside caller), and the
    # P-Asserted-Identity values the server vouches for when it presents the caller.
    verified_line: str | None = None
    asserted: tuple[str, ...] = ()
    privacy: str | None = None  # the caller's Privacy header, sent along with the PAI
    session: SessionTimer | None = None  # RFC 4028 on the caller's dialog, once answered


class B2BUA:
    """Routes SIP calls for one configuration (see module docstring)."""

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
        wall_clock: Callable[[], float] | None = None,
        nonce_counts: NonceCounts | None = None,
        node_id: str = "",
    ) -> None:
        if not locals_:
            raise ValueError("at least one local address is needed")
        self.config = config
        self.rng = rng
        self.locals = locals_
        self.media = media
        self.timers = TimerConfig(
            t1=config.server.timers.t1, t2=config.server.timers.t2, t4=config.server.timers.t4
        )
        # 100 Trying is ours to send: not when a 180 or a final answer leaves at once.
        self.layer = TransactionLayer(timers=self.timers, send_trying=False)
        self.core = RoutingCore(config, now=now, store=store)
        self.registrar = Registrar()
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
        self._decoys = DecoyAlgorithms(self.auth, config.lines)
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
        self._our_hosts = frozenset(
            [config.server.domain.lower(), *(me.host.strip("[]").lower() for me in locals_)]
        )
        self._wall = wall_clock
        self._now = now
        self._out: list[Output] = []
        self._events: list[Event] = []
        self._calls: dict[str, _Call] = {}  # by call key
        self._by_core: dict[str, str] = {}  # core call id -> call key
        self._by_server_tx: dict[TransactionKey, str] = {}
        self._by_client_tx: dict[TransactionKey, tuple[str, str]] = {}  # -> (call, leg)
        self._dialogs: dict[tuple[str, str, str], tuple[str, str]] = {}  # -> (call, leg or "")
        self._legs_by_call_id: dict[str, tuple[str, str]] = {}
        # relayed in-dialog requests: client tx -> (server tx, dialog it was relayed on)
        self._relays: dict[TransactionKey, tuple[TransactionKey, Dialog]] = {}
        self._orphans: dict[TransactionKey, _Leg] = {}  # legs of ended calls, still open
        self._untried: list[tuple[TransactionKey, Request]] = []  # INVITEs of this input
        self._retransmit_heap: list[tuple[float, int, str]] = []
        # direct media: our re-INVITEs (client tx -> call, side, dialog) and their retries
        self._updates: dict[TransactionKey, tuple[str, MediaSide, Dialog]] = {}
        self._update_retries: list[tuple[float, int, str, MediaSide]] = []
        self._seq = itertools.count(1)
        self.accepting = True
        self._shutdown_at: float | None = None
        self.counters = SipCounters()
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
        self._overloaded = False  # for one log line per overload episode
        # session timers and maximum durations: (due, seq, call key, leg id | "" | "*")
        self._session_heap: list[tuple[float, int, str, str]] = []
        self._compact_at = 64  # heap size that triggers dropping stale entries
        # our session refreshes: client tx -> (call key, leg id or "", dialog)
        self._refreshes: dict[TransactionKey, tuple[str, str, Dialog]] = {}
        self.trust = TrustDomain(config.server.trusted_peers, config.server.upstream)
        if self.trust.upstream_named:
            log.warning(
                "server.upstream names a host: list its addresses in server.trusted_peers, "
                "or the identities it asserts (P-Asserted-Identity) are dropped"
            )

    # ================================================================ inputs
    def receive_datagram(self, data: bytes, source: Peer, *, now: float) -> list[Output]:
        if not data.strip(b"\r\n"):
            return []  # keep-alive
        self._now = max(self._now, now)
        quick = self._quick_shed(data, source)
        if quick is not None and quick != PASS:
            self.counters.messages_in += 1
            return self._flush()
        try:
            message = parse_datagram(data)
        except SipParseError as err:
            self._parse_failed(err, source)
            return self._flush()
        except Exception as err:  # a parser bug: the datagram is dropped, nothing else
            self.counters.malformed += 1
            self._internal_error("parsing a datagram", source, err)
            return self._flush()
        return self._receive(message, source, now=now, checked=quick == PASS)

    def receive_message(self, message: Message, source: Peer, *, now: float) -> list[Output]:
        """One message in. Whatever fails while handling it stays with it: a request
        gets its final response (see :meth:`_request_failed`), nothing escapes."""
        return self._receive(message, source, now=now, checked=False)

    def _receive(
        self, message: Message, source: Peer, *, now: float, checked: bool
    ) -> list[Output]:
        self._now = max(self._now, now)
        self.counters.messages_in += 1
        if not checked and isinstance(message, Request) and self._shed(message, source):
            return self._flush()
        try:
            self._tx_actions(self.layer.receive(message, source, now=self._now))
        except ProtocolError as err:  # a message whose fields break a later layer
            log.info("dropped a message from %s:%s: %s", source.host, source.port, err)
        except Exception as err:
            self._internal_error(f"handling a {_kind(message)}", source, err)
        try:
            self._drain()
            self._trying()
        except Exception as err:
            self._events.clear()
            self._untried.clear()
            self._internal_error(f"handling a {_kind(message)}", source, err)
        return self._flush()

    def _internal_error(self, what: str, source: Peer, err: Exception) -> None:
        """One WARNING line for a failure that is not the message's fault (traceback at DEBUG)."""
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

    def _shed(self, request: Request, source: Peer) -> bool:
        """Overload and floods: refuse a new INVITE or REGISTER before it takes any state.

        Per source address (``server.limits.per_source_*``): over the rate, 503
        with Retry-After; past twice the rate, nothing. A new INVITE while the
        node is saturated (:meth:`CallAdmission.overloaded`): 503 at once. The
        503 is sent statelessly, so a flood creates no transaction; requests
        inside a dialog, retransmissions of requests taken in, ACK, BYE, CANCEL
        and responses are never shed.
        """
        method = request.method
        if method not in ("INVITE", "REGISTER"):
            return False
        try:
            if request.to.tag is not None or server_key(request) in self.layer:
                return False
            limiter, verdict = self._flood_check(method, source)
            if limiter is not None and verdict == DROP:
                self.counters.flood_dropped += 1
                return True
            if limiter is not None and verdict == REFUSE:
                self.counters.flood_refused += 1
                log.debug("%s from %s over its rate: 503", method, source.host)
                self._refuse_stateless(request, source, limiter.retry_after)
                return True
            if method != "INVITE":
                return False
            refusal = self.admission.overloaded(now=self._now)
            self._overload_log(refusal)
            if refusal is None:
                return False
            self.counters.overload_refused += 1
            self._refuse_stateless(request, source, refusal.retry_after)
            return True
        except ProtocolError:
            return False  # the transaction layer answers what is wrong with it

    def _flood_check(self, method: str, source: Peer) -> tuple[SourceLimiter | None, Verdict]:
        """The per-source flood limit of a new ``method`` request from ``source``: the
        limiter that judged it (None: not limited) and its verdict.

        - An INVITE from the trust domain (the upstream, ``server.trusted_peers``) is
          not limited: a trunk or an SBC carries many callers from one address, and is
          bounded by the node's own limits instead.
        - A REGISTER from a trusted peer (an SBC registers every phone behind it) draws
          from its own bucket, :data:`TRUSTED_PEER_REGISTER_FACTOR` times the rate and
          burst. The upstream never registers, and a spoofed UDP source can use its
          address: its REGISTERs are limited like anyone's.
        - A request from the exact transport address (transport, host, port) of a live
          binding draws from that address's own bucket: a flood from other ports of the
          phone's host (an office NAT, a blind UDP spoofer) does not silence the phone.
        - Any other request draws from its source's bucket, keyed like the connection
          caps (:func:`source_of`: an IPv4 address, an IPv6 /64).
        """
        limiter = self.source_limits.get(method)
        if limiter is None:
            return None, PASS
        if self.trust.trusts(source.host):
            if method == "INVITE":
                return None, PASS
            if self.trust.is_peer(source.host) and self.peer_register_limits is not None:
                peers = self.peer_register_limits
                return peers, peers.check(source_of(source.host), now=self._now)
        here = source
        if self.registrar.aors_at(here, now=self._now):
            key = address_of(source.transport, source.host, source.port)
        else:
            key = source_of(source.host)
        return limiter, limiter.check(key, now=self._now)

    def _refuse_stateless(self, request: Request, source: Peer, retry_after: int) -> None:
        """503 without a transaction, to where the request came from (never its Via)."""
        tag = f"{SHED_TAG}{next(self._seq):x}"  # no dialog: unique is enough
        response = make_response(
            stamp_via(request, source),
            503,
            to_tag=tag,
            headers=(("Retry-After", str(retry_after)),),
        )
        self._send(response, source)

    def _quick_shed(self, data: bytes, source: Peer) -> Verdict | None:
        """:meth:`_shed` on a datagram's bytes, before the full parser runs: under a
        flood the parser is most of what a refused request costs.

        Reads only the request line and the Via, From, To, Call-ID and CSeq lines.
        PASS: taken in (the full path skips :meth:`_shed`); REFUSE: 503 sent; DROP:
        no answer; None: not a new INVITE or REGISTER, or anything unusual (folded
        or repeated fields, a pre-RFC 3261 branch...): the full path decides.
        The ACK of one of these 503s (its To tag starts with :data:`SHED_TAG`) is
        dropped here too.
        """
        try:
            return self._quick_verdict(data, source)
        except ProtocolError:
            return None  # the full path answers what is wrong with it
        except Exception as err:  # a bug of this shortcut: the full path decides
            self._internal_error("pre-checking a datagram", source, err)
            return None

    def _quick_verdict(self, data: bytes, source: Peer) -> Verdict | None:
        if data.startswith(b"ACK "):
            return DROP if _SHED_ACK.search(data, 0, 4096) is not None else None
        if data.startswith(b"INVITE "):
            method = "INVITE"
        elif data.startswith(b"REGISTER "):
            method = "REGISTER"
        else:
            return None
        fields = _quick_fields(data)
        if fields is None:
            return None
        vias, found = fields
        if _TO_TAG.search(found["to"]) is not None:
            return None  # inside a dialog
        via = parse_via(vias[0].partition(b",")[0].decode("utf-8", "surrogateescape"))
        branch = via.branch
        if branch is None or not branch.startswith("z9hG4bK"):
            return None
        if TransactionKey(branch, via.sent_by.lower(), method, server=True) in self.layer:
            return None  # a retransmission: its transaction answers
        limiter, verdict = self._flood_check(method, source)
        if verdict == DROP:
            self.counters.flood_dropped += 1
            return DROP
        if verdict == REFUSE and limiter is not None:
            self.counters.flood_refused += 1
            self._quick_refuse(vias, found, via, source, limiter.retry_after)
            return REFUSE
        if method == "INVITE":
            refusal = self.admission.overloaded(now=self._now)
            self._overload_log(refusal)
            if refusal is not None:
                self.counters.overload_refused += 1
                self._quick_refuse(vias, found, via, source, refusal.retry_after)
                return REFUSE
        return PASS

    def _quick_refuse(
        self, vias: list[bytes], found: dict[str, bytes], via: Via, source: Peer, retry: int
    ) -> None:
        """A 503 built from the request's own field lines (§8.2.6), without a
        transaction, sent to where the request came from (never to its Via)."""
        tag = f"{SHED_TAG}{next(self._seq):x}".encode()  # no dialog: unique is enough
        stamped = via.with_param("received", source.host.strip("[]"))
        if via.has_rport:  # RFC 3581
            stamped = stamped.with_param("rport", str(source.port))
        _, comma, others = vias[0].partition(b",")
        lines = [b"SIP/2.0 503 Service Unavailable"]
        lines.append(b"Via: " + str(stamped).encode("utf-8", "surrogateescape") + comma + others)
        lines += [b"Via: " + v for v in vias[1:]]
        lines += [
            b"From: " + found["from"],
            b"To: " + found["to"] + b";tag=" + tag,
            b"Call-ID: " + found["call-id"],
            b"CSeq: " + found["cseq"],
            b"Retry-After: " + str(retry).encode(),
            b"Content-Length: 0",
            b"",
            b"",
        ]
        self._out.append(Transmit(b"\r\n".join(lines), source))

    def _overload_log(self, refusal: Refusal | None) -> None:
        """One warning when the node starts shedding, one when it stops."""
        if refusal is not None and not self._overloaded:
            self._overloaded = True
            log.warning("overloaded, new calls get 503: %s", refusal.reason)
        elif refusal is None and self._overloaded:
            self._overloaded = False
            log.warning("overload over: new calls are taken in again")

    def _trying(self) -> None:
        """100 Trying for the INVITEs of this input that got no other answer yet."""
        for key, request in self._untried:
            if not self.layer.has_response(key):
                self._respond(key, request, 100)
        self._untried.clear()

    def send_failed(self, data: bytes, destination: Peer, *, now: float) -> list[Output]:
        """``data``, sent to ``destination``, could not be delivered (an ICMP error, a
        refused TCP connection): its client transaction fails at once with 503
        (§8.1.3.1), e.g. a member whose phone is off counts as unreachable now
        rather than after timer B. ``data`` may be cut short (ICMP quotes only
        the start of a datagram). Responses and ACKs are left to their timers.
        """
        self._now = max(self._now, now)
        key = client_key_of_datagram(data)
        if key is not None and key in self.layer:
            self.counters.undeliverable += 1
            log.info("%s to %s:%d undeliverable", key.method, destination.host, destination.port)
            self._tx_actions(self.layer.transport_error(SendFailed(key), now=self._now))
            self._drain()
        return self._flush()

    def parse_failed(self, err: SipParseError, source: Peer) -> list[Output]:
        self._parse_failed(err, source)
        return self._flush()

    def _parse_failed(self, err: SipParseError, source: Peer) -> None:
        self.counters.malformed += 1
        log.info("malformed SIP from %s:%s: %s", source.host, source.port, err)
        try:
            response = error_response(err)
            if response is not None:
                self._send(response, response_destination(response.top_via, source))
        except ProtocolError:
            pass

    def get_timer(self) -> float | None:
        times = [self.layer.get_timer(), self.core.get_timer(), self.registrar.get_timer()]
        times.append(self.guard.get_timer())
        times += [self._retransmit_due(), self._shutdown_at]
        times.append(self._update_retries[0][0] if self._update_retries else None)
        times.append(self._session_heap[0][0] if self._session_heap else None)
        due = [t for t in times if t is not None]
        return min(due) if due else None

    def handle_timer(self, *, now: float) -> list[Output]:
        self._now = max(self._now, now)
        self._tx_actions(self.layer.handle_timer(now=self._now))
        self._apply(self.core.handle_timer(now=self._now))
        self.guard.handle_timer(now=self._now)
        for expired in self.registrar.handle_timer(now=self._now):
            log.info("line %s: %d contact(s) expired", expired.aor, len(expired.removed))
        while (due := self._retransmit_due()) is not None and due <= self._now:
            _, _, key = heapq.heappop(self._retransmit_heap)
            call = self._calls[key]  # _retransmit_due checked it still retransmits
            assert call.retransmit is not None
            for item in call.retransmit.handle_timer(now=self._now):
                if isinstance(item, SendMessage):
                    self._send(item.message, item.destination)
                elif isinstance(item, AckTimedOut):
                    log.info("call %s: no ACK for our 200, hanging up", call.key)
                    call.retransmit = None
                    self._caller_gone(call, bye_caller=True)
            if call.retransmit is not None:
                self._schedule_retransmit(call)
        while self._update_retries and self._update_retries[0][0] <= self._now:
            _, _, call_key, side = heapq.heappop(self._update_retries)
            retried = self._calls.get(call_key)
            if retried is not None:
                self._update_media(retried, side)
        self._session_timers()
        if self._shutdown_at is not None and self._now >= self._shutdown_at:
            self._shutdown_at = None
            for call in list(self._calls.values()):
                self._caller_gone(call, bye_caller=True, status=503)
        self._drain()
        return self._flush()

    def media_timed_out(self, fact: RtpTimedOut, *, now: float) -> list[Output]:
        """The relay heard no RTP from a side of a bridged call for ``fact.after`` seconds
        (``server.media.rtp_timeout``): the call is dead, its BYE lost. It ends as a BYE
        from the far side would end it, on both sides: BYE to the caller and to the
        member, the member freed in the core, the ports released."""
        self._now = max(self._now, now)
        # A linear scan: timeouts are rare, and a media session index would be one more
        # table to keep in step with every call's end.
        call = next((c for c in self._calls.values() if c.media.session == fact.session), None)
        if call is not None and call.state != "ended":
            log.info(
                "call %s: no RTP from the %s for %.0f s (server.media.rtp_timeout): "
                "ended, BYE to both sides",
                call.key,
                " and the ".join(fact.silent),
                fact.after,
            )
            self._caller_gone(call, bye_caller=True)
        self._drain()
        return self._flush()

    def reload(self, config: Config, *, now: float) -> list[Output]:
        """Apply a new configuration; calls in progress go on (see RoutingCore.reload)."""
        self._now = max(self._now, now)
        if config.server != self.config.server:
            log.warning("reload: changes under 'server' take effect at the next restart")
            config = config.model_copy(update={"server": self.config.server})
        self.config = config
        self._apply(self.core.reload(config, now=self._now))
        self._drain()
        log.info("reload: %d group(s), %d line(s)", len(config.groups), len(config.lines))
        return self._flush()

    def state_changed(self, *, now: float) -> list[Output]:
        """Another node changed the shared state: members may have become free."""
        self._now = max(self._now, now)
        self._apply(self.core.state_changed(now=self._now))
        self._drain()
        return self._flush()

    def _schedule_retransmit(self, call: _Call) -> None:
        due = call.retransmit.get_timer() if call.retransmit is not None else None
        if due is not None:
            heapq.heappush(self._retransmit_heap, (due, next(self._seq), call.key))

    def _retransmit_due(self) -> float | None:
        """The next 2xx retransmission; stale heap entries are dropped on the way."""
        heap = self._retransmit_heap
        while heap:
            due, _, key = heap[0]
            call = self._calls.get(key)
            retransmit = call.retransmit if call is not None else None
            if retransmit is not None and retransmit.get_timer() == due:
                return due
            heapq.heappop(heap)
        return None

    def begin_shutdown(self, *, now: float, grace: float) -> list[Output]:
        """Refuse new calls (503) and end the remaining ones after ``grace`` seconds."""
        self._now = max(self._now, now)
        self.accepting = False
        self._shutdown_at = self._now + grace
        return self._flush()

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    def gauges(self) -> dict[str, int]:
        """What is in progress now: calls, queued callers, contacts, transactions, RTP ports."""
        queued = sum(len(self.core.store.queue(g.name)) for g in self.config.groups)
        return {
            "calls_active": len(self._calls),
            "queued": queued,
            "contacts": self.registrar.binding_count,
            "transactions": len(self.layer),
            "auth_tracked": len(self.guard),
            "rtp_ports_in_use": self.media.ports.in_use,
        }

    # ============================================================ plumbing
    def _flush(self) -> list[Output]:
        out, self._out = self._out, []
        return out

    def _send(self, message: Request | Response, destination: Peer) -> None:
        self._out.append(Transmit(message.to_bytes(), destination))

    def _respond(
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
        try:
            self._tx_actions(self.layer.send_response(key, response, now=self._now))
        except ProtocolError as err:
            log.info("could not answer %s %s: %s", request.method, status, err)
        return response

    def _start(self, request: Request, destination: Peer) -> TransactionKey:
        key, actions = self.layer.send_request(request, destination, now=self._now)
        self._tx_actions(actions)
        return key

    def _tx_actions(self, actions: list[TransactionOutput]) -> None:
        for action in actions:
            match action:
                case SendMessage(message, destination):
                    self._send(message, destination)
                case RequestReceived(key, request, source):
                    self._on_request(key, request, source)
                case CancelReceived(key, request, source, invite_key):
                    self._on_cancel(key, request, source, invite_key)
                case ResponseReceived(key, response, source):
                    self._on_response(key, response, source)
                case TransactionTimedOut(key, request, _timer):
                    self._on_failure(key, request, 408)
                case TransportFailed(key, request):
                    self._on_failure(key, request, 503)

    def _core(self, event: Event) -> None:
        self._events.append(event)

    def _drain(self) -> None:
        while self._events:
            event = self._events.pop(0)
            self._apply(self.core.handle(event, now=self._now))

    def _local_for(self, peer: Peer) -> Peer:
        v6 = ":" in peer.host
        for me in self.locals:
            if me.transport == peer.transport.upper() and (":" in me.host) == v6:
                return me
        for me in self.locals:
            if me.transport == peer.transport.upper():
                return me
        return self.locals[0]

    # ============================================================ requests
    def _on_request(self, key: TransactionKey | None, request: Request, source: Peer) -> None:
        """Handle one request, and everything the core decides about it at once: any
        exception on the way ends with :meth:`_request_failed`, never escapes."""
        try:
            if key is None:  # an ACK outside any transaction: the ACK of one of our 2xx
                self._on_ack(request)
            else:
                self._dispatch_request(key, request, source)
            self._drain()
        except Exception as err:
            self._events.clear()
            self._request_failed(key, request, source, err)

    def _request_failed(
        self, key: TransactionKey | None, request: Request, source: Peer, err: Exception
    ) -> None:
        """The handling of ``request`` raised ``err``: answer it and leave no state.

        400 (or the error's own status) when the message is at fault (a
        ProtocolError raised by a remote's fields), 500 otherwise; a call the
        request had started is ended; the server transaction then ends on its
        normal timers, or is dropped when not even an answer can be built.
        """
        status = 500
        if isinstance(err, ProtocolError) and not isinstance(err, LocalProtocolError):
            status = err.status if 400 <= err.status < 600 else 400
        self.counters.request_errors += 1
        if status == 500:
            self._internal_error(f"handling {request.method}", source, err)
        else:
            log.info(
                "%s from %s:%s refused (%d): %s",
                request.method,
                source.host,
                source.port,
                status,
                err,
            )
        if key is None:
            return
        call = self._calls.get(self._by_server_tx.get(key, ""))
        if call is not None:
            try:
                self._caller_gone(call, bye_caller=True, status=status)
                self._drain()  # the core forgets it too
            except Exception as again:
                self._events.clear()
                log.debug("ending the call of a failed request failed too", exc_info=again)
                call.state = "ended"
                try:
                    self._forget(call)
                except Exception as third:
                    log.debug("forgetting it failed as well", exc_info=third)
                    self._calls.pop(call.key, None)
                    self._by_server_tx.pop(key, None)
        if self.layer.awaits_final(key):
            try:
                response = make_response(request, status, to_tag=new_tag(self.rng))
                self._tx_actions(self.layer.send_response(key, response, now=self._now))
            except Exception as again:
                log.debug("no answer could be built for a failed request", exc_info=again)
        if self.layer.awaits_final(key):
            self.layer.abandon(key)
        self._untried = [(k, r) for k, r in self._untried if k != key]

    def _dispatch_request(self, key: TransactionKey, request: Request, source: Peer) -> None:
        method = request.method
        if method == "INVITE":
            self._untried.append((key, request))
        if request.to.tag is not None:
            self._in_dialog(key, request, source)
        elif method == "INVITE":
            self._new_invite(key, request, source)
        elif method == "REGISTER":
            self._register(key, request, source)
        elif method == "OPTIONS":
            if not self.accepting:  # draining: a load balancer's probe takes the node out
                self._respond(key, request, 503, headers=(("Retry-After", "30"),))
            else:
                self._respond(
                    key,
                    request,
                    200,
                    headers=(("Allow", ALLOW), ("Accept", "application/sdp")),
                )
        elif method == "BYE":
            self._respond(key, request, 481)
        elif method in KNOWN_METHODS:
            self._respond(key, request, 405, headers=(("Allow", ALLOW),))
        else:
            self._respond(key, request, 501, headers=(("Allow", ALLOW),))

    def _register(self, key: TransactionKey, request: Request, source: Peer) -> None:
        number = _user_of(request.to.uri)
        if not number:
            self._respond(key, request, 404)
            return
        # a number that is no line is challenged all the same (docs/security.md)
        if self._authenticated(key, request, source, number, proxy=False):
            self._bind(key, request, source, number)

    def _authenticated(
        self, key: TransactionKey, request: Request, source: Peer, number: str, *, proxy: bool
    ) -> bool:
        """Digest-check ``request`` as line ``number``; answers 401/407/403/400/503 when not.

        Known and unknown numbers get the same answers: a challenge (for an
        unknown number, the algorithms of a line drawn by :class:`DecoyAlgorithms`),
        then 403 for a wrong answer (or one with an algorithm the line has no
        secret for). Failures count against ``source`` and ``number``
        (:class:`AuthGuard`; for a line with a live binding from ``source``'s exact
        transport address, host and port, against that (address, line) pair instead
        of the source; a trusted peer has no per-source count);
        while locked out, 503 with Retry-After.
        """
        header = "Proxy-Authorization" if proxy else "Authorization"
        credentials = request.headers.get(header)
        now = self._wall() if self._wall else self._now
        bound = {
            address_of(b.source.transport, b.source.host, b.source.port)
            for b in self.registrar.contacts(number, now=self._now)
            if b.source
        }
        here = address_of(source.transport, source.host, source.port)
        trusted = self.trust.trusts(source.host)
        wait = self.guard.locked(
            source.host, number, now=self._now, address=here, line_addresses=bound, trusted=trusted
        )
        if wait is not None:
            self.counters.auth_locked_out += 1
            self._respond(key, request, 503, headers=(("Retry-After", str(wait)),))
            return False
        stale = False
        if credentials is not None:
            try:
                parsed = parse_credentials(credentials)
            except ProtocolError as err:
                log.info("%s %s refused (400): %s", request.method, number, err)
                self._respond(key, request, 400)
                return False
            if not uri_matches(parsed.uri, str(request.uri), our_hosts=self._our_hosts):
                log.info(
                    "%s %s refused (400): digest uri is not the Request-URI", request.method, number
                )
                self._respond(key, request, 400)
                return False
            result = self.auth.verify(
                parsed, method=request.method, credentials_lookup=self.config.line, now=now
            )
            if result.ok and parsed.username == number:
                self.guard.succeeded(number)
                return True
            if result.ok or result.outcome in (
                AuthOutcome.WRONG_PASSWORD,
                AuthOutcome.UNKNOWN_USER,
                AuthOutcome.NO_SECRET_FOR_ALGORITHM,  # as a wrong password: tells nothing
            ):
                reason = "credentials of another line" if result.ok else result.outcome.value
                self._auth_failed(request, source, number, reason, bound=bound, trusted=trusted)
                self._respond(key, request, 403)
                return False
            stale = result.stale
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        line = self.config.line(number)
        if line is not None:
            offer = usable_algorithms(line, self.auth.algorithms) or None
        else:  # a number that is no line is offered what a line would be (DecoyAlgorithms)
            if self._decoys.lines is not self.config.lines:  # reloaded
                self._decoys = DecoyAlgorithms(self.auth, self.config.lines)
            offer = self._decoys.offer(number)
        values = self.auth.challenge(now=now, stale=stale, algorithms=offer)
        headers = tuple((name, v) for v in values)
        self._respond(key, request, 407 if proxy else 401, headers=headers)
        return False

    def _auth_failed(
        self,
        request: Request,
        source: Peer,
        number: str,
        reason: str,
        *,
        bound: set[str],
        trusted: bool,
    ) -> None:
        self.counters.auth_failures += 1
        log.info("%s %s from %s refused (403): %s", request.method, number, source.host, reason)
        here = address_of(source.transport, source.host, source.port)
        failed = self.guard.failed(
            source.host, number, now=self._now, address=here, line_addresses=bound, trusted=trusted
        )
        for lockout in failed:
            self.counters.auth_lockouts += 1
            log.warning(
                "auth: %s locked out for %.0f s after %d failed authentications",
                lockout.what,
                lockout.seconds,
                lockout.failures,
            )

    def _bind(self, key: TransactionKey, request: Request, source: Peer, number: str) -> None:
        try:
            entries = [
                e for v in request.headers.get_all("Contact") for e in parse_contact_values(v)
            ]
        except ProtocolError:
            self._respond(key, request, 400)
            return
        if not self.trust.is_peer(source.host):
            foreign = next(
                (
                    e.uri
                    for e in entries
                    if not e.is_wildcard and not contact_on_source(e.uri, source.host)
                ),
                None,
            )
            if foreign is not None:  # a line binds itself, not a trunk or another host's port
                log.warning(
                    "line %s: REGISTER from %s:%s refused (403): contact %.120s is not on "
                    "the source host",
                    number,
                    source.host,
                    source.port,
                    foreign,
                )
                self._respond(key, request, 403)
                return
        result = self.registrar.register(
            number,
            entries,
            call_id=request.call_id,
            cseq=request.cseq.number,
            now=self._now,
            expires=request.expires,
            source=source,
        )
        headers: list[tuple[str, str]] = [("Contact", v) for v in result.contact_values]
        if result.min_expires is not None:
            headers.append(("Min-Expires", str(result.min_expires)))
        self._respond(key, request, result.status, headers=tuple(headers))
        if result.ok:
            log.info("line %s: %d contact(s) registered", number, len(result.bindings))

    def _new_invite(self, key: TransactionKey, request: Request, source: Peer) -> None:
        self.counters.invites += 1
        if not self.accepting:
            self._respond(key, request, 503, headers=(("Retry-After", "30"),))
            return
        hops = check_max_forwards(request)
        if hops is not None:
            self._respond(key, request, hops)
            return
        number = _user_of(request.uri)
        group = self.core.group_of_pilot(number) if number else None
        line = self.config.line(number) if number and group is None else None
        caller_number = _user_of(request.from_.uri) or "anonymous"
        feature = FEATURE_CODE.fullmatch(number or "")
        if feature is not None:
            self._feature_code(key, request, source, caller_number, feature)
            return
        outgoing = group is None and line is None
        if outgoing:
            # A line calling another number: out through server.upstream, once authenticated.
            # Every caller is challenged alike, a line or not (no hint of which numbers exist).
            if not number or self.config.server.upstream is None:
                self._respond(key, request, 404)
                return
            if not self._authenticated(key, request, source, caller_number, proxy=True):
                return
            identity: _CallerIdentity = (
                caller_number,
                (self._asserted_line(request, caller_number),),
            )
        else:
            found = self._caller_identity(key, request, source, caller_number)
            if found is None:
                return  # answered (403 or 407): credentials that do not hold
            identity = found
        brief = uas_refusal(request, min_se=self.config.server.calls.min_se)
        if brief is not None:  # RFC 4028: Session-Expires below our Min-SE
            self._respond(key, request, brief[0], headers=brief[1])
            return
        # server.limits: only what would become a call counts (not a 404 nor a 407);
        # feature codes (above) still pass, they are over at once.
        refusal = self.admission.admit(len(self._calls), now=self._now)
        if refusal is not None:
            self.counters.over_limits += 1
            log.info("INVITE to %s refused (503): %s", number, refusal.reason)
            self._respond(key, request, 503, headers=(("Retry-After", str(refusal.retry_after)),))
            return
        call = self._accept(key, request, source, number)
        if call is None:
            return
        call.verified_line, call.asserted = identity
        if call.asserted:
            call.privacy = request.headers.get("Privacy")
        name = request.from_.display_name or ""
        if outgoing:
            self._outgoing(call, caller_number, name, number)
            return
        if call.verified_line is not None:
            # one of our lines calls a pilot or another line: it is busy meanwhile
            call.caller_line_id = f"{call.key}.line"
            self._core(OutgoingCallStarted(call.caller_line_id, call.verified_line))
        self._enter_core(call)
        self._route(call, caller_number, group, number)
        internal = call.verified_line is not None  # authenticated, not a From claim
        if group is not None:
            self._core(CallArrived(call.core_id, group, caller_number, name, internal))
        else:
            self._core(DirectCallArrived(call.core_id, number, caller_number, name, internal))

    def _caller_identity(
        self, key: TransactionKey, request: Request, source: Peer, number: str
    ) -> _CallerIdentity | None:
        """Who vouches for the caller of an INVITE to a pilot or a line (RFC 3325).

        - The trust domain (``server.trusted_peers``, the upstream) asserting an
          identity: its P-Asserted-Identity is kept. Only a trusted peer (an SBC
          in front of our phones) makes the call internal when it names one of
          our lines. The upstream speaks for outside callers, never for a line:
          a call from it is outside whatever it carries (PAI, credentials).
        - Otherwise their P-Asserted-Identity is dropped. The caller is line
          ``number`` (the From) only when the INVITE comes from the transport
          address that line, and no other line, registered from, that address not
          being in the trust domain (see :meth:`_is_registered_line`); or when it
          carries Proxy-Authorization credentials for our realm that verify as
          that line. Credentials for our realm that do not hold are answered by
          ``_authenticated`` (403, or 407 when stale) whether or not ``number``
          is a line, so the answer tells nothing about which numbers exist.
          Without credentials for our realm the call is an outside call and its
          From only a claim: no P-Asserted-Identity is made of it.

        Returns (the authenticated line or None, the PAI values to present), or
        None when the INVITE was answered.
        """
        trusted = self.trust.trusts(source.host)
        values = _asserted_values(request) if trusted else ()
        if trusted and not self.trust.is_peer(source.host):
            return None, values  # the upstream: an outside call, whatever it carries
        if values:
            users = (_number_of(_user_of(parse_name_address(v).uri)) for v in values)
            line = next((u for u in users if u and self.config.line(u) is not None), None)
            return line, values
        if not self._is_registered_line(number, source):
            if not self._credentials_for_us(request):
                return None, ()
            if not self._authenticated(key, request, source, number, proxy=True):
                return None
        return number, (self._asserted_line(request, number),)

    def _credentials_for_us(self, request: Request) -> bool:
        """The INVITE carries Proxy-Authorization credentials for our realm (others, or
        malformed ones, may be meant for another proxy on the way: ignored)."""
        value = request.headers.get("Proxy-Authorization")
        if value is None:
            return False
        try:
            return parse_credentials(value).realm == self.config.server.domain
        except ProtocolError:
            return False

    def _asserted_line(self, request: Request, number: str) -> str:
        """The P-Asserted-Identity of our authenticated line ``number``."""
        return self._identity_value(Identity(number, request.from_.display_name or ""))

    def _feature_code(
        self,
        key: TransactionKey,
        request: Request,
        source: Peer,
        line: str,
        code: re.Match[str],
    ) -> None:
        """*51 / *52 [pilot]: a line joins or leaves its groups (or the group of that pilot).

        The line authenticates (407) like for an outgoing call; the server answers
        200, then hangs up as soon as the ACK arrives: the phone shows a short call.
        """
        # authenticated first, so a number that is no line is answered like one (407, 403)
        if not self._authenticated(key, request, source, line, proxy=True):
            return
        pilot = code.group(2)
        names = [
            g.name
            for g in self.config.groups
            if any(m.key == line for m in g.members) and (not pilot or g.pilot == pilot)
        ]
        if not names:
            self._respond(key, request, 404)
            return
        call = self._accept(key, request, source, code.group(0))
        if call is None:
            return
        call.feature = True
        joining = code.group(1) == "51"
        for name in names:
            log.info("line %s %s group %s", line, "joins" if joining else "leaves", name)
            self._core(MemberJoined(name, line) if joining else MemberLeft(name, line))
        self._answer_caller(call)

    def _accept(
        self, key: TransactionKey, request: Request, source: Peer, number: str
    ) -> _Call | None:
        """Take a caller's INVITE in: its media answer, its call record, its dialog key."""
        trusted = self.trust.trusts(source.host)
        try:
            media = self.media.caller_offer(
                request.body,
                request.content_type,
                source_host=source.host,
                trusted=trusted,
                # a UDP source may be forged: no media before the ACK or its first packet
                spoofable=source.transport.upper() == "UDP" and not trusted,
            )
        except ProtocolError as err:
            log.info("INVITE to %s refused: %s", number, err)
            self._respond(key, request, err.status)
            return None
        self._out.extend(self.media.open_caller_port(media))
        call = _Call(
            key=f"k{next(self._seq)}",
            invite=request,
            tx=key,
            source=source,
            me=self._local_for(source),
            to_tag=new_tag(self.rng),
            media=media,
            number=number,
        )
        self._calls[call.key] = call
        self._by_server_tx[key] = call.key
        self.counters.calls += 1
        self._index_dialog(call, (request.call_id, call.to_tag, request.from_.tag or ""), "")
        return call

    def _is_registered_line(self, number: str, source: Peer) -> bool:
        """``number`` is a line and ``source`` the very transport address (transport, host,
        port) a live binding of it registered from, with digest authentication, and of no
        other line. An address several lines registered from (a shared NAT address, a
        proxy relaying every phone from one port) proves nobody; so does one in the trust
        domain (an SBC, the upstream), which speaks for others: its PAI or the line's own
        Proxy-Authorization must say who calls."""
        if self.config.line(number) is None or self.trust.trusts(source.host):
            return False
        here = source
        return self.registrar.aors_at(here, now=self._now) == {number}

    def _enter_core(self, call: _Call) -> None:
        """Give the call its id in the group core, kept for its whole life."""
        call.core_id = f"{call.key}.{next(self._seq)}"
        self._by_core[call.core_id] = call.key

    def _outgoing(self, call: _Call, line: str, name: str, number: str) -> None:
        self._enter_core(call)
        call.outgoing_line = line
        log.info("call %s: line %s -> %s via upstream", call.key, line, number)
        self._core(OutgoingCallStarted(call.core_id, line))
        upstream = self.config.server.upstream
        assert upstream is not None
        destination = _peer_of(parse_uri(upstream))
        if destination is None:
            self._caller_gone(call, bye_caller=False, status=502)
            return
        target = _target_uri(number, self.config.server.domain, upstream)
        self._new_leg(call, "", target, destination, Identity(line, name), call.asserted)

    def _route(self, call: _Call, caller_number: str, group: str | None, number: str) -> None:
        """The call is at our ``number`` now (the pilot of ``group``, else a line): when it
        arrives, then at each forward to another of our numbers, which the core follows."""
        call.number = number
        if group is not None:
            log.info("call %s: %s -> group %s (%s)", call.key, caller_number, group, number)
        else:
            log.info(
                "call %s: %s -> line %s (%s)",
                call.key,
                caller_number,
                number,
                "internal" if call.verified_line is not None else "external",
            )

    def _on_ack(self, request: Request) -> None:
        dialog_key = (request.call_id, request.to.tag or "", request.from_.tag or "")
        found = self._dialogs.get(dialog_key)
        if found is None:
            return
        call = self._calls.get(found[0])
        retransmit = call.retransmit if call is not None and not found[1] else None
        if call is not None and retransmit is not None and retransmit.matches(request):
            retransmit.ack_received()
            call.retransmit = None
            # our To tag came back: the caller is no forger, its media may flow
            self._out.extend(self.media.confirm(call.media))
            if call.media_update_after_ack:
                call.media_update_after_ack = False
                self._update_media(call, "caller")
            if call.feature:  # a feature code is done once answered: hang up
                self._caller_gone(call, bye_caller=True, tell_core=False)

    def _on_cancel(
        self,
        key: TransactionKey,
        request: Request,
        source: Peer,
        invite_key: TransactionKey | None,
    ) -> None:
        try:
            self._cancel(key, request, invite_key)
            self._drain()
        except Exception as err:  # like any request (_on_request): answered, nothing kept
            self._events.clear()
            self._request_failed(key, request, source, err)

    def _cancel(
        self, key: TransactionKey, request: Request, invite_key: TransactionKey | None
    ) -> None:
        call_key = self._by_server_tx.get(invite_key) if invite_key else None
        if call_key is None:
            self._respond(key, request, 481)
            return
        self._respond(key, request, 200)
        call = self._calls.get(call_key)
        if call is not None and call.state == "early":
            log.info("call %s: caller cancelled", call.key)
            self._caller_gone(call, bye_caller=False, status=487)

    def _in_dialog(self, key: TransactionKey, request: Request, source: Peer) -> None:
        dialog_key = (request.call_id, request.to.tag or "", request.from_.tag or "")
        found = self._dialogs.get(dialog_key)
        call = self._calls.get(found[0]) if found else None
        if found is None or call is None:
            self._respond(key, request, 481)
            return
        leg = call.legs.get(found[1]) if found[1] else None
        method = request.method
        dialog = leg.dialog if leg is not None else call.dialog
        if dialog is not None:  # §12.2.2: requests within a dialog come in CSeq order
            if request.cseq.number <= dialog.remote_cseq:
                self._respond(key, request, 500, headers=(("Retry-After", "1"),))
                return
            dialog.remote_cseq = request.cseq.number
        if method == "BYE":
            self._respond(key, request, 200)
            if leg is None:
                log.info("call %s: caller hung up", call.key)
                self._caller_gone(call, bye_caller=False, status=487)
            else:
                log.info("call %s: member %s hung up", call.key, leg.member or "(forward)")
                leg.state = "ended"
                self._caller_gone(call, bye_caller=True, skip_leg=leg.id)
            return
        if method == "OPTIONS":
            self._respond(key, request, 200, headers=(("Allow", ALLOW),))
            return
        if method in ("INVITE", "UPDATE"):
            brief = uas_refusal(request, min_se=self.config.server.calls.min_se)
            if brief is not None:  # RFC 4028: Session-Expires below our Min-SE
                self._respond(key, request, brief[0], headers=brief[1])
                return
            self._peer_alive(call, found[1])
        if method == "UPDATE" and not request.body:
            # a session refresh: each leg's session is ours, nothing to tell the other side
            headers = self._peer_refreshed(call, found[1], request)
            self._respond(key, request, 200, headers=headers)
            return
        if method in RELAYED_IN_DIALOG:
            if method == "INVITE" and (call.reinvite_pending or self._refreshing(call)):
                self._respond(key, request, 491)  # §14.2: one re-INVITE at a time
                return
            other = self._other_side(call, leg)
            if other is None:  # not bridged: answer ourselves (media is anchored here)
                if leg is None and method != "INFO" and _is_sdp(request.content_type):
                    moved = self.media.caller_reoffered(call.media, request.body)
                    if moved and call.music is not None:  # the music follows the caller
                        self._out.extend(self.media.play_music(call.media, call.music or None))
                body = call.media.caller_answer if method != "INFO" and request.body else b""
                ctype: tuple[tuple[str, str], ...] = ()
                if body:
                    ctype = (("Content-Type", "application/sdp"),)
                if method != "INFO":  # a re-INVITE or UPDATE refreshes the session
                    ctype = self._peer_refreshed(call, found[1], request) + ctype
                    if body and dialog is not None:
                        dialog.local_sdp = body
                self._respond(key, request, 200, headers=ctype, body=body)
                return
            self._relay(key, request, other, call, from_caller=leg is None)
            return
        self._respond(key, request, 501, headers=(("Allow", ALLOW),))

    def _other_side(self, call: _Call, leg: _Leg | None) -> Dialog | None:
        if call.bridged is None:
            return None
        if leg is None:
            bridged = call.legs.get(call.bridged)
            return bridged.dialog if bridged else None
        return call.dialog

    def _relay(
        self,
        key: TransactionKey,
        request: Request,
        other: Dialog,
        call: _Call,
        *,
        from_caller: bool,
    ) -> None:
        body, ctype = request.body, request.content_type
        if body and _is_sdp(ctype):
            body, commands = self.media.rewrite(call.media, body, from_caller=from_caller)
            self._out.extend(commands)
        headers: tuple[tuple[str, str], ...] = ()
        timer = self._timer_of(call, other)[0]
        if timer is not None and request.method in ("INVITE", "UPDATE"):
            headers = request_headers(timer.interval, min_se=self.config.server.calls.min_se)
        outgoing = other.request(
            request.method, self.rng, body=body, content_type=ctype, headers=headers
        )
        client = self._start(outgoing, other.peer)
        self._relays[client] = (key, other)
        if request.method == "INVITE":
            call.reinvite_pending = True

    # =========================================================== responses
    def _on_response(self, key: TransactionKey | None, response: Response, source: Peer) -> None:
        if key is None:
            self._stray_response(response)
            return
        if key in self._relays:
            if response.status >= 200:
                self._relay_response(*self._relays.pop(key), response)
            return
        if key in self._updates:
            if response.status >= 200:
                self._media_updated(*self._updates.pop(key), response)
            return
        if key in self._refreshes:
            if response.status >= 200:
                self._refresh_done(*self._refreshes.pop(key), response)
            return
        orphan = self._orphans.get(key)
        if orphan is not None:
            self._orphan_response(key, orphan, response)
            return
        found = self._by_client_tx.get(key)
        if found is None:  # e.g. a 2xx retransmission to a re-INVITE already answered
            self._stray_response(response)
            return
        call = self._calls.get(found[0])
        leg = call.legs.get(found[1]) if call else None
        if call is None or leg is None:
            return
        status = response.status
        if response.cseq.method != "INVITE":
            return
        if status < 200:
            if leg.state == "calling":  # any provisional, 100 included (§9.1)
                leg.state = "proceeding"
            if leg.cancel_pending:
                leg.cancel_pending = False
                self._send_cancel(leg)
            elif status in (180, 183) and call.state == "early" and not call.ringing_sent:
                self._ringing(call)
            return
        if status < 300:
            self._leg_answered(call, leg, response, source)
        elif status == 422 and self._retry_brief(call, leg, response):
            return
        else:
            self._leg_failed(call, leg, status)

    def _retry_brief(self, call: _Call, leg: _Leg, response: Response) -> bool:
        """422 to our INVITE (RFC 4028 §7.4): once, the same INVITE again (CSeq + 1, new
        branch) with the peer's ``Min-SE`` as our interval, when that is not above
        ``MAX_SESSION_INTERVAL``. False when there is nothing to retry."""
        wanted = self._min_se(response)
        current = leg.invite.headers.get("Session-Expires") or ""
        if (
            leg.cancelled
            or leg.state == "ended"
            or call.state == "ended"
            or leg.invite.cseq.number > 1  # retried once already
            or wanted > MAX_SESSION_INTERVAL
            or wanted <= int(current.split(";", 1)[0] or 0)
        ):
            return False
        headers = (
            leg.invite.headers.with_first_replaced("Via", leg.me.via(self.rng))
            .with_replaced("CSeq", f"{leg.invite.cseq.number + 1} INVITE")
            .with_replaced("Session-Expires", str(wanted))
            .with_replaced("Min-SE", str(wanted))
        )
        invite = Request(method="INVITE", uri=leg.invite.uri, headers=headers, body=leg.invite.body)
        try:
            tx = self._start(invite, leg.destination)
        except ProtocolError:
            return False
        log.info(
            "call %s: %s wants sessions of %d s at least, asked again",
            call.key,
            leg.member or "the target",
            wanted,
        )
        self._by_client_tx.pop(leg.tx, None)
        leg.invite, leg.tx, leg.state = invite, tx, "calling"
        self._by_client_tx[tx] = (call.key, leg.id)
        return True

    def _orphan_response(self, key: TransactionKey, leg: _Leg, response: Response) -> None:
        """A leg whose call is gone: finish the CANCEL it owes, or hang up its late answer."""
        status = response.status
        if status < 200:
            if leg.cancel_pending:
                leg.cancel_pending = False
                self._send_cancel(leg)
            return
        del self._orphans[key]
        if status < 300 and response.cseq.method == "INVITE":
            dialog = uac_dialog(leg.invite, response, leg.destination, leg.me)
            self._send(dialog.ack_for_2xx(leg.invite.cseq.number, self.rng), leg.destination)
            self._start(dialog.request("BYE", self.rng), dialog.peer)

    def _relay_response(self, server: TransactionKey, target: Dialog, response: Response) -> None:
        """Answer a relayed request with the other side's ``response`` (sent on ``target``)."""
        try:
            request = self.layer.request_of(server)
        except ProtocolError:
            return
        found = self._dialogs.get((request.call_id, request.to.tag or "", request.from_.tag or ""))
        owner = self._calls.get(found[0]) if found else None
        if owner is not None and request.method == "INVITE":
            owner.reinvite_pending = False
        headers: tuple[tuple[str, str], ...] = ()
        body = response.body
        if body and response.content_type:
            headers = (("Content-Type", response.content_type),)
            if owner is not None and _is_sdp(response.content_type):
                # the answer comes from the side opposite to the request's sender
                body, commands = self.media.rewrite(
                    owner.media, body, from_caller=bool(found and found[1])
                )
                self._out.extend(commands)
        if owner is not None and found is not None and 200 <= response.status < 300:
            leg = owner.legs.get(found[1]) if found[1] else None
            side = leg.dialog if leg is not None else owner.dialog
            if side is not None and request.method == "INVITE":
                headers += (("Contact", side.me.contact()),)
            if request.method in ("INVITE", "UPDATE"):  # both sessions are refreshed
                headers = self._peer_refreshed(owner, found[1], request) + headers
                self._refresh_answered(owner, target, response)
                if side is not None and body and _is_sdp(response.content_type):
                    side.local_sdp = body
        self._respond(
            server,
            request,
            response.status,
            to_tag=request.to.tag,
            headers=headers,
            body=body,
        )
        if 200 <= response.status < 300 and response.cseq.method == "INVITE":
            self._send(target.ack_for_2xx(response.cseq.number, self.rng), target.peer)

    def _stray_response(self, response: Response) -> None:
        """A 2xx retransmission to an INVITE already answered: ACK it again."""
        if not (200 <= response.status < 300) or response.cseq.method != "INVITE":
            return
        found = self._legs_by_call_id.get(response.call_id)
        call = self._calls.get(found[0]) if found else None
        leg = call.legs.get(found[1]) if call and found else None
        if leg is not None and leg.dialog is not None:
            self._send(leg.dialog.ack_for_2xx(response.cseq.number, self.rng), leg.dialog.peer)
            return
        # a re-INVITE we sent the caller (session refresh, direct media): its dialog
        mine = (response.call_id, response.from_.tag or "", response.to.tag or "")
        owner = self._dialogs.get(mine)
        caller = self._calls.get(owner[0]) if owner is not None and not owner[1] else None
        if caller is not None and caller.dialog is not None:
            dialog = caller.dialog
            self._send(dialog.ack_for_2xx(response.cseq.number, self.rng), dialog.peer)

    def _on_failure(self, key: TransactionKey, request: Request, status: int) -> None:
        if key in self._updates:
            failed = make_response(request, status, to_tag=new_tag(self.rng))
            self._media_updated(*self._updates.pop(key), failed)
            return
        if key in self._relays:
            server, target = self._relays.pop(key)
            failed = make_response(request, status, to_tag=new_tag(self.rng))
            self._relay_response(server, target, failed)
            return
        if key in self._refreshes:  # no answer at all: the peer is gone
            failed = make_response(request, status, to_tag=new_tag(self.rng))
            self._refresh_done(*self._refreshes.pop(key), failed, dead=True)
            return
        if self._orphans.pop(key, None) is not None:
            return
        found = self._by_client_tx.get(key)
        if found is None or request.method != "INVITE":
            return
        call = self._calls.get(found[0])
        leg = call.legs.get(found[1]) if call else None
        if call is not None and leg is not None:
            self._leg_failed(call, leg, status)

    # ============================================================== legs
    def _leg_answered(self, call: _Call, leg: _Leg, response: Response, source: Peer) -> None:
        retransmitted = leg.dialog is not None  # our ACK was lost: send it again, only
        if leg.dialog is None:
            leg.dialog = uac_dialog(leg.invite, response, leg.destination, leg.me)
        self._send(leg.dialog.ack_for_2xx(leg.invite.cseq.number, self.rng), leg.destination)
        if retransmitted:
            return
        if leg.cancelled or call.state == "ended" or call.bridged is not None:
            self._bye_leg(leg)  # too late: another member won, or the caller left
            return
        if (
            self.media.member_answer(
                call.media,
                response.body,
                source_host=source.host,
                trusted=self.trust.trusts(source.host),
            )
            is None
        ):
            self._bye_leg(leg)  # an answer we cannot relay counts as a refusal
            self._core(MemberFailed(call.core_id, leg.member, 488))
            return
        leg.state = "confirmed"
        dialog_key = (leg.dialog.call_id, leg.dialog.local_tag, leg.dialog.remote_tag)
        self._index_dialog(call, dialog_key, leg.id)
        interval, we_refresh = negotiate_as_uac(
            response, interval=self.config.server.calls.session_expires
        )
        leg.session = SessionTimer(
            interval, we_refresh, self._now, use_update=has_option(response, "Allow", "UPDATE")
        )
        self._schedule_session(call, leg.id, leg.session)
        if not leg.member:  # a forwarding or outgoing leg: no core decision to wait for
            if call.outgoing_line is not None:
                self._core(CallAnswered(call.core_id))
            self._connect(call, leg)
            return
        log.info("call %s: member %s answered", call.key, leg.member)
        self._core(MemberAnswered(call.core_id, leg.member))

    def _leg_failed(self, call: _Call, leg: _Leg, status: int) -> None:
        if leg.state == "ended":
            return
        leg.state = "ended"
        if leg.cancelled:
            return
        if not leg.member:
            log.info(
                "call %s: %s failed (%d)",
                call.key,
                "outgoing call" if call.outgoing_line else "forwarding",
                status,
            )
            self._caller_gone(call, bye_caller=True, status=status)
            return
        others = [x for x in call.legs.values() if x.member == leg.member and x.state != "ended"]
        if others:
            return  # another contact of the same line still rings
        log.info("call %s: member %s did not take the call (%d)", call.key, leg.member, status)
        self._core(MemberFailed(call.core_id, leg.member, status))

    def _cancel_leg(self, leg: _Leg) -> None:
        leg.cancelled = True
        if leg.state == "calling":
            leg.cancel_pending = True  # §9.1: CANCEL only after a provisional response
        elif leg.state == "proceeding":
            self._send_cancel(leg)
        elif leg.state == "confirmed":
            self._bye_leg(leg)

    def _send_cancel(self, leg: _Leg) -> None:
        try:
            self._start(make_cancel(leg.invite), leg.destination)
        except ProtocolError as err:
            log.info("could not cancel leg %s: %s", leg.id, err)

    def _bye_leg(self, leg: _Leg) -> None:
        if leg.dialog is not None and leg.state != "ended":
            self._start(leg.dialog.request("BYE", self.rng), leg.dialog.peer)
        leg.state = "ended"

    def _new_leg(
        self,
        call: _Call,
        member: str,
        target: Uri,
        destination: Peer,
        caller: Identity,
        asserted: tuple[str, ...],
    ) -> None:
        """INVITE ``target``: From shows ``caller``; P-Asserted-Identity is ``asserted``
        only, the identities the server vouches for (none for an outside caller)."""
        me = self._local_for(destination)
        domain = self.config.server.domain
        calls = self.config.server.calls
        display = f"{quote(caller.display_name)} " if caller.display_name else ""
        host = "anonymous.invalid" if caller.number == ANONYMOUS else domain  # RFC 3323 §4.1.1.3
        from_ = f"{display}<sip:{caller.number}@{host}>;tag={new_tag(self.rng)}"
        to = f"<{target}>"
        call_id = new_call_id(self.rng, me.host)
        try:
            offer = self.media.member_offer(call.media)
        except ProtocolError as err:  # no RTP port left: this member cannot be rung
            log.warning("call %s: cannot ring %s: %s", call.key, member or "target", err)
            if member:
                self._core(MemberUnreachable(call.core_id, member))
            else:
                self._caller_gone(call, bye_caller=True, status=503)
            return
        self._out.extend(self.media.open_member_port(call.media))
        headers = Headers(
            [
                ("Via", me.via(self.rng)),
                ("Max-Forwards", str(next_hop_max_forwards(call.invite, default=69))),
                ("From", from_),
                ("To", to),
                ("Call-ID", call_id),
                ("CSeq", "1 INVITE"),
                ("Contact", me.contact()),
                *(("P-Asserted-Identity", value) for value in asserted),
                *((("Privacy", call.privacy),) if asserted and call.privacy else ()),
                ("Allow", ALLOW),
                *request_headers(calls.session_expires, min_se=calls.min_se),
                ("Content-Type", "application/sdp"),
            ]
        )
        invite = Request(method="INVITE", uri=target, headers=headers, body=offer)
        leg_id = f"{call.key}.l{next(self._seq)}"
        try:
            tx = self._start(invite, destination)
        except ProtocolError as err:
            log.info("call %s: could not ring %s: %s", call.key, member, err)
            self._core(MemberUnreachable(call.core_id, member))
            return
        leg = _Leg(leg_id, call.key, member, invite, tx, destination, me)
        call.legs[leg_id] = leg
        self._by_client_tx[tx] = (call.key, leg_id)
        self._legs_by_call_id[call_id] = (call.key, leg_id)

    def _targets(self, member: str) -> list[tuple[Uri, Peer]]:
        """Where to send INVITEs for a member: its registered contacts or its URI."""
        if member.lower().startswith(("sip:", "sips:")):
            uri = parse_uri(member)
            peer = _peer_of(uri)
            return [(uri, peer)] if peer else []
        targets: list[tuple[Uri, Peer]] = []
        for binding in self.registrar.contacts(member, now=self._now):
            try:
                uri = parse_uri(binding.uri)
            except ProtocolError:
                continue
            peer = _peer_of(uri)
            src = binding.source
            # A phone on TLS (or behind NAT) is reached over the way it came in.
            if src is not None and (
                peer is None or src.transport.upper() == "TLS" or behind_nat(peer.host, src.host)
            ):
                peer = Peer(src.host, src.port, src.transport.upper())
            if peer is not None:
                targets.append((uri, peer))
        return targets

    # ========================================================= core actions
    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            call_key = self._by_core.get(action.call_id)
            call = self._calls.get(call_key) if call_key else None
            if call is None:
                continue
            match action:
                case Ringback():
                    self._ringing(call)
                case Hold(_, answer, music):
                    self._hold(call, answer, music)
                case Ring(_, member, caller_id, group, _timeout):
                    self._ring(call, member, caller_id, group)
                case Cancel(_, member):
                    for leg in call.legs.values():
                        if leg.member == member and leg.state != "ended":
                            self._cancel_leg(leg)
                case Bridge(_, member):
                    winner = next(
                        (x for x in call.legs.values() if x.member == member and x.dialog), None
                    )
                    if winner is not None:
                        self._connect(call, winner)
                case Release(_, status, reason):
                    log.info("call %s: released (%s, %d)", call.key, reason, status)
                    self._caller_gone(call, bye_caller=True, status=status, tell_core=False)
                case Forward(_, target, reason):
                    self._forward(call, target, reason)
                case Reroute(_, target, reason, group):
                    log.info("call %s: forwarded to %s (%s)", call.key, target, reason)
                    self._route(call, _user_of(call.invite.from_.uri) or "anonymous", group, target)
                case RefuseForward(_, target, reason, status, route):
                    log.info("call %s: forwarded to %s (%s)", call.key, target, reason)
                    log.warning(
                        "call %s: forward loop %s -> %s: ended (%d)",
                        call.key,
                        " -> ".join(route),
                        target,
                        status,
                    )
                    self._caller_gone(call, bye_caller=True, status=status, tell_core=False)

    def _ringing(self, call: _Call) -> None:
        if call.state != "early" or call.ringing_sent:
            return
        call.ringing_sent = True
        self._respond(call.tx, call.invite, 180, to_tag=call.to_tag)

    def _hold(self, call: _Call, answer: bool, music: str | None) -> None:
        log.info("call %s: queued (%s)", call.key, "answered" if answer else "early media")
        if call.state == "early":
            if answer:
                self._answer_caller(call)
            else:
                call.early_media = True
                self._respond(
                    call.tx,
                    call.invite,
                    183,
                    to_tag=call.to_tag,
                    headers=(("Contact", call.me.contact()), ("Content-Type", "application/sdp")),
                    body=call.media.caller_answer,
                )
        call.music = music or ""
        self._out.extend(self.media.play_music(call.media, music))

    def _answer_caller(self, call: _Call, body: bytes | None = None) -> None:
        """200 OK to the caller: with our SDP, or ``body`` (direct media: the member's)."""
        if body is None:
            body = call.media.caller_answer
        calls = self.config.server.calls
        timer = negotiate_as_uas(
            call.invite, session_expires=calls.session_expires, min_se=calls.min_se
        )
        response = self._respond(
            call.tx,
            call.invite,
            200,
            to_tag=call.to_tag,
            headers=(
                ("Contact", call.me.contact()),
                *timer.headers,
                ("Content-Type", "application/sdp"),
            ),
            body=body,
        )
        call.state = "answered"
        call.dialog = uas_dialog(call.invite, response, call.source, call.me)
        call.session = SessionTimer(
            timer.interval,
            timer.we_refresh,
            self._now,
            use_update=has_option(call.invite, "Allow", "UPDATE"),
        )
        self._schedule_session(call, "", call.session)
        if calls.max_duration is not None:
            due = self._now + calls.max_duration
            heapq.heappush(self._session_heap, (due, next(self._seq), call.key, "*"))
        destination = response_destination(call.invite.top_via, call.source)
        call.retransmit = TwoXXRetransmitter(
            response, destination, now=self._now, timers=self.timers
        )
        self._schedule_retransmit(call)

    def _ring(self, call: _Call, member: str, caller: Identity, group: str | None) -> None:
        targets = self._targets(member)
        if not targets:
            log.info("call %s: member %s unreachable (no contact)", call.key, member)
            self._core(MemberUnreachable(call.core_id, member))
            return
        log.info("call %s: ringing %s (%s)", call.key, member, group or "direct")
        asserted = call.asserted
        g = next((x for x in self.config.groups if x.name == group), None)
        if g is not None and g.pilot_as_caller_id and caller.number == g.pilot:
            asserted = (self._identity_value(caller),)  # our own pilot: we vouch for it
        for uri, peer in targets:
            self._new_leg(call, member, uri, peer, caller, asserted)

    def _identity_value(self, identity: Identity) -> str:
        """``identity`` as a P-Asserted-Identity value in our domain."""
        display = f"{quote(identity.display_name)} " if identity.display_name else ""
        return f"{display}<sip:{identity.number}@{self.config.server.domain}>"

    def _connect(self, call: _Call, leg: _Leg) -> None:
        for other in call.legs.values():
            if other is not leg and other.member == leg.member and other.state != "ended":
                self._cancel_leg(other)
        media = call.media
        if call.state == "early":
            if media.direct and not call.early_media:  # our SDP never reached the caller
                body, commands = self.media.answer_with_member(media)
                self._answer_caller(call, body)
                self._out.extend(commands)
            else:
                self._answer_caller(call)
        call.bridged = leg.id
        call.music = None
        self.counters.bridged += 1
        if call.caller_line_id is not None:
            self._core(CallAnswered(call.caller_line_id))
        log.info(
            "call %s: bridged to %s%s",
            call.key,
            leg.member or "forward target",
            " (media end to end)" if media.bypassed else "",
        )
        self._out.extend(self.media.bridge(media))
        if media.direct and not media.bypassed:
            if call.retransmit is not None:  # §14.1: our 200 first, then its ACK
                call.media_update_after_ack = True
            else:
                self._update_media(call, "caller")

    # ========================================================= direct media
    def _update_media(self, call: _Call, side: MediaSide) -> None:
        """Direct media: re-INVITE ``side`` with the other side's SDP."""
        bridged = call.legs.get(call.bridged) if call.bridged else None
        dialog = call.dialog if side == "caller" else bridged.dialog if bridged else None
        if call.state == "ended" or dialog is None or call.media.bypassed:
            return
        if call.reinvite_pending or self._refreshing(call):  # a re-INVITE is under way
            self._retry_update(call, side, 1.0)
            return
        if call.media_updates >= MAX_MEDIA_UPDATES:
            log.warning("call %s: media addresses keep moving; media stays relayed", call.key)
            return
        call.media_updates += 1
        body = self.media.offer_toward(call.media, side)
        timer = self._timer_of(call, dialog)[0]
        calls = self.config.server.calls
        headers = request_headers(timer.interval, min_se=calls.min_se) if timer else ()
        request = dialog.request(
            "INVITE", self.rng, body=body, content_type="application/sdp", headers=headers
        )
        try:
            tx = self._start(request, dialog.peer)
        except ProtocolError as err:
            log.info("call %s: cannot re-INVITE the %s: %s", call.key, side, err)
            return
        self._updates[tx] = (call.key, side, dialog)
        call.reinvite_pending = True

    def _media_updated(
        self, call_key: str, side: MediaSide, dialog: Dialog, response: Response
    ) -> None:
        """The final answer to a direct-media re-INVITE."""
        status = response.status
        if 200 <= status < 300:
            self._send(dialog.ack_for_2xx(response.cseq.number, self.rng), dialog.peer)
        call = self._calls.get(call_key)
        if call is None or call.state == "ended":
            return
        call.reinvite_pending = False
        if 200 <= status < 300:
            self._refresh_answered(call, dialog, response)
            moved = self.media.peer_answered(call.media, side, response.body)
            if moved is None:
                log.warning("call %s: unusable SDP from the %s; relayed", call.key, side)
            elif moved:  # the other side must learn the new address
                self._update_media(call, "member" if side == "caller" else "caller")
            else:
                log.info("call %s: media end to end", call.key)
                self._out.extend(self.media.bypass(call.media))
            return
        if status == 491 and call.media_updates < MAX_MEDIA_UPDATES:
            # §14.1 glare: the owner of the Call-ID (us, on member legs) waits 2.1-4 s
            delay = self.rng.uniform(0.0, 2.0) if side == "caller" else self.rng.uniform(2.1, 4.0)
            self._retry_update(call, side, delay)
        elif status in (408, 481):  # §14.1: the dialog is gone
            log.info("call %s: the %s's dialog is gone (%d)", call.key, side, status)
            self._caller_gone(call, bye_caller=True)
        else:
            log.info("call %s: the %s refused direct media (%d); relayed", call.key, side, status)

    def _retry_update(self, call: _Call, side: MediaSide, delay: float) -> None:
        heapq.heappush(self._update_retries, (self._now + delay, next(self._seq), call.key, side))

    def _forward(self, call: _Call, target: str, reason: str) -> None:
        """Out of the server (the core follows forwards to our own numbers itself)."""
        log.info("call %s: forwarded to %s (%s)", call.key, target, reason)
        self._by_core.pop(call.core_id, None)
        uri = _target_uri(target, self.config.server.domain, self.config.server.upstream)
        if call.state == "early":
            self._respond(
                call.tx, call.invite, 302, to_tag=call.to_tag, headers=(("Contact", f"<{uri}>"),)
            )
            call.state = "ended"
            self._forget(call)
            return
        destination = _peer_of(parse_uri(self.config.server.upstream or str(uri)))
        if destination is None:
            self._caller_gone(call, bye_caller=True, tell_core=False)
            return
        self._new_leg(
            call, "", parse_uri(str(uri)), destination, self._presented_outside(call), call.asserted
        )

    def _presented_outside(self, call: _Call) -> Identity:
        """The caller shown in the From of a call forwarded out of the server (a trunk that
        gets no PAI takes the caller ID from it).

        An outside caller keeps the number it called from, and a line its own number. But a
        From naming one of our numbers (a line, a pilot) that is not the verified caller is a
        claim nobody checked: the trunk must not present it. It becomes the verified line
        (a trusted peer asserted one, no Privacy asked), else the pilot the call was
        routed to last (the group whose overflow sends it out), else anonymous (RFC 3323:
        a line's own forward; the core no longer says which group a finished call had)."""
        caller = call.invite.from_
        user = _user_of(caller.uri) or ANONYMOUS
        number = _number_of(user)  # %30102030405 and 01-02-03-04-05 are 0102030405
        if _PHONE_NUMBER.fullmatch(number):
            user = number  # a telephone number is presented as compared (john.doe stays)
        if number == call.verified_line or not self._ours(number):
            return Identity(user, caller.display_name or "")
        hidden = call.privacy is not None and call.privacy.strip().lower() != "none"
        if call.verified_line is not None and not hidden:
            return Identity(call.verified_line)
        group = self.core.group_of_pilot(call.number)
        if group is not None:
            return Identity(call.number, group)
        return Identity(ANONYMOUS, "Anonymous")

    def _ours(self, number: str) -> bool:
        """``number`` (a user part: escapes and visual separators do not hide it, see
        :func:`_number_of`) is one of our lines or pilots."""
        number = _number_of(number)
        return self.config.line(number) is not None or self.core.group_of_pilot(number) is not None

    # ====================================================== session timers
    def _session(self, call: _Call, which: str) -> tuple[SessionTimer | None, Dialog | None]:
        """The session timer and dialog of the caller (``which`` = "") or of a confirmed leg."""
        if call.state == "ended":
            return None, None
        if not which:
            return (call.session, call.dialog) if call.state == "answered" else (None, None)
        leg = call.legs.get(which)
        if leg is None or leg.state != "confirmed":
            return None, None
        return leg.session, leg.dialog

    def _timer_of(self, call: _Call, dialog: Dialog) -> tuple[SessionTimer | None, str]:
        """The session timer of ``dialog`` (one of the call's) and its ``which``."""
        if dialog is call.dialog:
            return call.session, ""
        for leg in call.legs.values():
            if leg.dialog is dialog:
                return leg.session, leg.id
        return None, ""

    def _schedule_session(self, call: _Call, which: str, timer: SessionTimer) -> None:
        """One heap entry per timer: a later due time is picked up when the entry fires."""
        due = timer.due
        if timer.scheduled is not None and timer.scheduled <= due:
            return
        timer.scheduled = due
        heapq.heappush(self._session_heap, (due, next(self._seq), call.key, which))
        if len(self._session_heap) > self._compact_at:
            self._compact_sessions()

    def _compact_sessions(self) -> None:
        """Drop heap entries of calls that ended, or superseded by an earlier entry."""
        kept = []
        for entry in self._session_heap:
            due, _, key, which = entry
            call = self._calls.get(key)
            if call is None:
                continue
            if which != "*":
                timer = self._session(call, which)[0]
                if timer is None or timer.scheduled != due:
                    continue
            kept.append(entry)
        heapq.heapify(kept)
        self._session_heap = kept
        self._compact_at = max(64, 2 * len(kept))  # amortised: the heap doubles first

    def _session_timers(self) -> None:
        heap = self._session_heap
        while heap and heap[0][0] <= self._now:
            at, _, key, which = heapq.heappop(heap)
            call = self._calls.get(key)
            if call is None or call.state == "ended":
                continue
            if which == "*":
                log.info("call %s: longer than server.calls.max_duration, hanging up", call.key)
                self.counters.max_duration_ended += 1
                self._caller_gone(call, bye_caller=True)
                continue
            timer, dialog = self._session(call, which)
            if timer is None or dialog is None or timer.scheduled != at:
                continue
            timer.scheduled = None
            if timer.due > self._now:
                self._schedule_session(call, which, timer)
            elif timer.we_refresh or timer.retry_at is not None:
                self._refresh(call, which, timer, dialog)
            else:
                side = f"member {call.legs[which].member or '(forward)'}" if which else "caller"
                log.info("call %s: no session refresh from the %s (RFC 4028)", call.key, side)
                self.counters.sessions_expired += 1
                self._caller_gone(call, bye_caller=True)

    def _refresh(self, call: _Call, which: str, timer: SessionTimer, dialog: Dialog) -> None:
        """We are the refresher: an UPDATE without body, or a re-INVITE with our last SDP."""
        if timer.refreshing:
            return  # its transaction ends on its own timers, then we go on
        method = "UPDATE" if timer.use_update else "INVITE"
        if method == "INVITE" and call.reinvite_pending:  # §14.1: one re-INVITE at a time
            timer.retry_at = self._now + 1.0  # (a relayed or direct-media one)
            self._schedule_session(call, which, timer)
            return
        timer.retry_at = None
        body = dialog.local_sdp if method == "INVITE" else b""
        calls = self.config.server.calls
        request = dialog.request(
            method,
            self.rng,
            body=body,
            content_type="application/sdp" if body else None,
            headers=request_headers(timer.interval, min_se=calls.min_se, refresher="uac"),
        )
        try:
            tx = self._start(request, dialog.peer)
        except ProtocolError as err:
            log.info("call %s: cannot refresh the session: %s", call.key, err)
            self._caller_gone(call, bye_caller=True)
            return
        self._refreshes[tx] = (call.key, which, dialog)
        timer.refreshing = True
        timer.refreshing_invite = method == "INVITE"
        self.counters.session_refreshes += 1

    def _refresh_done(
        self, key: str, which: str, dialog: Dialog, response: Response, *, dead: bool = False
    ) -> None:
        """The final answer to our session refresh (``dead``: none came, or undeliverable)."""
        status, method = response.status, response.cseq.method
        if 200 <= status < 300 and method == "INVITE":
            self._send(dialog.ack_for_2xx(response.cseq.number, self.rng), dialog.peer)
        call = self._calls.get(key)
        if call is None or call.state == "ended":
            return
        timer = self._session(call, which)[0]
        if timer is None:
            return
        timer.refreshing = timer.refreshing_invite = False
        if 200 <= status < 300:
            interval, we_refresh = negotiate_as_uac(response, interval=timer.interval)
            timer.refreshed(self._now, interval=interval, we_refresh=we_refresh)
        elif dead or status in (408, 481):  # RFC 4028 §10: the session is over
            side = "member" if which else "caller"
            log.info("call %s: session refresh to the %s failed (%d)", call.key, side, status)
            self.counters.sessions_expired += 1
            self._caller_gone(call, bye_caller=True)
            return
        elif status in (405, 501) and timer.use_update:
            timer.use_update = False  # try again at once, with a re-INVITE
            timer.retry_at = self._now
        elif status == 422 and self._min_se(response) > timer.interval:
            timer.interval = min(self._min_se(response), self.config.server.calls.session_expires)
            timer.retry_at = self._now
        elif status == 491:
            timer.retry_at = self._now + self.rng.uniform(2.1, 4.0)
        else:  # refused, but answered: the dialog is alive
            timer.refreshed(self._now)
        self._schedule_session(call, which, timer)

    def _refreshing(self, call: _Call) -> bool:
        """One of our refresh re-INVITEs is under way on one of the call's dialogs."""
        if call.session is not None and call.session.refreshing_invite:
            return True
        return any(
            x.session is not None and x.session.refreshing_invite for x in call.legs.values()
        )

    @staticmethod
    def _min_se(response: Response) -> int:
        try:
            return min_se_of(response)
        except ProtocolError:
            return 0

    def _peer_refreshed(
        self, call: _Call, which: str, request: Request
    ) -> tuple[tuple[str, str], ...]:
        """A re-INVITE or UPDATE from the peer on ``which`` gets our 2xx: it refreshes
        that session, renegotiated from its fields; returns the fields for the 2xx."""
        timer = self._session(call, which)[0]
        if timer is None:
            return ()
        calls = self.config.server.calls
        agreed = negotiate_as_uas(
            request, session_expires=calls.session_expires, min_se=calls.min_se
        )
        timer.refreshed(self._now, interval=agreed.interval, we_refresh=agreed.we_refresh)
        self._schedule_session(call, which, timer)
        return agreed.headers

    def _peer_alive(self, call: _Call, which: str) -> None:
        """A re-INVITE or UPDATE came in on ``which``: its peer is alive, whatever the
        answer (a relayed one may fail on the other side); the 2xx renegotiates."""
        timer = self._session(call, which)[0]
        if timer is not None and not timer.we_refresh:
            timer.refreshed(self._now)
            self._schedule_session(call, which, timer)

    def _refresh_answered(self, call: _Call, dialog: Dialog, response: Response) -> None:
        """A 2xx to a re-INVITE or UPDATE we sent on ``dialog`` refreshes that session."""
        timer, which = self._timer_of(call, dialog)
        if timer is None:
            return
        interval, we_refresh = negotiate_as_uac(response, interval=timer.interval)
        timer.refreshed(self._now, interval=interval, we_refresh=we_refresh)
        self._schedule_session(call, which, timer)

    # ========================================================== teardown
    def _caller_gone(
        self,
        call: _Call,
        *,
        bye_caller: bool,
        status: int = 480,
        skip_leg: str | None = None,
        tell_core: bool = True,
    ) -> None:
        """End the whole call: caller leg, every member leg, media, core state."""
        if call.state == "ended":
            return
        if call.state == "early":
            self._respond(call.tx, call.invite, status, to_tag=call.to_tag)
        elif bye_caller and call.dialog is not None:
            self._start(call.dialog.request("BYE", self.rng), call.dialog.peer)
        call.state = "ended"
        call.retransmit = None
        for leg in call.legs.values():
            if leg.id != skip_leg and leg.state != "ended":
                self._cancel_leg(leg)
        if tell_core and call.core_id in self._by_core:
            self._core(CallHungUp(call.core_id))
        if call.caller_line_id is not None:
            self._core(CallHungUp(call.caller_line_id))
        self._forget(call)

    def _index_dialog(self, call: _Call, key: tuple[str, str, str], leg_id: str) -> None:
        self._dialogs[key] = (call.key, leg_id)
        call.dialog_keys.append(key)

    def _forget(self, call: _Call) -> None:
        self._out.extend(self.media.close(call.media))
        self._calls.pop(call.key, None)
        self._by_server_tx.pop(call.tx, None)
        self._by_core.pop(call.core_id, None)
        for key in call.dialog_keys:
            self._dialogs.pop(key, None)
        for leg in call.legs.values():
            self._legs_by_call_id.pop(leg.invite.call_id, None)
            self._by_client_tx.pop(leg.tx, None)
            if leg.state in ("calling", "proceeding") and leg.tx in self.layer:
                self._orphans[leg.tx] = leg  # still owes a CANCEL, or may answer late


# ================================================================ helpers
def _kind(message: Message) -> str:
    return f"{message.method} request" if isinstance(message, Request) else "response"


def _quick_fields(data: bytes) -> tuple[list[bytes], dict[str, bytes]] | None:
    """The Via values and the From, To, Call-ID and CSeq values of a request's bytes,
    or None when anything is unusual (the full parser then decides)."""
    end = data.find(b"\r\n\r\n", 0, 16384)
    if end < 0:
        return None
    head = data[:end]
    crlf = head.count(b"\r\n")
    if head.count(b"\r") != crlf or head.count(b"\n") != crlf:
        return None  # a bare CR or LF: never copied into a response
    vias: list[bytes] = []
    found: dict[str, bytes] = {}
    for line in head.split(b"\r\n")[1:]:
        if not line or line[0] in b" \t":
            return None  # folded
        name, sep, value = line.partition(b":")
        key = _QUICK_FIELDS.get(name.strip().lower())
        if not sep or key is None:
            continue
        value = value.strip()
        if key == "via":
            vias.append(value)
        elif key in found or not value:
            return None
        else:
            found[key] = value
    if not vias or len(found) != 4:
        return None
    return vias, found


_VISUAL_SEPARATORS = str.maketrans("", "", "-.() \t")
_PHONE_NUMBER = re.compile(r"\+?[0-9*#]+")


TRUSTED_PEER_REGISTER_FACTOR = 10
"""A trusted peer's REGISTERs may come this many times faster (rate and burst) than the
per-source limit: an SBC registers every phone behind it from one address."""


def _number_of(user: str) -> str:
    """A URI's user part as a number, to compare with our lines and pilots: its escapes
    resolved (RFC 3261 §19.1.4: ``%30`` is ``0``, the same URI) and the RFC 3966 visual
    separators (``-``, ``.``, ``(``, ``)``) dropped, so neither disguises one of our
    numbers."""
    return unescape(user).translate(_VISUAL_SEPARATORS)


def _user_of(uri: Uri) -> str:
    if isinstance(uri, SipUri):
        return (uri.user or "").split(";", 1)[0]
    if isinstance(uri, TelUri):
        return uri.number
    return ""


def _asserted_values(request: Request) -> tuple[str, ...]:
    """The P-Asserted-Identity values of a trusted peer's request that parse (at most 2)."""
    values: list[str] = []
    for header in request.headers.get_all("P-Asserted-Identity"):
        try:
            items = split_list(header)
            for item in items:
                parse_name_address(item)
        except ProtocolError:
            continue
        values += items
    return tuple(values[:MAX_ASSERTED])


def _is_sdp(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() == "application/sdp"


def _peer_of(uri: Uri) -> Peer | None:
    if not isinstance(uri, SipUri):
        return None
    transport = (uri.param("transport") or "udp").upper()
    if uri.secure or transport == "TLS":  # sips: is TLS on every hop (§26.2.2)
        return Peer(uri.host.strip("[]"), uri.port or 5061, "TLS")
    return Peer(uri.host.strip("[]"), uri.port or 5060, "TCP" if transport == "TCP" else "UDP")


def _target_uri(target: str, domain: str, upstream: str | None) -> Uri:
    if target.lower().startswith(("sip:", "sips:")):
        return parse_uri(target)
    host = domain
    if upstream:
        up = parse_uri(upstream)
        if isinstance(up, SipUri):
            host = up.host + (f":{up.port}" if up.port else "")
    return parse_uri(f"sip:{target}@{host}")
