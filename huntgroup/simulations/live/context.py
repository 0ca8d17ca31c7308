"""What one live run shares: the scaled clock, the call records, the queue view.

Theory of operation
-------------------
:class:`LiveContext` is handed to every simulated caller and member. Time is
real, scaled by ``speed``: ``now()`` is in scenario seconds since the start
and ``call_at``/``call_later`` take scenario seconds. Every callback is
guarded: an exception inside a simulated agent fails the run (``fatal``)
instead of vanishing in the event loop's log. Records are the virtual
driver's :class:`CallRecord`; ``close`` gives one its outcome at most once,
and not at all once the run is stopping (open calls become ``unfinished``).
The queue view counts callers held by the queue (answered with music, or in
early media) until a member is offered their call or the call ends.

Direct calls to a line are records of their own (``origin: direct``, no
group). The server hunts one to a group of the line (the first group of the
configuration where the line is joined and ``hunt_direct_calls`` is set)
when the line is busy; the run sees it when another member is offered the
call, when the line is offered it while busy, or when the queue holds the
caller, and only then does the record join that group (``adopt``), as the
virtual driver adopts it when the core rings a member of the group or queues
the call.

Invariants: a record's outcome is set once; a record joins a group at most
once; ``open_calls`` reaches 0 exactly when every placed call's caller leg
and every outgoing call is over.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from huntgroup.config.models import Config
from huntgroup.engine.sip import Peer, SipUri, TimerConfig
from huntgroup.simulations.live.plan import (
    LiveOptions,
    caller_number,
    plan_calls,
    plan_direct_calls,
    plan_outgoing_calls,
)
from huntgroup.simulations.live.sip import SipEndpoint, audio_offer
from huntgroup.simulations.model.scenario import Scenario
from huntgroup.simulations.virtual.driver import CallRecord

_MASK = (1 << 64) - 1
NEAR = 0.9  # share of a server timer after which an end is put down to that timer

log = logging.getLogger("huntgroup.live")


def user_of(uri: object) -> str:
    """The user part of a SIP URI (no parameters), or an empty string."""
    return (uri.user or "").split(";", 1)[0] if isinstance(uri, SipUri) else ""


# ----------------------------------------------------------------------- run
class LiveContext:
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
        direct = plan_direct_calls(scenario)
        self.direct_line = {r.call: line for line, recs in direct.items() for r in recs}
        self.direct = sorted(
            (r for recs in direct.values() for r in recs), key=lambda r: (r.arrival, r.keys)
        )
        self.outgoing = plan_outgoing_calls(scenario)
        self.by_number = {caller_number(r): r for r in (*self.calls, *self.direct)}
        self.placed: list[CallRecord] = []
        self.open_calls = len(self.calls) + len(self.direct) + len(self.outgoing)
        self.joined_state = {
            (g.name, m.key): m.joined for g in self.config.groups for m in g.members
        }
        # the callers hang up a direct call once its member answered: set by Callers
        self.direct_answered: Callable[[CallRecord], None] = lambda rec: None
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

    def finished(self, rec: CallRecord | None) -> None:
        """The caller's leg of ``rec`` is over (None: one outgoing call is over)."""
        if rec is not None:
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
            if (r.group in groups or self._may_be_hunted(r, groups))
            and r.outcome is None
            and r.answered_by is None
            and not any(o.member == member and o.outcome == "open" for o in r.offers)
        ]
        return min(waiting, key=lambda r: (r.arrival, r.keys)) if waiting else None

    def _may_be_hunted(self, rec: CallRecord, groups: list[str]) -> bool:
        """A direct call not adopted yet, whose hunt group is one of ``groups``."""
        if rec.origin != "direct" or rec.group is not None:
            return False
        line = self.direct_line.get(rec.call)
        ringing_line = any(o.member == line and o.outcome == "open" for o in rec.offers)
        return not ringing_line and self.hunt_group(rec) in groups

    # ----------------------------------------------------- direct calls
    def hunt_group(self, rec: CallRecord) -> str | None:
        """The group the server hunts direct call ``rec`` to when its line is busy."""
        line = self.direct_line.get(rec.call)
        for g in self.config.groups:
            if (
                g.hunt_direct_calls
                and any(m.key == line for m in g.members)
                and self.joined_state.get((g.name, line or ""), False)
            ):
                return g.name
        return None

    def adopt(self, rec: CallRecord) -> None:
        """Direct call ``rec`` was hunted: it joins its line's hunt group (once)."""
        if rec.origin == "direct" and rec.group is None:
            rec.group = self.hunt_group(rec)

    def direct_offered(self, rec: CallRecord, member: str, *, busy: bool) -> None:
        """``member`` is offered direct call ``rec``: hunted unless it rings its own free line."""
        if member != self.direct_line.get(rec.call) or busy:
            self.adopt(rec)

    def held_by_queue(self, rec: CallRecord) -> None:
        """The queue answered the caller of ``rec`` (music or early media)."""
        self.adopt(rec)
        self.enqueue(rec)

    def timeout_of(self, rec: CallRecord) -> float:
        if rec.group:
            return self.config.group(rec.group).no_answer_timeout
        line = self.config.line(self.direct_line.get(rec.call, ""))
        return line.no_answer_timeout if line is not None else 15.0

    def max_wait_of(self, rec: CallRecord) -> float | None:
        return self.config.group(rec.group).queue.max_wait if rec.group else None

    def unexpected_status(self, status: int | str) -> None:
        self.unexpected[str(status)] = self.unexpected.get(str(status), 0) + 1
