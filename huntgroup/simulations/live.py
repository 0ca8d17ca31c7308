"""Live mode: a scenario played as real SIP calls against a running ``huntgroup serve``.

Theory of operation
-------------------
``huntgroup simulate SCENARIO --live --target HOST:PORT`` plays the same
scenario as the virtual-time simulator, but the routing is done by a real
server over UDP. This module is the outside world of that server, as SIP user
agents on one asyncio loop:

- **Calls** are planned exactly like the virtual driver plans them (same
  random streams: arrival times, talk time and patience of the n-th call of
  a group), so a live run and a virtual run of one scenario offer the same
  callers. Each call is an INVITE to the group's pilot with a PCMU SDP, from
  a caller number unique to the call (``06`` + 8 digits), sent from one
  caller socket. A caller hangs up when its patience runs out and no member
  answered yet: CANCEL before any 200, BYE after a 200 from the queue.
- **Members** are one UDP socket each. A fixed-URI member is bound exactly at
  its URI's address (which must be loopback or the ``--bind`` address); a
  line member is bound on ``--bind`` and REGISTERs its Contact with digest
  authentication (password, or the stored HA1). On an INVITE a member sends
  180, then draws from the very keys the virtual driver uses (seed, call,
  member, attempt) whether it answers and after which delay: 200 with SDP, or
  603 when it declines (``on_no_answer: decline``), or it lets it ring. The
  member who answered sends BYE after the call's talk time.
- **Correlation.** The server tells a caller nothing when a member takes a
  call that was answered by the queue (hold music), so answers are recorded
  on the member side. The member finds the call from the INVITE's From user
  (the caller's number). When the group shows its pilot as caller id
  (``pilot_as_caller_id``), the B2BUA copies no header that could identify
  the caller; the member then takes the oldest call of that group still
  waiting for a member and not already ringing it (arrival order).
- **Time.** Real time, scaled: at ``speed`` X a scenario second lasts 1/X
  real seconds (arrivals, talk times, answer delays, patience, duration and
  drain). Times recorded are scenario seconds, ``(loop time - start) * X``.
  The server's own timers (``no_answer_timeout``, ``max_wait``, ``wrap_up``)
  run in real time: serve a configuration with those divided by X for a
  faithful comparison at speed X.

The records built are the virtual driver's :class:`CallRecord`, so
``metrics`` and ``report`` write the same files. Outcomes are inferred from
what the callers see: 486 = queue full, 480 or a BYE before any member
answered = ``no_answer`` (or ``timed_out`` once ``max_wait`` is reached), 302
= ``forwarded``. The queue length is the number of callers answered by the
queue (200 or 183 before a member answered) and not offered to a member since.

Invariants: every socket is bound on a loopback or ``--bind`` address; a run
places at most ``max_calls`` calls and lasts at most ``(duration + drain) /
speed`` seconds, plus a bounded teardown; every call record gets exactly one
outcome; line members are unregistered at the end.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import math
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from huntgroup.config.models import Config, LineConfig
from huntgroup.engine.dialogs import Dialog, uac_dialog, uas_dialog
from huntgroup.engine.sip import (
    CancelReceived,
    Headers,
    Peer,
    Request,
    RequestReceived,
    Response,
    ResponseReceived,
    SipUri,
    TimerConfig,
    TransactionKey,
    TransactionTimedOut,
    TransportFailed,
    make_cancel,
    make_response,
    new_call_id,
    new_tag,
    parse_uri,
    response_destination,
)
from huntgroup.engine.sip.transaction import Action as TxAction
from huntgroup.errors import ProtocolError
from huntgroup.simulations.distributions import (
    Sampler,
    arrival_times,
    name_key,
    stream,
    uniform,
)
from huntgroup.simulations.driver import (
    _ANSWER,
    _ARRIVALS,
    _DELAY,
    _PATIENCE,
    _TALK,
    CallRecord,
    Offer,
    RunResult,
)
from huntgroup.simulations.live_sip import (
    LiveError,
    SipEndpoint,
    audio_offer,
    digest_authorization,
)
from huntgroup.simulations.scenario import Scenario

__all__ = [
    "LiveError",
    "LiveOptions",
    "LiveRun",
    "caller_number",
    "live_problems",
    "parse_target",
    "plan_calls",
    "run_live",
]

log = logging.getLogger("huntgroup.live")

_MASK = (1 << 64) - 1
MAX_SPEED = 1000.0
REGISTER_EXPIRES = 3600
TEARDOWN_SECONDS = 3.0  # real seconds for hang-ups and unregistrations at the end
NEAR = 0.9  # share of a server timer after which an end is put down to that timer


@dataclass(frozen=True, slots=True)
class LiveOptions:
    """How to play a scenario live."""

    target: tuple[str, int]  # the server's UDP address
    speed: float = 1.0
    bind: str = "127.0.0.1"  # where callers and line members listen
    max_calls: int = 1000
    probe_timeout: float = 5.0  # real seconds to wait for the server's answer to OPTIONS


@dataclass(slots=True)
class LiveRun:
    """A live run: the records (as a virtual replication) and live-only numbers."""

    run: RunResult
    stats: dict[str, Any]


# ------------------------------------------------------------------ planning
def parse_target(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 in brackets) of the server; LiveError when malformed."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise LiveError(f"--target {text!r} is not HOST:PORT (IPv6 in brackets)")
    return host, int(port)


def caller_number(rec: CallRecord) -> str:
    """The caller number of a planned call: ``06`` + 8 digits, unique per call."""
    g, k = rec.keys
    return f"06{(abs(g) * 1_000_003 + k) % 100_000_000:08d}"


def plan_calls(scenario: Scenario) -> list[CallRecord]:
    """The calls of replication 0, drawn from the virtual driver's streams, by arrival."""
    seed, rep = scenario.seed & _MASK, 0
    calls: list[CallRecord] = []
    for gi, traffic in enumerate(scenario.traffic):
        gkey = name_key(traffic.group)
        times = arrival_times(
            traffic.arrivals, scenario.duration, stream(_ARRIVALS, seed, rep, gkey)
        )
        n = len(times)
        talks = Sampler(traffic.talk_time).draw_many(stream(_TALK, seed, rep, gkey).random(n))
        patience = (
            Sampler(traffic.patience).draw_many(stream(_PATIENCE, seed, rep, gkey).random(n))
            if traffic.patience is not None
            else None
        )
        for k in range(n):
            calls.append(
                CallRecord(
                    call=f"{traffic.group}#{k + 1}",
                    group=traffic.group,
                    origin="pilot",
                    arrival=float(times[k]),
                    talk_planned=float(talks[k]),
                    patience=None if patience is None else float(patience[k]),
                    keys=(gi, k),
                )
            )
    calls.sort(key=lambda c: (c.arrival, c.keys))
    return calls


def _is_bindable(host: str, bind: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or host == bind


def _member_address(uri: str, bind: str) -> tuple[str, int] | str:
    """Where a fixed-URI member must be bound, or why it cannot be."""
    try:
        parsed = parse_uri(uri)
    except ProtocolError as err:
        return f"{uri}: not a SIP URI ({err})"
    if not isinstance(parsed, SipUri) or parsed.secure:
        return f"{uri}: only sip: URIs over UDP can be played live"
    if (parsed.param("transport") or "udp").lower() != "udp":
        return f"{uri}: only UDP members can be played live"
    host = parsed.host.strip("[]")
    if host.lower() == "localhost":
        host = "127.0.0.1"
    if not _is_bindable(host, bind):
        return (
            f"{uri}: the live run can only be this member on a loopback address or the "
            f"--bind address ({bind}); point the member at one in the configuration"
        )
    return host, parsed.port or 5060


def live_problems(scenario: Scenario, options: LiveOptions) -> list[str]:
    """Why the scenario cannot be played live with these options (empty when it can)."""
    problems: list[str] = []
    if not (0 < options.speed <= MAX_SPEED) or not math.isfinite(options.speed):
        problems.append(f"--speed must be > 0 and <= {MAX_SPEED:g}, got {options.speed:g}")
    if not _is_local_address(options.bind):
        problems.append(f"--bind {options.bind!r} is not an IP address of this host")
    for key, b in sorted(scenario.behaviours.items()):
        if b.joined is not None:
            problems.append(
                f"member {key}: 'joined' schedules are not supported live (the server has "
                "no runtime join/leave protocol yet); use the configuration's joined flag"
            )
        if b.direct_calls is not None or b.outgoing_calls is not None:
            problems.append(f"member {key}: direct_calls and outgoing_calls are not supported live")
    seen: dict[tuple[str, int], str] = {}
    for g in scenario.config.groups:
        for m in g.members:
            if m.uri is None or m.key in seen.values():
                continue
            where = _member_address(m.uri, options.bind)
            if isinstance(where, str):
                problems.append(f"member {where}")
            elif where in seen:
                problems.append(f"members {seen[where]} and {m.uri} share {where[0]}:{where[1]}")
            else:
                seen[where] = m.key
    planned = len(plan_calls(scenario))
    if planned > options.max_calls:
        problems.append(
            f"the scenario places {planned} calls, more than --max-calls {options.max_calls}"
        )
    return problems


def _is_local_address(host: str) -> bool:
    """True for an IP address this host can bind (loopback always can)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if address.is_loopback:
        return True
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, 0))
        except OSError:
            return False
    return True


def _user_of(uri: object) -> str:
    return (uri.user or "").split(";", 1)[0] if isinstance(uri, SipUri) else ""


# ----------------------------------------------------------------------- run
class _Run:
    """Everything one live run shares: clock, records, queue view, failure."""

    def __init__(self, scenario: Scenario, options: LiveOptions) -> None:
        self.sc = scenario
        self.opt = options
        self.config: Config = scenario.config
        self.loop = asyncio.get_running_loop()
        self.rng = random.Random(scenario.seed)
        timers = self.config.server.timers
        self.timers = TimerConfig(t1=timers.t1, t2=timers.t2, t4=timers.t4)
        self.target = Peer(options.target[0], options.target[1], "UDP")
        self.domain = self.config.server.domain
        self.speed = options.speed
        self.seed = scenario.seed & _MASK
        self.calls = plan_calls(scenario)
        self.by_number = {caller_number(r): r for r in self.calls}
        self.placed: list[CallRecord] = []
        self.open_calls = len(self.calls)
        self.done = asyncio.Event()
        self.fatal: asyncio.Future[None] = self.loop.create_future()
        self.stopping = False
        self.t0 = self.loop.time()
        self.tracked = [t.group for t in scenario.traffic]
        self.queued: dict[str, str] = {}  # call -> group, callers held by the queue
        self.queue_series: dict[str, list[tuple[float, int]]] = {
            g: [(0.0, 0)] for g in self.tracked
        }
        self.unmatched = 0
        self.unexpected: dict[str, int] = {}
        self.members = sorted({m.key for g in self.config.groups for m in g.members})
        self.member_index = {m: i for i, m in enumerate(self.members)}
        self.sdp_address = options.bind
        self.sdp_port = 9

    # ------------------------------------------------------------- time
    def now(self) -> float:
        """Scenario seconds since the start."""
        return max(0.0, (self.loop.time() - self.t0) * self.speed)

    def call_at(self, when: float, fn: Callable[[], None]) -> asyncio.TimerHandle:
        """Run ``fn`` at scenario time ``when``."""
        return self.loop.call_at(self.t0 + when / self.speed, self.guard(fn))

    def call_later(self, delay: float, fn: Callable[[], None]) -> asyncio.TimerHandle:
        """Run ``fn`` after ``delay`` scenario seconds."""
        return self.loop.call_later(delay / self.speed, self.guard(fn))

    def guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except Exception as err:
                self.fail(err)

        return run

    def fail(self, err: BaseException) -> None:
        log.error("live run stopped by an internal error: %r", err)
        if not self.fatal.done():
            self.fatal.set_exception(err)

    def endpoint(self, name: str) -> SipEndpoint:
        return SipEndpoint(name, loop=self.loop, timers=self.timers, on_error=self.fail)

    def sdp(self) -> bytes:
        return audio_offer(self.sdp_address, self.sdp_port, self.rng.getrandbits(31))

    # ---------------------------------------------------------- records
    def close(self, rec: CallRecord, outcome: str, target: str | None = None) -> None:
        if rec.outcome is None and not self.stopping:
            rec.outcome = outcome
            rec.ended_at = self.now()
            rec.forwarded_to = target

    def finished(self, rec: CallRecord) -> None:
        """The caller's leg of ``rec`` is over."""
        self.dequeue(rec)
        self.open_calls -= 1
        if self.open_calls <= 0:
            self.done.set()

    def enqueue(self, rec: CallRecord) -> None:
        if rec.group in self.queue_series and rec.call not in self.queued:
            self.queued[rec.call] = rec.group
            self._queue_changed(rec.group)

    def dequeue(self, rec: CallRecord) -> None:
        group = self.queued.pop(rec.call, None)
        if group is not None:
            self._queue_changed(group)

    def _queue_changed(self, group: str) -> None:
        n = sum(1 for g in self.queued.values() if g == group)
        self.queue_series[group].append((self.now(), n))

    def match(self, from_user: str, member: str) -> CallRecord | None:
        """The call an INVITE to ``member`` from ``from_user`` belongs to."""
        rec = self.by_number.get(from_user)
        if rec is not None:
            return rec
        groups = [
            g.name for g in self.config.groups if g.pilot == from_user and g.pilot_as_caller_id
        ]
        waiting = [
            r
            for r in self.placed
            if r.group in groups
            and r.outcome is None
            and r.answered_by is None
            and not any(o.member == member and o.outcome == "open" for o in r.offers)
        ]
        return min(waiting, key=lambda r: (r.arrival, r.keys)) if waiting else None

    def timeout_of(self, rec: CallRecord) -> float:
        return self.config.group(rec.group).no_answer_timeout if rec.group else 15.0

    def max_wait_of(self, rec: CallRecord) -> float | None:
        return self.config.group(rec.group).queue.max_wait if rec.group else None

    def unexpected_status(self, status: int | str) -> None:
        self.unexpected[str(status)] = self.unexpected.get(str(status), 0) + 1


# -------------------------------------------------------------------- callers
@dataclass(slots=True)
class _CallerLeg:
    rec: CallRecord
    invite: Request
    state: str = "calling"  # calling | early | confirmed | cancelling | bye_sent | ended
    provisional: bool = False
    cancel_pending: bool = False
    dialog: Dialog | None = None


class _Callers:
    """The callers' socket: places every call and plays the callers' side."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.endpoint = run.endpoint("callers")
        self.endpoint.handler = self.handle
        self.legs: dict[str, _CallerLeg] = {}
        self.probe: asyncio.Future[int] | None = None

    async def open(self) -> None:
        await self.endpoint.open(self.run.opt.bind, 0)

    def _request(self, method: str, uri: str, from_user: str, to: str) -> list[tuple[str, str]]:
        me = self.endpoint.local
        host = f"[{me.host}]" if ":" in me.host else me.host
        return [
            ("Via", me.via(self.run.rng)),
            ("Max-Forwards", "70"),
            ("From", f"<sip:{from_user}@{host}>;tag={new_tag(self.run.rng)}"),
            ("To", f"<{to}>"),
            ("Call-ID", new_call_id(self.run.rng, me.host)),
            ("CSeq", f"1 {method}"),
        ]

    async def check_server(self) -> None:
        """OPTIONS to the target; LiveError when no SIP server answers."""
        uri = f"sip:{self.run.domain}"
        headers = self._request("OPTIONS", uri, "huntgroup-live", uri)
        request = Request("OPTIONS", parse_uri(uri), Headers(headers))
        self.probe = self.run.loop.create_future()
        self.endpoint.send_request(request, self.run.target)
        host, port = self.run.opt.target
        try:
            await asyncio.wait_for(self.probe, self.run.opt.probe_timeout)
        except TimeoutError:
            raise LiveError(
                f"no SIP server answered OPTIONS at udp {host}:{port} within "
                f"{self.run.opt.probe_timeout:g} s: is 'huntgroup serve' running there?"
            ) from None

    def place(self, rec: CallRecord) -> None:
        run = self.run
        group = run.config.group(rec.group or "")
        number = caller_number(rec)
        to = f"sip:{group.pilot}@{run.domain}"
        headers = self._request("INVITE", to, number, to)
        headers += [
            ("Contact", self.endpoint.local.contact(number)),
            ("Content-Type", "application/sdp"),
        ]
        invite = Request("INVITE", parse_uri(to), Headers(headers), run.sdp())
        leg = _CallerLeg(rec, invite)
        self.legs[invite.call_id] = leg
        run.placed.append(rec)
        self.endpoint.send_request(invite, run.target)
        if rec.patience is not None:
            run.call_at(rec.arrival + rec.patience, lambda: self.give_up(leg))

    def give_up(self, leg: _CallerLeg) -> None:
        rec = leg.rec
        if rec.outcome is not None or rec.answered_at is not None or leg.state == "ended":
            return
        self.run.close(rec, "abandoned")
        self.hang_up(leg)

    def hang_up(self, leg: _CallerLeg) -> None:
        if leg.state == "calling":
            leg.cancel_pending = True
        elif leg.state == "early":
            leg.state = "cancelling"
            self.endpoint.send_request(make_cancel(leg.invite), self.run.target)
        elif leg.state == "confirmed" and leg.dialog is not None:
            leg.state = "bye_sent"
            self.endpoint.send_request(leg.dialog.request("BYE", self.run.rng), leg.dialog.peer)

    def end(self, leg: _CallerLeg) -> None:
        if leg.state != "ended":
            leg.state = "ended"
            self.run.finished(leg.rec)

    # --------------------------------------------------------------- input
    def handle(self, action: TxAction) -> None:
        match action:
            case ResponseReceived(_, response, _):
                self.on_response(response)
            case RequestReceived(key, request, _) if key is not None:
                self.on_request(key, request)
            case CancelReceived(key, request, _, _):
                self.endpoint.send_response(key, make_response(request, 481))
            case TransactionTimedOut(_, request, _) | TransportFailed(_, request):
                self.on_no_response(request)

    def on_response(self, response: Response) -> None:
        method = response.cseq.method
        if method == "OPTIONS":
            if self.probe is not None and not self.probe.done():
                self.probe.set_result(response.status)
            return
        leg = self.legs.get(response.call_id)
        if leg is None:
            return
        if method == "BYE" and response.status >= 200:
            self.end(leg)
        elif method == "INVITE":
            self.on_invite_response(leg, response)

    def on_invite_response(self, leg: _CallerLeg, response: Response) -> None:
        run, rec, status = self.run, leg.rec, response.status
        if status < 200:
            leg.provisional = True
            if leg.state == "calling":
                leg.state = "early"
            if leg.cancel_pending:
                leg.cancel_pending = False
                self.hang_up(leg)
            elif status == 183 and rec.answered_at is None and leg.state == "early":
                run.enqueue(rec)  # held in early media: queue.answer is false
            return
        if status < 300:
            first = leg.dialog is None
            if leg.dialog is None:
                leg.dialog = uac_dialog(leg.invite, response, run.target, self.endpoint.local)
            self.endpoint.send_raw(
                leg.dialog.ack_for_2xx(leg.invite.cseq.number, run.rng), leg.dialog.peer
            )
            if not first:
                return
            if leg.state == "cancelling" or leg.cancel_pending:
                leg.state = "confirmed"  # our CANCEL crossed the 200: hang up now
                leg.cancel_pending = False
                self.hang_up(leg)
                return
            leg.state = "confirmed"
            if rec.answered_at is None:
                run.enqueue(rec)  # answered by the queue, with music
            return
        self.on_final_failure(leg, response)

    def on_final_failure(self, leg: _CallerLeg, response: Response) -> None:
        run, rec, status = self.run, leg.rec, response.status
        elapsed = run.now() - rec.arrival
        max_wait = run.max_wait_of(rec)
        late = max_wait is not None and elapsed >= NEAR * max_wait
        if status == 487:
            run.close(rec, "abandoned")
        elif status in (486, 600):
            run.close(rec, "rejected_full")
        elif status in (301, 302):
            contacts = response.contacts
            target = _user_of(contacts[0].uri) or str(contacts[0].uri) if contacts else None
            group = run.config.group(rec.group) if rec.group else None
            overflow = group.queue.overflow_to if group else None
            if overflow is not None and target == overflow and not rec.offers:
                run.close(rec, "rejected_full", target)
            else:
                run.close(rec, "timed_out" if late else "forwarded", target)
        elif status == 480:
            run.close(rec, "timed_out" if late else "no_answer")
        else:
            log.warning("call %s: unexpected final response %d", rec.call, status)
            run.unexpected_status(status)
            run.close(rec, "no_answer")
        self.end(leg)

    def on_request(self, key: TransactionKey, request: Request) -> None:
        leg = self.legs.get(request.call_id)
        if request.method == "BYE" and leg is not None:
            self.endpoint.send_response(key, make_response(request, 200))
            rec = leg.rec
            if rec.answered_at is None:
                elapsed = self.run.now() - rec.arrival
                max_wait = self.run.max_wait_of(rec)
                late = max_wait is not None and elapsed >= NEAR * max_wait
                self.run.close(rec, "timed_out" if late else "no_answer")
            else:
                self.run.close(rec, "answered")
            self.end(leg)
        elif request.method == "OPTIONS":
            self.endpoint.send_response(key, make_response(request, 200))
        elif request.method == "BYE":
            self.endpoint.send_response(key, make_response(request, 481))
        else:
            self.endpoint.send_response(key, make_response(request, 501))

    def on_no_response(self, request: Request) -> None:
        leg = self.legs.get(request.call_id)
        if request.method == "OPTIONS" or leg is None:
            return
        if request.method == "INVITE":
            log.warning("call %s: the server never answered the INVITE", leg.rec.call)
            self.run.unexpected_status("timeout")
            self.run.close(leg.rec, "no_answer")
            self.end(leg)
        elif request.method == "BYE":
            self.end(leg)


# -------------------------------------------------------------------- members
@dataclass(slots=True)
class _Offered:
    """One INVITE a member received."""

    key: TransactionKey
    invite: Request
    source: Peer
    to_tag: str
    rec: CallRecord
    offer: Offer
    state: str = "ringing"  # ringing | answered | ended
    claimed: bool = False
    dialog: Dialog | None = None
    timer: asyncio.TimerHandle | None = None

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class _Member:
    """One simulated member: a UDP socket that answers per the scenario."""

    def __init__(self, run: _Run, key: str, line: LineConfig | None) -> None:
        self.run = run
        self.key = key
        self.line = line
        self.behaviour = run.sc.behaviours[key]
        self.delay = Sampler(self.behaviour.answer_delay)
        self.endpoint = run.endpoint(f"member {key}")
        self.endpoint.handler = self.handle
        self.offered: dict[str, _Offered] = {}  # by Call-ID
        self.by_tx: dict[TransactionKey, _Offered] = {}
        self.answers = 0  # 200s this UA sent that won the call
        self.declines = 0
        self._reg_call_id = ""
        self._reg_tag = ""
        self._reg_cseq = 0
        self._reg_auth_tries = 0
        self._reg_expires = 0
        self._reg_waiter: asyncio.Future[int] | None = None
        self._refresh: asyncio.TimerHandle | None = None

    async def open(self, host: str, port: int) -> None:
        await self.endpoint.open(host, port)

    @property
    def registered(self) -> bool:
        """True once this line member sent a REGISTER."""
        return self.line is not None and bool(self._reg_call_id)

    def stop_refresh(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            self._refresh = None

    def close(self) -> None:
        self.stop_refresh()
        for leg in self.offered.values():
            leg.stop_timer()
        self.endpoint.close()

    # -------------------------------------------------------- registration
    async def register(self, expires: int) -> int:
        """REGISTER the line's contact (0: remove it); the final status."""
        assert self.line is not None
        if not self._reg_call_id:
            self._reg_call_id = new_call_id(self.run.rng, self.endpoint.local.host)
            self._reg_tag = new_tag(self.run.rng)
        self._reg_auth_tries = 0
        self._reg_expires = expires
        self._reg_waiter = self.run.loop.create_future()
        self._send_register(None)
        status = await asyncio.wait_for(self._reg_waiter, 64 * self.run.timers.t1 + 1)
        if status < 300 and expires > 0:
            refresh = max(30.0, expires / 2)
            self._refresh = self.run.loop.call_later(
                refresh, lambda: self.run.loop.create_task(self._refresh_registration())
            )
        return status

    async def _refresh_registration(self) -> None:
        try:
            status = await self.register(REGISTER_EXPIRES)
        except TimeoutError:
            status = 408
        if status >= 300:
            log.warning("member %s: registration refresh failed (%d)", self.key, status)

    def _send_register(self, authorization: str | None) -> None:
        assert self.line is not None
        run, me = self.run, self.endpoint.local
        self._reg_cseq += 1
        aor = f"<sip:{self.line.number}@{run.domain}>"
        headers = [
            ("Via", me.via(run.rng)),
            ("Max-Forwards", "70"),
            ("From", f"{aor};tag={self._reg_tag}"),
            ("To", aor),
            ("Call-ID", self._reg_call_id),
            ("CSeq", f"{self._reg_cseq} REGISTER"),
            ("Contact", me.contact(self.line.number)),
            ("Expires", str(self._reg_expires)),
        ]
        if authorization is not None:
            headers.append(("Authorization", authorization))
        request = Request("REGISTER", parse_uri(f"sip:{run.domain}"), Headers(headers))
        self.endpoint.send_request(request, run.target)

    def _on_register_response(self, response: Response) -> None:
        waiter = self._reg_waiter
        if waiter is None or waiter.done() or response.status < 200:
            return
        if response.status == 401 and self._reg_auth_tries < 2 and self.line is not None:
            self._reg_auth_tries += 1
            challenges = response.headers.get_all("WWW-Authenticate")
            try:
                authorization = digest_authorization(
                    self.line,
                    challenges,
                    method="REGISTER",
                    uri=f"sip:{self.run.domain}",
                    rng=self.run.rng,
                )
            except LiveError as err:
                waiter.set_exception(err)
                return
            self._send_register(authorization)
            return
        waiter.set_result(response.status)

    # --------------------------------------------------------------- input
    def handle(self, action: TxAction) -> None:
        match action:
            case RequestReceived(None, request, _):
                self.on_ack(request)
            case RequestReceived(key, request, source) if key is not None:
                self.on_request(key, request, source)
            case CancelReceived(key, request, _, invite_key):
                self.on_cancel(key, request, invite_key)
            case ResponseReceived(_, response, _):
                if response.cseq.method == "REGISTER":
                    self._on_register_response(response)
            case TransactionTimedOut(_, request, _) | TransportFailed(_, request):
                waiter = self._reg_waiter
                if request.method == "REGISTER" and waiter is not None and not waiter.done():
                    waiter.set_result(408)

    def on_request(self, key: TransactionKey, request: Request, source: Peer) -> None:
        method = request.method
        if method == "INVITE" and request.to.tag is None:
            self.on_invite(key, request, source)
        elif method == "BYE":
            leg = self.offered.get(request.call_id)
            self.endpoint.send_response(key, make_response(request, 200 if leg else 481))
            if leg is not None:
                self.on_bye(leg)
        elif method == "OPTIONS":
            self.endpoint.send_response(key, make_response(request, 200))
        else:
            self.endpoint.send_response(key, make_response(request, 501))

    def on_invite(self, key: TransactionKey, invite: Request, source: Peer) -> None:
        run = self.run
        rec = run.match(_user_of(invite.from_.uri), self.key)
        to_tag = new_tag(run.rng)
        if rec is None:
            log.warning("member %s: an INVITE from %s matches no call", self.key, invite.from_)
            run.unmatched += 1
            self.endpoint.send_response(key, make_response(invite, 480, to_tag=to_tag))
            return
        run.dequeue(rec)
        timeout = run.timeout_of(rec)
        attempt = sum(1 for o in rec.offers if o.member == self.key)
        offer = Offer(self.key, run.now(), timeout)
        rec.offers.append(offer)
        leg = _Offered(key, invite, source, to_tag, rec, offer)
        self.offered[invite.call_id] = leg
        self.by_tx[key] = leg
        contact = (("Contact", self.endpoint.local.contact(self.key_user())),)
        self.endpoint.send_response(key, make_response(invite, 180, to_tag=to_tag, headers=contact))
        g, k = rec.keys
        mi = run.member_index.get(self.key, -1)
        answers = (
            uniform(_ANSWER, run.seed, 0, g, k, mi, attempt) < self.behaviour.answer_probability
        )
        if not answers and self.behaviour.on_no_answer != "decline":
            return  # lets it ring until the server's no-answer timeout
        delay = self.delay.draw(uniform(_DELAY, run.seed, 0, g, k, mi, attempt))
        if delay < timeout:
            leg.timer = run.call_later(delay, lambda: self.react(leg, answers))

    def key_user(self) -> str:
        return self.line.number if self.line is not None else "member"

    def react(self, leg: _Offered, answers: bool) -> None:
        leg.timer = None
        if leg.state != "ringing":
            return
        run, rec = self.run, leg.rec
        if not answers:
            leg.state = "ended"
            leg.offer.outcome = "declined"
            self.declines += 1
            self.endpoint.send_response(leg.key, make_response(leg.invite, 603, to_tag=leg.to_tag))
            return
        headers = (
            ("Contact", self.endpoint.local.contact(self.key_user())),
            ("Content-Type", "application/sdp"),
        )
        response = make_response(
            leg.invite, 200, to_tag=leg.to_tag, headers=headers, body=run.sdp()
        )
        if not self.endpoint.send_response(leg.key, response):
            return
        leg.state = "answered"
        leg.dialog = uas_dialog(leg.invite, response, leg.source, self.endpoint.local)
        destination = response_destination(leg.invite.top_via, leg.source)
        self.endpoint.retransmit_answer(response, destination, lambda: self.hang_up(leg))
        if rec.answered_by is None and rec.outcome is None:
            leg.claimed = True
            self.answers += 1
            leg.offer.outcome = "answered"
            rec.answered_by = self.key
            rec.answered_at = run.now()
            leg.timer = run.call_later(rec.talk_planned, lambda: self.hang_up(leg))
        else:
            leg.offer.outcome = "cancelled"  # another member or the caller was first

    def hang_up(self, leg: _Offered) -> None:
        leg.stop_timer()
        if leg.state != "answered" or leg.dialog is None:
            return
        leg.state = "ended"
        if leg.claimed:
            self.run.close(leg.rec, "answered")
        self.endpoint.send_request(leg.dialog.request("BYE", self.run.rng), leg.dialog.peer)

    def on_ack(self, ack: Request) -> None:
        self.endpoint.ack_received(ack)

    def on_bye(self, leg: _Offered) -> None:
        leg.stop_timer()
        if leg.state == "answered" and leg.claimed:
            self.run.close(leg.rec, "answered")
        leg.state = "ended"

    def on_cancel(
        self, key: TransactionKey, cancel: Request, invite_key: TransactionKey | None
    ) -> None:
        leg = self.by_tx.get(invite_key) if invite_key is not None else None
        self.endpoint.send_response(key, make_response(cancel, 200 if leg else 481))
        if leg is None or leg.state != "ringing":
            return
        leg.stop_timer()
        leg.state = "ended"
        rang = self.run.now() - leg.offer.at
        leg.offer.outcome = "no_answer" if rang >= NEAR * leg.offer.timeout else "cancelled"
        self.endpoint.send_response(leg.key, make_response(leg.invite, 487, to_tag=leg.to_tag))

    def hang_up_all(self) -> None:
        for leg in list(self.offered.values()):
            if leg.state == "answered":
                self.hang_up(leg)


# --------------------------------------------------------------- orchestration
class _Discard(asyncio.DatagramProtocol):
    """Where the simulated phones' SDP sends RTP: received and dropped."""


async def _open_members(run: _Run) -> list[_Member]:
    config = run.config
    members: list[_Member] = []
    for key in run.members:
        line = config.line(key)
        member = _Member(run, key, line)
        members.append(member)
        if line is not None:
            await member.open(run.opt.bind, 0)
        else:
            where = _member_address(key, run.opt.bind)
            if isinstance(where, str):
                raise LiveError(f"member {where}")
            await member.open(*where)
    lines = [m for m in members if m.line is not None]
    results = await asyncio.gather(
        *(m.register(REGISTER_EXPIRES) for m in lines), return_exceptions=True
    )
    problems: list[str] = []
    for member, result in zip(lines, results, strict=True):
        if isinstance(result, LiveError):
            problems.append(str(result))
        elif isinstance(result, BaseException):
            problems.append(f"line {member.key}: no answer to REGISTER")
        elif result >= 300:
            hint = " (check its password in the configuration)" if result in (401, 403) else ""
            problems.append(f"line {member.key}: REGISTER refused with {result}{hint}")
    if problems:
        raise LiveError("members cannot be reached:\n  " + "\n  ".join(problems))
    return members


async def _play(run: _Run, callers: _Callers, progress: Callable[[float], None] | None) -> None:
    sc = run.sc
    run.t0 = run.loop.time()
    for rec in run.calls:
        run.call_at(rec.arrival, functools.partial(callers.place, rec))
    if not run.calls:
        run.done.set()
    horizon = run.t0 + (sc.duration + sc.drain) / run.speed
    while not run.done.is_set():
        left = horizon - run.loop.time()
        if left <= 0:
            break
        waiter: asyncio.Future[Any] = asyncio.ensure_future(run.done.wait())
        await asyncio.wait((waiter, run.fatal), timeout=min(left, 0.5))
        waiter.cancel()
        if run.fatal.done():
            run.fatal.result()  # raises the internal error
        if progress is not None:
            progress(min(1.0, run.now() / sc.duration))


async def _teardown(run: _Run, callers: _Callers, members: list[_Member]) -> None:
    run.stopping = True
    for leg in list(callers.legs.values()):
        if leg.state != "ended":
            callers.hang_up(leg)
    for member in members:
        member.hang_up_all()
    deadline = run.loop.time() + TEARDOWN_SECONDS
    while run.loop.time() < deadline and any(leg.state != "ended" for leg in callers.legs.values()):
        await asyncio.sleep(0.05)
    lines = [m for m in members if m.registered]
    for m in lines:
        m.stop_refresh()
    results = await asyncio.gather(*(m.register(0) for m in lines), return_exceptions=True)
    for member, result in zip(lines, results, strict=True):
        if isinstance(result, BaseException) or result >= 300:
            log.warning("member %s: unregistration failed: %r", member.key, result)


def _joined(config: Config) -> dict[tuple[str, str], list[tuple[float, float]]]:
    return {
        (g.name, m.key): [(0.0, math.inf)] if m.joined else []
        for g in config.groups
        for m in g.members
    }


async def play_live(
    scenario: Scenario,
    options: LiveOptions,
    *,
    progress: Callable[[float], None] | None = None,
) -> LiveRun:
    """Play ``scenario`` against the server at ``options.target``; see the module doc."""
    problems = live_problems(scenario, options)
    if problems:
        raise LiveError("this scenario cannot be played live:\n  " + "\n  ".join(problems))
    run = _Run(scenario, options)
    sink, _ = await run.loop.create_datagram_endpoint(_Discard, local_addr=(options.bind, 0))
    run.sdp_port = int(sink.get_extra_info("sockname")[1])
    callers = _Callers(run)
    members: list[_Member] = []
    started = time.monotonic()
    try:
        await callers.open()
        await callers.check_server()
        members = await _open_members(run)
        try:
            await _play(run, callers, progress)
        finally:
            end = run.now()
            for rec in run.calls:
                if rec.outcome is None:
                    rec.outcome = "unfinished" if rec.answered_at is None else "answered"
            await _teardown(run, callers, members)
    finally:
        for member in members:
            member.close()
        callers.endpoint.close()
        sink.close()
    result = RunResult(
        replication=0,
        calls=run.calls,
        queue_lengths=run.queue_series,
        joined=_joined(run.config),
        end=end,
        events=callers.endpoint.messages + sum(m.endpoint.messages for m in members),
        outgoing_skipped=0,
        own_calls=[],
    )
    stats: dict[str, Any] = {
        "target": f"{options.target[0]}:{options.target[1]}",
        "speed": options.speed,
        "bind": options.bind,
        "calls_placed": len(run.placed),
        "real_seconds": round(time.monotonic() - started, 3),
        "sip_messages": result.events,
        "unmatched_invites": run.unmatched,
        "unexpected_statuses": dict(sorted(run.unexpected.items())),
        "members": {m.key: {"answers": m.answers, "declines": m.declines} for m in members},
    }
    return LiveRun(result, stats)


def run_live(
    scenario: Scenario,
    options: LiveOptions,
    *,
    progress: Callable[[float], None] | None = None,
) -> LiveRun:
    """:func:`play_live` on a fresh event loop."""
    return asyncio.run(play_live(scenario, options, progress=progress))
