"""The fused path of a decision (``hunting.ring_first``) against the general path.

A new call that finds a free member and nobody waiting, one member at a time, takes
the fused path (issue 14); ``RoutingCore.quick = False`` sends it through the
general path's steps instead. Two cores, one of each, are driven by the same random
scenario (the events of ``test_core_properties``, one or two groups sharing
members, every algorithm and the options a decision reads): after every step they
must have returned the same actions and hold the same state (calls, hunts and
their walks, timers, the store, the indexes of free members). Half the examples feed
the quick core a call's arrival, answer and hang-up through the core's direct inputs
(``RoutingCore.handle_call_arrived`` and the others, the simulator's), the general
core through ``handle``: the same actions and state again.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huntgroup.config.models import ALGORITHMS
from huntgroup.distribution.walks import LeastWalk, RotatedWalk
from huntgroup.queue import hunting
from huntgroup.queue.actions import Action, Forward, Reroute, Ring
from huntgroup.queue.core import CallState, RoutingCore
from huntgroup.queue.endings import finish
from huntgroup.queue.events import (
    CallAnswered,
    CallArrived,
    CallHungUp,
    CallTransferred,
    Event,
    LineActivity,
    MemberAnswered,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberPaused,
    MemberReachable,
    MemberUnreachable,
    OutgoingCallStarted,
)
from huntgroup.queue.state.store import MemoryStore
from tests.queue.test_core_properties import script_step
from tests.support.core_harness import LINES, Harness, m, make_config


def _walk_state(walk: object) -> object:
    if isinstance(walk, RotatedWalk):
        return ("rotated", id(walk.index), walk.start, walk.done)
    if isinstance(walk, LeastWalk):
        return ("least", id(walk.index), walk.t0, walk.cursor, walk.done, walk.log_start)
    return walk


def _indexes(core: RoutingCore) -> dict[str, Any]:
    out = {}
    for name, (_, index) in core.roster._indexes.items():
        out[name] = (
            list(index.free),
            bytes(index.flags),
            bytes(index.available),
            index.n_available,
            dict(index.entries),
            list(index.by_talk),
            set(index.live),
            list(index.log),
        )
    return out


def state(core: RoutingCore) -> Any:
    """What the core holds, walks by their position (not their identity)."""
    calls = []
    for call in core._calls.values():
        hunt = call.hunt
        h = (
            None
            if hunt is None
            else (
                hunt.strategy,
                hunt.started_at,
                hunt.passes,
                hunt.pass_started_at,
                hunt.offers_in_pass,
                _walk_state(hunt._walk),
            )
        )
        fields = (
            call.id,
            call.kind,
            call.state,
            call.arrival,
            call.rank,
            call.caller,
            call.route,
            call.caller_internal,
            call.group,
            call.offers,
            call.claiming,
            call.member,
            call.connected_at,
            call.holding,
            call.pass_token,
        )
        calls.append((fields, h))
    store = core.store
    assert isinstance(store, MemoryStore)
    # the store's attributes by name (a native class of the compiled build has no __dict__)
    names = ("_joined", "_talk", "_pointer", "_activity", "_queues", "_paused", "_bulk")
    store_state = {k: getattr(store, k) for k in names}
    if hasattr(store, "__dict__"):  # interpreted: every attribute, none forgotten above
        assert set(vars(store)) == {*names, "_touched"}
    return (
        calls,
        sorted(core._timers),
        repr(store_state),
        _indexes(core),
        {k: v for k, v in core.roster._wake.items()},
        sorted(core.roster._parked),
    )


def _index_ids_free(st_: Any) -> Any:
    """The walks name their index by ``id``: the two cores' differ, drop them."""
    calls, *rest = st_
    fixed = []
    for fields, h in calls:
        if h is not None and isinstance(h[-1], tuple):
            h = (*h[:-1], (h[-1][0], *h[-1][2:]))
        fixed.append((fields, h))
    return (fixed, *rest)


def direct(core: RoutingCore, event: Event, now: float) -> list[Action]:
    """``core.handle(event, now=now)``, through the core's direct input when the event
    has one (``handle_call_arrived``, ``handle_member_answered``, ``handle_call_hung_up``:
    the simulator's)."""
    if type(event) is CallArrived and not event.caller_name and not event.caller_internal:
        return core.handle_call_arrived(event.call_id, event.group, event.caller, now=now)
    if type(event) is MemberAnswered:
        return core.handle_member_answered(event.call_id, event.member, now=now)
    if type(event) is CallHungUp:
        return core.handle_call_hung_up(event.call_id, now=now)
    return core.handle(event, now=now)


class Pair:
    """The same events to a quick core and a general one; both must agree. ``direct``:
    the quick core takes the events that have one through its direct input."""

    def __init__(self, cfg: Any, direct: bool = False) -> None:
        self.quick, self.general = Harness(cfg), Harness(cfg)
        self.general.core.quick = False
        self.taken = 0
        self.direct = direct

    def check(self, a: list[Action], b: list[Action]) -> list[Action]:
        assert a == b
        assert _index_ids_free(state(self.quick.core)) == _index_ids_free(state(self.general.core))
        return a

    def ev(self, event: Event) -> list[Action]:
        if self.direct:
            quick = self.quick._record(direct(self.quick.core, event, self.quick.now))
            return self.check(quick, self.general.ev(event))
        return self.check(self.quick.ev(event), self.general.ev(event))

    def at(self, t: float) -> list[Action]:
        return self.check(self.quick.at(t), self.general.at(t))


long_scripts = st.lists(script_step, min_size=30, max_size=90)
"""Longer than ``test_core_properties``' scripts: time moves on between a call's
arrival, its answer and its hang-up in nearly every example (the direct inputs must
take the time from their own ``now``)."""


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    algorithm=st.sampled_from(ALGORITHMS),
    members=st.integers(1, 4),
    second=st.booleans(),
    max_length=st.integers(0, 3),
    max_wait=st.one_of(st.none(), st.floats(5, 120)),
    after=st.one_of(st.none(), st.floats(5, 60)),
    wrap_up=st.sampled_from([0, 0, 5, 30]),
    call_waiting=st.booleans(),
    pilot_caller=st.booleans(),
    timeout=st.sampled_from([3, 15]),
    when_empty=st.sampled_from(["wait", "overflow"]),
    script=long_scripts,
    direct_inputs=st.booleans(),
)
def test_the_fused_path_does_what_the_general_path_does(
    algorithm: str,
    members: int,
    second: bool,
    max_length: int,
    max_wait: float | None,
    after: float | None,
    wrap_up: float,
    call_waiting: bool,
    pilot_caller: bool,
    timeout: float,
    when_empty: str,
    script: list[tuple[str, int, float]],
    direct_inputs: bool,
) -> None:
    groups = None
    if second:  # a second group sharing the members, in the other order
        groups = [
            {
                "name": "H",
                "pilot": "0140000001",
                "algorithm": "least_active" if algorithm != "least_active" else "linear",
                "members": [{"line": LINES[i], "position": members - i} for i in range(members)],
            }
        ]
    cfg = make_config(
        algorithm,
        members=members,
        groups=groups,
        wrap_up=wrap_up,
        call_waiting=call_waiting,
        no_answer_timeout=timeout,
        pilot_as_caller_id=pilot_caller,
        no_answer={"after": after, "forward_to": "0699999998" if after else None},
        queue={"max_length": max_length, "max_wait": max_wait, "when_empty": when_empty},
    )
    pair = Pair(cfg, direct_inputs)
    core = pair.quick.core
    keys = LINES[:members]
    calls: list[str] = []
    outgoing: list[str] = []
    for n, (op, pick, dt) in enumerate(script):
        pair.at(pair.quick.now + dt)
        live = [c for c in calls if core.call_state(c) is not None]
        if op == "arrive":
            cid = f"c{n}"
            calls.append(cid)
            group = "H" if second and pick % 3 == 0 else "G"
            pair.ev(CallArrived(cid, group, "0611111111"))
        elif op in ("answer", "decline", "unreachable"):
            offered = [(c, mem) for c in live for mem in core.offers_of(c)]
            if offered:
                c, mem = offered[pick % len(offered)]
                event: Event = {
                    "answer": MemberAnswered(c, mem),
                    "decline": MemberFailed(c, mem, 603),
                    "unreachable": MemberUnreachable(c, mem),
                }[op]
                pair.ev(event)
        elif op == "hangup":
            pool = live + [o for o in outgoing if core.call_state(o) is not None]
            if pool:
                pair.ev(CallHungUp(pool[pick % len(pool)]))
        elif op in ("join", "leave"):
            mem = keys[pick % len(keys)]
            if pick % 5 == 0:  # a pause instead, now and then
                pair.ev(MemberPaused("G", mem, op == "leave"))
            else:
                pair.ev((MemberJoined if op == "join" else MemberLeft)("G", mem))
        elif op in ("contact", "no_contact"):
            pair.ev(MemberReachable(keys[pick % len(keys)], op == "contact"))
        elif op in ("own_call", "idle"):
            pair.ev(LineActivity(keys[pick % len(keys)], op == "own_call"))
        elif op == "out":
            oid = f"o{len(outgoing)}"
            outgoing.append(oid)
            pair.ev(OutgoingCallStarted(oid, keys[pick % len(keys)]))
            pair.ev(CallAnswered(oid))
        elif op == "transfer":
            connected = [c for c in live if core.call_state(c) is CallState.CONNECTED]
            if connected:
                c = connected[pick % len(connected)]
                target = ("0140000000", LINES[pick % len(LINES)], "0699999999")[pick % 3]
                member = next(x for x in LINES if c in core.store.active_calls(x))
                pair.ev(CallTransferred(c, member, target))
    for c in calls + outgoing:
        if core.call_state(c) is not None:
            pair.ev(CallHungUp(c))
    pair.at(pair.quick.now + 10_000)


@pytest.mark.native_incompatible  # patches arrivals.ring_first: no effect compiled
def test_the_usual_decision_takes_the_fused_path(monkeypatch: Any) -> None:
    taken: list[str] = []
    real = hunting.ring_first

    def counted(core: Any, call_id: str, *args: Any) -> None:
        taken.append(call_id)
        real(core, call_id, *args)

    import huntgroup.queue.arrivals as arrivals

    monkeypatch.setattr(arrivals, "ring_first", counted)
    h = Harness(make_config("linear", 2))
    h.ev(CallArrived("c1", "G", "0600000001"), at=1.0)
    h.ev(CallArrived("c2", "G", "0600000002"), at=1.0)
    h.ev(CallArrived("c3", "G", "0600000003"), at=1.0)  # nobody free: queued
    assert taken == ["c1", "c2"]
    assert [(a.call_id, a.member) for a in h.of(Ring)] == [("c1", m(1)), ("c2", m(2))]
    general = Harness(make_config("linear", 2))
    general.core.quick = False
    for cid, caller in (("c1", "0600000001"), ("c2", "0600000002"), ("c3", "0600000003")):
        general.ev(CallArrived(cid, "G", caller), at=1.0)
    assert general.log == h.log


def test_a_member_the_index_still_shows_free_is_passed_as_the_general_path_does() -> None:
    """Two cores on one memory store (as two nodes would be, without their own touched
    sets): the other one rings member 1 and takes the store's news of it, so this
    core's index still shows member 1 free. The check of the fused path finds it
    ringing and the walk goes on to member 2, as the general path's ``take``."""
    results = []
    for quick in (True, False):
        store = MemoryStore()
        cfg = make_config("circular", 3)
        mine = RoutingCore(cfg, now=0.0, store=store)
        mine.quick = quick
        other = RoutingCore(cfg, now=0.0, store=store)
        mine.handle(CallArrived("warm", "G", "0600000009"), now=0.5)  # its index is built
        mine.handle(CallHungUp("warm"), now=0.5)
        other.handle(CallArrived("x", "G", "0600000008"), now=1.0)  # rings member 1
        assert store.is_ringing(m(1))
        actions = mine.handle(CallArrived("c1", "G", "0600000001"), now=2.0)
        results.append((actions, _index_ids_free(state(mine))))
    assert [(a.member) for a in results[0][0] if isinstance(a, Ring)] == [m(2)]
    assert results[0] == results[1]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("wrap_up", [0, 5])
def test_a_call_through_the_direct_inputs_is_handle_of_its_events(
    algorithm: str, wrap_up: float
) -> None:
    """A call's arrival, its answer and its hang-up, each later than anything before it
    with no timer due in between (so the core learns the time from the input itself),
    through the core's direct inputs and through ``handle``: the same actions and the
    same state (the call's arrival, its ``connected_at``, the wrap-up's end and timer,
    the members' talk time) after each. A second call queued behind the first is served
    at its hang-up."""
    cfg = make_config(algorithm, members=1, wrap_up=wrap_up, no_answer_timeout=15)
    pair = Pair(cfg, direct=True)
    quick, general = pair.quick.core, pair.general.core
    pair.at(2.0)
    pair.ev(CallArrived("c1", "G", "0611111111"))
    assert quick.call_state("c1") is CallState.HUNTING
    pair.at(4.5)
    pair.ev(CallArrived("c2", "G", "0622222222"))
    assert quick.call_state("c2") is CallState.QUEUED
    pair.at(9.25)  # before the offer's timeout (2 + 15): no timer runs on the way
    (member,) = quick.offers_of("c1")
    assert pair.ev(MemberAnswered("c1", member))
    assert quick._calls["c1"].connected_at == general._calls["c1"].connected_at == 9.25
    pair.at(40.5)
    pair.ev(CallHungUp("c1"))
    assert sorted(quick._timers) == sorted(general._timers)
    if wrap_up:
        assert quick.store.wrap_up_until(member) == 45.5
    else:
        assert quick.offers_of("c2") == [member]
    pair.at(41.0)
    pair.ev(CallHungUp("c2"))
    pair.at(10_000)
    assert pair.quick.log == pair.general.log


@pytest.mark.native_incompatible  # monkeypatches outcomes.dispatch: no effect in a compiled caller
@pytest.mark.parametrize("input_", ["answer", "hang-up"])
def test_the_direct_inputs_follow_a_forward_to_our_own_number_as_handle_does(
    monkeypatch: Any, input_: str
) -> None:
    """An answer or a hang-up serves the queues of the member's groups (``dispatch``),
    which hands a queued call to a member the roster shows free: it rings, and no
    forward can come of it while the roster's index is exact. Should a call nonetheless
    leave for one of our own numbers there, the direct inputs follow it within the
    input, as ``handle`` does: here ``dispatch`` is made to forward the waiting call to
    the second group's pilot, and both paths must give the same actions and state."""
    import huntgroup.queue.outcomes as outcomes

    real = outcomes.dispatch

    def forwarding(core: Any, actions: list[Action], groups: Any) -> None:
        call = core._calls.get("c2")
        if call is not None and call.state is CallState.QUEUED:
            finish(core, call, Forward("c2", "0140000001", "empty"), actions)
        real(core, actions, groups)

    monkeypatch.setattr(outcomes, "dispatch", forwarding)
    second = {
        "name": "H",
        "pilot": "0140000001",
        "algorithm": "linear",
        "members": [{"line": LINES[1], "position": 1}],
    }
    pair = Pair(make_config("linear", members=1, groups=[second]), direct=True)
    pair.at(1.0)
    pair.ev(CallArrived("c1", "G", "0611111111"))
    pair.ev(CallArrived("c2", "G", "0622222222"))
    assert pair.quick.core.call_state("c2") is CallState.QUEUED
    pair.at(2.0)
    if input_ == "answer":
        out = pair.ev(MemberAnswered("c1", LINES[0]))
    else:
        out = pair.ev(CallHungUp("c1"))
    assert any(isinstance(a, Reroute) for a in out)
    assert any(isinstance(a, Ring) and a.call_id == "c2" and a.member == LINES[1] for a in out)
    assert pair.quick.log == pair.general.log
