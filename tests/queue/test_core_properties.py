"""Property tests of the group core over random event sequences (hypothesis).

A random scenario drives one core with arrivals, answers, refusals, hang-ups,
joins, leaves, outgoing calls, lines losing and regaining their contact and
calls of a phone's own at random times; an observer rebuilds what the
driver would see from the actions alone and checks the invariants of
DESIGN.md after every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huntgroup.config.models import ALGORITHMS
from huntgroup.queue.actions import (
    Action,
    Bridge,
    Cancel,
    Forward,
    Hold,
    Release,
    Reroute,
    Ring,
)
from huntgroup.queue.availability import MemberState
from huntgroup.queue.core import CallState
from huntgroup.queue.events import (
    CallAnswered,
    CallArrived,
    CallHungUp,
    CallTransferred,
    LineActivity,
    MemberAnswered,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberReachable,
    MemberUnreachable,
    OutgoingCallStarted,
)
from tests.support.core_harness import LINES, Harness, make_config

EPS = 1e-9


@dataclass
class Observer:
    max_length: int
    max_wait: float | None
    call_waiting: bool
    ringing: dict[str, set[str]] = field(default_factory=dict)  # member -> calls
    ended: set[str] = field(default_factory=set)
    arrival: dict[str, float] = field(default_factory=dict)
    connected: set[str] = field(default_factory=set)
    hunted: set[str] = field(default_factory=set)
    was_queued: set[str] = field(default_factory=set)

    def apply(self, actions: list[Action], core_queue: list[str]) -> None:
        queued_before = list(core_queue)
        for a in actions:
            match a:
                case Ring(call, member, _, _, _):
                    assert call not in self.ended, f"ring for ended call {call}"
                    calls = self.ringing.setdefault(member, set())
                    calls.add(call)
                    assert len(calls) == 1, f"{member} rings for {calls}"
                    if call in self.was_queued and call not in self.hunted:
                        # FIFO: nobody who arrived earlier still waits
                        for other in queued_before:
                            if other != call:
                                assert self.arrival[other] >= self.arrival[call]
                    self.hunted.add(call)
                    if call in queued_before:  # it left the queue within this step
                        queued_before.remove(call)
                case Cancel(call, member):
                    self.ringing.get(member, set()).discard(call)
                case Bridge(call, member):
                    assert call not in self.ended
                    self.ringing.get(member, set()).discard(call)
                    self.connected.add(call)
                case Release(call) | Forward(call):
                    assert call not in self.ended, f"{call} ended twice"
                    assert call not in self.connected
                    self.ended.add(call)
                    if call in queued_before:
                        queued_before.remove(call)
                case Hold(call):
                    self.was_queued.add(call)
                case Reroute(call, _, "transfer"):  # the call starts again at the target
                    assert call not in self.ended
                    self.connected.discard(call)
                    self.hunted.discard(call)
                    self.was_queued.discard(call)

    def hung_up(self, call: str) -> None:
        assert call not in self.ended, f"{call} ended twice"
        self.ended.add(call)
        for calls in self.ringing.values():
            calls.discard(call)


script_step = st.tuples(
    st.sampled_from(
        [
            "arrive",
            "answer",
            "decline",
            "unreachable",
            "hangup",
            "join",
            "leave",
            "out",
            "contact",
            "no_contact",
            "own_call",
            "idle",
            "transfer",
        ]
    ),
    st.integers(0, 10_000),
    st.floats(0, 40),
)
"""One step of a script: what happens, a pick among the candidates, the seconds before it."""

ops = st.lists(script_step, max_size=60)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    algorithm=st.sampled_from(ALGORITHMS),
    members=st.integers(1, 4),
    max_length=st.integers(0, 3),
    max_wait=st.one_of(st.none(), st.floats(5, 120)),
    wrap_up=st.sampled_from([0, 0, 5, 30]),
    call_waiting=st.booleans(),
    timeout=st.sampled_from([3, 15]),
    when_empty=st.sampled_from(["wait", "overflow"]),
    script=ops,
)
def test_invariants_hold_under_random_events(
    algorithm: str,
    members: int,
    max_length: int,
    max_wait: float | None,
    wrap_up: float,
    call_waiting: bool,
    timeout: float,
    when_empty: str,
    script: list[tuple[str, int, float]],
) -> None:
    cfg = make_config(
        algorithm,
        members=members,
        wrap_up=wrap_up,
        call_waiting=call_waiting,
        no_answer_timeout=timeout,
        queue={"max_length": max_length, "max_wait": max_wait, "when_empty": when_empty},
    )
    h = Harness(cfg)
    obs = Observer(max_length, max_wait, call_waiting)
    keys = LINES[:members]
    calls: list[str] = []
    outgoing: list[str] = []
    n = 0

    def step(actions: list[Action], before: list[str]) -> None:
        obs.apply(actions, before)
        for a in actions:
            if isinstance(a, Ring):  # nobody unavailable, or busy on its own calls, rings
                offerable = h.core.availability.offerable
                assert offerable(a.member, now=h.now, call_waiting=call_waiting), a
            if isinstance(a, Hold):
                assert max_length > 0, "max_length 0: nobody is held"

    for op, pick, dt in script:
        before = h.core.queue("G")
        timed = h.at(h.now + dt)
        step(timed, before)
        live = [c for c in calls if c not in obs.ended]
        before = h.core.queue("G")
        if op == "arrive":
            n += 1
            cid = f"c{n}"
            calls.append(cid)
            obs.arrival[cid] = h.now
            step(h.ev(CallArrived(cid, "G", "0611111111")), before)
        elif op in ("answer", "decline", "unreachable"):
            offered = [(c, mem) for c in live for mem in h.core.offers_of(c)]
            if offered:
                c, mem = offered[pick % len(offered)]
                event = {
                    "answer": MemberAnswered(c, mem),
                    "decline": MemberFailed(c, mem, 603),
                    "unreachable": MemberUnreachable(c, mem),
                }[op]
                if op != "answer":
                    obs.ringing[mem].discard(c)  # the member's leg ended with its refusal
                step(h.ev(event), before)
        elif op == "hangup":
            pool = live + [o for o in outgoing if h.core.call_state(o) is not None]
            if pool:
                c = pool[pick % len(pool)]
                step(h.ev(CallHungUp(c)), before)
                if c in live:
                    obs.hung_up(c)
        elif op in ("join", "leave"):
            mem = keys[pick % len(keys)]
            cls = MemberJoined if op == "join" else MemberLeft
            step(h.ev(cls("G", mem)), before)
        elif op in ("contact", "no_contact"):
            mem = keys[pick % len(keys)]
            step(h.ev(MemberReachable(mem, op == "contact")), before)
        elif op in ("own_call", "idle"):
            mem = keys[pick % len(keys)]
            step(h.ev(LineActivity(mem, op == "own_call")), before)
        elif op == "out":
            mem = keys[pick % len(keys)]
            oid = f"o{len(outgoing)}"
            outgoing.append(oid)
            step(h.ev(OutgoingCallStarted(oid, mem)), before)
            step(h.ev(CallAnswered(oid)), before)
        elif op == "transfer":  # a member sends its call back to the group, a line, or out
            connected = [c for c in live if h.core.call_state(c) is CallState.CONNECTED]
            if connected:
                c = connected[pick % len(connected)]
                target = ("0140000000", LINES[pick % len(LINES)], "0699999999")[pick % 3]
                member = next(m for m in LINES if c in h.core.store.active_calls(m))
                obs.arrival[c] = h.now  # FIFO by the time of the transfer
                obs.connected.discard(c)  # its member's part is over
                step(h.ev(CallTransferred(c, member, target)), before)

        # --- invariants after every step ---
        queued = h.core.queue("G")
        fresh = [c for c in queued if c not in obs.hunted]
        assert len(fresh) <= max_length, "the queue holds more callers than max_length"
        for c in calls:
            state = h.core.call_state(c)
            if c in obs.ended:
                assert state is None, f"{c} ended but still in the core"
            if state in (CallState.QUEUED, CallState.HUNTING) and max_wait is not None:
                assert h.now - obs.arrival[c] <= max_wait + EPS, f"{c} waits past max_wait"
            if state is not None and c not in obs.ended:
                assert (c in obs.connected) == (state is CallState.CONNECTED)
        for mem, ringing in obs.ringing.items():
            assert set(ringing) == {c for c in calls if mem in h.core.offers_of(c)}
        states = h.core.member_states("G", now=h.now).values()
        if when_empty == "overflow" and all(
            s in (MemberState.LOGGED_OUT, MemberState.UNAVAILABLE) for s in states
        ):
            assert queued == [], "an empty group with when_empty: overflow holds callers"

    # Everyone hangs up: every call ends exactly once and nothing is left behind.
    for c in calls:
        if c not in obs.ended:
            step(h.ev(CallHungUp(c)), h.core.queue("G"))
            obs.hung_up(c)
    for o in outgoing:
        h.ev(CallHungUp(o))
    assert h.core.call_ids() == []
    assert h.core.queue("G") == []
    h.at(h.now + 10_000)
    assert h.core.get_timer() is None
    assert all(not calls for calls in obs.ringing.values())
