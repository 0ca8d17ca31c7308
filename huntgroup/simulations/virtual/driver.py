"""The discrete-event driver: virtual time around the group core that ``serve`` uses.

Theory of operation
-------------------
One replication is a loop over the entries of the outside world, in time
order. What is known before the run (availability changes, every pilot call,
the members' own calls) is one list sorted once; what the run schedules (a
caller's patience, a member's reaction, the end of a talk) goes to a heap of
``(time, seq, kind, payload)``, ``seq`` an insertion counter, ``kind`` which
handler of the run takes it. Entries due
at the same instant run in the order they were scheduled (the list's first,
as it was scheduled before the run). Before each entry the driver fires the
core's own timers due no later than it (``get_timer`` / ``handle_timer``,
asked again only after the core was fed), exactly as the live engine would.
The routing itself (queue, hunt, algorithms, timers) is the
:class:`RoutingCore`; this module only plays the outside world:

- callers arrive (``CallArrived``) and, when they have a patience, hang up at
  ``arrival + patience`` unless answered or ended before (``CallHungUp``);
- members react to each ``Ring`` (each member of a ``RingAll``): with their answer
  probability they answer after their answer delay (``MemberAnswered``; a delay of 0
  answers at the same virtual instant, after the ring), otherwise they let it ring
  until the core's ``no_answer_timeout`` or decline after the delay (``MemberFailed``
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

The queue length of each group is noted when it changes: the core's store is
the in-memory one, told to note the groups whose queue an input changed, and
only those are looked at after the input. Random numbers for the members'
reactions hash the keys a pilot call shares before the run, for all calls at
once (``prefixes``); a ring finishes its two draws (``uniform_after``). The
core's timer is asked for only when it could come before the next entry (the
head of its heap bounds it), and the cyclic garbage collector is off during a
replication (it makes no cyclic garbage: the collections would only walk the
records it keeps). A pilot call's arrival, a member's answer and a hang-up go to
the core through its direct inputs (``RoutingCore.handle_call_arrived`` and the
others: ``handle`` of the event, without making the event).

Invariants: the driver never decides routing; an answer or decline is only
sent for an offer still open (a cancelled offer drops its pending reaction);
every call record gets exactly one outcome.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from heapq import heappop, heappush
from typing import Any, Final

import numpy as np

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
    RingAll,
    Ringback,
)
from huntgroup.queue.core import RoutingCore
from huntgroup.queue.events import (
    CallAnswered,
    DirectCallArrived,
    Event,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    OutgoingCallStarted,
)
from huntgroup.queue.state.store import MemoryStore
from huntgroup.simulations.model.distributions import (
    Sampler,
    arrival_times,
    name_key,
    poisson_times,
    prefix,
    prefixes,
    stream,
    uniform_after,
)
from huntgroup.simulations.model.numbers import caller_number_of, caller_numbers
from huntgroup.simulations.model.scenario import ResolvedLoad, Scenario
from huntgroup.simulations.model.splitmix import COMPILED, signed, uniform_after_native

# What a random number is for: the first key of every stream. Live mode (live.plan,
# live.members) draws from the very same streams.
ARRIVALS, TALK, PATIENCE, ANSWER, DELAY, DIRECT, OUTGOING = range(1, 8)


OUTCOMES = ("answered", "abandoned", "timed_out", "rejected_full", "forwarded", "no_answer")
"""Outcomes of a call; ``unfinished`` marks a call still open when the run stops."""

_RELEASE_OUTCOME = {"queue_full": "rejected_full", "max_wait": "timed_out"}


@dataclass(slots=True, init=False)
class Offer:
    """One offer of a call to a member: answered, declined, no_answer or cancelled."""

    member: str
    at: float
    timeout: float
    outcome: str = "open"

    def __init__(self, member: str, at: float, timeout: float, outcome: str = "open") -> None:
        self.member = member
        self.at = at
        self.timeout = timeout
        self.outcome = outcome

    def __reduce__(self) -> tuple[type[Offer], tuple[str, float, float, str]]:
        """Pickled by its fields (a run comes back from a worker process): compiled
        (mypyc, docs/native.md), a native class with an ``__init__`` of its own is not
        made the way pickle makes a plain one."""
        return (Offer, (self.member, self.at, self.timeout, self.outcome))


@dataclass(slots=True, init=False)
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

    def __init__(
        self,
        call: str,
        group: str | None,
        origin: str,
        arrival: float,
        talk_planned: float,
        patience: float | None,
        keys: tuple[int, int],
        offers: list[Offer] | None = None,
        answered_by: str | None = None,
        answered_at: float | None = None,
        ended_at: float | None = None,
        outcome: str | None = None,
        forwarded_to: str | None = None,
        forward_refused: int | None = None,
        forwarded_from: str | None = None,
        previous: CallRecord | None = None,
    ) -> None:
        self.call = call
        self.group = group
        self.origin = origin
        self.arrival = arrival
        self.talk_planned = talk_planned
        self.patience = patience
        self.keys = keys
        self.offers = [] if offers is None else offers
        self.answered_by = answered_by
        self.answered_at = answered_at
        self.ended_at = ended_at
        self.outcome = outcome
        self.forwarded_to = forwarded_to
        self.forward_refused = forward_refused
        self.forwarded_from = forwarded_from
        self.previous = previous

    def __reduce__(self) -> tuple[type[CallRecord], tuple[Any, ...]]:
        """Pickled by its fields, as :meth:`Offer.__reduce__`."""
        return (
            CallRecord,
            (
                self.call,
                self.group,
                self.origin,
                self.arrival,
                self.talk_planned,
                self.patience,
                self.keys,
                self.offers,
                self.answered_by,
                self.answered_at,
                self.ended_at,
                self.outcome,
                self.forwarded_to,
                self.forward_refused,
                self.forwarded_from,
                self.previous,
            ),
        )

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

# What an entry is (the ``kind`` of Entry and Scheduled): the run's loop calls the
# ``_Run`` method of that name with the payload. Integers rather than the methods
# themselves: compiled (mypyc, docs/native.md) the loop's call is then a native call, not
# a Python call through a function object; interpreted, a test or two in the loop for a
# call as quick.
ARRIVAL: Final = 0  # on_arrival (known before the run)
JOIN: Final = 1  # on_join
LEAVE: Final = 2  # on_leave
DIRECT_CALL: Final = 3  # on_direct_call
OUTGOING_CALL: Final = 4  # on_outgoing_call
REACTION: Final = 5  # on_reaction (scheduled by the run)
TALK_END: Final = 6  # on_talk_end
GIVE_UP: Final = 7  # on_give_up
OUTGOING_END: Final = 8  # on_outgoing_end

Entry = tuple[float, int, Any]
"""A scheduled entry known before the run starts: (time, kind, payload)."""
Scheduled = tuple[float, int, int, Any]
"""An entry the run schedules: (time, seq, kind, payload)."""


class _QueueWatch(MemoryStore):
    """The core's in-memory store, noting the groups whose queue it changed: after an
    input the driver looks at those queues only, not at every group's."""

    def __init__(self) -> None:
        super().__init__()
        self.changed: set[str] = set()

    def enqueue(self, group: str, call_id: str, rank: tuple[float, int]) -> None:
        self.changed.add(group)
        super().enqueue(group, call_id, rank)

    def dequeue(self, group: str, call_id: str) -> bool:
        self.changed.add(group)
        return super().dequeue(group, call_id)

    def length(self, group: str) -> int:
        """``len(self.queue(group))``, without the list."""
        return len(self._queues.get(group, ()))


@dataclass(frozen=True, slots=True)
class _Member:
    """How one member reacts to an offer (its behaviour, looked up once)."""

    index: int
    answer_probability: float
    declines: bool  # on_no_answer: decline (603 after the delay) rather than ring on
    delay: Callable[[float], float]  # the answer delay from a uniform number


class _Run:
    def __init__(self, scenario: Scenario, replication: int, progress: Progress | None) -> None:
        self.sc = scenario
        self.config: Config = scenario.config
        self.keys = (scenario.seed & ((1 << 64) - 1), replication)
        self.replication = replication
        self.progress = progress
        self.store = _QueueWatch()
        self.core = RoutingCore(self.config, now=0.0, store=self.store)
        # the core's direct inputs (handle of a CallArrived, MemberAnswered, CallHungUp)
        # are called as its methods, not kept as bound methods: compiled, a native call
        self.heap: list[Scheduled] = []  # scheduled during the run
        self.seq = 0  # the next sequence number (a plain int: C ops when compiled)
        self.now = 0.0
        self.end = scenario.duration + scenario.drain
        self.calls: dict[str, CallRecord] = {}
        self.group_calls: list[CallRecord] = []
        self.pending: dict[tuple[str, str], Offer] = {}
        self.members = sorted({m.key for g in self.config.groups for m in g.members})
        self.member_index = {m: i for i, m in enumerate(self.members)}
        self.behaviour = {
            m: _Member(
                i,
                scenario.behaviours[m].answer_probability,
                scenario.behaviours[m].on_no_answer == "decline",
                Sampler(scenario.behaviours[m].answer_delay).drawer(),
            )
            for m, i in self.member_index.items()
        }
        seed, rep = self.keys
        self.answer_key = prefix(ANSWER, seed, rep)
        self.delay_key = prefix(DELAY, seed, rep)
        # the hash states of each pilot call's draws and its caller's number, by traffic
        # then call: ``draw_states``
        self.native_draws = COMPILED
        """The draws are finished in native integers (``splitmix``, the compiled build):
        the hash states are kept as signed 64-bit integers."""
        self.answer_states: list[list[int]] = []
        self.delay_states: list[list[int]] = []
        self.callers: list[list[str]] = []
        self.tracked = [t.group for t in scenario.traffic]
        self.queue_len = {g: 0 for g in self.tracked}
        self.queue_series: dict[str, list[tuple[float, int]]] = {
            g: [(0.0, 0)] for g in self.tracked
        }
        self.outgoing_skipped = 0
        self.own_calls: list[tuple[str, str, float, float]] = []
        self.events = 0

    # ------------------------------------------------------------ schedule
    def push(self, when: float, kind: int, payload: Any) -> None:
        seq = self.seq
        self.seq = seq + 1
        heappush(self.heap, (when, seq, kind, payload))

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

    def schedule(self) -> list[Entry]:
        """What is known before the run, in the order it happens: availability changes,
        pilot calls and the members' own calls; entries due at the same instant keep
        that order (availability, then calls group by group, then own calls)."""
        entries = self.availability_entries()
        records = arrival_records(self.sc, *self.keys)
        self.draw_states(records)
        entries += [(rec.arrival, ARRIVAL, rec) for rec in records]
        entries += self.own_call_entries()
        times = np.fromiter((e[0] for e in entries), dtype=np.float64, count=len(entries))
        return [entries[i] for i in np.argsort(times, kind="stable").tolist()]

    def draw_states(self, records: list[CallRecord]) -> None:
        """The keys the answer and delay draws of each pilot call share (purpose, seed,
        replication, traffic, call), hashed for all calls at once (``prefixes``): a ring
        then finishes two draws, not four hashes and two draws. And the callers' numbers
        (``caller_number``), made in bulk too."""
        sizes = [0] * len(self.sc.traffic)
        for rec in records:  # group by group, the k-th call of a traffic has keys (g, k)
            sizes[rec.keys[0]] += 1
        for g, n in enumerate(sizes):
            calls = np.arange(n, dtype=np.int64)
            native = self.native_draws
            self.answer_states.append(prefixes(g, calls, state=self.answer_key, signed=native))
            self.delay_states.append(prefixes(g, calls, state=self.delay_key, signed=native))
            self.callers.append(caller_numbers(g, calls))

    def availability_entries(self) -> list[Entry]:
        entries: list[Entry] = []
        for (group, member), intervals in self.joined_intervals().items():
            if self.sc.behaviours[member].joined is None:
                continue
            configured = self.core.store.joined_since(group, member) is not None
            at_start = any(s <= 0.0 < e for s, e in intervals)
            if configured != at_start:
                entries.append((0.0, JOIN if at_start else LEAVE, (group, member)))
            for start, end in intervals:
                if start > 0.0:
                    entries.append((start, JOIN, (group, member)))
                if end < math.inf:
                    entries.append((end, LEAVE, (group, member)))
        return entries

    def own_call_entries(self) -> list[Entry]:
        entries: list[Entry] = []
        for member in self.members:
            b = self.sc.behaviours[member]
            entries += self._own_calls(member, b.direct_calls, DIRECT)
            entries += self._own_calls(member, b.outgoing_calls, OUTGOING)
        return entries

    def _own_calls(self, member: str, load: ResolvedLoad | None, purpose: int) -> list[Entry]:
        if load is None:
            return []
        mi = self.member_index[member]
        draws = own_call_draws(self.sc, member, load, purpose, self.replication)
        if purpose == DIRECT:
            return [
                (t, DIRECT_CALL, (direct_record(member, mi, k, t, talk), member))
                for k, (t, talk) in enumerate(draws)
            ]
        return [
            (t, OUTGOING_CALL, (f"out:{member}#{k + 1}", member, talk))
            for k, (t, talk) in enumerate(draws)
        ]

    # ----------------------------------------------------------------- loop
    def run(self) -> RunResult:
        """The loop: the earliest of the next scheduled entry (known before the run, or
        scheduled during it: the former first at the same instant, as they were
        scheduled first) and the core's next timer; an entry strictly before the timer
        runs first.

        The core is asked for its next timer (``get_timer``, which drops the timers no
        longer valid first) only when that could change what runs next: after the core
        was fed, the head of its timer heap is a lower bound of the answer (a timer
        cancelled meanwhile stays in the heap until it comes due), and an entry strictly
        before that bound runs without asking."""
        ahead = self.schedule()
        count = len(ahead)
        self.seq = count
        core, heap, end, inf = self.core, self.heap, self.end, math.inf
        timers = core.timer_entries()  # its head: a lower bound of get_timer, read without a call
        progress, duration = self.progress, self.sc.duration
        i = 0
        events = 0
        self.fed = True
        due = inf  # when the core's next timer is due, or a lower bound of it
        exact = False  # due is the core's own answer, not a bound
        while True:
            if self.fed:
                self.fed = False
                due = timers[0][0] if timers else inf
                exact = False
            entry: Entry | None = None
            if i < count:
                entry = ahead[i]
                when = entry[0]
                if heap and heap[0][0] < when:
                    when = heap[0][0]
                    entry = None
            elif heap:
                when = heap[0][0]
            else:
                when = inf
            if when >= due and not exact:
                timer = core.get_timer()
                due = inf if timer is None else timer
                exact = True
            if when < due:
                if when > end:
                    break
                self.now = when
                if entry is None:  # the run's own, the most frequent first
                    _, _, kind, payload = heappop(heap)
                    if kind == REACTION:
                        self.on_reaction(payload)
                    elif kind == TALK_END:
                        self.on_talk_end(payload)
                    elif kind == GIVE_UP:
                        self.on_give_up(payload)
                    else:
                        self.on_outgoing_end(payload)
                else:
                    i += 1
                    kind, payload = entry[1], entry[2]
                    if kind == ARRIVAL:
                        self.on_arrival(payload)
                    elif kind == JOIN:
                        self.on_join(payload)
                    elif kind == LEAVE:
                        self.on_leave(payload)
                    elif kind == DIRECT_CALL:
                        self.on_direct_call(payload)
                    else:
                        self.on_outgoing_call(payload)
            elif due < inf:
                if due > end:
                    break
                self.now = due
                self.apply(core.handle_timer(now=due))
                self.fed = True
            else:
                break
            events += 1
            if not events & 4095 and progress is not None:
                progress(min(1.0, self.now / duration))
        self.events = events
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
        self.fed = True
        self.apply(self.core.handle(event, now=self.now))

    def hang_up(self, call_id: str) -> None:
        """``feed(CallHungUp(call_id))``, without the event object."""
        self.fed = True
        self.apply(self.core.handle_call_hung_up(call_id, now=self.now))

    # --------------------------------------------------------------- events
    def on_arrival(self, rec: CallRecord) -> None:
        self.calls[rec.call] = rec
        self.group_calls.append(rec)
        if rec.patience is not None:
            seq = self.seq
            self.seq = seq + 1
            heappush(self.heap, (self.now + rec.patience, seq, GIVE_UP, rec))
        g, k = rec.keys  # a pilot call: its caller's number was made before the run
        self.fed = True  # handle(CallArrived(...)), without the event object
        caller = self.callers[g][k]
        self.apply(self.core.handle_call_arrived(rec.call, rec.group or "", caller, now=self.now))

    def on_reaction(self, item: tuple[CallRecord, str, Offer, bool]) -> None:
        rec, member, offer, answers = item
        if self.pending.get((rec.call, member)) is not offer:
            return  # the offer ended before the member reacted
        if answers:
            self.fed = True  # handle(MemberAnswered(...))
            self.apply(self.core.handle_member_answered(rec.call, member, now=self.now))
        else:
            del self.pending[(rec.call, member)]
            offer.outcome = "declined"
            self.feed(MemberFailed(rec.call, member, 603))

    def on_talk_end(self, rec: CallRecord) -> None:
        if rec.group is None and rec.answered_by is not None and rec.answered_at is not None:
            self.own_calls.append(("direct", rec.answered_by, rec.answered_at, self.now))
        if rec.outcome is None:  # _close(rec, "answered"), written out
            rec.outcome, rec.ended_at, rec.forwarded_to = "answered", self.now, None
        self.fed = True  # hang_up, written out
        self.apply(self.core.handle_call_hung_up(rec.call, now=self.now))

    def on_give_up(self, first: CallRecord) -> None:
        rec = self.calls[first.call]  # where the call is now (it may have been forwarded)
        if rec.outcome is None and rec.answered_at is None:
            self._close(rec, "abandoned")
            self.hang_up(rec.call)

    def on_join(self, item: tuple[str, str]) -> None:
        self.feed(MemberJoined(*item))

    def on_leave(self, item: tuple[str, str]) -> None:
        self.feed(MemberLeft(*item))

    def on_direct_call(self, item: tuple[CallRecord, str]) -> None:
        rec, member = item
        self.calls[rec.call] = rec
        self.feed(DirectCallArrived(rec.call, member, caller_number(rec)))

    def on_outgoing_call(self, item: tuple[str, str, float]) -> None:
        call_id, member, talk = item
        store = self.core.store
        if store.is_on_call(member) or store.is_ringing(member):
            self.outgoing_skipped += 1  # a person on a call does not dial another
            return
        self.feed(OutgoingCallStarted(call_id, member))
        self.feed(CallAnswered(call_id))
        self.push(self.now + talk, OUTGOING_END, (call_id, member, self.now))

    def on_outgoing_end(self, item: tuple[str, str, float]) -> None:
        call_id, member, start = item
        self.own_calls.append(("outgoing", member, start, self.now))
        self.hang_up(call_id)

    def _adopt(self, rec: CallRecord, group: str) -> None:
        """A call reached a group other than by its pilot: a direct call the core hunts to
        it (``hunt_direct_calls``), or a forward. From then on its queue is followed too."""
        rec.group = group
        self.group_calls.append(rec)
        if group not in self.queue_len:  # nobody waited there before this call came
            self.tracked.append(group)
            self.queue_len[group] = 0
            self.queue_series[group] = [(0.0, 0)]
        self.store.changed.add(group)  # its queue is looked at after this input

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
        for a in actions:  # the most frequent first
            if type(a) is Ring:
                self._ring(a.call_id, a.member, a.group, a.timeout)
            elif type(a) is Ringback:
                pass  # the caller hears ringing: nothing to play
            elif type(a) is Bridge:
                rec = self.calls[a.call_id]
                offer = self.pending.pop((a.call_id, a.member), None)
                if offer is not None:
                    offer.outcome = "answered"
                rec.answered_by = a.member
                rec.answered_at = now
                seq = self.seq
                self.seq = seq + 1
                heappush(self.heap, (now + rec.talk_planned, seq, TALK_END, rec))
            elif type(a) is Cancel:
                offer = self.pending.pop((a.call_id, a.member), None)
                if offer is not None:
                    timed_out = now >= offer.at + offer.timeout - 1e-9
                    offer.outcome = "no_answer" if timed_out else "cancelled"
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
            elif type(a) is RingAll:
                for member in a.members:
                    self._ring(a.call_id, member, a.group, a.timeout)
        store = self.store
        changed = store.changed
        if changed:
            queue_len, length = self.queue_len, store.length
            for g in changed:
                last = queue_len.get(g)
                if last is not None:
                    n = length(g)
                    if n != last:
                        queue_len[g] = n
                        self.queue_series[g].append((now, n))
            changed.clear()

    def _ring(self, call_id: str, member: str, group: str | None, timeout: float) -> None:
        """A ``Ring`` of ``member`` (or its part of a ``RingAll``)."""
        rec = self.calls[call_id]
        if rec.group is None and group is not None:
            self._adopt(rec, group)
        offer = Offer(member, self.now, timeout)
        offers = rec.offers
        attempt = sum(1 for o in offers if o.member == member) if offers else 0
        earlier = rec.previous
        while earlier is not None:  # offers of the same call before a forward count too
            attempt += sum(1 for o in earlier.offers if o.member == member)
            earlier = earlier.previous
        offers.append(offer)
        self.pending[(rec.call, member)] = offer
        b = self.behaviour[member]
        g, k = rec.keys
        if g >= 0:  # a pilot call: its states were hashed before the run
            answer_state, delay_state = self.answer_states[g][k], self.delay_states[g][k]
        else:  # a direct call (keys of the line)
            answer_state = prefix(g, k, state=self.answer_key)
            delay_state = prefix(g, k, state=self.delay_key)
            if self.native_draws:
                answer_state, delay_state = signed(answer_state), signed(delay_state)
        if self.native_draws:  # the same numbers, in native integers (compiled)
            answers = uniform_after_native(answer_state, b.index, attempt) < b.answer_probability
        else:
            answers = uniform_after(answer_state, b.index, attempt) < b.answer_probability
        if not answers and not b.declines:
            return  # lets it ring until the core's no-answer timeout
        if self.native_draws:
            delay = b.delay(uniform_after_native(delay_state, b.index, attempt))
        else:
            delay = b.delay(uniform_after(delay_state, b.index, attempt))
        if delay < timeout:
            seq = self.seq
            self.seq = seq + 1
            heappush(self.heap, (self.now + delay, seq, REACTION, (rec, member, offer, answers)))


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
        name, at, talk = traffic.group, times.tolist(), talks.tolist()
        waits = [None] * n if patience is None else patience.tolist()
        records += [
            CallRecord(f"{name}#{k + 1}", name, "pilot", at[k], talk[k], waits[k], (gi, k))
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


def caller_number(rec: CallRecord) -> str:
    """The number a simulated call comes from (the driver makes those of the pilot calls
    in bulk, ``_Run.draw_states``: the same strings)."""
    return caller_number_of(*rec.keys)


def run_replication(
    scenario: Scenario, replication: int, *, progress: Progress | None = None
) -> RunResult:
    """Simulate one replication of ``scenario`` through a fresh RoutingCore.

    The cyclic garbage collector is off meanwhile (as it was before, after): a
    replication makes no cyclic garbage (every object it makes lives until it
    returns or is freed by its count), so the collections would only walk the
    records it keeps, ever more of them as the run goes on.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _Run(scenario, replication, progress).run()
    finally:
        if enabled:
            gc.enable()
