"""The index of a group's free members and the walks over it, on their own."""

from __future__ import annotations

from huntgroup.distribution.index import GroupIndex
from huntgroup.distribution.walks import LeastWalk, RotatedWalk
from huntgroup.queue.events import (
    CallAnswered,
    CallArrived,
    CallHungUp,
    MemberAnswered,
    OutgoingCallStarted,
)
from tests.support.core_harness import LINES, Harness, make_config

KEYS = [f"m{i}" for i in range(1, 41)]


def index(free: list[int], *, least: bool = False) -> GroupIndex:
    idx = GroupIndex(KEYS, range(1, len(KEYS) + 1), least=least)
    for slot in range(len(KEYS)):
        idx.update(slot, slot in free, True, (0.0, 0.0, ()) if least else None)
    return idx


def yes(member: str) -> bool:
    return True


def test_a_rotated_walk_wraps_around_from_its_start() -> None:
    walk = RotatedWalk(index([1, 5, 30]), start=10)
    assert [walk.next(yes), walk.next(yes), walk.next(yes), walk.next(yes)] == [
        "m31",
        "m2",
        "m6",
        None,
    ]
    rest = RotatedWalk(index([1, 5, 30]), start=3)
    assert rest.next(yes) == "m6"
    assert rest.rest(yes) == ["m31", "m2"]
    assert rest.rest(yes) == []


def test_many_members_rung_at_once_leave_the_sorted_lists_as_one_by_one() -> None:
    free = list(range(0, 40, 2))
    bulk, single = index(free, least=True), index(free, least=True)
    taken = free[3:]
    bulk.busy(taken)
    for slot in taken:
        single.update(slot, False, True, (0.0, 0.0, ()))
    assert bulk.free == single.free == free[:3]
    assert bulk.by_talk == single.by_talk
    assert [bulk.flags[s] for s in range(40)] == [single.flags[s] for s in range(40)]


def test_a_least_talk_walk_sees_the_entries_of_its_start() -> None:
    idx = index([0, 1, 2], least=True)
    walk = LeastWalk(idx, t0=10.0)
    idx.update(0, True, True, (50.0, 0.0, ()))  # m1 talked since: still first for this pass
    assert walk.next(yes) == "m1"
    assert LeastWalk(idx, t0=10.0).next(yes) == "m2"  # a new pass sees it


def test_an_answered_call_no_longer_holds_the_log_of_talk_changes() -> None:
    """A long call answered from a least-talk pass must not keep every later change of
    the group's talk entries in the index's log."""
    h = Harness(make_config("least_active", members=3, queue={"max_wait": None}))
    h.ev(CallArrived("long", "G", "0611111111"), at=0)
    h.ev(MemberAnswered("long", LINES[0]), at=1)
    for k in range(200):
        h.ev(OutgoingCallStarted(f"o{k}", LINES[1]), at=2 + k)
        h.ev(CallAnswered(f"o{k}"))
        h.ev(CallArrived(f"c{k}", "G", "0611111111"))
        h.ev(CallHungUp(f"c{k}"))
        h.ev(CallHungUp(f"o{k}"))
    got = h.core.roster._indexes["G"][1]
    assert len(got.log) <= 4 * len(got.keys) + 64


def test_many_members_rung_at_once_as_a_run_or_scattered_leave_the_index_as_one_by_one() -> None:
    free = list(range(0, 40, 2))
    for taken in (free[2:19], free[1::2], free[5:] + free[:2], [4, 3, 6, *free[10:]]):
        bulk, single = index(free), index(free)
        bulk.busy([s for s in taken if s in free])
        for slot in taken:
            if slot in free:
                single.update(slot, False, True, None)
        assert bulk.free == single.free
        assert bytes(bulk.flags) == bytes(single.flags)


def test_a_ring_all_rest_gives_every_free_member_left_in_order_wrapping_around() -> None:
    free = list(range(0, 40, 3))
    assert RotatedWalk(index(free)).rest(yes) == [f"m{s + 1}" for s in free]
    walk = RotatedWalk(index(free), start=20)
    assert walk.next(yes) == "m22"
    assert walk.rest(yes) == [f"m{s + 1}" for s in free if s > 21] + [
        f"m{s + 1}" for s in free if s < 20
    ]
    one = RotatedWalk(index([7]))
    assert one.rest(yes) == ["m8"]
