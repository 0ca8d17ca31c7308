"""``GroupIndex.take_given``: the members a walk's ``rest`` just gave leave the index
without a lookup per member, and only while ``free`` has not changed since.

A ring all's walk starts at the first slot and nothing changes ``free`` between its
``rest`` and the roster's ``rung``, so the core's own tests only ever see the simple
case. Here the walk starts anywhere (its ``rest`` is then the tail of ``free`` and its
head), takes a member or two first, and the index sometimes changes in between: in
every case the index must end as if each member had been taken one by one.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from huntgroup.distribution.index import GroupIndex
from huntgroup.distribution.walks import RotatedWalk


def _index(n: int, free: set[int], least: bool) -> GroupIndex:
    index = GroupIndex([f"k{i}" for i in range(n)], list(range(1, n + 1)), least=least)
    for slot in range(n):
        index.update(slot, slot in free, True, (0.0, 0.0, ()) if least else None)
    return index


@settings(max_examples=400, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_the_members_given_leave_the_index_as_if_taken_one_by_one(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randrange(2, 60)
    least = rng.random() < 0.3
    index = _index(n, set(rng.sample(range(n), rng.randrange(0, n + 1))), least)
    walk = RotatedWalk(index, rng.randrange(n))
    for _ in range(rng.randrange(3)):
        walk.next(lambda key: True)
    members = walk.rest(lambda key: True)
    changed = rng.random() < 0.3
    if changed:  # a change between the walk and the take: what it gave is forgotten
        slot, kind = rng.randrange(n), rng.randrange(3)
        if kind == 0 and not index.flags[slot]:
            index.update(slot, True, True, (0.0, 0.0, ()) if least else None)
        elif kind == 1 and len(index.free) >= 16:  # many at once
            index.busy(sorted(rng.sample(index.free, 16)))
        elif index.free:
            index.take(rng.choice(index.free))
        else:
            changed = False
    before = list(index.free)
    took = index.take_given(members)
    assert not (changed and took), "a stale walk's members were taken"
    if not took:
        slots = [index.slot[key] for key in members if index.flags[index.slot[key]]]
        if slots:
            index.busy(sorted(slots))
    gone = set(members)
    left = [slot for slot in before if index.keys[slot] not in gone]
    assert index.free == left
    assert all(index.flags[slot] == (slot in left) for slot in range(n))
    if least:
        assert sorted(item[2] for item in index.by_talk) == sorted(
            index.keys[slot] for slot in left if slot not in index.live
        )
    assert index.given is None  # used once


def test_a_walk_started_past_the_first_slot_is_taken_too() -> None:
    index = _index(10, set(range(10)), least=False)
    members = RotatedWalk(index, 6).rest(lambda key: True)
    assert members[:4] == ["k6", "k7", "k8", "k9"]  # the tail of free, then its head
    assert index.take_given(members)
    assert index.free == [] and not any(index.flags)
