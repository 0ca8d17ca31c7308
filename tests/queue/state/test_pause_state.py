"""Issue 12: pauses in the shared state: journaled, merged, encoded, kept in Redis."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis

from huntgroup.queue.actions import Cancel, Ring
from huntgroup.queue.availability import MemberState
from huntgroup.queue.core import RoutingCore
from huntgroup.queue.events import (
    CallArrived,
    CallHungUp,
    MemberAnswered,
    MemberJoined,
    MemberLeft,
    MemberPaused,
)
from huntgroup.queue.state.codec import (
    StoredState,
    decode_batch,
    decode_stored,
    encode_batch,
    encode_image,
    encode_writes,
)
from huntgroup.queue.state.journal import JournalingStore
from huntgroup.queue.state.operations import Batch, SetJoined, SetPaused, compact
from huntgroup.queue.state.store import Pause
from tests.queue.state.test_journal_store import exchange
from tests.queue.state.test_redis_sync import sync_for
from tests.support.state_harness import Node, RedisServer, m, make_config, run, until


def test_a_pause_is_journaled_and_merged_by_stamp() -> None:
    a, b = JournalingStore("A"), JournalingStore("B")
    a.set_joined("G", "m1", True, now=1.0)
    exchange(a, b)
    a.set_paused("G", "m1", True, reason="lunch", now=5.0)
    a.set_paused("G", "m1", True, reason="again", now=6.0)  # already paused: no op
    ops = a.drain()
    assert ops == [SetPaused("G", "m1", 5.0, "lunch", (2, "A"))]
    for op in ops:
        assert b.apply_remote(op)
    assert b.paused("G", "m1") == Pause(5.0, "lunch")
    assert not b.is_free("G", "m1", now=10, call_waiting=False)
    assert not b.apply_remote(ops[0])  # seen: an echo changes nothing
    # concurrent: B unpauses after seeing A's pause; its stamp wins everywhere
    b.set_paused("G", "m1", False, now=7.0)
    exchange(a, b)
    assert a.paused("G", "m1") is None and b.paused("G", "m1") is None
    assert a.is_free("G", "m1", now=10, call_waiting=False)


def test_a_logout_ends_the_pause_with_an_op_of_its_own() -> None:
    a, b = JournalingStore("A"), JournalingStore("B")
    a.set_joined("G", "m1", True, now=1.0)
    a.set_paused("G", "m1", True, reason="x", now=2.0)
    exchange(a, b)
    a.set_joined("G", "m1", False, now=3.0)
    ops = a.drain()
    assert [type(op) for op in ops] == [SetJoined, SetPaused]
    assert ops[1] == SetPaused("G", "m1", None, "", (4, "A"))
    for op in ops:
        b.apply_remote(op)
    assert b.paused("G", "m1") is None and b.joined_since("G", "m1") is None
    b.set_joined("G", "m1", True, now=4.0)
    assert b.is_free("G", "m1", now=4.0, call_waiting=False)


def test_compaction_keeps_the_last_pause_write() -> None:
    ops = [
        SetPaused("G", "m1", 1.0, "a", (1, "A")),
        SetPaused("G", "m1", None, "", (2, "A")),
        SetPaused("G", "m2", 3.0, "b", (3, "A")),
    ]
    kept, dropped = compact(ops)
    assert not dropped
    assert kept == ops[1:]


def test_the_codec_carries_pauses_in_wall_clock_time() -> None:
    op = SetPaused("G", "sip:agent@h", 5.0, "déjeuner", (7, "A"))
    wire = encode_batch(Batch("A", 1, (op, SetPaused("G", "m", None, "", (8, "A")))), offset=100)
    assert json.loads(wire)["ops"][0] == ["u", "G", "sip:agent@h", 105.0, "déjeuner", 7, "A"]
    assert decode_batch(wire, offset=100).ops == (op, SetPaused("G", "m", None, "", (8, "A")))
    store = JournalingStore("A")
    store.set_joined("G", "m1", True, now=0.0)
    store.set_paused("G", "m1", True, reason="r", now=2.0)
    writes = json.loads(encode_writes(store.drain(), store, offset=10.0))
    assert writes[1] == ["u", '["G","m1"]', '[12.0, "r"]', "2|A"]
    image = json.loads(encode_image(store.image(), offset=10.0))
    assert image["u"] == [['["G","m1"]', '[12.0, "r"]', "2|A"]]
    stored = StoredState(
        paused={'["G","m1"]': writes[1][2], '["G","m2"]': "-", '["G","m3"]': "[1]"},
        paused_stamps={'["G","m1"]': "2|A", '["G","m2"]': "3|B"},
    )
    snap, _ = decode_stored(stored, offset=10.0)
    assert snap.paused == {("G", "m1"): (2.0, "r", (2, "A")), ("G", "m2"): (None, "", (3, "B"))}
    fresh = JournalingStore("B")
    fresh.apply_snapshot(snap)
    assert fresh.paused("G", "m1") == Pause(2.0, "r")


def test_a_pause_is_shared_through_redis_and_survives_a_restart(
    redis_server: RedisServer,
) -> None:
    async def main() -> None:
        cfg = make_config("linear")
        sa, sb = sync_for(redis_server.url, "A"), sync_for(redis_server.url, "B")
        await sa.start()
        await sb.start()
        a, b = Node(cfg, sa.store), Node(cfg, sb.store)
        a.ev(MemberPaused("G", m(1), True, "api", "training"), at=1)
        a.ev(MemberLeft("G", m(3), "api"), at=2)
        assert await sa.flush()
        await until(lambda: sb.store.paused("G", m(1)) is not None, "B saw the pause")
        b.ev(CallArrived("c1", "G", "0611111111"), at=3)
        assert b.rings("c1") == [m(2)]  # the other node does not offer it either
        await sa.stop()
        await sb.stop()
        again = sync_for(redis_server.url, "A2")
        await again.load()
        assert again.store.paused("G", m(1)) == Pause(1.0, "training")
        assert again.store.joined_since("G", m(3)) is None
        restarted = Node(cfg, again.store, now=10)
        assert restarted.core.paused("G", m(1)) == Pause(1.0, "training")
        restarted.ev(MemberPaused("G", m(1), False, "api"), at=11)
        restarted.ev(MemberJoined("G", m(3), "api"), at=12)
        assert await again.flush()
        await again.stop()
        third = sync_for(redis_server.url, "A3")
        await third.load()
        assert third.store.paused("G", m(1)) is None
        assert third.store.joined_since("G", m(3)) == 12.0
        await third.stop()

    run(main)


def test_a_node_gives_its_pauses_back_to_a_redis_that_lost_them(
    redis_server: RedisServer,
) -> None:
    async def main() -> None:
        cfg = make_config("linear")
        sa = sync_for(redis_server.url, "A")
        await sa.start()
        a = Node(cfg, sa.store)
        a.ev(MemberPaused("G", m(2), True, "api", "sick"), at=1)
        assert await sa.flush()
        redis_server.stop()
        redis_server.start()  # an empty Redis: it lost everything
        client = aioredis.from_url(redis_server.url, decode_responses=True)
        for _ in range(2000):  # node A reconnects and restores its image (20 s at most)
            if await client.hget("{huntgroup}:paused", f'["G","{m(2)}"]') is not None:
                break
            await asyncio.sleep(0.01)  # the polling period, not a synchronisation
        else:
            raise AssertionError("node A never gave its pause back to Redis")
        await client.aclose()
        sb = sync_for(redis_server.url, "B")
        await sb.load()
        assert sb.store.paused("G", m(2)) == Pause(1.0, "sick")
        await sb.stop()
        await sa.stop()

    run(main)


def test_a_member_paused_on_another_node_stops_ringing_here() -> None:
    cfg = make_config("linear")
    sa, sb = JournalingStore("A"), JournalingStore("B")
    a, b = Node(cfg, sa), Node(cfg, sb)
    exchange(sa, sb)
    a.ev(CallArrived("c1", "G", "0611111111"), at=1)
    assert a.rings("c1") == [m(1)]
    exchange(sa, sb)
    b.ev(MemberPaused("G", m(1), True, "api", "break"), at=2)
    b.ev(MemberLeft("G", m(2), "api"), at=2)
    exchange(sa, sb)
    out = a.core.state_changed(now=3)
    assert Cancel("c1", m(1)) in out
    assert [r.member for r in out if isinstance(r, Ring)] == [m(3)]


def test_another_nodes_calls_stamp_the_time_in_state_here() -> None:
    cfg = make_config("linear", wrap_up=5)
    sa, sb = JournalingStore("A"), JournalingStore("B")
    a = Node(cfg, sa)
    b = RoutingCore(cfg, now=0.0, store=sb, observed=True)
    exchange(sa, sb)
    b.state_changed(now=0.5)

    def seen(now: float) -> tuple[MemberState | None, float | None]:
        return b.member_state("G", m(1), now=now), b.state_since("G", m(1), now=now)

    a.ev(CallArrived("c1", "G", "0611111111"), at=1)
    exchange(sa, sb)
    b.state_changed(now=2)
    assert seen(3) == (MemberState.RINGING, 2)
    a.ev(MemberAnswered("c1", m(1)), at=4)
    a.ev(CallHungUp("c1"), at=10)
    exchange(sa, sb)
    b.state_changed(now=11)
    assert seen(12) == (MemberState.WRAP_UP, 11)
    b.state_changed(now=15.5)  # node B's timer of A's wrap-up end (StateSync) wakes it
    assert seen(20) == (MemberState.FREE, 15.5)
