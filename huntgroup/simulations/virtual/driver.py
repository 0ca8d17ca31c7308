"""The discrete-event driver: virtual time around the group core that ``serve`` uses.

Theory of operation
-------------------
One replication is a loop over a heap of ``(time, seq, handler, payload)``
entries; ``seq`` is an insertion counter, so entries due at the same instant
run in the order they were scheduled. Before each entry the driver fires the
core's own timers that are due no later than it (``get_timer`` /
``handle_timer``), exactly as the live engine would. The routing itself
(queue, hunt, algorithms, timers) is the :class:`RoutingCore`; this module
only plays the outside world:

- callers arrive (``CallArrived``) and, when they have a patience, hang up at
  ``arrival + patience`` unless answered or ended before (``CallHungUp``);
- members react to each ``Ring``: with their answer probability they answer
  after their answer delay (``MemberAnswered``; a delay of 0 answers at the
  same virtual instant, after the ring), otherwise they let it ring until the
  core's ``no_answer_timeout`` or decline after the delay (``MemberFailed``
  with 603);
- a bridged call lasts its talk time, then ends (``CallHungUp``);
- availability schedules log members in and out (``MemberJoined`` /
  ``MemberLeft``) of every group they belong to;
- direct calls to a member's line (``DirectCallArrived``) and outgoing calls
  (``OutgoingCallStarted`` + ``CallAnswered``) keep members busy.

A forward to one of our own numbers is followed by the core itself
(``Reroute``): the call's record in the group it leaves ends there (with the
outcome of that forward and ``forwarded_to``), and a new record of the same
call starts in the group it reaches (``origin`` ``"forward"``,
``forwarded_from``). So a call that overflows from A to B counts in both
groups' ``offered``: in A as overflowed, in B with the outcome it finally had.
A forward the core refuses (a loop, or past
``server.limits.max_internal_forwards``: ``RefuseForward``) ends the record
with the forward's outcome, ``forwarded_to`` and ``forward_refused`` (482 or
483, what the caller got).

Arrivals stop at ``duration``; the run goes on for at most ``drain`` seconds
more so that calls in progress can end, and calls still open then are
``unfinished``. Every random number comes from ``distributions`` keyed by
what it is for, never by event order (common random numbers).

Invariants: the driver never decides routing; an answer or decline is only
sent for an offer still open (a cancelled offer drops its pending reaction);
every call record gets exactly one outcome.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from huntgroup.config.models import Config
from huntgroup.queue.actions import (
    Action,
    Bridge,
    Cancel,
    Forward,
    Hold,
    RefuseForward,
    Release,
    Reroute,
    Ring,
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
    OutgoingCallStarted,
)
from huntgroup.simulations.model.distributions import (
    Sampler,
    arrival_times,
    name_key,
    poisson_times,
    stream,
    uniform,
)
from huntgroup.simulations.model.scenario import ResolvedLoad, Scenario

# What a random number is for: the first key of every stream. Live mode (live.plan,
# live.members) draws from the very same streams.
ARRIVALS, TALK, PATIENCE, ANSWER, DELAY, DIRECT, OUTGOING = range(1, 8)


OUTCOMES = ("answered", "abandoned", "timed_out", "rejected_full", "forwarded", "no_answer")
"""Outcomes of a call; ``unfinished`` marks a call still open when the run stops."""

_RELEASE_OUTCOME = {"queue_full": "rejected_full", "max_wait": "timed_out"}


@dataclass(slots=True)
class Offer:
    """One offer of a call to a member: answered, declined, no_answer or cancelled."""

    member: str
    at: float
    timeout: float
    outcome: str = "open"


@dataclass(slots=True)
class CallRecord:
    """What happened to one call in one group, as written to calls.jsonl.

    A call forwarded to another of our numbers has one record per group (or line)
    it reached, all with the same ``call``: see the module docstring.
    """

    call: str
    group: str | None
    origin: str  # "pilot", "direct" (a direct call hunted to the group) or "forward"
    arrival: float  # when the call reached this group (or line)
    talk_planned: float
    patience: float | None
    keys: tuple[int, int]
    offers: list[Offer] = field(default_factory=list)
    answered_by: str | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    outcome: str | None = None
    forwarded_to: str | None = None
    forward_refused: int | None = None  # 482 or 483: the forward to forwarded_to was refused
    forwarded_from: str | None = None  # origin "forward": the group it left (or the line)
    previous: CallRecord | None = None  # the record of the same call before its forward

    @property
    def wait(self) -> float | None:
        return None if self.answered_at is None else self.answered_at - self.arrival

    @property
    def talk(self) -> float | None:
        if self.answered_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.answered_at


@dataclass(slots=True)
class RunResult:
    """One replication: its calls and the queue length of each group over time."""

    replication: int
    calls: list[CallRecord]
    queue_lengths: dict[str, list[tuple[float, int]]]
    joined: dict[tuple[str, str], list[tuple[float, float]]]  # (group, member) -> intervals
    end: float
    events: int
    outgoing_skipped: int
    own_calls: list[tuple[str, str, float, float]]  # (direct|outgoing, member, start, end)


Progress = Callable[[float], None]
Handler = Callable[[Any], None]


class _Run:
    def __init__(self, scenario: Scenario, replication: int, progress: Progress | None) -> None:
        self.sc = scenario
        self.config: Config = scenario.config
        self.keys = (scenario.seed & ((1 << 64) - 1), replication)
        self.replication = replication
        self.progress = progress
        self.core = RoutingCore(self.config, now=0.0)
        self.heap: list[tuple[float, int, Handler, Any]] = []
        self.seq = itertools.count()
        self.now = 0.0
        self.end = scenario.duration + scenario.drain
        self.calls: dict[str, CallRecord] = {}
        self.group_calls: list[CallRecord] = []
        self.pending: dict[tuple[str, str], Offer] = {}
        self.members = sorted({m.key for g in self.config.groups for m in g.members})
        self.member_index = {m: i for i, m in enumerate(self.members)}
        self.answer_p = {m: scenario.behaviours[m].answer_probability for m in self.members}
        self.delay = {m: Sampler(scenario.behaviours[m].answer_delay) for m in self.members}
        self.declines = {
            m for m in self.members if scenario.behaviours[m].on_no_answer == "decline"
        }
        self.tracked = [t.group for t in scenario.traffic]
        self.queue_len = {g: 0 for g in self.tracked}
        self.queue_series: dict[str, list[tuple[float, int]]] = {
            g: [(0.0, 0)] for g in self.tracked
        }
        self.outgoing_skipped = 0
        self.own_calls: list[tuple[str, str, float, float]] = []
        self.events = 0

    # ------------------------------------------------------------ schedule
    def push(self, when: float, handler: Handler, payload: Any) -> None:
        heapq.heappush(self.heap, (when, next(self.seq), handler, payload))

    def joined_intervals(self) -> dict[tuple[str, str], list[tuple[float, float]]]:
        out: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for g in self.config.groups:
            for m in g.members:
                schedule = self.sc.behaviours[m.key].joined
                if schedule is None:
                    out[(g.name, m.key)] = [(0.0, math.inf)] if m.joined else []
                else:
                    out[(g.name, m.key)] = [(s, math.inf if e is None else e) for s, e in schedule]
        return out

    def schedule_availability(self) -> None:
        for (group, member), intervals in self.joined_intervals().items():
            if self.sc.behaviours[member].joined is None:
                continue
            configured = self.core.store.joined_since(group, member) is not None
            at_start = any(s <= 0.0 < e for s, e in intervals)
            if configured != at_start:
                self.push(0.0, self.on_join if at_start else self.on_leave, (group, member))
            for start, end in intervals:
                if start > 0.0:
                    self.push(start, self.on_join, (group, member))
                if end < math.inf:
                    self.push(end, self.on_leave, (group, member))

    def schedule_arrivals(self) -> None:
        for rec in arrival_records(self.sc, *self.keys):
            self.push(rec.arrival, self.on_arrival, rec)

    def schedule_own_calls(self) -> None:
        for member in self.members:
            b = self.sc.behaviours[member]
            self._own_calls(member, b.direct_calls, DIRECT)
            self._own_calls(member, b.outgoing_calls, OUTGOING)

    def _own_calls(self, member: str, load: ResolvedLoad | None, purpose: int) -> None:
        if load is None:
            return
        mi = self.member_index[member]
        draws = own_call_draws(self.sc, member, load, purpose, self.replication)
        for k, (t, talk) in enumerate(draws):
            if purpose == DIRECT:
                rec = direct_record(member, mi, k, t, talk)
                self.push(t, self.on_direct_call, (rec, member))
            else:
                self.push(t, self.on_outgoing_call, (f"out:{member}#{k + 1}", member, talk))

    # ----------------------------------------------------------------- loop
    def run(self) -> RunResult:
        self.schedule_availability()
        self.schedule_arrivals()
        self.schedule_own_calls()
        core, heap, end = self.core, self.heap, self.end
        tick = 0
        while True:
            due = core.get_timer()
            if heap and (due is None or heap[0][0] < due):
                when = heap[0][0]
                if when > end:
                    break
                _, _, handler, payload = heapq.heappop(heap)
                self.now = when
                handler(payload)
            elif due is not None:
                if due > end:
                    break
                self.now = due
                self.apply(core.handle_timer(now=due))
            else:
                break
            self.events += 1
            tick += 1
            if tick == 4096:
                tick = 0
                if self.progress is not None:
                    self.progress(min(1.0, self.now / self.sc.duration))
        for rec in self.group_calls:
            if rec.outcome is None:
                rec.outcome = "unfinished" if rec.answered_at is None else "answered"
        return RunResult(
            replication=self.replication,
            calls=self.group_calls,
            queue_lengths=self.queue_series,
            joined=self.joined_intervals(),
            end=self.now,
            events=self.events,
            outgoing_skipped=self.outgoing_skipped,
            own_calls=self.own_calls,
        )

    def feed(self, event: Event) -> None:
        self.apply(self.core.handle(event, now=self.now))

    # --------------------------------------------------------------- events
    def on_arrival(self, rec: CallRecord) -> None:
        self.calls[rec.call] = rec
        self.group_calls.append(rec)
        if rec.patience is not None:
            self.push(self.now + rec.patience, self.on_give_up, rec)
        self.feed(CallArrived(rec.call, rec.group or "", _caller_number(rec)))

    def on_reaction(self, item: tuple[CallRecord, str, Offer, bool]) -> None:
        rec, member, offer, answers = item
        if self.pending.get((rec.call, member)) is not offer:
            return  # the offer ended before the member reacted
        if answers:
            self.feed(MemberAnswered(rec.call, member))
        else:
            del self.pending[(rec.call, member)]
            offer.outcome = "declined"
            self.feed(MemberFailed(rec.call, member, 603))

    def on_talk_end(self, rec: CallRecord) -> None:
        if rec.group is None and rec.answered_by is not None and rec.answered_at is not None:
            self.own_calls.append(("direct", rec.answered_by, rec.answered_at, self.now))
        self._close(rec, "answered")
        self.feed(CallHungUp(rec.call))

    def on_give_up(self, first: CallRecord) -> None:
        rec = self.calls[first.call]  # where the call is now (it may have been forwarded)
        if rec.outcome is None and rec.answered_at is None:
            self._close(rec, "abandoned")
            self.feed(CallHungUp(rec.call))

    def on_join(self, item: tuple[str, str]) -> None:
        self.feed(MemberJoined(*item))

    def on_leave(self, item: tuple[str, str]) -> None:
        self.feed(MemberLeft(*item))

    def on_direct_call(self, item: tuple[CallRecord, str]) -> None:
        rec, member = item
        self.calls[rec.call] = rec
        self.feed(DirectCallArrived(rec.call, member, _caller_number(rec)))

    def on_outgoing_call(self, item: tuple[str, str, float]) -> None:
        call_id, member, talk = item
        store = self.core.store
        if store.is_on_call(member) or store.is_ringing(member):
            self.outgoing_skipped += 1  # a person on a call does not dial another
            return
        self.feed(OutgoingCallStarted(call_id, member))
        self.feed(CallAnswered(call_id))
        self.push(self.now + talk, self.on_outgoing_end, (call_id, member, self.now))

    def on_outgoing_end(self, item: tuple[str, str, float]) -> None:
        call_id, member, start = item
        self.own_calls.append(("outgoing", member, start, self.now))
        self.feed(CallHungUp(call_id))

    def _adopt(self, rec: CallRecord, group: str) -> None:
        """A call reached a group other than by its pilot: a direct call the core hunts to
        it (``hunt_direct_calls``), or a forward. From then on its queue is followed too."""
        rec.group = group
        self.group_calls.append(rec)
        if group not in self.queue_len:  # nobody waited there before this call came
            self.tracked.append(group)
            self.queue_len[group] = 0
            self.queue_series[group] = [(0.0, 0)]

    def _forwarded(self, forward: Forward | Reroute | RefuseForward) -> CallRecord:
        """The call left its group (or line) by a forward: its record ends there."""
        rec = self.calls[forward.call_id]
        self._close(rec, _RELEASE_OUTCOME.get(forward.reason, "forwarded"), forward.target)
        return rec

    def _reroute(self, reroute: Reroute) -> None:
        """The core forwarded the call to our number ``reroute.target`` and goes on there."""
        rec = self._forwarded(reroute)
        after = CallRecord(
            call=rec.call,
            group=None,
            origin="forward",
            arrival=self.now,
            talk_planned=rec.talk_planned,
            patience=rec.patience,
            keys=rec.keys,
            forwarded_from=rec.group or reroute.route[-1],
            previous=rec,
        )
        self.calls[rec.call] = after
        if reroute.group is not None:
            self._adopt(after, reroute.group)

    def _close(self, rec: CallRecord, outcome: str, target: str | None = None) -> None:
        if rec.outcome is None:
            rec.outcome = outcome
            rec.ended_at = self.now
            rec.forwarded_to = target

    # -------------------------------------------------------------- actions
    def apply(self, actions: list[Action]) -> None:
        now = self.now
        for a in actions:
            if type(a) is Ring:
                self._ring(a)
            elif type(a) is Cancel:
                offer = self.pending.pop((a.call_id, a.member), None)
                if offer is not None:
                    timed_out = now >= offer.at + offer.timeout - 1e-9
                    offer.outcome = "no_answer" if timed_out else "cancelled"
            elif type(a) is Bridge:
                rec = self.calls[a.call_id]
                offer = self.pending.pop((a.call_id, a.member), None)
                if offer is not None:
                    offer.outcome = "answered"
                rec.answered_by = a.member
                rec.answered_at = now
                self.push(now + rec.talk_planned, self.on_talk_end, rec)
            elif type(a) is Release:
                rec = self.calls[a.call_id]
                self._close(rec, _RELEASE_OUTCOME.get(a.reason, "no_answer"))
            elif type(a) is Forward:
                self._forwarded(a)
            elif type(a) is Hold:
                rec = self.calls[a.call_id]
                if rec.group is None:  # a call to a line, hunted to a group: queued there
                    group = self.core.group_of_call(a.call_id)
                    if group is not None:
                        self._adopt(rec, group)
            elif type(a) is Reroute:
                self._reroute(a)
            elif type(a) is RefuseForward:
                self._forwarded(a).forward_refused = a.status
        for g in self.tracked:
            n = len(self.core.store.queue(g))
            if n != self.queue_len[g]:
                self.queue_len[g] = n
                self.queue_series[g].append((now, n))

    def _ring(self, ring: Ring) -> None:
        rec = self.calls[ring.call_id]
        if rec.group is None and ring.group is not None:
            self._adopt(rec, ring.group)
        member = ring.member
        offer = Offer(member, self.now, ring.timeout)
        attempt = sum(1 for o in rec.offers if o.member == member)
        earlier = rec.previous
        while earlier is not None:  # offers of the same call before a forward count too
            attempt += sum(1 for o in earlier.offers if o.member == member)
            earlier = earlier.previous
        rec.offers.append(offer)
        self.pending[(rec.call, member)] = offer
        seed, rep = self.keys
        mi = self.member_index.get(member, -1)
        g, k = rec.keys
        answers = uniform(ANSWER, seed, rep, g, k, mi, attempt) < self.answer_p[member]
        if not answers and member not in self.declines:
            return  # lets it ring until the core's no-answer timeout
        delay = self.delay[member].draw(uniform(DELAY, seed, rep, g, k, mi, attempt))
        if delay < ring.timeout:
            self.push(self.now + delay, self.on_reaction, (rec, member, offer, answers))


def arrival_records(scenario: Scenario, seed: int, rep: int) -> list[CallRecord]:
    """The pilot calls of one replication, group by group, in the order they are drawn.

    The virtual driver schedules them; the live mode places the very same calls.
    """
    records: list[CallRecord] = []
    for gi, traffic in enumerate(scenario.traffic):
        gkey = name_key(traffic.group)
        times = arrival_times(
            traffic.arrivals, scenario.duration, stream(ARRIVALS, seed, rep, gkey)
        )
        n = len(times)
        talks = Sampler(traffic.talk_time).draw_many(stream(TALK, seed, rep, gkey).random(n))
        patience = (
            Sampler(traffic.patience).draw_many(stream(PATIENCE, seed, rep, gkey).random(n))
            if traffic.patience is not None
            else None
        )
        records += [
            CallRecord(
                call=f"{traffic.group}#{k + 1}",
                group=traffic.group,
                origin="pilot",
                arrival=float(times[k]),
                talk_planned=float(talks[k]),
                patience=None if patience is None else float(patience[k]),
                keys=(gi, k),
            )
            for k in range(n)
        ]
    return records


def own_call_draws(
    scenario: Scenario, member: str, load: ResolvedLoad, purpose: int, replication: int
) -> list[tuple[float, float]]:
    """``(time, talk time)`` of a member's own calls (``purpose``: DIRECT or OUTGOING).

    Poisson times in ``[0, duration)`` and talk times from streams keyed by the
    purpose, the seed, the replication and the member: the live mode plays the
    very same calls.
    """
    seed = scenario.seed & ((1 << 64) - 1)
    mkey = name_key(member)
    times = poisson_times(
        load.per_hour, 0.0, scenario.duration, stream(purpose, seed, replication, mkey)
    )
    talks = Sampler(load.talk_time).draw_many(
        stream(purpose, seed, replication, mkey, 1).random(len(times))
    )
    return list(zip(times.tolist(), talks.tolist(), strict=True))


def direct_record(member: str, member_index: int, k: int, at: float, talk: float) -> CallRecord:
    """The record of the ``k``-th (from 0) direct call to ``member``'s line."""
    return CallRecord(
        call=f"direct:{member}#{k + 1}",
        group=None,
        origin="direct",
        arrival=at,
        talk_planned=talk,
        patience=None,
        keys=(-1 - member_index, k),
    )


def _caller_number(rec: CallRecord) -> str:
    g, k = rec.keys
    return f"06{(abs(g) * 1_000_003 + k) % 100_000_000:08d}"


def run_replication(
    scenario: Scenario, replication: int, *, progress: Progress | None = None
) -> RunResult:
    """Simulate one replication of ``scenario`` through a fresh RoutingCore."""
    return _Run(scenario, replication, progress).run()
