"""The queue, its limits and the optional parameters of a group, with scripted time."""

from __future__ import annotations

import pytest

from huntgroup.queue.actions import Bridge, Cancel, Forward, Identity, Release, Ring
from huntgroup.queue.core import CallState, RoutingCore
from huntgroup.queue.events import (
    CallAnswered,
    CallArrived,
    CallHungUp,
    DirectCallArrived,
    MemberAnswered,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    OutgoingCallStarted,
)
from huntgroup.queue.state.store import MemoryStore
from tests.support.core_harness import Harness, m, make_config, with_members


def arrive(h: Harness, call: str, at: float | None = None, caller: str = "0611111111") -> None:
    h.ev(CallArrived(call, "G", caller, "Caller"), at=at)


def test_queue_is_fifo_and_bounded() -> None:
    h = Harness(make_config("linear", members=1, queue={"max_length": 2, "max_wait": None}))
    arrive(h, "a")
    arrive(h, "b", at=1)
    arrive(h, "c", at=2)
    assert h.ev(CallArrived("d", "G", "x"), at=3) == [Release("d", 486, "queue_full")]
    assert h.core.queue("G") == ["b", "c"]
    h.ev(MemberAnswered("a", m(1)), at=4)
    h.ev(CallHungUp("a"), at=5)
    assert h.of(Ring)[-1].call_id == "b"
    h.ev(MemberAnswered("b", m(1)), at=6)
    h.ev(CallHungUp("b"), at=7)
    assert h.of(Ring)[-1].call_id == "c"


def test_queue_full_overflows_when_set() -> None:
    h = Harness(
        make_config("linear", members=1, queue={"max_length": 0, "overflow_to": "sip:vm@x"})
    )
    arrive(h, "a")
    assert h.ev(CallArrived("b", "G", "x")) == [Forward("b", "sip:vm@x", "queue_full")]


def test_max_length_zero_means_no_queue() -> None:
    h = Harness(make_config("linear", members=1, queue={"max_length": 0}))
    arrive(h, "a")
    assert h.ev(CallArrived("b", "G", "x")) == [Release("b", 486, "queue_full")]


def test_callers_queue_when_someone_already_waits_even_if_a_member_is_free() -> None:
    h = Harness(make_config("linear", members=2, queue={"max_length": 5}))
    h.ev(OutgoingCallStarted("o1", m(1)))
    h.ev(OutgoingCallStarted("o2", m(2)))
    arrive(h, "a")
    assert h.core.queue("G") == ["a"]
    # m1 hangs up: a is served; b arriving meanwhile with m2 busy waits behind nobody
    h.ev(CallHungUp("o1"), at=1)
    assert h.of(Ring)[-1].call_id == "a"


def test_max_wait_counts_queue_and_hunting_time_then_releases() -> None:
    h = Harness(make_config("circular", members=1, queue={"max_wait": 40}))
    arrive(h, "a")
    h.ev(MemberAnswered("a", m(1)), at=1)
    arrive(h, "b", at=2)  # queued
    h.ev(CallHungUp("a"), at=30)  # b hunts from 30
    h.at(41.9)
    assert h.core.call_state("b") is CallState.HUNTING
    out = h.at(42)
    assert out == [Cancel("b", m(1)), Release("b", 480, "max_wait")]
    assert h.core.call_state("b") is None


def test_max_wait_overflows_when_set() -> None:
    h = Harness(make_config("circular", members=1, queue={"max_wait": 20, "overflow_to": "0699"}))
    arrive(h, "a")
    assert h.at(20)[-1] == Forward("a", "0699", "max_wait")


def test_no_answer_after_forwards_once_hunting_lasted_that_long() -> None:
    cfg = make_config(
        "circular",
        members=2,
        no_answer={"forward_to": "0698", "after": 25},
        queue={"max_wait": None},
    )
    h = Harness(cfg)
    h.ev(OutgoingCallStarted("o1", m(1)))
    h.ev(OutgoingCallStarted("o2", m(2)))
    arrive(h, "a")  # queued at 0: hunting has not started
    h.ev(CallHungUp("o1"), at=10)  # hunting starts at 10
    assert h.at(34.9) == [
        Cancel("a", m(1)),
        Ring("a", m(1), Identity("0611111111", "Caller"), "G", 15),
    ]
    assert h.at(35) == [Cancel("a", m(1)), Forward("a", "0698", "no_answer_after")]


def test_wrap_up_delays_the_next_offer_and_serves_the_queue_when_it_ends() -> None:
    h = Harness(make_config("linear", members=1, wrap_up=30))
    arrive(h, "a")
    h.ev(MemberAnswered("a", m(1)), at=1)
    arrive(h, "b", at=2)
    h.ev(CallHungUp("a"), at=10)
    assert [r[1] for r in h.rings()] == ["a"]
    assert not h.core.is_free("G", m(1), now=39)
    h.at(40)
    assert h.rings()[-1] == (40.0, "b", m(1))


def test_wrap_up_is_not_applied_after_direct_or_outgoing_calls() -> None:
    h = Harness(make_config("linear", members=1, wrap_up=30))
    h.ev(OutgoingCallStarted("o", m(1)))
    h.ev(CallAnswered("o"))
    h.ev(CallHungUp("o"), at=5)
    assert h.core.is_free("G", m(1), now=5)


@pytest.mark.parametrize("call_waiting", [False, True])
def test_call_waiting_offers_members_already_on_a_call(call_waiting: bool) -> None:
    h = Harness(make_config("linear", members=2, call_waiting=call_waiting))
    h.ev(OutgoingCallStarted("o", m(1)))
    h.ev(CallAnswered("o"))
    arrive(h, "a")
    assert h.rings()[0][2] == (m(1) if call_waiting else m(2))


def test_pilot_as_caller_id_presents_the_pilot_and_group_name() -> None:
    h = Harness(make_config("linear", pilot_as_caller_id=True))
    arrive(h, "a")
    assert h.of(Ring)[0].caller_id == Identity("0140000000", "G")
    h2 = Harness(make_config("linear"))
    arrive(h2, "a")
    assert h2.of(Ring)[0].caller_id == Identity("0611111111", "Caller")


def test_member_joining_at_run_time_serves_the_queue() -> None:
    cfg = make_config("linear", members=2)
    h = Harness(cfg)
    h.ev(MemberLeft("G", m(1)))
    h.ev(MemberLeft("G", m(2)))
    arrive(h, "a")
    assert h.core.queue("G") == ["a"]
    h.ev(MemberJoined("G", m(2)), at=5)
    assert h.rings() == [(5.0, "a", m(2))]


def test_config_joined_false_starts_logged_out() -> None:
    from huntgroup.config.models import MemberConfig

    cfg = make_config("linear", members=0)
    cfg = with_members(
        cfg,
        MemberConfig(line=m(1), position=1, joined=False),
        MemberConfig(line=m(2), position=2),
    )
    h = Harness(cfg)
    arrive(h, "a")
    assert [r[2] for r in h.rings()] == [m(2)]


# --- direct calls and hunt_direct_calls --------------------------------------------------


def direct_cfg(hunt_direct_calls: bool, forward_busy: str | None = None):
    return make_config(
        "linear",
        members=2,
        hunt_direct_calls=hunt_direct_calls,
        lines=[{"number": m(1), "forward_busy": forward_busy, "forward_no_answer": "0655"}],
    )


def test_direct_call_to_a_free_line_rings_it_then_follows_its_no_answer_forwarding() -> None:
    h = Harness(direct_cfg(False))
    out = h.ev(DirectCallArrived("d", m(1), "0612345678", "Bob"))
    assert out == [Ring("d", m(1), Identity("0612345678", "Bob"), None, 20)]
    assert h.at(20) == [Cancel("d", m(1)), Forward("d", "0655", "no_answer")]


def test_direct_call_answered_is_bridged_and_makes_the_member_busy() -> None:
    h = Harness(direct_cfg(False))
    h.ev(DirectCallArrived("d", m(1), "0612345678"))
    assert h.ev(MemberAnswered("d", m(1)), at=2) == [Bridge("d", m(1))]
    arrive(h, "a", at=3)
    assert h.rings()[-1] == (3.0, "a", m(2))


@pytest.mark.parametrize(
    ("hunt", "internal", "forward_busy", "expected"),
    [
        (True, False, None, "group"),
        (True, True, None, Release("d", 486, "busy")),
        (False, False, None, Release("d", 486, "busy")),
        (False, False, "0677", Forward("d", "0677", "busy")),
        (True, True, "0677", Forward("d", "0677", "busy")),
    ],
)
def test_hunt_direct_calls_for_busy_member_called_from_outside(
    hunt: bool, internal: bool, forward_busy: str | None, expected: object
) -> None:
    h = Harness(direct_cfg(hunt, forward_busy))
    h.ev(OutgoingCallStarted("o", m(1)))
    h.ev(CallAnswered("o"))
    out = h.ev(DirectCallArrived("d", m(1), "0612345678", caller_internal=internal))
    if expected == "group":
        assert h.rings() == [(0.0, "d", m(2))]  # distributed by the group's algorithm
        assert h.core.call_state("d") is CallState.HUNTING
    else:
        assert out == [expected]


def test_hunt_direct_calls_does_not_apply_to_a_free_member() -> None:
    h = Harness(direct_cfg(True))
    h.ev(DirectCallArrived("d", m(1), "0612345678"))
    assert h.rings() == [(0.0, "d", m(1))]
    assert h.of(Ring)[0].group is None


def test_direct_decline_busy_follows_busy_forwarding() -> None:
    h = Harness(direct_cfg(False, forward_busy="0677"))
    h.ev(DirectCallArrived("d", m(1), "0612345678"))
    assert h.ev(MemberFailed("d", m(1), 486)) == [Forward("d", "0677", "busy")]


def test_direct_call_to_unknown_line_is_404() -> None:
    h = Harness(direct_cfg(False))
    assert h.ev(DirectCallArrived("d", "0999999999", "x")) == [Release("d", 404, "not_found")]


# --- robustness and reload -------------------------------------------------------------


def test_events_for_unknown_calls_are_ignored() -> None:
    h = Harness(make_config("linear"))
    assert h.ev(CallHungUp("nope")) == []
    assert h.ev(MemberFailed("nope", m(1))) == []
    assert h.ev(MemberJoined("nope", m(1))) == []
    assert h.ev(CallArrived("x", "NoSuchGroup", "1")) == [Release("x", 480, "group_removed")]


def test_duplicate_arrival_is_routed_once() -> None:
    h = Harness(make_config("linear"))
    arrive(h, "a")
    assert h.ev(CallArrived("a", "G", "x")) == []
    assert len(h.rings()) == 1


def test_pointer_and_talk_time_survive_a_reload_and_a_new_core_on_the_same_store() -> None:
    store = MemoryStore()
    cfg = make_config("round_robin")
    h = Harness(cfg, store=store)
    arrive(h, "a")
    h.ev(MemberAnswered("a", m(1)), at=1)
    h.ev(CallHungUp("a"), at=11)
    h.core.reload(make_config("round_robin", no_answer_timeout=10), now=12)
    arrive(h, "b", at=13)
    assert h.rings()[-1] == (13.0, "b", m(2))
    assert h.of(Ring)[-1].timeout == 10
    again = RoutingCore(make_config("least_active"), now=20, store=store)
    assert again.talk_time("G", m(1), now=20) == pytest.approx(10)
    assert store.last_answered("G") == m(1)


def test_reload_that_removes_a_group_releases_its_waiting_calls() -> None:
    h = Harness(make_config("linear", members=1))
    arrive(h, "a")
    arrive(h, "b")
    h.ev(MemberAnswered("a", m(1)))
    empty = make_config("linear", members=1).model_copy(update={"groups": ()})
    out = h.core.reload(empty, now=5)
    assert out == [Release("b", 480, "group_removed")]
    assert h.core.call_state("a") is CallState.CONNECTED


@pytest.mark.parametrize("algorithm", ["ring_all", "linear"])
def test_reload_that_removes_a_group_ends_its_ringing_offers(algorithm: str) -> None:
    """Review finding: the call of a removed group was released but its members stayed
    ringing for it in the store, and were never offered a call again (another group's
    callers waited for them until a restart)."""
    cfg = make_config(
        algorithm,
        members=3,
        groups=[
            {
                "name": "H",
                "pilot": "0140000001",
                "algorithm": "linear",
                "members": [{"line": m(i), "position": i} for i in (1, 2, 3)],
            }
        ],
    )
    h = Harness(cfg)
    h.ev(CallArrived("a", "G", "0611111111"))
    rung = list(h.core.offers_of("a"))
    assert len(rung) == (3 if algorithm == "ring_all" else 1)
    only_h = cfg.model_copy(update={"groups": cfg.groups[1:]})
    out = h.core.reload(only_h, now=h.now + 1)
    assert sorted(a.member for a in out if isinstance(a, Cancel)) == sorted(rung)
    assert Release("a", 480, "group_removed") in out
    assert not any(h.core.store.is_ringing(member) for member in rung)
    ring = [a for a in h.ev(CallArrived("b", "H", "0611111111")) if isinstance(a, Ring)]
    assert [a.member for a in ring] == [m(1)]


def test_reload_that_removes_a_ringing_member_moves_the_hunt_on() -> None:
    h = Harness(make_config("linear", members=3))
    arrive(h, "a")
    new = make_config("linear", members=3)
    g = new.groups[0]
    new = new.model_copy(update={"groups": (g.model_copy(update={"members": g.members[1:]}),)})
    out = h.core.reload(new, now=2)
    assert out[0] == Cancel("a", m(1))
    assert isinstance(out[1], Ring) and out[1].member == m(2)
    assert h.core.call_state("a") is CallState.HUNTING
