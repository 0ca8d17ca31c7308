"""Two (or three) nodes' StateSync objects on an in-memory store of record, in virtual time.

No Redis, no event loop, no sleeps: the nodes' clocks differ (``wall = local +
offset``), messages are delivered when the test says so, and may be dropped.
"""

from __future__ import annotations

import math

import pytest

from huntgroup.queue.actions import Hold, Ring
from huntgroup.queue.events import CallArrived, CallHungUp, MemberAnswered
from huntgroup.queue.state import sync as sync_module
from huntgroup.queue.state.codec import StoredState
from huntgroup.queue.state.journal import JournalingStore
from huntgroup.queue.state.operations import Batch
from huntgroup.queue.state.sync import (
    AbandonBatch,
    BatchFailed,
    BatchReceived,
    BatchWritten,
    FlushDue,
    LoadSnapshot,
    NodesExpired,
    NotifyCore,
    PublishBatch,
    RestoreDone,
    RestoreImage,
    ScheduleResync,
    SnapshotLoaded,
    StateSync,
    StoreUnreachable,
)
from tests.support.fake_bus import FakeRedis, Peer
from tests.support.state_harness import m, make_config

A_OFFSET, B_OFFSET, C_OFFSET = 1000.0, 1500.0, 2000.0
"""Each node's wall clock minus its local clock: their monotonic clocks differ."""


def two_nodes(redis: FakeRedis, members: int = 3, **group: float) -> tuple[Peer, Peer]:
    cfg = make_config("round_robin", members, **group)
    a, b = Peer("A", redis, offset=A_OFFSET), Peer("B", redis, offset=B_OFFSET)
    a.start(cfg, wall=1000.0)
    b.start(cfg, wall=1000.0)
    for peer in (a, b, a, b):  # each states its membership and activity, then hears the other
        assert peer.flusher()
        peer.receive()
    return a, b


def test_ops_replicate_between_nodes_with_different_clocks() -> None:
    redis = FakeRedis()
    a, b = two_nodes(redis)
    a.ev(CallArrived("c1", "G", "0611111111"), wall=1000.0)
    assert a.core.rings("c1") == [m(1)]
    a.ev(MemberAnswered("c1", m(1)), wall=1002.0)
    assert a.flusher()
    notified = b.notified
    assert b.receive() == 1
    assert b.notified > notified  # the core re-dispatches its queue on this
    # node A's answer moved the pointer and made m1 busy: B starts after m1
    b.ev(CallArrived("x1", "G", "0622222222"), wall=1003.0)
    assert b.core.rings("x1") == [m(2)]
    b.ev(MemberAnswered("x1", m(2)), wall=1004.0)
    b.ev(CallHungUp("x1"), wall=1014.0)
    a.ev(CallHungUp("c1"), wall=1032.0)
    assert a.flusher() and b.flusher()
    a.receive()
    b.receive()
    for peer in (a, b):
        assert peer.store.talk_time("G", m(1)) == 30.0
        assert peer.store.talk_time("G", m(2)) == 10.0
        assert peer.store.last_answered("G") == m(2)
        assert peer.store.is_free("G", m(1), now=peer.local(1040.0), call_waiting=False)
        # times travel as wall-clock seconds: each node reads the join in its own clock
        assert peer.store.joined_since("G", m(1)) == peer.local(1000.0)
    # a third node started now reads the same state from the store of record
    c = Peer("C", redis, offset=C_OFFSET)
    c.start(make_config("round_robin"), wall=1050.0)
    assert c.store.talk_time("G", m(1)) == 30.0
    assert c.store.last_answered("G") == m(2)
    assert c.store.joined_since("G", m(1)) == c.local(1000.0)


def test_a_lost_batch_is_detected_and_resynced() -> None:
    redis = FakeRedis()
    a, b = two_nodes(redis)
    a.store.add_talk_time("G", m(1), 7.0)
    assert a.flusher()
    lost = redis.inboxes["B"].pop()  # this batch does not reach node B (yet)
    a.store.set_last_answered("G", 3)
    assert a.flusher()
    assert not b.resync_scheduled
    b.receive()  # the next batch shows the gap
    assert b.resync_scheduled and b.sync.needs_resync
    assert b.store.last_answered("G") == 3
    assert b.store.talk_time("G", m(1)) == 0.0  # the lost increment
    assert b.flusher()  # the flusher, woken, resyncs
    assert not b.sync.needs_resync
    assert b.store.talk_time("G", m(1)) == 7.0
    # the lost batch delivered late is ignored: the snapshot held it
    redis.inboxes["B"].append(lost)
    b.receive()
    a.receive()
    assert b.store.talk_time("G", m(1)) == a.store.talk_time("G", m(1)) == 7.0


def test_a_batch_seen_twice_is_applied_once() -> None:
    redis = FakeRedis()
    a, b = two_nodes(redis)
    a.store.add_talk_time("G", m(1), 5.0)
    assert a.flusher()
    message = redis.inboxes["B"][0]
    b.receive()
    redis.inboxes["B"].append(message)  # delivered again
    b.receive()
    assert b.store.talk_time("G", m(1)) == 5.0
    assert not b.resync_scheduled


def test_a_remote_wrap_up_ends_on_the_virtual_clock() -> None:
    redis = FakeRedis()
    a, b = two_nodes(redis, members=1, wrap_up=30)
    a.ev(CallArrived("c1", "G", "0611111111"), wall=1000.0)
    a.ev(MemberAnswered("c1", m(1)), wall=1001.0)
    a.ev(CallHungUp("c1"), wall=1010.0)  # m1 in wrap-up until wall 1040
    assert a.flusher()
    b.receive()
    assert b.sync.get_timer() == b.local(1040.0)  # in B's own clock
    # a caller on node B waits: m1 is in wrap-up on node A
    got = b.ev(CallArrived("x1", "G", "0622222222"), wall=1015.0)
    assert [type(action) for action in got] == [Hold]
    assert not b.advance(1039.5)
    got = b.advance(1040.0)
    assert [(type(action), action.member) for action in got if isinstance(action, Ring)] == [
        (Ring, m(1))
    ]
    assert b.now == b.local(1040.0)
    assert b.sync.get_timer() is None


def test_an_outage_then_an_empty_store_is_reconciled() -> None:
    redis = FakeRedis()
    a, b = two_nodes(redis)
    redis.up = False
    a.ev(CallArrived("c1", "G", "0611111111"), wall=1001.0)
    a.ev(MemberAnswered("c1", m(1)), wall=1002.0)
    a.ev(CallHungUp("c1"), wall=1012.0)
    a.ev(CallArrived("c2", "G", "0611111111"), wall=1013.0)
    assert a.core.rings("c2") == [m(2)]  # routing from the local image
    assert not a.flusher()
    assert a.sync.outbox > 0 and not a.sync.connected
    redis.lose_everything()  # back, but empty: it lost everything
    redis.up = True
    assert a.flusher()  # restores its image, restates its activity, then resyncs
    assert a.sync.connected and a.sync.outbox == 0
    b.receive()
    assert b.store.last_answered("G") == m(1)
    assert b.store.talk_time("G", m(1)) == 10.0
    assert b.store.is_ringing(m(2))
    c = Peer("C", redis, offset=C_OFFSET)
    c.start(make_config("round_robin"), wall=1020.0)
    assert c.store.last_answered("G") == m(1)
    assert c.store.talk_time("G", m(1)) == 10.0
    assert c.store.is_ringing(m(2))  # node A is alive: its calls are visible


def test_after_an_outage_the_second_node_merges_its_changes_into_the_restored_state() -> None:
    redis = FakeRedis()
    a, b = two_nodes(redis)
    redis.up = False
    a.store.add_talk_time("G", m(1), 10.0)
    b.store.add_talk_time("G", m(1), 5.0)
    b.store.set_last_answered("G", 3)
    assert not a.flusher() and not b.flusher()
    redis.lose_everything()
    redis.up = True
    assert b.flusher()  # B restores first
    assert a.flusher()  # A finds it restored: reads it back, then writes its batch
    a.receive()
    b.receive()
    assert a.store.talk_time("G", m(1)) == b.store.talk_time("G", m(1)) == 15.0
    assert a.store.last_answered("G") == b.store.last_answered("G") == 3
    assert float(redis.hashes["talk"]['["G","0100000001"]']) == 15.0


def test_a_node_that_loses_the_race_to_restore_reads_the_state_back_then_writes() -> None:
    redis = FakeRedis()
    a, b = two_nodes(redis)
    redis.up = False
    a.store.add_talk_time("G", m(1), 10.0)
    b.store.add_talk_time("G", m(1), 5.0)
    a.store.set_last_answered("G", 2)
    assert not a.flusher() and not b.flusher()
    redis.lose_everything()
    redis.up = True
    # A's batch finds the state lost; B restores it just before A tries to
    redis.before_restore = b.flusher
    assert a.flusher()
    assert redis.before_restore is None  # the race happened
    a.receive()
    b.receive()
    for peer in (a, b):
        assert peer.store.talk_time("G", m(1)) == 15.0
        assert peer.store.last_answered("G") == 2
    assert float(redis.hashes["talk"]['["G","0100000001"]']) == 15.0


def test_a_dead_nodes_calls_are_forgotten() -> None:
    redis = FakeRedis()
    a, b = two_nodes(redis)
    a.ev(CallArrived("c1", "G", "0611111111"), wall=1001.0)
    a.ev(MemberAnswered("c1", m(1)), wall=1002.0)
    assert a.flusher()
    b.receive()
    assert b.store.is_on_call(m(1))
    notified = b.notified
    b.expired("A")
    assert not b.store.is_on_call(m(1)) and b.notified == notified + 1
    b.expired("A")  # nothing left to forget: the core is not woken
    assert b.notified == notified + 1


# ------------------------------------------------ the protocol, fact by fact
def test_a_store_that_loses_its_state_twice_abandons_the_batch_and_keeps_the_ops() -> None:
    store = JournalingStore("A")
    sync = StateSync(store)
    store.set_joined("G", "m1", True, now=0.0)
    clock = {"now": 0.0, "wall": 1000.0}
    (publish,) = sync.handle(FlushDue(), **clock)
    assert isinstance(publish, PublishBatch) and publish.seq == 1 and publish.ops == 2
    (restore,) = sync.handle(BatchWritten(1, -1), **clock)
    assert isinstance(restore, RestoreImage) and restore.seq == 1 and restore.has_state
    assert restore.message == publish.message
    assert sync.handle(RestoreDone(False), **clock) == [LoadSnapshot()]  # another node restored
    assert sync.handle(SnapshotLoaded(StoredState()), **clock) == [NotifyCore(), publish]
    assert sync.handle(BatchWritten(1, -1), **clock) == [
        AbandonBatch("the state marker vanished again")
    ]
    sync.handle(StoreUnreachable(), **clock)
    sync.handle(BatchFailed(refused=False), **clock)
    assert sync.outbox == 1 and sync.seq == 0 and not sync.connected
    (again,) = sync.handle(FlushDue(), **clock)
    assert isinstance(again, PublishBatch) and again.seq == 1
    assert sync.handle(BatchWritten(1, 1), **clock) == []
    assert sync.outbox == 0 and sync.seq == 1
    assert sync.connected and sync.needs_resync  # back: read the shared state again


def test_a_refused_batch_is_dropped() -> None:
    store = JournalingStore("A")
    sync = StateSync(store)
    store.set_last_answered("G", 1)
    (publish,) = sync.handle(FlushDue(), now=0.0, wall=0.0)
    assert isinstance(publish, PublishBatch)
    sync.handle(BatchFailed(refused=True), now=0.0, wall=0.0)
    assert sync.outbox == 0 and sync.seq == 0
    assert sync.handle(FlushDue(), now=0.0, wall=0.0) == []


def test_a_gap_asks_for_a_resync_and_garbage_is_ignored() -> None:
    a, b = StateSync(JournalingStore("A")), StateSync(JournalingStore("B"))
    messages = []
    for position in (1, 2, 3):
        a.store.set_last_answered("G", position)
        (publish,) = a.handle(FlushDue(), now=0.0, wall=0.0)
        assert isinstance(publish, PublishBatch)
        a.handle(BatchWritten(publish.seq, 1), now=0.0, wall=0.0)
        messages.append(publish.message)
    assert b.handle(BatchReceived("{not json"), now=0.0, wall=0.0) == []
    assert b.handle(BatchReceived(messages[0]), now=0.0, wall=0.0) == [NotifyCore()]
    assert b.handle(BatchReceived(messages[2]), now=0.0, wall=0.0) == [
        ScheduleResync(),
        NotifyCore(),
    ]
    assert b.needs_resync and b.store.last_answered("G") == 3
    assert b.handle(BatchReceived(messages[1]), now=0.0, wall=0.0) == []  # too late: ignored


@pytest.mark.native_incompatible  # monkeypatches sync.decode_batch: no effect in a compiled caller
def test_a_nodes_own_batches_echoed_by_the_channel_are_not_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every batch a node publishes comes back to it: told by its first bytes, never parsed
    (one JSON decode saved per batch); a node whose id merely begins like it still counts."""
    a = StateSync(JournalingStore("A"))
    a.store.set_last_answered("G", 1)
    (publish,) = a.handle(FlushDue(), now=0.0, wall=0.0)
    assert isinstance(publish, PublishBatch)
    a.handle(BatchWritten(publish.seq, 1), now=0.0, wall=0.0)
    decoded: list[str] = []
    real = sync_module.decode_batch

    def counting(text: str, *, offset: float) -> Batch:
        decoded.append(text)
        return real(text, offset=offset)

    monkeypatch.setattr(sync_module, "decode_batch", counting)
    assert a.handle(BatchReceived(publish.message), now=0.0, wall=0.0) == []
    assert decoded == []
    ab = StateSync(JournalingStore("AB"))
    ab.store.set_last_answered("G", 2)
    (other,) = ab.handle(FlushDue(), now=0.0, wall=0.0)
    assert isinstance(other, PublishBatch)
    assert a.handle(BatchReceived(other.message), now=0.0, wall=0.0) == [NotifyCore()]
    assert decoded == [other.message] and a.store.last_answered("G") == 2


def test_remote_wrap_up_timers_fire_once_in_order() -> None:
    a, b = StateSync(JournalingStore("A")), StateSync(JournalingStore("B"))
    a.store.set_wrap_up_until("m1", 40.0)
    a.store.set_wrap_up_until("m2", 20.0)
    a.store.set_wrap_up_until("m3", 5.0)  # already over when B hears of it
    (publish,) = a.handle(FlushDue(), now=0.0, wall=100.0)
    assert isinstance(publish, PublishBatch)
    b.handle(BatchReceived(publish.message), now=10.0, wall=110.0)
    assert b.get_timer() == 20.0
    assert b.handle_timer(now=19.0) == []
    assert b.handle_timer(now=20.0) == [NotifyCore()]
    assert b.get_timer() == 40.0
    assert b.handle_timer(now=math.inf) == [NotifyCore()]
    assert b.get_timer() is None
    b.handle(NodesExpired(("A",)), now=50.0, wall=150.0)
    assert b.store.wrap_up_until("m1") == -math.inf
