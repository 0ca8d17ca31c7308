"""Issue 11: re-added members start again, `joined:` on reload, the round-robin pointer
keyed by the member, and group priorities (scripted time)."""

from __future__ import annotations

from typing import Any

import pytest

from huntgroup.config.models import Config, GroupConfig, MemberConfig
from huntgroup.queue.actions import Cancel, Hold, Ring
from huntgroup.queue.availability import MemberState
from huntgroup.queue.events import (
    CallArrived,
    CallHungUp,
    MemberAnswered,
    MemberFailed,
    MemberLeft,
)
from huntgroup.queue.state.journal import JournalingStore
from huntgroup.queue.state.store import MemoryStore
from tests.support.core_harness import Harness, m, make_config


def arrive(h: Harness, call: str, at: float | None = None, group: str = "G") -> list[Any]:
    return h.ev(CallArrived(call, group, "0611111111"), at=at)


def take(h: Harness, call: str, member: str, at: float, talk: float = 10.0) -> None:
    """``call`` arrives, ``member`` answers it, and hangs up ``talk`` s later."""
    arrive(h, call, at=at)
    h.ev(MemberAnswered(call, member), at=at)
    h.ev(CallHungUp(call), at=at + talk)


def with_members(cfg: Config, *members: MemberConfig, **changes: Any) -> Config:
    group = cfg.groups[0].model_copy(update={"members": members, **changes})
    return cfg.model_copy(update={"groups": (group, *cfg.groups[1:])})


# ----------------------------------------------------- removed and added back
def test_a_member_removed_and_added_back_starts_again() -> None:
    cfg = make_config("least_active", members=2)
    h = Harness(cfg)
    take(h, "a", m(1), at=0, talk=30)
    assert h.core.talk_time("G", m(1), now=40) == 30
    h.core.reload(with_members(cfg, MemberConfig(line=m(2), position=1)), now=50)
    assert h.core.store.joined_since("G", m(1)) is None
    h.core.reload(cfg, now=60)  # added back
    assert h.core.store.joined_since("G", m(1)) == 60
    assert h.core.talk_time("G", m(1), now=61) == 0
    assert h.core.store.joined_since("G", m(2)) == 0  # untouched


def test_a_member_of_a_removed_group_starts_again_when_the_group_comes_back() -> None:
    cfg = make_config("least_active", members=1)
    h = Harness(cfg)
    take(h, "a", m(1), at=0, talk=30)
    h.core.reload(cfg.model_copy(update={"groups": ()}), now=50)
    h.core.reload(cfg, now=60)
    assert h.core.store.joined_since("G", m(1)) == 60
    assert h.core.talk_time("G", m(1), now=61) == 0


def test_a_restart_on_a_shared_store_keeps_membership() -> None:
    store = MemoryStore()
    cfg = make_config("least_active", members=1)
    h = Harness(cfg, store=store)
    take(h, "a", m(1), at=0, talk=30)
    again = Harness(cfg, store=store, now=100)
    assert again.core.talk_time("G", m(1), now=100) == 30


# ---------------------------------------------------------- joined: on reload
def test_joined_changed_by_a_reload_logs_the_member_out_then_in() -> None:
    cfg = make_config("linear", members=2)
    h = Harness(cfg)
    take(h, "a", m(1), at=0, talk=30)
    arrive(h, "b", at=40)  # m1 rings
    out_cfg = with_members(
        cfg, MemberConfig(line=m(1), position=1, joined=False), MemberConfig(line=m(2), position=2)
    )
    actions = h.core.reload(out_cfg, now=41)
    assert Cancel("b", m(1)) in actions
    assert [(a.call_id, a.member) for a in actions if isinstance(a, Ring)] == [("b", m(2))]
    assert h.core.member_state("G", m(1), now=41) is MemberState.LOGGED_OUT
    h.core.reload(cfg, now=50)
    assert h.core.member_state("G", m(1), now=50) is MemberState.FREE
    assert h.core.talk_time("G", m(1), now=50) == 0  # a new log-in


def test_a_reload_that_does_not_change_joined_keeps_a_feature_code_logout() -> None:
    cfg = make_config("linear", members=2)
    h = Harness(cfg)
    h.ev(MemberLeft("G", m(1)))
    h.core.reload(make_config("linear", members=2, no_answer_timeout=9), now=5)
    assert h.core.member_state("G", m(1), now=5) is MemberState.LOGGED_OUT


# ------------------------------------------------------ round-robin pointer
def test_renumbering_keeps_the_pointer_on_the_member() -> None:
    cfg = make_config("round_robin", members=3)
    h = Harness(cfg)
    arrive(h, "a")  # m1 rings, declines; m2 takes the call
    h.ev(MemberFailed("a", m(1), 603))
    h.ev(MemberAnswered("a", m(2)))
    h.ev(CallHungUp("a"), at=10)
    assert h.core.store.last_answered("G") == m(2)
    renumbered = with_members(
        cfg,
        MemberConfig(line=m(3), position=1),
        MemberConfig(line=m(2), position=2),
        MemberConfig(line=m(1), position=3),
    )
    h.core.reload(renumbered, now=20)
    arrive(h, "b", at=21)
    assert h.rings()[-1] == (21.0, "b", m(1))  # the member after m2 in the new order


def test_removing_the_pointer_member_starts_with_the_member_that_followed_it() -> None:
    cfg = make_config("round_robin", members=4)
    h = Harness(cfg)
    take(h, "a", m(1), at=0)
    h.at(11)
    arrive(h, "b", at=12)
    h.ev(MemberAnswered("b", m(2)), at=12)
    h.ev(CallHungUp("b"), at=13)
    assert h.core.store.last_answered("G") == m(2)
    without_m2 = with_members(
        cfg,
        MemberConfig(line=m(1), position=1),
        MemberConfig(line=m(3), position=2),
        MemberConfig(line=m(4), position=3),
    )
    h.core.reload(without_m2, now=20)
    assert h.core.store.last_answered("G") == m(1)  # moved back to m2's predecessor
    arrive(h, "c", at=21)
    assert h.rings()[-1] == (21.0, "c", m(3))  # m3 followed m2


def test_removing_the_first_member_wraps_the_pointer_to_the_last() -> None:
    cfg = make_config("round_robin", members=3)
    h = Harness(cfg)
    take(h, "a", m(1), at=0)
    h.core.reload(
        with_members(cfg, MemberConfig(line=m(2), position=2), MemberConfig(line=m(3), position=3)),
        now=20,
    )
    assert h.core.store.last_answered("G") == m(3)
    arrive(h, "b", at=21)
    assert h.rings()[-1] == (21.0, "b", m(2))


def test_a_position_stored_by_an_older_version_is_still_read() -> None:
    store = MemoryStore()
    store.set_last_answered("G", 2)  # what a version before issue 11 stored
    h = Harness(make_config("round_robin", members=3), store=store)
    arrive(h, "a")
    assert h.rings() == [(0.0, "a", m(3))]
    h.ev(MemberAnswered("a", m(3)))
    assert store.last_answered("G") == m(3)  # rewritten by member


def test_the_pointer_travels_between_nodes_as_the_member() -> None:
    a, b = JournalingStore("A"), JournalingStore("B")
    a.set_last_answered("G", m(2))
    for op in a.drain():
        b.apply_remote(op)
    assert b.last_answered("G") == m(2)


# ----------------------------------------------------------------- priority
def two_groups(high: int, low: int = 0) -> Config:
    """Groups G (pilot ...0000) and H (pilot ...0001) sharing their only member m1."""
    cfg = make_config(
        "linear",
        members=1,
        priority=low,
        groups=[
            {
                "name": "H",
                "pilot": "0140000001",
                "algorithm": "linear",
                "priority": high,
                "members": [MemberConfig(line=m(1), position=1)],
            }
        ],
    )
    assert isinstance(cfg.groups[1], GroupConfig)
    return cfg


@pytest.mark.parametrize("high", [1, 0])
def test_a_shared_member_serves_the_higher_priority_group_first(high: int) -> None:
    h = Harness(two_groups(high))
    arrive(h, "busy")
    h.ev(MemberAnswered("busy", m(1)))  # m1 busy until 10
    arrive(h, "g1", at=1)  # G: priority 0, arrived first
    arrive(h, "h1", at=2, group="H")
    arrive(h, "g2", at=3)
    h.ev(CallHungUp("busy"), at=10)
    first = h.rings()[-1][1]
    assert first == ("h1" if high else "g1")


def test_within_a_group_priority_keeps_fifo() -> None:
    h = Harness(two_groups(5))
    arrive(h, "busy")
    h.ev(MemberAnswered("busy", m(1)))
    arrive(h, "h1", at=1, group="H")
    arrive(h, "h2", at=2, group="H")
    assert h.of(Hold, "h2")
    h.ev(CallHungUp("busy"), at=10)
    h.ev(MemberAnswered("h1", m(1)), at=10)
    h.ev(CallHungUp("h1"), at=11)
    assert [c for _, c, _ in h.rings(since=10)] == ["h1", "h2"]
