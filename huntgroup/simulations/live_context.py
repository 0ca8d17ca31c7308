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

Invariants: a record's outcome is set once; ``open_calls`` reaches 0 exactly
when every placed call's caller leg is over.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from huntgroup.config.models import Config
from huntgroup.engine.sip import Peer, SipUri, TimerConfig
from huntgroup.simulations.driver import CallRecord
from huntgroup.simulations.live_plan import LiveOptions, caller_number, plan_calls
from huntgroup.simulations.live_sip import SipEndpoint, audio_offer
from huntgroup.simulations.scenario import Scenario

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
