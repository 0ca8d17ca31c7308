"""Issue 11: a member that cannot be reached is unavailable, not free (scripted time)."""

from __future__ import annotations

from typing import Any

from huntgroup.config.models import Config, GroupConfig, LineConfig, MemberConfig
from huntgroup.queue.actions import Bridge, Cancel, Forward, Hold, Release, Ring, Ringback
from huntgroup.queue.availability import BACKOFF_MAX, MemberState, backoff_delay
from huntgroup.queue.events import (
    CallArrived,
    CallHungUp,
    LineActivity,
    MemberAnswered,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberReachable,
    MemberUnreachable,
    OutgoingCallStarted,
)
from tests.support.core_harness import Harness, m, make_config

AGENT = "sip:agent@127.0.0.1:5080"


def support(**group: Any) -> Config:
    """The example's Support: two lines that never registered, then a fixed-URI agent."""
    settings: dict[str, Any] = {
        "name": "G",
        "pilot": "0140000000",
        "algorithm": "round_robin",
        "wrap_up": 5,
        "members": (
            MemberConfig(line=m(1), position=1),
            MemberConfig(line=m(2), position=2),
            MemberConfig(uri=AGENT, position=3),
        ),
        **group,
    }
    lines = tuple(LineConfig(number=m(i), password="pw") for i in (1, 2))
    return Config(lines=lines, groups=(GroupConfig(**settings),))


def unregistered(h: Harness, *members: str) -> None:
    for member in members:
        h.ev(MemberReachable(member, False))


def arrive(h: Harness, call: str, at: float | None = None, group: str = "G") -> list[Any]:
    return h.ev(CallArrived(call, group, "0611111111"), at=at)


def test_the_issue_scenario_callers_wait_with_music_and_are_served_in_order() -> None:
    """Three calls 1 s apart to Support: the agent takes the first; the second and the
    third wait with music (never hunting through the unregistered lines); out of
    wrap-up, the agent gets the second, then the third."""
    h = Harness(support())
    unregistered(h, m(1), m(2))
    assert arrive(h, "c1", at=0) == [
        Ringback("c1"),
        Ring("c1", AGENT, h.of(Ring)[0].caller_id, "G", 15),
    ]
    h.ev(MemberAnswered("c1", AGENT), at=0.5)
    assert arrive(h, "c2", at=1) == [Hold("c2", True, None)]
    assert arrive(h, "c3", at=2) == [Hold("c3", True, None)]
    assert h.core.queue("G") == ["c2", "c3"]
    h.ev(CallHungUp("c1"), at=10)
    assert h.at(14.9) == []  # wrap-up
    h.at(15)
    assert h.rings(since=10) == [(15.0, "c2", AGENT)]
    h.ev(MemberAnswered("c2", AGENT), at=16)
    h.ev(CallHungUp("c2"), at=20)
    h.at(25)
    assert h.rings(since=16) == [(25.0, "c3", AGENT)]
    assert {member for _, _, member in h.rings()} == {AGENT}  # the lines were never rung


def test_an_unregistered_line_is_unavailable_until_it_registers() -> None:
    h = Harness(make_config("circular", members=2))
    unregistered(h, m(1), m(2))
    assert h.core.member_state("G", m(1), now=0) is MemberState.UNAVAILABLE
    assert not h.core.is_free("G", m(1), now=0)
    assert arrive(h, "a") == [Hold("a", True, None)]
    assert arrive(h, "b", at=1) == [Hold("b", True, None)]
    out = h.ev(MemberReachable(m(2), True), at=3)  # m2's phone registers
    assert next(a for a in out if isinstance(a, Ring)).call_id == "a"
    assert h.core.member_state("G", m(2), now=3) is MemberState.RINGING
    assert h.core.queue("G") == ["b"]


def test_a_member_found_unreachable_backs_off_then_is_tried_again() -> None:
    h = Harness(make_config("circular", members=1, queue={"max_wait": None}))
    arrive(h, "a")
    h.ev(MemberUnreachable("a", m(1)))
    assert h.core.member_state("G", m(1), now=0) is MemberState.UNAVAILABLE
    h.at(1)  # the next pass finds nobody: the caller waits, instead of hunting in circles
    assert h.of(Hold, "a")
    assert h.at(4.9) == []
    h.at(5)  # back-off over: tried again
    assert h.rings() == [(0.0, "a", m(1)), (5.0, "a", m(1))]
    h.ev(MemberUnreachable("a", m(1)))  # again: twice as long
    assert h.at(14.9) == []
    h.at(15)
    assert h.rings()[-1] == (15.0, "a", m(1))
    h.ev(MemberFailed("a", m(1), 486))  # a status: reachable; the series ends
    assert h.core.availability.backoff_until(m(1)) is None


def test_backoff_doubles_up_to_a_minute() -> None:
    assert [backoff_delay(n) for n in range(1, 8)] == [5, 10, 20, 40, 60, 60, 60]
    assert backoff_delay(1000) == BACKOFF_MAX


def test_an_unreachable_member_is_skipped_without_costing_a_pass() -> None:
    h = Harness(make_config("linear", members=3))
    arrive(h, "a")
    h.ev(MemberUnreachable("a", m(1)))
    assert h.rings()[-1] == (0.0, "a", m(2))
    h.ev(MemberFailed("a", m(2), 486))
    h.ev(CallHungUp("a"))
    arrive(h, "b", at=1)  # linear, a new call: m1 backs off, the pass starts at m2
    assert h.rings()[-1] == (1.0, "b", m(2))


def test_no_port_of_ours_does_not_make_the_member_back_off() -> None:
    h = Harness(make_config("circular", members=1))
    arrive(h, "a")
    h.ev(MemberUnreachable("a", m(1), ours=True))
    assert h.core.member_state("G", m(1), now=0) is not MemberState.UNAVAILABLE
    assert h.core.availability.backoff_until(m(1)) is None


def test_a_line_busy_on_its_own_calls_is_not_offered_until_it_is_idle() -> None:
    h = Harness(make_config("linear", members=1))
    h.ev(LineActivity(m(1), True))
    assert h.core.member_state("G", m(1), now=0) is MemberState.TALKING
    assert arrive(h, "a") == [Hold("a", True, None)]
    out = h.ev(LineActivity(m(1), False), at=2)
    assert [(a.call_id, a.member) for a in out if isinstance(a, Ring)] == [("a", m(1))]


def test_a_line_busy_on_its_own_calls_is_offered_with_call_waiting() -> None:
    h = Harness(make_config("linear", members=1, call_waiting=True))
    h.ev(LineActivity(m(1), True))
    arrive(h, "a")
    assert h.rings() == [(0.0, "a", m(1))]


def test_line_activity_of_a_number_we_do_not_know_is_not_kept() -> None:
    h = Harness(make_config("linear", members=1))
    h.ev(LineActivity("0999999999", True))
    h.ev(MemberReachable("0999999999", False))
    assert not h.core.availability.busy_outside("0999999999")
    assert h.core.availability.has_contact("0999999999")


# ------------------------------------------------------------- when_empty
def test_when_empty_wait_keeps_callers_waiting() -> None:
    h = Harness(make_config("linear", members=1))
    unregistered(h, m(1))
    assert arrive(h, "a") == [Hold("a", True, None)]


def test_when_empty_overflow_releases_480_on_arrival() -> None:
    h = Harness(make_config("linear", members=1, queue={"when_empty": "overflow"}))
    unregistered(h, m(1))
    assert arrive(h, "a") == [Release("a", 480, "empty")]


def test_when_empty_overflow_goes_to_overflow_to_on_arrival() -> None:
    cfg = make_config(
        "linear", members=2, queue={"when_empty": "overflow", "overflow_to": "sip:r@x"}
    )
    h = Harness(cfg)
    h.ev(MemberLeft("G", m(1)))
    unregistered(h, m(2))
    assert arrive(h, "a") == [Forward("a", "sip:r@x", "empty")]


def test_when_empty_overflow_does_not_apply_while_a_member_is_only_busy() -> None:
    h = Harness(make_config("linear", members=1, queue={"when_empty": "overflow"}))
    h.ev(OutgoingCallStarted("o", m(1)))
    assert arrive(h, "a") == [Hold("a", True, None)]


def test_when_empty_overflow_lets_waiting_callers_go_when_the_last_member_does() -> None:
    cfg = make_config(
        "linear", members=2, queue={"when_empty": "overflow", "overflow_to": "sip:r@x"}
    )
    h = Harness(cfg)
    h.ev(OutgoingCallStarted("o1", m(1)))
    h.ev(OutgoingCallStarted("o2", m(2)))
    arrive(h, "a")
    arrive(h, "b", at=1)
    assert h.ev(MemberReachable(m(1), False), at=2) == []  # m2 is still there
    out = h.ev(MemberLeft("G", m(2)), at=3)
    assert out == [Forward("a", "sip:r@x", "empty"), Forward("b", "sip:r@x", "empty")]
    assert h.core.queue("G") == []


def test_when_empty_overflow_after_a_back_off_empties_the_group() -> None:
    h = Harness(make_config("linear", members=1, queue={"when_empty": "overflow"}))
    arrive(h, "a")
    out = h.ev(MemberUnreachable("a", m(1)))
    assert Release("a", 480, "empty") in out or h.of(Release, "a")


# ------------------------------------------------------------ max_length 0
def test_max_length_zero_releases_a_caller_whose_hunt_finds_nobody_free() -> None:
    h = Harness(make_config("circular", members=2, queue={"max_length": 0}))
    arrive(h, "a")  # m1 rings for a
    arrive(h, "b")  # m2 rings for b
    h.ev(MemberFailed("b", m(2), 603))  # the pass goes on: m1 rings for a
    out = h.at(1)  # the next pass finds m1 ringing, m2 free again
    assert [(x.call_id, x.member) for x in out if isinstance(x, Ring)] == [("b", m(2))]
    h.ev(MemberUnreachable("b", m(2)), at=1.5)  # m2 backs off
    out = h.at(2)  # a fresh pass: nobody free; no queue, so no music
    assert out == [Release("b", 486, "queue_full")]
    assert not h.of(Hold)


def test_max_length_zero_overflows_a_caller_whose_hunt_finds_nobody_free() -> None:
    h = Harness(
        make_config("circular", members=1, queue={"max_length": 0, "overflow_to": "sip:o@x"})
    )
    arrive(h, "a")
    h.ev(MemberUnreachable("a", m(1)))
    h.at(1)  # the next pass finds nobody free
    assert h.of(Forward, "a") == [Forward("a", "sip:o@x", "queue_full")]
    assert not h.of(Hold)


# ------------------------------------------------------------- member state
def test_member_states_are_visible() -> None:
    h = Harness(make_config("linear", members=6, wrap_up=30))
    h.ev(MemberLeft("G", m(1)))
    unregistered(h, m(2))
    arrive(h, "a")  # m3 rings
    h.ev(OutgoingCallStarted("o", m(4)))
    arrive(h, "b")  # queued: m5? no, m5 rings (m4 busy)
    h.ev(MemberAnswered("b", m(5)))
    h.ev(CallHungUp("b"), at=1)  # m5 in wrap-up
    assert h.core.member_states("G", now=1) == {
        m(1): MemberState.LOGGED_OUT,
        m(2): MemberState.UNAVAILABLE,
        m(3): MemberState.RINGING,
        m(4): MemberState.TALKING,
        m(5): MemberState.WRAP_UP,
        m(6): MemberState.FREE,
    }
    assert h.core.member_state("G", "nobody", now=1) is None
    assert h.core.member_states("nope", now=1) == {}


def test_availability_changes_are_logged(caplog: Any) -> None:
    h = Harness(make_config("linear", members=1))
    with caplog.at_level("INFO", logger="huntgroup.members"):
        h.ev(MemberReachable(m(1), False))
        h.ev(MemberReachable(m(1), False))  # no change: no line
        h.ev(MemberReachable(m(1), True))
        arrive(h, "a")
        h.ev(MemberUnreachable("a", m(1)))
        h.at(5)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        f"member {m(1)}: unavailable (no registered contact)",
        f"member {m(1)}: available (registered)",
        f"member {m(1)}: unavailable (unreachable), tried again in 5 s",
        f"member {m(1)}: available again, its back-off is over",
    ]
    fields = [(vars(r)["member"], vars(r)["event"]) for r in caplog.records]  # --log-format json
    assert fields == [(m(1), e) for e in ("unavailable", "available") * 2]


def test_answering_ends_a_back_off_series() -> None:
    h = Harness(make_config("circular", members=1, queue={"max_wait": None}))
    arrive(h, "a")
    h.ev(MemberUnreachable("a", m(1)))
    h.at(5)
    h.ev(MemberAnswered("a", m(1)), at=6)
    assert h.of(Bridge, "a")
    assert h.core.availability.backoff_until(m(1)) is None
    assert not h.of(Cancel)


def test_rejoining_by_feature_code_still_restarts_talk_time() -> None:
    h = Harness(make_config("linear", members=1))
    arrive(h, "a")
    h.ev(MemberAnswered("a", m(1)))
    h.ev(CallHungUp("a"), at=10)
    h.ev(MemberLeft("G", m(1)), at=11)
    h.ev(MemberJoined("G", m(1)), at=12)
    assert h.core.talk_time("G", m(1), now=12) == 0
