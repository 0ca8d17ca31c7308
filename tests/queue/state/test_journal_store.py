"""JournalingStore: ops recorded, other nodes' ops merged, the codec, compaction."""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import huntgroup
from huntgroup.errors import StateError
from huntgroup.queue.events import CallArrived, CallHungUp, MemberAnswered, MemberLeft
from huntgroup.queue.state.codec import decode_batch, encode_batch
from huntgroup.queue.state.journal import REMOTE_SEP, JournalingStore
from huntgroup.queue.state.operations import (
    AddTalk,
    Batch,
    Dequeue,
    Enqueue,
    MemberActivity,
    NodeState,
    Op,
    SetActive,
    SetJoined,
    SetPointer,
    SetRinging,
    SetWrapUp,
    Snapshot,
    compact,
)
from huntgroup.queue.state.store import MemoryStore
from tests.support.state_harness import Node, m, make_config


def exchange(*stores: JournalingStore) -> None:
    """Every store's journal applied to every other store (what Redis pub/sub does)."""
    batches = [(s, s.drain()) for s in stores]
    for source, ops in batches:
        for target in stores:
            if target is not source:
                for op in ops:
                    target.apply_remote(op)


def test_every_mutation_is_applied_and_recorded() -> None:
    s = JournalingStore("A")
    s.set_joined("G", "m1", True, now=5.0)
    s.add_talk_time("G", "m1", 12.5)
    s.set_last_answered("G", 2)
    s.set_ringing("m1", "c1", True)
    s.set_active("m1", "c1", True)
    s.set_wrap_up_until("m1", 40.0)
    s.enqueue("G", "c2", (3.0, 7))
    s.dequeue("G", "c2")
    assert s.joined_since("G", "m1") == 5.0
    assert s.talk_time("G", "m1") == 12.5
    assert s.last_answered("G") == 2
    ops = s.drain()
    assert ops == [
        SetJoined("G", "m1", 5.0, (1, "A")),
        AddTalk("G", "m1", 12.5),
        SetPointer("G", 2, (2, "A")),
        SetRinging("m1", "c1", True, "A"),
        SetActive("m1", "c1", True, "A"),
        SetWrapUp("m1", 40.0, "A"),
        Enqueue("G", "c2", (3.0, 7), "A"),
        Dequeue("G", "c2", "A"),
    ]
    assert s.drain() == []


def test_mutations_that_change_nothing_record_nothing() -> None:
    s = JournalingStore("A")
    s.set_joined("G", "m1", True, now=1.0)
    s.set_last_answered("G", 1)
    s.set_ringing("m1", "c1", True)
    s.drain()
    s.set_joined("G", "m1", True, now=2.0)  # already joined
    s.set_last_answered("G", 1)  # same position
    s.set_ringing("m1", "c1", True)  # already ringing
    s.set_active("m1", "c9", False)  # not active
    s.add_talk_time("G", "m1", 0.0)
    assert not s.dequeue("G", "nope")
    assert s.drain() == []
    assert s.joined_since("G", "m1") == 1.0


def test_remote_ops_reproduce_the_state_without_being_journaled() -> None:
    a, b = JournalingStore("A"), JournalingStore("B")
    a.set_joined("G", "m1", True, now=1.0)
    a.set_joined("G", "m2", False, now=1.0)
    a.add_talk_time("G", "m1", 30.0)
    a.set_last_answered("G", 1)
    exchange(a, b)
    assert b.joined_since("G", "m1") == 1.0
    assert b.knows_membership("G", "m2") and b.joined_since("G", "m2") is None
    assert b.talk_time("G", "m1") == 30.0
    assert b.last_answered("G") == 1
    assert b.drain() == []  # applying never records


def test_talk_time_from_two_nodes_adds_up() -> None:
    a, b = JournalingStore("A"), JournalingStore("B")
    a.set_joined("G", "m1", True, now=0.0)
    exchange(a, b)
    a.add_talk_time("G", "m1", 10.0)
    b.add_talk_time("G", "m1", 5.0)
    b.add_talk_time("G", "m1", 2.5)
    exchange(a, b)
    assert a.talk_time("G", "m1") == b.talk_time("G", "m1") == 17.5


def test_a_join_restarts_talk_time_everywhere() -> None:
    a, b = JournalingStore("A"), JournalingStore("B")
    a.set_joined("G", "m1", True, now=0.0)
    a.add_talk_time("G", "m1", 10.0)
    exchange(a, b)
    b.set_joined("G", "m1", False, now=20.0)
    b.set_joined("G", "m1", True, now=30.0)
    exchange(a, b)
    assert a.joined_since("G", "m1") == b.joined_since("G", "m1") == 30.0
    assert a.talk_time("G", "m1") == b.talk_time("G", "m1") == 0.0


@pytest.mark.parametrize("a_first", [True, False])
def test_concurrent_pointer_writes_converge_whatever_the_delivery_order(a_first: bool) -> None:
    a, b = JournalingStore("A"), JournalingStore("B")
    a.set_last_answered("G", 1)
    b.set_last_answered("G", 3)
    ops_a, ops_b = a.drain(), b.drain()
    first, second = (ops_a, ops_b) if a_first else (ops_b, ops_a)
    for op in first + second:
        a.apply_remote(op)
        b.apply_remote(op)
    assert a.last_answered("G") == b.last_answered("G") == 3  # (1, "B") > (1, "A")


def test_a_write_made_after_seeing_another_wins() -> None:
    a, b = JournalingStore("A"), JournalingStore("B")
    b.set_last_answered("G", 3)
    b.set_last_answered("G", 1)
    b.set_last_answered("G", 2)  # B's counter is now 3
    exchange(a, b)
    a.set_last_answered("G", 1)  # A saw counter 3: its stamp is (4, "A")
    exchange(a, b)
    assert a.last_answered("G") == b.last_answered("G") == 1


def test_another_nodes_calls_make_the_member_busy_until_it_is_forgotten() -> None:
    a, b = JournalingStore("A"), JournalingStore("B")
    for s in (a, b):
        s.set_joined("G", "m1", True, now=0.0)
        s.set_joined("G", "m2", True, now=0.0)
    a.drain(), b.drain()
    a.set_ringing("m1", "c1", True)
    a.set_active("m2", "c2", True)
    b.set_active("m2", "c1", True)  # the same call id on B is another call
    exchange(a, b)
    assert b.is_ringing("m1") and not b.is_free("G", "m1", now=1.0, call_waiting=False)
    assert b.ringing("m1") == {f"A{REMOTE_SEP}c1"}
    assert b.active_calls("m2") == {"c1", f"A{REMOTE_SEP}c2"}
    assert b.local_activity("m2") == MemberActivity(active=frozenset({"c1"}))
    assert b.remote_nodes() == {"A"}
    assert b.forget_node("A")
    assert b.is_free("G", "m1", now=1.0, call_waiting=False)
    assert b.active_calls("m2") == {"c1"}
    assert not b.forget_node("A")


def test_remote_ringing_ends_when_the_other_node_says_so() -> None:
    a, b = JournalingStore("A"), JournalingStore("B")
    b.set_joined("G", "m1", True, now=0.0)
    a.set_ringing("m1", "c1", True)
    exchange(a, b)
    assert not b.is_free("G", "m1", now=0.0, call_waiting=False)
    a.set_ringing("m1", "c1", False)
    exchange(a, b)
    assert b.is_free("G", "m1", now=0.0, call_waiting=False)


def test_wrap_up_is_the_latest_of_all_nodes() -> None:
    a, b = JournalingStore("A"), JournalingStore("B")
    b.set_joined("G", "m1", True, now=0.0)
    a.set_wrap_up_until("m1", 50.0)
    b.set_wrap_up_until("m1", 20.0)
    exchange(a, b)
    assert a.wrap_up_until("m1") == b.wrap_up_until("m1") == 50.0
    assert not b.is_free("G", "m1", now=30.0, call_waiting=False)
    b.forget_node("A")
    assert b.wrap_up_until("m1") == 20.0
    assert b.is_free("G", "m1", now=30.0, call_waiting=False)


def test_own_echo_and_other_nodes_queues_are_not_applied() -> None:
    a, b = JournalingStore("A"), JournalingStore("B")
    a.enqueue("G", "c1", (1.0, 1))
    a.set_ringing("m1", "c9", True)
    ops = a.drain()
    for op in ops:
        assert not a.apply_remote(op) or isinstance(op, AddTalk | SetJoined | SetPointer)
        b.apply_remote(op)
    assert a.ringing("m1") == {"c9"}
    assert list(b.queue("G")) == []  # B's queue only ever holds B's callers


def test_node_state_replaces_what_was_known_of_a_node() -> None:
    a, b = JournalingStore("A"), JournalingStore("B")
    a.set_ringing("m1", "c1", True)
    a.set_active("m2", "c2", True)
    a.set_wrap_up_until("m3", 99.0)
    a.enqueue("G", "c3", (2.0, 5))
    exchange(a, b)
    a.set_ringing("m1", "c1", False)
    state = a.node_state()
    assert state.queues == (("G", "c3", (2.0, 5)),)
    b.apply_remote(state)
    assert not b.is_ringing("m1")
    assert b.is_on_call("m2")
    assert b.wrap_up_until("m3") == 99.0


def test_snapshot_merges_by_stamp_and_keeps_unsent_increments() -> None:
    s = JournalingStore("A")
    s.set_joined("G", "m1", True, now=0.0)
    s.drain()
    s.add_talk_time("G", "m1", 4.0)  # recorded, not drained: not in the snapshot yet
    unsent = [AddTalk("G", "m1", 1.0)]  # drained, not accepted by the server yet
    snap = Snapshot(
        joined={("G", "m1"): (0.0, (1, "A")), ("G", "m2"): (7.0, (9, "B"))},
        talk={("G", "m1"): 100.0, ("G", "m2"): 3.0},
        pointers={"G": (2, (8, "B"))},
        activity={"B": {"m2": MemberActivity(ringing=frozenset({"x"}))}, "A": {}},
    )
    s.apply_snapshot(snap, unsent=unsent)
    assert s.talk_time("G", "m1") == 105.0
    assert s.talk_time("G", "m2") == 3.0
    assert s.joined_since("G", "m2") == 7.0
    assert s.last_answered("G") == 2
    assert s.clock >= 9
    assert s.is_ringing("m2")
    s.apply_snapshot(Snapshot())  # B's activity gone from the snapshot: B is dead
    assert not s.is_ringing("m2")


def test_snapshot_after_an_unsent_join_keeps_only_later_increments() -> None:
    s = JournalingStore("A")
    s.set_joined("G", "m1", True, now=0.0)
    s.set_joined("G", "m1", False, now=1.0)
    s.set_joined("G", "m1", True, now=2.0)
    s.add_talk_time("G", "m1", 6.0)
    s.apply_snapshot(Snapshot(talk={("G", "m1"): 500.0}))
    assert s.talk_time("G", "m1") == 6.0
    assert s.joined_since("G", "m1") == 2.0


def test_compact_keeps_the_meaning_of_a_backlog() -> None:
    ops: list[Op] = [
        AddTalk("G", "m1", 5.0),
        SetJoined("G", "m1", None, (1, "A")),
        SetJoined("G", "m1", 3.0, (2, "A")),  # rejoin: restarts talk, earlier talk is moot
        AddTalk("G", "m1", 1.0),
        SetPointer("G", 1, (3, "A")),
        AddTalk("G", "m1", 2.0),
        SetPointer("G", 2, (4, "A")),
        AddTalk("G", "m2", 4.0),
    ]
    kept, dropped = compact(ops)
    assert not dropped
    assert kept == [
        SetJoined("G", "m1", 3.0, (2, "A")),
        AddTalk("G", "m1", 3.0),
        SetPointer("G", 2, (4, "A")),
        AddTalk("G", "m2", 4.0),
    ]
    kept, dropped = compact([SetRinging("m1", "c", True, "A"), Enqueue("G", "c", (0, 1), "A")])
    assert kept == [] and dropped


def test_a_journal_beyond_its_bound_is_compacted_with_a_node_state() -> None:
    s = JournalingStore("A", max_pending=10)
    s.set_joined("G", "m1", True, now=0.0)
    for i in range(20):
        s.set_ringing("m1", f"c{i}", True)
        s.set_ringing("m1", f"c{i}", False)
        s.add_talk_time("G", "m1", 1.0)
    s.set_active("m1", "last", True)
    ops = s.drain()
    assert len(ops) <= 10
    b = JournalingStore("B")
    for op in ops:
        b.apply_remote(op)
    assert b.talk_time("G", "m1") == 20.0
    assert b.is_on_call("m1") and not b.is_ringing("m1")
    assert any(isinstance(op, NodeState) for op in ops)


def test_listener_is_called_for_each_recorded_op() -> None:
    s = JournalingStore("A")
    calls: list[int] = []
    s.listener = lambda: calls.append(s.pending)
    s.set_joined("G", "m1", True, now=0.0)
    s.set_joined("G", "m1", True, now=0.0)
    s.set_last_answered("G", 1)
    assert calls == [1, 2]


def test_bad_node_ids_are_refused() -> None:
    for bad in ("", f"a{REMOTE_SEP}b"):
        with pytest.raises(ValueError, match="node id"):
            JournalingStore(bad)


# ---------------------------------------------------------------- codec
ALL_OPS: list[Op] = [
    SetJoined("G", "m1", 5.0, (1, "A")),
    SetJoined("G", "m1", None, (2, "A")),
    AddTalk("G", "m1", 12.5),
    SetPointer("G", 2, (3, "A")),
    SetRinging("m1", "c1", True, "A"),
    SetActive("m1", "c1", False, "A"),
    SetWrapUp("m1", 40.0, "A"),
    SetWrapUp("m1", -math.inf, "A"),
    Enqueue("G", "c2", (3.0, 7), "A"),
    Dequeue("G", "c2", "A"),
    NodeState(
        "A",
        (("m1", MemberActivity(frozenset({"c1"}), frozenset({"c2"}), 9.0)),),
        (("G", "c3", (1.5, 4)),),
    ),
]


def test_batches_round_trip_between_nodes_with_different_clocks() -> None:
    # node A's clock reads 100 when the wall clock reads 1000; node B's reads 5
    text = encode_batch(Batch("A", 7, tuple(ALL_OPS)), offset=900.0)
    back = decode_batch(text, offset=900.0)
    assert back == Batch("A", 7, tuple(ALL_OPS))
    at_b = decode_batch(text, offset=995.0)
    first = at_b.ops[0]
    assert isinstance(first, SetJoined) and first.since == 5.0 - 95.0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "nope",
        "[]",
        '{"node": "A", "seq": 1}',
        '{"node": "A", "seq": "1", "ops": []}',
        '{"node": 3, "seq": 1, "ops": []}',
        '{"node": "A", "seq": 1, "ops": [["z"]]}',
        '{"node": "A", "seq": 1, "ops": [["t", "G", "m", "x"]]}',
        '{"node": "A", "seq": 1, "ops": [["t", "G", "m", NaN]]}',
        '{"node": "A", "seq": 1, "ops": [["r", "m", "c", 1, "A"]]}',
        '{"node": "A", "seq": 1, "ops": [["s", "A", [["m", [], []]], []]]}',
        '{"node": "A", "seq": 1, "ops": [[]]}',
    ],
)
def test_malformed_batches_raise_state_error(text: str) -> None:
    with pytest.raises(StateError):
        decode_batch(text, offset=0.0)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=80), st.binary(max_size=80)))
def test_decoding_anything_raises_state_error_or_succeeds(data: str | bytes) -> None:
    with contextlib.suppress(StateError):  # anything else propagates and fails the test
        decode_batch(data, offset=0.0)


# ------------------------------------------------- the core on a JournalingStore
def test_core_on_a_journaling_store_replicates_to_another_node() -> None:
    cfg = make_config("round_robin")
    a = Node(cfg, JournalingStore("A"))
    store_b = JournalingStore("B")
    for op in a.store.drain():  # type: ignore[attr-defined]
        store_b.apply_remote(op)
    b = Node(cfg, store_b)
    assert store_b.drain() == []  # membership was already known: nothing to write
    a.ev(CallArrived("c1", "G", "0611111111"))
    a.ev(MemberAnswered("c1", m(1)), at=2)
    for op in a.store.drain():  # type: ignore[attr-defined]
        store_b.apply_remote(op)
    # m1 is on a call on node A: B's next call starts after the pointer, and skips m1
    b.ev(CallArrived("x1", "G", "0622222222"), at=3)
    assert b.rings("x1") == [m(2)]
    a.ev(CallHungUp("c1"), at=32)
    a.ev(MemberLeft("G", m(3)), at=33)
    for op in a.store.drain():  # type: ignore[attr-defined]
        store_b.apply_remote(op)
    assert store_b.talk_time("G", m(1)) == 30.0
    assert store_b.joined_since("G", m(3)) is None
    assert store_b.is_free("G", m(1), now=40, call_waiting=False)


# ------------------------------------------- issue 11: pointers name members
def test_pointer_ops_carry_the_member_and_still_read_an_older_nodes_position() -> None:
    new = encode_batch(Batch("A", 1, (SetPointer("G", "0102030401", (3, "A")),)), offset=0.0)
    assert decode_batch(new, offset=0.0).ops == (SetPointer("G", "0102030401", (3, "A")),)
    old = '{"node":"A","seq":1,"ops":[["p","G",2,3,"A"]]}'  # a node before issue 11
    assert decode_batch(old, offset=0.0).ops == (SetPointer("G", 2, (3, "A")),)


def test_stored_pointers_are_members_and_old_positions_stay_readable() -> None:
    from huntgroup.queue.state.codec import StoredState, decode_stored, encode_writes

    store = JournalingStore("A")
    store.set_last_answered("G", "sip:agent@127.0.0.1:5080")
    writes = json.loads(encode_writes(store.drain(), store, offset=0.0))
    assert writes == [["p", "G", '"sip:agent@127.0.0.1:5080"', "1|A"]]
    stored = StoredState(
        pointers={"G": writes[0][2], "Old": "3", "Bad": "[1]"},
        pointer_stamps={"G": "1|A", "Old": "2|B"},
    )
    snap, _ = decode_stored(stored, offset=0.0)
    assert snap.pointers == {"G": ("sip:agent@127.0.0.1:5080", (1, "A")), "Old": (3, (2, "B"))}


def test_a_batch_writes_only_the_last_pointer_move_of_each_group() -> None:
    """Every call moves its group's pointer: a batch of several calls writes each group's
    last move only (its stamp is the newest of this node's, so the earlier ones could
    never win where it loses). Before: one stamped write per move (``HGET`` and two
    ``HSET`` each in Redis)."""
    from huntgroup.queue.state.codec import encode_writes

    store = JournalingStore("A")
    store.set_last_answered("G", "sip:a@h")
    store.set_last_answered("H", "sip:x@h")
    store.set_last_answered("G", "sip:b@h")
    store.set_last_answered("G", "sip:c@h")
    ops = store.drain()
    assert len(ops) == 4  # the other nodes still get every move (the batch's message)
    writes = json.loads(encode_writes(ops, store, offset=0.0))
    assert writes == [["p", "H", '"sip:x@h"', "2|A"], ["p", "G", '"sip:c@h"', "4|A"]]


def test_local_calls_and_ranks_read_in_place_what_node_state_copies() -> None:
    """The claims read the node's calls at every flush: in place, without the copy (sorted,
    frozen) that ``node_state`` makes, and with the same content."""
    store = JournalingStore("A")
    store.set_ringing("m1", "c1", True)
    store.set_active("m2", "c2", True)
    store.set_ringing("m3", "c3", True)
    store.set_ringing("m3", "c3", False)  # idle again: not listed
    store.set_wrap_up_until("m4", 50.0)  # wrapping up, no call: not listed
    store.enqueue("G", "c9", (3.0, 1))
    calls = {m: (set(a.ringing), set(a.active)) for m, a in store.local_calls()}
    assert calls == {"m1": ({"c1"}, set()), "m2": (set(), {"c2"})}
    state = store.node_state()
    assert {
        m: (set(a.ringing), set(a.active))
        for m, a in state.activity
        if not (a.ringing == frozenset() and a.active == frozenset())
    } == calls
    assert {k: r for k, r in store.local_ranks()} == {(g, c): r for g, c, r in state.queues}


# ------------------------------------- ring all: one write, each member journaled
def test_a_ring_all_offer_is_journaled_and_replayed_as_each_members_ring() -> None:
    """The core rings three members with one ``set_ringing_many``: the journal, its
    listener, another node and a node state see what three ``set_ringing`` give."""
    members = [m(1), m(2), m(3)]
    a = Node(make_config("ring_all"), JournalingStore("A"))
    store = a.store
    assert isinstance(store, JournalingStore)
    store.drain()
    heard: list[int] = []
    store.listener = lambda: heard.append(store.pending)
    a.ev(CallArrived("c1", "G", "0611111111"))
    assert a.rings("c1") == members
    alone = JournalingStore("A")  # the same node, each member rung on its own
    heard_alone: list[int] = []
    alone.listener = lambda: heard_alone.append(alone.pending)
    for member in members:
        alone.set_ringing(member, "c1", True)
    assert heard == heard_alone == [1, 2, 3]
    assert store.node_state() == alone.node_state()
    ops = store.drain()
    assert ops == alone.drain() == [SetRinging(x, "c1", True, "A") for x in members]
    b = JournalingStore("B")
    for op in ops:
        b.apply_remote(op)
    assert [b.ringing(x) for x in members] == [{f"A{REMOTE_SEP}c1"}] * 3
    a.ev(CallHungUp("c1"), at=1)
    for op in store.drain():
        b.apply_remote(op)
    assert not any(b.is_ringing(x) for x in members)


def test_a_store_that_rings_its_own_way_rings_many_its_own_way() -> None:
    """``MemoryStore.set_ringing_many`` writes its dicts directly: a subclass whose
    ``set_ringing`` does more must override ``set_ringing_many`` as well."""
    root = Path(huntgroup.__file__).parent
    for path in root.rglob("*.py"):
        if re.search(r"^class \w+\(.*Store\b", path.read_text(), re.M):
            parts = path.relative_to(root.parent).with_suffix("").parts
            importlib.import_module(".".join(parts))
    subclasses: list[type[MemoryStore]] = []
    todo = [MemoryStore]
    while todo:
        subclasses += (found := todo.pop().__subclasses__())
        todo += found
    assert JournalingStore in subclasses
    for cls in subclasses:
        if cls.set_ringing is not MemoryStore.set_ringing:
            assert cls.set_ringing_many is not MemoryStore.set_ringing_many, cls
        # ``standing`` is ``is_free`` (and the joined and paused reads) written out: a
        # subclass that answers one its own way must answer the other its own way too
        if cls.is_free is not MemoryStore.is_free:
            assert cls.standing is not MemoryStore.standing, cls
        if cls.standing is not MemoryStore.standing:
            assert cls.is_free is not MemoryStore.is_free, cls
