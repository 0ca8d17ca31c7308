"""Table-driven tests of the five algorithms with scripted time."""

from __future__ import annotations

import pytest

from huntgroup.queue.actions import Bridge, Cancel, Forward, Hold, Release, Ring, Ringback
from huntgroup.queue.core import CallState
from huntgroup.queue.events import (
    CallAnswered,
    CallArrived,
    CallHungUp,
    DirectCallArrived,
    MemberAnswered,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberUnreachable,
    OutgoingCallStarted,
)
from huntgroup.queue.hunting import PASS_SPACING
from tests.support.core_harness import Harness, m, make_config


def arrive(h: Harness, call: str = "c1", at: float | None = None) -> None:
    h.ev(CallArrived(call, "G", "0611111111", "Caller"), at=at)


def busy(h: Harness, member: int, call: str | None = None) -> None:
    """Make a member busy with an answered outgoing call."""
    cid = call or f"out-{member}"
    h.ev(OutgoingCallStarted(cid, m(member)))
    h.ev(CallAnswered(cid))


# --- order of offers when nobody answers ---------------------------------------------
# (algorithm, members busy, expected (time, member) of the rings until t=50)
NO_ANSWER = [
    ("linear", [], [(0, 1), (15, 2), (30, 3)]),
    ("linear", [2], [(0, 1), (15, 3)]),
    ("circular", [], [(0, 1), (15, 2), (30, 3), (45, 1)]),
    ("circular", [1], [(0, 2), (15, 3), (30, 2), (45, 3)]),
    ("round_robin", [], [(0, 1), (15, 2), (30, 3), (45, 1)]),
    ("least_active", [], [(0, 1), (15, 2), (30, 3), (45, 1)]),
    ("ring_all", [], [(0, 1), (0, 2), (0, 3), (15, 1), (15, 2), (15, 3), (30, 1), (30, 2)]),
    ("ring_all", [3], [(0, 1), (0, 2), (15, 1), (15, 2), (30, 1), (30, 2), (45, 1), (45, 2)]),
]


@pytest.mark.parametrize(("algorithm", "busy_members", "expected"), NO_ANSWER)
def test_order_of_offers_without_answer(
    algorithm: str, busy_members: list[int], expected: list[tuple[int, int]]
) -> None:
    h = Harness(make_config(algorithm, queue={"max_wait": None}))
    for b in busy_members:
        busy(h, b)
    arrive(h)
    h.at(50)
    got = [(t, member) for t, call, member in h.rings() if call == "c1"]
    assert got[: len(expected)] == [(float(t), m(i)) for t, i in expected]


def test_linear_stops_after_one_pass_with_480() -> None:
    h = Harness(make_config("linear", queue={"max_wait": None}))
    arrive(h)
    h.at(100)
    assert [r[2] for r in h.rings()] == [m(1), m(2), m(3)]
    assert h.of(Release) == [Release("c1", 480, "no_answer")]
    assert h.core.call_state("c1") is None


def test_linear_forwards_after_its_pass_when_set() -> None:
    h = Harness(make_config("linear", no_answer={"forward_to": "0699999999"}))
    arrive(h)
    h.at(45)
    assert h.of(Forward) == [Forward("c1", "0699999999", "no_answer")]
    assert h.of(Release) == []


def test_ring_all_first_answer_wins_and_others_are_cancelled() -> None:
    h = Harness(make_config("ring_all"))
    arrive(h)
    out = h.ev(MemberAnswered("c1", m(2)), at=4)
    assert out == [Cancel("c1", m(1)), Cancel("c1", m(3)), Bridge("c1", m(2))]
    # a 200 OK that arrives after another member won gets hung up
    assert h.ev(MemberAnswered("c1", m(1))) == [Cancel("c1", m(1))]
    assert h.core.call_state("c1") is CallState.CONNECTED


def test_ring_all_new_pass_only_when_every_offer_failed() -> None:
    h = Harness(make_config("ring_all"))
    arrive(h)
    h.ev(MemberFailed("c1", m(1), 486), at=2)
    h.ev(MemberUnreachable("c1", m(2)), at=3)
    assert len(h.rings()) == 3  # m3 still rings: the pass goes on
    h.at(15)
    assert [r[2] for r in h.rings(since=15)] == [m(1), m(2), m(3)]


def test_round_robin_pointer_moves_on_answer_not_on_offer() -> None:
    h = Harness(make_config("round_robin"))
    arrive(h, "c1")
    h.at(15)  # m1 did not answer, m2 rings
    h.ev(MemberAnswered("c1", m(2)), at=16)
    h.ev(CallHungUp("c1"), at=20)
    arrive(h, "c2", at=21)
    assert [r[2] for r in h.rings() if r[1] == "c2"] == [m(3)]  # after m2, who took the call
    h.ev(CallHungUp("c2"), at=22)  # unanswered: the pointer stays on m2
    arrive(h, "c3", at=23)
    assert [r[2] for r in h.rings() if r[1] == "c3"] == [m(3)]
    h.ev(MemberAnswered("c3", m(3)), at=24)
    h.ev(CallHungUp("c3"), at=25)
    arrive(h, "c4", at=26)
    assert [r[2] for r in h.rings() if r[1] == "c4"] == [m(1)]  # wraps around


def test_round_robin_new_pass_starts_from_the_same_pointer() -> None:
    h = Harness(make_config("round_robin", queue={"max_wait": None}))
    arrive(h, "c0")
    h.ev(MemberAnswered("c0", m(2)), at=16)
    h.ev(CallHungUp("c0"), at=17)
    arrive(h, "c1", at=18)
    h.at(18 + 15 * 4)
    assert [r[2] for r in h.rings() if r[1] == "c1"][:4] == [m(3), m(1), m(2), m(3)]


def test_least_active_orders_by_talk_time_then_position() -> None:
    h = Harness(make_config("least_active", members=4))
    # m1 talks 100 s on a group call, m2 talks 30 s on an outgoing call,
    # m3 talks 30 s on a direct call, m4 never talks.
    arrive(h, "g1")
    h.ev(MemberAnswered("g1", m(1)))
    h.ev(OutgoingCallStarted("o2", m(2)))
    h.ev(CallAnswered("o2"))
    h.ev(DirectCallArrived("d3", m(3), "0622222222"))
    h.ev(MemberAnswered("d3", m(3)))
    h.ev(CallHungUp("o2"), at=30)
    h.ev(CallHungUp("d3"), at=30)
    h.ev(CallHungUp("g1"), at=100)
    assert h.core.talk_time("G", m(1), now=100) == pytest.approx(100)
    assert h.core.talk_time("G", m(2), now=100) == pytest.approx(30)
    arrive(h, "c", at=101)
    h.at(101 + 15 * 3)
    assert [r[2] for r in h.rings() if r[1] == "c"] == [m(4), m(2), m(3), m(1)]


def test_least_active_talk_time_restarts_when_member_rejoins() -> None:
    h = Harness(make_config("least_active", members=2))
    arrive(h, "g1")
    h.ev(MemberAnswered("g1", m(1)))
    h.ev(CallHungUp("g1"), at=50)
    busy(h, 2, "o2")
    h.ev(CallHungUp("o2"), at=60)
    assert h.core.talk_time("G", m(1), now=60) == pytest.approx(50)
    h.ev(MemberLeft("G", m(1)), at=61)
    h.ev(MemberJoined("G", m(1)), at=62)
    assert h.core.talk_time("G", m(1), now=62) == 0
    arrive(h, "c", at=63)
    assert [r[2] for r in h.rings() if r[1] == "c"] == [m(1)]


def test_least_active_counts_only_talk_since_joining() -> None:
    h = Harness(make_config("least_active", members=2))
    h.ev(MemberLeft("G", m(1)))
    busy(h, 1, "o1")  # talking while not joined
    h.ev(MemberJoined("G", m(1)), at=40)
    h.ev(CallHungUp("o1"), at=50)
    assert h.core.talk_time("G", m(1), now=50) == pytest.approx(10)


def test_order_is_recomputed_each_pass_for_least_active() -> None:
    h = Harness(make_config("least_active", members=2, queue={"max_wait": None}))
    arrive(h, "c1")  # rings m1 at 0
    h.at(15)  # m2 rings at 15
    busy(h, 1, "o1")  # m1 talks from 15 to 25 while c1 rings m2
    h.ev(CallHungUp("o1"), at=25)
    h.at(31)  # pass 2 at 30: m2 (0 s) before m1 (10 s)
    assert [r[2] for r in h.rings() if r[1] == "c1"] == [m(1), m(2), m(2)]


def test_busy_and_unjoined_members_are_skipped() -> None:
    cfg = make_config("linear", members=4)
    h = Harness(cfg)
    h.ev(MemberLeft("G", m(1)))
    busy(h, 2)
    arrive(h)
    h.at(40)
    assert [r[2] for r in h.rings()] == [m(3), m(4)]


def test_decline_and_unreachable_count_as_no_answer_at_once() -> None:
    h = Harness(make_config("linear"))
    arrive(h)
    last = h.ev(MemberFailed("c1", m(1), 603), at=1)[-1]
    assert isinstance(last, Ring) and last.member == m(2)
    h.ev(MemberUnreachable("c1", m(2)), at=2)
    assert [(t, mem) for t, _, mem in h.rings()] == [(0, m(1)), (1, m(2)), (2, m(3))]


def test_passes_are_spaced_when_every_member_refuses_at_once() -> None:
    h = Harness(make_config("circular", members=2, queue={"max_wait": 10}))
    arrive(h)
    h.ev(MemberFailed("c1", m(1)))
    h.ev(MemberFailed("c1", m(2)))
    assert len(h.rings()) == 2  # no tight loop at t=0
    h.at(PASS_SPACING)
    assert [(t, mem) for t, _, mem in h.rings()][-1] == (PASS_SPACING, m(1))


def test_member_leaving_mid_hunt_ends_its_offer_and_the_hunt_moves_on() -> None:
    h = Harness(make_config("circular"))
    arrive(h)
    out = h.ev(MemberLeft("G", m(1)), at=3)
    assert out[0] == Cancel("c1", m(1))
    assert isinstance(out[1], Ring) and out[1].member == m(2)
    h.at(3 + 15 * 3)
    assert m(1) not in [r[2] for r in h.rings()][1:]


def test_two_calls_hunting_at_once_never_ring_the_same_member() -> None:
    for algorithm in ("linear", "circular", "round_robin", "least_active", "ring_all"):
        h = Harness(make_config(algorithm, members=3, queue={"max_wait": None}))
        arrive(h, "a")
        arrive(h, "b", at=1)
        for t in range(2, 120, 3):
            h.at(t)
            ringing: dict[str, str] = {}
            for call in ("a", "b"):
                for member in h.core.offers_of(call):
                    assert member not in ringing, (algorithm, t, member)
                    ringing[member] = call


def test_hunting_call_with_nobody_free_goes_back_to_the_head_of_the_queue() -> None:
    h = Harness(make_config("circular", members=2, queue={"max_wait": None, "max_length": 1}))
    arrive(h, "a")  # rings m1
    arrive(h, "b", at=1)  # rings m2
    arrive(h, "c", at=2)  # queued
    assert h.of(Hold, "c") == [Hold("c", True)]
    assert h.ev(CallArrived("d", "G", "x"), at=3) == [Release("d", 486, "queue_full")]
    h.ev(MemberAnswered("b", m(2)), at=4)  # m2 busy
    h.ev(OutgoingCallStarted("o1", m(1)), at=10)  # m1 dials out while a rings it
    h.at(15)  # a: m1 timed out; pass ends; a new pass finds nobody free
    assert h.core.queue("G") == ["a", "c"]  # a is back at the head, bound not re-checked
    assert h.of(Hold, "a") == [Hold("a", True)]
    h.ev(CallHungUp("b"), at=20)  # m2 free: a is served before c
    assert h.of(Ring)[-1] == Ring("a", m(2), h.of(Ring)[-1].caller_id, "G", 15)
    assert h.core.queue("G") == ["c"]


def test_caller_hanging_up_ends_every_offer_and_frees_members() -> None:
    h = Harness(make_config("ring_all"))
    arrive(h)
    out = h.ev(CallHungUp("c1"), at=2)
    assert out == [Cancel("c1", m(1)), Cancel("c1", m(2)), Cancel("c1", m(3))]
    assert all(h.core.is_free("G", m(i), now=2) for i in (1, 2, 3))
    assert h.core.call_ids() == []
    assert h.core.get_timer() is None


def test_caller_hanging_up_in_queue_leaves_the_queue() -> None:
    h = Harness(make_config("linear", members=1, queue={"max_length": 3}))
    arrive(h, "a")
    arrive(h, "b")
    arrive(h, "c")
    assert h.core.queue("G") == ["b", "c"]
    h.ev(CallHungUp("b"), at=1)
    assert h.core.queue("G") == ["c"]
    h.ev(MemberAnswered("a", m(1)), at=2)
    h.ev(CallHungUp("a"), at=3)
    assert h.of(Ring)[-1].call_id == "c"


def test_hunting_at_once_rings_back_and_queueing_holds() -> None:
    h = Harness(make_config("linear", members=1, queue={"answer": False}))
    assert h.ev(CallArrived("a", "G", "x"))[0] == Ringback("a")
    assert h.ev(CallArrived("b", "G", "x")) == [Hold("b", False)]
