"""Forwards to our own numbers, followed by the core; a member's status; the music of a Hold."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huntgroup.config.models import Config, MemberConfig
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
from huntgroup.queue.events import (
    CallAnswered,
    CallArrived,
    CallHungUp,
    CallTransferred,
    DirectCallArrived,
    LineActivity,
    MemberAnswered,
    MemberFailed,
    MemberReachable,
    MemberUnreachable,
    OutgoingCallStarted,
)
from huntgroup.queue.forwards import follow
from huntgroup.queue.refusals import Refusal, refusal_of
from tests.support.core_harness import LINES, Harness, m, make_config

G_PILOT, H_PILOT, K_PILOT = "0140000000", "0150000000", "0160000000"
CALLER = Identity("0611111111", "Caller")


def group(name: str, pilot: str, *members: int, **options: Any) -> dict[str, Any]:
    return {
        "name": name,
        "pilot": pilot,
        "members": [MemberConfig(line=m(i), position=p) for p, i in enumerate(members, 1)],
        **options,
    }


def with_limit(config: Config, limit: int) -> Config:
    limits = config.server.limits.model_copy(update={"max_internal_forwards": limit})
    return config.model_copy(update={"server": config.server.model_copy(update={"limits": limits})})


def busy(h: Harness, member: str) -> None:
    h.ev(OutgoingCallStarted(f"out-{member}", member))
    h.ev(CallAnswered(f"out-{member}"))


def arrive(h: Harness, call: str, *, internal: bool = False) -> list[Action]:
    return h.ev(CallArrived(call, "G", CALLER.number, CALLER.display_name, internal))


# --- the rule ----------------------------------------------------------------------------


def test_follow_keeps_a_target_outside_and_reroutes_to_our_pilots_and_lines() -> None:
    pilots, lines = {H_PILOT: "H"}, {m(3)}
    out = Forward("c", "0677", "busy")
    assert follow(out, (G_PILOT,), pilots=pilots, lines=lines, limit=5) is out
    uri = Forward("c", f"sip:{H_PILOT}@elsewhere", "max_wait")
    assert follow(uri, (G_PILOT,), pilots=pilots, lines=lines, limit=5) is uri
    to_pilot = Forward("c", H_PILOT, "queue_full")
    assert follow(to_pilot, (G_PILOT,), pilots=pilots, lines=lines, limit=5) == Reroute(
        "c", H_PILOT, "queue_full", "H", (G_PILOT,)
    )
    to_line = Forward("c", m(3), "no_answer")
    assert follow(to_line, (G_PILOT,), pilots=pilots, lines=lines, limit=5) == Reroute(
        "c", m(3), "no_answer", None, (G_PILOT,)
    )


def test_follow_refuses_a_number_already_on_the_route_and_one_forward_too_many() -> None:
    pilots, lines = {G_PILOT: "G", H_PILOT: "H"}, set[str]()
    back = Forward("c", G_PILOT, "max_wait")
    route = (G_PILOT, H_PILOT)
    assert follow(back, route, pilots=pilots, lines=lines, limit=5) == RefuseForward(
        "c", G_PILOT, "max_wait", 482, route
    )
    on = Forward("c", H_PILOT, "no_answer_after")
    assert follow(on, (G_PILOT,), pilots=pilots, lines=lines, limit=1).__class__ is Reroute
    assert follow(on, (G_PILOT, K_PILOT), pilots=pilots, lines=lines, limit=1) == RefuseForward(
        "c", H_PILOT, "no_answer_after", 483, (G_PILOT, K_PILOT)
    )
    # max_internal_forwards: 0: no forward to our own numbers at all
    assert follow(on, (G_PILOT,), pilots=pilots, lines=lines, limit=0) == RefuseForward(
        "c", H_PILOT, "no_answer_after", 483, (G_PILOT,)
    )


# --- the core follows the chain ----------------------------------------------------------


def test_a_full_queue_overflows_into_the_group_of_its_pilot() -> None:
    cfg = make_config(
        "linear",
        members=1,
        queue={"max_length": 0, "overflow_to": H_PILOT},
        groups=[group("H", H_PILOT, 2)],
    )
    h = Harness(cfg)
    busy(h, m(1))
    assert arrive(h, "c") == [
        Reroute("c", H_PILOT, "queue_full", "H", (G_PILOT,)),
        Ringback("c"),
        Ring("c", m(2), CALLER, "H", 15),
    ]
    assert h.core.group_of_call("c") == "H"
    assert h.ev(MemberAnswered("c", m(2)), at=3) == [Bridge("c", m(2))]
    h.ev(CallHungUp("c"), at=60)
    assert h.core.call_ids() == [f"out-{m(1)}"]


def test_max_wait_overflow_holds_the_caller_again_with_the_next_groups_music() -> None:
    cfg = make_config(
        "linear",
        members=1,
        queue={"max_length": 5, "max_wait": 10, "overflow_to": H_PILOT, "music": "/moh/g.wav"},
        groups=[group("H", H_PILOT, 1, queue={"max_wait": 20, "music": "/moh/h.wav"})],
    )
    h = Harness(cfg)
    busy(h, m(1))
    assert arrive(h, "c") == [Hold("c", True, "/moh/g.wav")]
    assert h.at(10) == [
        Reroute("c", H_PILOT, "max_wait", "H", (G_PILOT,)),
        Hold("c", True, "/moh/h.wav"),
    ]
    assert h.core.queue("H") == ["c"]
    # H's own max_wait runs from the forward, and H has no overflow: released there
    assert h.at(29.9) == []
    assert h.at(30) == [Release("c", 480, "max_wait")]


def test_hold_plays_the_built_in_music_when_the_group_names_none() -> None:
    h = Harness(make_config("linear", members=1, queue={"max_length": 5}))
    busy(h, m(1))
    assert arrive(h, "c") == [Hold("c", True, None)]


def test_the_group_that_let_a_call_go_serves_its_own_queue_first() -> None:
    # G and H share m1. c1 rings m1 in G until the no-answer timeout; linear then forwards
    # it to H. m1 is free again: G's queued c2 gets it before c1 arrives in H.
    cfg = make_config(
        "linear",
        members=1,
        no_answer_timeout=10,
        no_answer={"forward_to": H_PILOT},
        groups=[group("H", H_PILOT, 1)],
    )
    h = Harness(cfg)
    arrive(h, "c1")
    h.ev(CallArrived("c2", "G", "0622222222"), at=1)
    assert h.at(10) == [
        Cancel("c1", m(1)),
        Reroute("c1", H_PILOT, "no_answer", "H", (G_PILOT,)),
        Ring("c2", m(1), Identity("0622222222"), "G", 10),
        Hold("c1", True, None),
    ]


def test_a_forward_to_a_line_rings_the_line_then_follows_its_own_forwards() -> None:
    cfg = make_config(
        "linear",
        members=1,
        no_answer_timeout=10,
        no_answer={"forward_to": m(3)},
        lines=[{"number": m(3), "forward_no_answer": H_PILOT, "no_answer_timeout": 5}],
        groups=[group("H", H_PILOT, 2)],
    )
    h = Harness(cfg)
    arrive(h, "c")
    assert h.at(10) == [
        Cancel("c", m(1)),
        Reroute("c", m(3), "no_answer", None, (G_PILOT,)),
        Ring("c", m(3), CALLER, None, 5),
    ]
    assert h.ev(MemberFailed("c", m(3), 408), at=11) == [
        Reroute("c", H_PILOT, "no_answer", "H", (G_PILOT, m(3))),
        Ringback("c"),
        Ring("c", m(2), CALLER, "H", 15),
    ]


@pytest.mark.parametrize(("internal", "hunted"), [(False, True), (True, False)])
def test_a_forwarded_call_keeps_its_callers_side_for_hunt_direct_calls(
    internal: bool, hunted: bool
) -> None:
    # G overflows to line m2, busy; m2 is in H with hunt_direct_calls: only an outside
    # caller is hunted to H, one of our lines gets the line's busy answer.
    cfg = make_config(
        "linear",
        members=1,
        queue={"max_length": 0, "overflow_to": m(2)},
        groups=[group("H", H_PILOT, 2, 3, hunt_direct_calls=True)],
    )
    h = Harness(cfg)
    busy(h, m(1))
    busy(h, m(2))
    out = arrive(h, "c", internal=internal)
    assert out[0] == Reroute("c", m(2), "queue_full", None, (G_PILOT,))
    if hunted:
        assert out[1:] == [Ringback("c"), Ring("c", m(3), CALLER, "H", 15)]
    else:
        assert out[1:] == [Release("c", 486, "busy")]


def test_a_chain_past_max_internal_forwards_is_refused_with_483() -> None:
    cfg = make_config(
        "linear",
        members=1,
        queue={"max_length": 0, "overflow_to": H_PILOT},
        groups=[
            group("H", H_PILOT, 1, queue={"max_length": 0, "overflow_to": K_PILOT}),
            group("K", K_PILOT, 2),
        ],
    )
    h = Harness(with_limit(cfg, 1))
    busy(h, m(1))
    assert arrive(h, "c") == [
        Reroute("c", H_PILOT, "queue_full", "H", (G_PILOT,)),
        RefuseForward("c", K_PILOT, "queue_full", 483, (G_PILOT, H_PILOT)),
    ]
    assert h.core.call_ids() == [f"out-{m(1)}"]
    h2 = Harness(with_limit(cfg, 2))  # one more allowed: K answers
    busy(h2, m(1))
    assert arrive(h2, "c")[-1] == Ring("c", m(2), CALLER, "K", 15)


def test_a_loop_back_to_a_number_on_the_route_is_refused_with_482() -> None:
    # A configuration built in code gets past `huntgroup check`: G -> H -> G.
    cfg = make_config(
        "linear",
        members=1,
        queue={"max_length": 0, "overflow_to": H_PILOT},
        groups=[group("H", H_PILOT, 1, queue={"max_length": 0, "overflow_to": G_PILOT})],
    )
    h = Harness(cfg)
    busy(h, m(1))
    assert arrive(h, "c") == [
        Reroute("c", H_PILOT, "queue_full", "H", (G_PILOT,)),
        RefuseForward("c", G_PILOT, "queue_full", 482, (G_PILOT, H_PILOT)),
    ]
    assert h.core.call_ids() == [f"out-{m(1)}"] and h.core.get_timer() is None


# --- what a member's answer means --------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "refusal"),
    [
        (486, Refusal.BUSY),
        (600, Refusal.BUSY),
        (408, Refusal.UNREACHABLE),
        (503, Refusal.UNREACHABLE),
        (603, Refusal.DECLINED),
        (480, Refusal.DECLINED),
        (404, Refusal.DECLINED),
        (488, Refusal.DECLINED),
    ],
)
def test_refusal_of_a_final_status(status: int, refusal: Refusal) -> None:
    assert refusal_of(status) is refusal


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (MemberFailed("d", m(1), 486), Forward("d", "0677", "busy")),
        (MemberFailed("d", m(1), 600), Forward("d", "0677", "busy")),
        (MemberFailed("d", m(1), 603), Forward("d", "0688", "no_answer")),
        (MemberFailed("d", m(1), 408), Forward("d", "0688", "no_answer")),
        (MemberFailed("d", m(1), 503), Forward("d", "0688", "no_answer")),
        (MemberUnreachable("d", m(1)), Forward("d", "0688", "no_answer")),
    ],
)
def test_a_lines_forwarding_follows_the_meaning_of_its_status(
    event: MemberFailed | MemberUnreachable, expected: Forward
) -> None:
    cfg = make_config(lines=[{"number": m(1), "forward_busy": "0677", "forward_no_answer": "0688"}])
    h = Harness(cfg)
    h.ev(DirectCallArrived("d", m(1), "0612345678"))
    assert h.ev(event) == [expected]


def _ringing(actions: list[Action]) -> list[str]:
    return [a.member for a in actions if isinstance(a, Ring)]


@pytest.mark.parametrize(
    ("forwards", "expected"),
    [
        ({}, Release("d", 480, "no_answer")),
        ({"forward_no_answer": "0688"}, Forward("d", "0688", "no_answer")),
    ],
)
def test_a_direct_call_to_a_line_with_no_contact_does_not_ring_it(
    forwards: dict[str, str], expected: Action
) -> None:
    """Found by the core's property test: a line known to have no contact was rung (a
    Ring the B2BUA cannot place). It now goes where its MemberUnreachable would lead."""
    h = Harness(make_config(lines=[{"number": m(1), **forwards}]))
    h.ev(MemberReachable(m(1), False))
    out = h.ev(DirectCallArrived("d", m(1), "0612345678"))
    assert _ringing(out) == [] and expected in out


def test_a_direct_call_to_a_line_backing_off_does_not_ring_it_until_the_retry() -> None:
    h = Harness(make_config(lines=[{"number": m(1), "forward_no_answer": "0688"}]))
    h.ev(DirectCallArrived("d1", m(1), "0612345678"))
    h.ev(MemberUnreachable("d1", m(1)))  # its back-off starts
    assert _ringing(h.ev(DirectCallArrived("d2", m(1), "0612345678"))) == []
    h.at(h.now + 3600)  # long past the back-off
    assert _ringing(h.ev(DirectCallArrived("d3", m(1), "0612345678"))) == [m(1)]


def test_a_direct_call_to_a_line_busy_on_its_own_call_follows_its_busy_forward() -> None:
    h = Harness(make_config(lines=[{"number": m(1), "forward_busy": "0677"}]))
    h.ev(LineActivity(m(1), True))  # its phone reports a call of its own
    out = h.ev(DirectCallArrived("d", m(1), "0612345678"))
    assert _ringing(out) == [] and Forward("d", "0677", "busy") in out
    h.ev(LineActivity(m(1), False))
    assert _ringing(h.ev(DirectCallArrived("d2", m(1), "0612345678"))) == [m(1)]


def test_a_call_transferred_to_a_line_with_no_contact_does_not_ring_it() -> None:
    """The property test's case: ring all, a call answered by m1, m2's contact gone,
    m1 transfers the call to m2's line."""
    h = Harness(make_config("ring_all", members=2))
    h.ev(CallArrived("c1", "G", "0611111111"))
    h.ev(MemberAnswered("c1", m(1)))
    h.ev(MemberReachable(m(2), False))
    out = h.ev(CallTransferred("c1", m(1), m(2)))
    assert _ringing(out) == []
    assert Release("c1", 480, "no_answer") in out


# --- invariants over random chains -------------------------------------------------------

PILOTS = (G_PILOT, H_PILOT, K_PILOT)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    overflow=st.lists(st.sampled_from([*PILOTS, m(4), "0677"]), min_size=3, max_size=3),
    after_pass=st.lists(st.sampled_from([*PILOTS, m(4), None]), min_size=3, max_size=3),
    line_forward=st.sampled_from([*PILOTS, None]),
    limit=st.integers(0, 4),
    script=st.lists(
        st.tuples(st.sampled_from(["arrive", "refuse", "answer", "hangup", "busy"]), st.integers()),
        max_size=40,
    ),
    gaps=st.lists(st.floats(0, 20), min_size=40, max_size=40),
)
def test_every_call_ends_once_and_follows_at_most_the_limit(
    overflow: list[str],
    after_pass: list[str | None],
    line_forward: str | None,
    limit: int,
    script: list[tuple[str, int]],
    gaps: list[float],
) -> None:
    def options(i: int) -> dict[str, Any]:
        return {
            "algorithm": "linear",
            "no_answer_timeout": 5,
            "hunt_direct_calls": i == 2,
            "queue": {"max_length": i % 2, "max_wait": 30, "overflow_to": overflow[i]},
            "no_answer": {"forward_to": after_pass[i]},
        }

    cfg = make_config(
        members=2,
        lines=[{"number": m(4), "forward_busy": line_forward, "forward_no_answer": line_forward}],
        groups=[
            group("H", H_PILOT, 2, 3, **options(1)),
            group("K", K_PILOT, 3, 4, **options(2)),
        ],
        **options(0),
    )
    h = Harness(with_limit(cfg, limit))
    calls: list[str] = []
    ended: set[str] = set()
    routes: dict[str, tuple[str, ...]] = {}

    def observe(actions: list[Action]) -> None:
        for a in actions:
            assert a.call_id not in ended, f"{a} after the end of its call"
            if isinstance(a, Reroute | RefuseForward):
                assert a.route == routes[a.call_id]  # the number dialled, then each forward
            if isinstance(a, RefuseForward):
                assert a.status == (482 if a.target in a.route else 483)
                assert a.status == 482 or len(a.route) > limit
            if isinstance(a, Reroute):
                assert a.target not in a.route and len(a.route) <= limit
                routes[a.call_id] = (*a.route, a.target)
            if isinstance(a, Release | Forward | RefuseForward):
                ended.add(a.call_id)

    for (op, pick), gap in zip(script, gaps, strict=False):
        observe(h.at(h.now + gap))
        live = [c for c in calls if c not in ended and h.core.call_state(c) is not None]
        if op == "arrive":
            cid = f"c{len(calls)}"
            calls.append(cid)
            routes[cid] = (G_PILOT,)
            observe(h.ev(CallArrived(cid, "G", "0611111111")))
        elif op == "busy":
            member = LINES[pick % 4]
            if h.core.call_state(f"out-{member}") is None:
                busy(h, member)
        elif live:
            cid = live[pick % len(live)]
            offers = h.core.offers_of(cid)
            if op == "hangup":
                observe(h.ev(CallHungUp(cid)))
                ended.add(cid)
            elif offers:
                member = offers[pick % len(offers)]
                event = MemberAnswered(cid, member) if op == "answer" else None
                observe(h.ev(event or MemberFailed(cid, member, (486, 603, 408)[pick % 3])))
    for cid in calls:
        if cid not in ended:
            observe(h.ev(CallHungUp(cid)))
            ended.add(cid)
    for member in LINES[:4]:
        h.ev(CallHungUp(f"out-{member}"))
    assert h.core.call_ids() == []
    assert all(h.core.queue(g) == [] for g in ("G", "H", "K"))
    h.at(h.now + 10_000)
    assert h.core.get_timer() is None
