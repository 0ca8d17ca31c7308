"""The incremental decisions make exactly the decisions of the full scans (hypothesis).

A random script of state changes (arrivals, answers, refusals, hang-ups, joins,
leaves, pauses, outgoing calls, contacts lost and found, calls of a phone's
own, transfers, claims granted and refused, reloads) drives the core twice:
once with the decisions of :mod:`tests.support.reference_routing` (every
decision scans the group, a pass walks the strategy's full order) and once
as it is (the index of free members, :mod:`huntgroup.queue.roster`). Both
must produce the same actions at the same times, for the five algorithms.
A second group shares members with the first, so that a member's changes
reach two indexes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huntgroup.config.models import ALGORITHMS, MemberConfig, QueueConfig
from huntgroup.distribution.index import talk_at
from huntgroup.queue.actions import Action
from huntgroup.queue.core import CallState, RoutingCore
from huntgroup.queue.events import (
    CallAnswered,
    CallArrived,
    CallHungUp,
    CallTransferred,
    ClaimGranted,
    ClaimRefused,
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
from huntgroup.queue.offers import GroupView, free_predicate
from huntgroup.queue.state.journal import JournalingStore
from huntgroup.queue.state.operations import AddTalk, Snapshot
from tests.support import reference_routing as reference
from tests.support.core_harness import LINES, Harness, make_config, with_members
from tests.support.reference_routing import reference_decisions

OVERFLOW = QueueConfig(when_empty="overflow")

OPS = [
    "arrive",
    "arrive",
    "arrive_h",
    "answer",
    "answer",
    "decline",
    "unreachable",
    "hangup",
    "hangup",
    "join",
    "leave",
    "pause",
    "unpause",
    "out",
    "dial",
    "far_answer",
    "contact",
    "no_contact",
    "own_call",
    "idle",
    "transfer",
    "grant",
    "refuse",
    "reload",
]

script_st = st.lists(
    st.tuples(
        st.sampled_from(OPS), st.integers(0, 10_000), st.sampled_from([0, 0, 0.5, 1, 3, 7, 20])
    ),
    min_size=5,
    max_size=80,
)


def check_roster(core: RoutingCore) -> None:
    """Every index the roster built says what the full scans say, at the core's ``now``."""
    core.roster.refresh(core)
    for name, info in core._groups.items():
        got = core.roster._indexes.get(name)
        if got is None or got[0] is not info:
            continue
        index = got[1]
        free = free_predicate(core, info.config, core._now)
        assert [index.keys[s] for s in index.free] == [
            c.key for c in info.candidates if free(c.key)
        ]
        assert (index.n_available == 0) == reference.is_empty(
            core, replace(info, config=info.config.model_copy(update={"queue": OVERFLOW}))
        )
        if index.least:
            view = GroupView(core, name, core._now)
            for key in index.keys:
                assert talk_at(index.entries[key], core._now) == view.talk_time(key)
            static = sorted(
                (index.entries[index.keys[s]][0], index.positions[s], index.keys[s])
                for s in index.free
                if s not in index.live
            )
            assert index.by_talk == static


def run(
    params: dict[str, Any], script: list[tuple[str, int, float]], *, check: bool = False
) -> list[tuple[float, Action]]:
    """The actions of the core over ``script`` (the same choices for the same state);
    ``check``: the roster's indexes are checked after every step."""
    members, shared = params["members"], params["shared"]
    second = {
        "name": "H",
        "pilot": "0150000000",
        "algorithm": params["second"],
        "members": [MemberConfig(line=LINES[i], position=i + 1) for i in range(shared)],
        "priority": params["priority"],
    }
    cfg = make_config(
        params["algorithm"],
        members=members,
        wrap_up=params["wrap_up"],
        call_waiting=params["call_waiting"],
        no_answer_timeout=params["timeout"],
        queue={"max_length": 3, "max_wait": params["max_wait"], "when_empty": params["when_empty"]},
        groups=[second],
    )
    h = Harness(cfg)
    h.core.claims = params["claims"]
    keys = LINES[:members]
    calls: list[str] = []
    n = 0
    for op, pick, dt in script:
        if check:
            check_roster(h.core)
        h.at(h.now + dt)
        live = [c for c in calls if h.core.call_state(c) is not None]
        mem = keys[pick % len(keys)]
        group = "G" if pick % 3 else "H"
        if op in ("arrive", "arrive_h"):
            n += 1
            calls.append(f"c{n}")
            h.ev(CallArrived(f"c{n}", "G" if op == "arrive" else "H", "0611111111"))
        elif op in ("answer", "decline", "unreachable", "grant", "refuse"):
            offered = sorted((c, m) for c in live for m in h.core.offers_of(c))
            if offered:
                c, m = offered[pick % len(offered)]
                h.ev(
                    {
                        "answer": MemberAnswered(c, m),
                        "decline": MemberFailed(c, m, 603),
                        "unreachable": MemberUnreachable(c, m),
                        "grant": ClaimGranted(c, m),
                        "refuse": ClaimRefused(c, m),
                    }[op]
                )
        elif op == "hangup" and live:
            h.ev(CallHungUp(live[pick % len(live)]))
        elif op == "join":
            h.ev(MemberJoined(group, mem))
        elif op == "leave":
            h.ev(MemberLeft(group, mem))
        elif op in ("pause", "unpause"):
            h.ev(MemberPaused(group, mem, op == "pause"))
        elif op in ("out", "dial"):
            n += 1
            calls.append(f"o{n}")
            h.ev(OutgoingCallStarted(f"o{n}", mem))
            if op == "out":
                h.ev(CallAnswered(f"o{n}"))
        elif op == "far_answer":
            dialing = [c for c in live if h.core.call_state(c) is CallState.DIALING]
            if dialing:
                h.ev(CallAnswered(dialing[pick % len(dialing)]))
        elif op in ("contact", "no_contact"):
            h.ev(MemberReachable(mem, op == "contact"))
        elif op in ("own_call", "idle"):
            h.ev(LineActivity(mem, op == "own_call"))
        elif op == "transfer":
            connected = [
                c
                for c in live
                if h.core.call_state(c) is CallState.CONNECTED and not c.startswith("o")
            ]
            if connected:
                c = connected[pick % len(connected)]
                member = next(m for m in LINES if c in h.core.store.active_calls(m))
                h.ev(CallTransferred(c, member, ("0140000000", "0150000000", LINES[0])[pick % 3]))
        elif op == "reload":  # the last member of G leaves the file, or comes back
            cfg = h.core.config
            first = cfg.groups[0]
            if len(first.members) == members and members > 1:
                cfg = with_members(cfg, *first.members[:-1])
            else:
                extra = MemberConfig(line=LINES[members - 1], position=members)
                cfg = with_members(cfg, *first.members[: members - 1], extra)
            h.log.extend((h.now, a) for a in h.core.reload(cfg, now=h.now))
    h.at(h.now + 200)
    for c in calls:
        if h.core.call_state(c) is not None:
            h.ev(CallHungUp(c))
    h.at(h.now + 200)
    return h.log


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    params=st.fixed_dictionaries(
        {
            "algorithm": st.sampled_from(ALGORITHMS),
            "second": st.sampled_from(ALGORITHMS),
            "members": st.integers(1, 6),
            "shared": st.integers(1, 3),
            "priority": st.integers(0, 1),
            "wrap_up": st.sampled_from([0, 0, 2, 10]),
            "call_waiting": st.booleans(),
            "timeout": st.sampled_from([3, 15]),
            "max_wait": st.one_of(st.none(), st.sampled_from([10.0, 60.0])),
            "when_empty": st.sampled_from(["wait", "overflow"]),
            "claims": st.booleans(),
        }
    ),
    script=script_st,
)
def test_incremental_decisions_are_those_of_the_full_scan(
    params: dict[str, Any], script: list[tuple[str, int, float]]
) -> None:
    with reference_decisions():
        expected = run(params, script)
    assert run(params, script, check=True) == expected


def _both(scenario: Any) -> tuple[list[tuple[float, Action]], list[tuple[float, Action]]]:
    with reference_decisions():
        expected = scenario()
    return scenario(), expected


def test_a_later_offer_of_a_least_talk_pass_keeps_the_talk_times_of_its_start() -> None:
    """At the pass start m2 (on a call for 3 s) comes before m3 (5 s of talk); m2's call
    then ends (7 s): the pass still offers m2 next, as the full order of its start."""

    def scenario() -> list[tuple[float, Action]]:
        h = Harness(make_config("least_active", queue={"max_wait": None}))
        h.ev(OutgoingCallStarted("o3", LINES[2]), at=0)
        h.ev(CallAnswered("o3"))
        h.ev(CallHungUp("o3"), at=5)  # m3: 5 s
        h.ev(OutgoingCallStarted("o2", LINES[1]), at=7)
        h.ev(CallAnswered("o2"))
        h.ev(CallArrived("c1", "G", "0611111111"), at=10)  # m1 (0 s) rings
        h.ev(CallHungUp("o2"), at=14)  # m2: 7 s, free again
        h.ev(MemberFailed("c1", LINES[0], 603), at=15)
        return h.log

    got, expected = _both(scenario)
    assert got == expected
    assert [(t, a.member) for t, a in got if type(a).__name__ == "Ring"] == [
        (10.0, LINES[0]),
        (15.0, LINES[1]),
    ]


def test_talk_time_credited_by_another_node_reorders_least_talk() -> None:
    """Another node's talk time for m1 (no change of activity here) makes m2 the least
    active at the next arrival, without waiting for ``state_changed``."""

    def scenario() -> list[tuple[float, Action]]:
        h = Harness(make_config("least_active"), store=JournalingStore("n1"))
        h.ev(CallArrived("c0", "G", "0611111111"), at=0)
        h.ev(CallHungUp("c0"), at=1)
        assert isinstance(h.core.store, JournalingStore)
        h.core.store.apply_remote(AddTalk("G", LINES[0], 100.0))
        h.ev(CallArrived("c1", "G", "0611111111"), at=2)
        return h.log

    got, expected = _both(scenario)
    assert got == expected
    assert [a.member for _, a in got if type(a).__name__ == "Ring"] == [LINES[0], LINES[1]]


def test_talk_time_read_back_from_the_store_of_record_reorders_least_talk() -> None:
    """A snapshot merged after an outage gives m1 more talk time: m2 is the least active."""

    def scenario() -> list[tuple[float, Action]]:
        store = JournalingStore("n1")
        h = Harness(make_config("least_active"), store=store)
        h.ev(CallArrived("c0", "G", "0611111111"), at=0)
        h.ev(CallHungUp("c0"), at=1)
        store.drain()  # the ops so far reached the store of record
        store.apply_snapshot(Snapshot(talk={("G", LINES[0]): 100.0}))
        h.ev(CallArrived("c1", "G", "0611111111"), at=2)
        return h.log

    got, expected = _both(scenario)
    assert got == expected
    assert [a.member for _, a in got if type(a).__name__ == "Ring"] == [LINES[0], LINES[1]]
