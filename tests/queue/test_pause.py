"""Issue 12: paused members, control changes and the time in state (scripted time)."""

from __future__ import annotations

import pytest

from huntgroup.config.models import ALGORITHMS, Config, GroupConfig, LineConfig, MemberConfig
from huntgroup.queue.actions import Cancel, Hold, Release, Ring
from huntgroup.queue.availability import MemberState
from huntgroup.queue.events import (
    CallArrived,
    CallHungUp,
    MemberAnswered,
    MemberJoined,
    MemberLeft,
    MemberPaused,
)
from huntgroup.queue.member_status import MembershipChange
from tests.support.core_harness import Harness, m, make_config, with_members

AGENT = "sip:agent@127.0.0.1:5080"


def paused(h: Harness, member: str, on: bool = True, reason: str = "lunch") -> None:
    h.ev(MemberPaused("G", member, on, "api", reason))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_paused_member_is_offered_no_call_by_any_algorithm(algorithm: str) -> None:
    h = Harness(make_config(algorithm, members=3))
    paused(h, m(1))
    paused(h, m(3))
    for i in range(3):  # each call finds only m2; it refuses, so every pass is tried
        call = f"c{i}"
        h.ev(CallArrived(call, "G", "0611111111"), at=10.0 * i)
        assert {r.member for r in h.of(Ring, call)} == {m(2)}
        h.ev(CallHungUp(call), at=10.0 * i + 1)
    assert {member for _, _, member in h.rings()} == {m(2)}


def test_an_all_paused_group_is_waited_for_as_an_all_busy_one() -> None:
    h = Harness(make_config("ring_all", members=2))
    paused(h, m(1))
    paused(h, m(2))
    assert h.ev(CallArrived("c1", "G", "0611111111"), at=1) == [Hold("c1", True, None)]
    assert h.core.queue("G") == ["c1"]
    assert h.core.member_state("G", m(1), now=1) is MemberState.PAUSED
    out = h.ev(MemberPaused("G", m(2), False, "api"), at=5)
    assert [a for a in out if isinstance(a, Ring)] == [Ring("c1", m(2), out[0].caller_id, "G", 15)]


def test_with_when_empty_overflow_an_all_paused_group_is_empty() -> None:
    h = Harness(make_config("linear", members=2, queue={"when_empty": "overflow"}))
    paused(h, m(1))
    h.ev(CallArrived("c1", "G", "0611111111"), at=1)
    h.ev(MemberAnswered("c1", m(2)), at=2)
    assert h.ev(CallArrived("c2", "G", "0611111111"), at=3) == [Hold("c2", True, None)]
    # the last member that could take a call pauses: the waiting caller overflows
    out = h.ev(MemberPaused("G", m(2), True, "api"), at=4)
    assert Release("c2", 480, "empty") in out
    assert h.core.call_state("c2") is None
    assert h.core.call_state("c1") is not None  # the call it is on goes on


def test_pausing_a_ringing_member_withdraws_its_offer_and_the_hunt_goes_on() -> None:
    h = Harness(make_config("linear", members=2))
    h.ev(CallArrived("c1", "G", "0611111111"), at=0)
    assert h.rings() == [(0.0, "c1", m(1))]
    out = h.ev(MemberPaused("G", m(1), True, "api", "meeting"), at=3)
    assert Cancel("c1", m(1)) in out
    assert h.rings(since=3) == [(3.0, "c1", m(2))]
    assert h.core.member_state("G", m(1), now=3) is MemberState.PAUSED


def test_a_paused_member_keeps_its_join_date_and_talk_time() -> None:
    h = Harness(make_config("linear", members=2), now=0)
    h.ev(MemberLeft("G", m(1)), at=1)
    h.ev(MemberJoined("G", m(1)), at=2)
    h.ev(CallArrived("c1", "G", "0611111111"), at=3)
    h.ev(MemberAnswered("c1", m(1)), at=4)
    h.ev(CallHungUp("c1"), at=34)
    assert h.core.talk_time("G", m(1), now=40) == 30.0
    paused(h, m(1))
    h.at(100)
    assert h.core.store.joined_since("G", m(1)) == 2.0
    assert h.core.talk_time("G", m(1), now=100) == 30.0
    paused(h, m(1), on=False)
    assert h.core.store.joined_since("G", m(1)) == 2.0
    assert h.core.talk_time("G", m(1), now=100) == 30.0
    assert h.core.member_state("G", m(1), now=100) is MemberState.FREE


def test_a_pause_is_per_group() -> None:
    cfg = make_config(
        "linear",
        members=1,
        groups=[
            {
                "name": "H",
                "pilot": "0150000000",
                "members": [MemberConfig(line=m(1), position=1)],
            }
        ],
    )
    h = Harness(cfg)
    paused(h, m(1))
    assert h.core.member_state("H", m(1), now=0) is MemberState.FREE
    h.ev(CallArrived("c1", "H", "0611111111"), at=1)
    assert h.rings() == [(1.0, "c1", m(1))]


def test_logging_out_ends_a_pause_and_a_logged_out_member_cannot_be_paused() -> None:
    h = Harness(make_config("linear", members=2))
    h.core.changes = []
    paused(h, m(1))
    h.ev(MemberLeft("G", m(1), "api"), at=1)
    assert h.core.paused("G", m(1)) is None
    paused(h, m(1))  # logged out: nothing happens
    assert h.core.paused("G", m(1)) is None
    h.ev(MemberJoined("G", m(1), "api"), at=2)
    assert h.core.member_state("G", m(1), now=2) is MemberState.FREE
    assert [(c.action, c.origin) for c in h.core.take_changes()] == [
        ("pause", "api"),
        ("logout", "api"),
        ("login", "api"),
    ]


def test_every_control_change_is_noted_once_with_its_origin() -> None:
    cfg = make_config("linear", members=2)
    h = Harness(cfg)
    h.core.changes = []
    h.ev(MemberPaused("G", m(1), True, "api", "break"), at=1)
    h.ev(MemberPaused("G", m(1), True, "api", "again"), at=2)  # already paused: no change
    h.ev(MemberPaused("G", m(1), False, "api"), at=3)
    h.ev(MemberLeft("G", m(2)), at=4)  # *52
    h.ev(MemberLeft("G", m(2)), at=5)  # already out: no change
    h.ev(MemberJoined("G", m(2)), at=6)  # *51
    flipped = with_members(
        cfg,
        MemberConfig(line=m(1), position=1, joined=False),
        MemberConfig(line=m(2), position=2),
    )
    h.core.reload(flipped, now=7)
    assert h.core.take_changes() == [
        MembershipChange(1, "G", m(1), "pause", "break", "api"),
        MembershipChange(3, "G", m(1), "unpause", "", "api"),
        MembershipChange(4, "G", m(2), "logout", "", "phone"),
        MembershipChange(6, "G", m(2), "login", "", "phone"),
        MembershipChange(7, "G", m(1), "logout", "", "reload"),
    ]
    assert h.core.take_changes() == []


def test_changes_and_times_are_not_kept_unless_observed() -> None:
    h = Harness(make_config("linear", members=2))
    paused(h, m(1))
    assert h.core.changes is None
    assert h.core.take_changes() == []
    assert len(h.core.times) == 0
    assert not h.core.store.touched and not h.core.availability.touched


def test_a_uri_member_logs_out_and_in() -> None:
    lines = (LineConfig(number=m(1), password="pw"),)
    group = GroupConfig(
        name="G",
        pilot="0140000000",
        algorithm="linear",
        members=(MemberConfig(uri=AGENT, position=1), MemberConfig(line=m(1), position=2)),
    )
    h = Harness(Config(lines=lines, groups=(group,)))
    h.ev(MemberLeft("G", AGENT, "api"), at=1)
    assert h.core.member_state("G", AGENT, now=1) is MemberState.LOGGED_OUT
    h.ev(CallArrived("c1", "G", "0611111111"), at=2)
    assert h.rings() == [(2.0, "c1", m(1))]
    h.ev(CallHungUp("c1"), at=3)
    h.ev(MemberJoined("G", AGENT, "api"), at=4)
    h.ev(CallArrived("c2", "G", "0611111111"), at=5)
    assert h.rings(since=5) == [(5.0, "c2", AGENT)]
    h.ev(MemberPaused("G", AGENT, True, "api"), at=6)
    assert h.core.member_state("G", AGENT, now=6) is MemberState.PAUSED


def test_the_time_in_state_is_stamped_by_the_inputs_that_change_it() -> None:
    h = Harness(make_config("linear", members=2, wrap_up=5), now=100, observed=True)

    def since(member: str, now: float) -> tuple[MemberState | None, float | None]:
        return (
            h.core.member_state("G", member, now=now),
            h.core.state_since("G", member, now=now),
        )

    assert since(m(1), 150) == (MemberState.FREE, 100)  # first seen at start
    h.ev(CallArrived("c1", "G", "0611111111"), at=200)
    assert since(m(1), 210) == (MemberState.RINGING, 200)
    assert since(m(2), 210) == (MemberState.FREE, 100)
    h.ev(MemberAnswered("c1", m(1)), at=203)
    assert since(m(1), 250) == (MemberState.TALKING, 203)
    h.ev(CallHungUp("c1"), at=260)
    assert since(m(1), 262) == (MemberState.WRAP_UP, 260)
    h.at(300)  # the wrap-up timer fired at 265
    assert since(m(1), 300) == (MemberState.FREE, 265)
    h.ev(MemberPaused("G", m(1), True, "api", "lunch"), at=310)
    assert since(m(1), 400) == (MemberState.PAUSED, 310)
    assert h.core.paused("G", m(1)) is not None
    h.ev(MemberLeft("G", m(2)), at=320)
    assert since(m(2), 400) == (MemberState.LOGGED_OUT, 320)


def test_a_reload_forgets_the_times_of_removed_members() -> None:
    cfg = make_config("linear", members=3)
    h = Harness(cfg, observed=True)
    assert len(h.core.times) == 3
    h.core.reload(make_config("linear", members=2), now=5)
    assert len(h.core.times) == 2
