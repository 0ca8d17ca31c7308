"""RedisStateSync against a real redis-server (started by the ``redis_server`` fixture)."""

from __future__ import annotations

import asyncio
import math

import pytest
import redis.asyncio as aioredis

from huntgroup.config.models import StateAuthConfig
from huntgroup.engine.aio.redis_connect import redact
from huntgroup.engine.aio.redis_state import RedisStateSync
from huntgroup.errors import StateError
from huntgroup.queue.events import CallArrived, CallHungUp, MemberAnswered, MemberLeft
from huntgroup.queue.state.claims import LEASE
from huntgroup.queue.state.journal import JournalingStore
from huntgroup.queue.state.operations import AddTalk, SetJoined
from tests.support.ports import free_port
from tests.support.state_harness import Node, RedisServer, m, make_config, run, until

FAST = {"backoff": (0.02, 0.1), "wall_clock": lambda: 1000.0, "local_clock": lambda: 0.0}


def sync_for(url: str, node: str, **kw: object) -> RedisStateSync:
    return RedisStateSync(url, JournalingStore(node), node, **{**FAST, **kw})  # type: ignore[arg-type]


def test_two_nodes_share_the_pointer_activity_and_talk_time(redis_server: RedisServer) -> None:
    async def main() -> None:
        cfg = make_config("round_robin")
        sa, sb = sync_for(redis_server.url, "A"), sync_for(redis_server.url, "B")
        await sa.start()
        await sb.start()
        a, b = Node(cfg, sa.store), Node(cfg, sb.store)
        woken: list[int] = []
        sb.on_change = lambda: woken.append(1)  # the engine re-dispatches B's queue on this
        a.ev(CallArrived("c1", "G", "0611111111"))
        assert a.rings("c1") == [m(1)]
        a.ev(MemberAnswered("c1", m(1)), at=2)
        assert await sa.flush()
        await sb.barrier()
        assert woken
        # node A's answer moved the pointer and made m1 busy: B starts after m1
        b.ev(CallArrived("x1", "G", "0622222222"), at=3)
        assert b.rings("x1") == [m(2)]
        b.ev(MemberAnswered("x1", m(2)), at=4)
        a.ev(CallHungUp("c1"), at=32)
        b.ev(CallHungUp("x1"), at=14)
        assert await sa.flush() and await sb.flush()
        await sa.barrier()
        await sb.barrier()
        for store in (sa.store, sb.store):
            assert store.talk_time("G", m(1)) == 30.0
            assert store.talk_time("G", m(2)) == 10.0
            assert store.last_answered("G") == m(2)
            assert store.is_free("G", m(1), now=40, call_waiting=False)
        # a third node started now reads the same state from Redis
        sc = sync_for(redis_server.url, "C")
        await sc.load()
        assert sc.store.talk_time("G", m(1)) == 30.0
        assert sc.store.last_answered("G") == m(2)
        await sc.stop()
        await sa.stop()
        await sb.stop()

    run(main)


def test_talk_time_from_both_nodes_adds_up_in_redis(redis_server: RedisServer) -> None:
    async def main() -> None:
        sa, sb = sync_for(redis_server.url, "A"), sync_for(redis_server.url, "B")
        await sa.start()
        await sb.start()
        sa.store.set_joined("G", "m1", True, now=0.0)
        assert await sa.flush()
        await sb.barrier()
        sa.store.add_talk_time("G", "m1", 10.0)
        sb.store.add_talk_time("G", "m1", 5.0)  # concurrent: neither has seen the other's
        assert await sa.flush() and await sb.flush()
        await sa.barrier()
        await sb.barrier()
        assert sa.store.talk_time("G", "m1") == sb.store.talk_time("G", "m1") == 15.0
        client = aioredis.from_url(redis_server.url, decode_responses=True)
        assert float(await client.hget("{huntgroup}:talk", '["G","m1"]') or 0) == 15.0
        await client.aclose()
        await sa.stop()
        await sb.stop()

    run(main)


def test_state_survives_a_restart(redis_server: RedisServer) -> None:
    async def main() -> None:
        cfg = make_config("round_robin")
        first = sync_for(redis_server.url, "A")
        await first.start()
        a = Node(cfg, first.store)
        a.ev(CallArrived("c1", "G", "0611111111"))
        a.ev(MemberAnswered("c1", m(1)), at=1)
        a.ev(CallHungUp("c1"), at=21)
        a.ev(MemberLeft("G", m(3)), at=22)
        await first.stop()  # flushes
        again = sync_for(redis_server.url, "A2")
        await again.load()
        store = again.store
        assert store.talk_time("G", m(1)) == 20.0
        assert store.last_answered("G") == m(1)
        assert store.joined_since("G", m(3)) is None
        assert store.joined_since("G", m(1)) == 0.0
        restarted = Node(cfg, store)  # membership is known: the config does not reset it
        restarted.ev(CallArrived("c2", "G", "0611111111"), at=30)
        assert restarted.rings("c2") == [m(2)]
        assert not [op for op in store.drain() if isinstance(op, SetJoined | AddTalk)]
        await again.stop()

    run(main)


def test_activity_of_a_dead_node_is_not_resurrected(redis_server: RedisServer) -> None:
    async def main() -> None:
        sa, sb = sync_for(redis_server.url, "A", ttl=5.0), sync_for(redis_server.url, "B")
        await sa.start()
        await sb.start()
        sa.store.set_joined("G", "m1", True, now=0.0)
        sa.store.set_active("m1", "c1", True)
        assert await sa.flush()
        await sb.barrier()
        assert sb.store.is_on_call("m1")
        client = aioredis.from_url(redis_server.url, decode_responses=True)
        assert 0 < await client.ttl("{huntgroup}:activity:A") <= 5
        assert 0 < await client.ttl("{huntgroup}:alive:A") <= 5
        # node A dies without a word: its tasks stop, its keys expire (simulated)
        for task in sa._tasks:
            task.cancel()
        await client.delete("{huntgroup}:alive:A", "{huntgroup}:activity:A")
        changes: list[int] = []
        sb.on_change = lambda: changes.append(1)
        await sb.heartbeat()
        assert not sb.store.is_on_call("m1") and changes
        sc = sync_for(redis_server.url, "C")
        await sc.load()
        assert not sc.store.is_on_call("m1")
        assert sc.store.joined_since("G", "m1") == 0.0
        await client.aclose()
        await sc.stop()
        await sb.stop()
        await sa.stop()

    run(main)


def test_a_nodes_keys_expire_with_its_claims_lease(redis_server: RedisServer) -> None:
    """A dead node's activity (its members busy for the others) goes within the lease of
    its claims, not later: its members are free again for everyone at about the same time."""

    async def main() -> None:
        sa = sync_for(redis_server.url, "A")
        await sa.start()
        sa.store.set_active("m1", "c1", True)
        assert await sa.flush()
        client = aioredis.from_url(redis_server.url, decode_responses=True)
        for key in ("{huntgroup}:alive:A", "{huntgroup}:activity:A"):
            assert 0 < await client.ttl(key) <= math.ceil(LEASE)
        assert sa.ttl == sa.claims.ledger.lease == LEASE
        assert sync_for(redis_server.url, "B", lease=2.0).ttl == 2.0
        await client.aclose()
        await sa.stop()

    run(main)


def test_routing_goes_on_while_redis_is_down_and_catches_up(
    redis_server: RedisServer,
) -> None:
    async def main() -> None:
        cfg = make_config("round_robin")
        sa, sb = sync_for(redis_server.url, "A"), sync_for(redis_server.url, "B")
        await sa.start()
        await sb.start()
        a = Node(cfg, sa.store)
        assert await sa.flush()
        redis_server.stop()
        a.ev(CallArrived("c1", "G", "0611111111"), at=1)
        a.ev(MemberAnswered("c1", m(1)), at=2)
        a.ev(CallHungUp("c1"), at=12)
        a.ev(CallArrived("c2", "G", "0611111111"), at=13)
        assert a.rings("c2") == [m(2)]  # routing from the local image
        assert not await sa.flush()
        assert sa.outbox > 0 and not sa.connected
        redis_server.start()  # an empty Redis: it lost everything
        await until(lambda: sa.connected and sa.outbox == 0, "node A flushed after the outage")
        await until(
            lambda: sb.store.last_answered("G") == m(1) and sb.store.is_ringing(m(2)),
            "node B caught up (it may read the snapshot before A's calls are written back)",
        )
        assert sb.store.talk_time("G", m(1)) == 10.0
        assert sb.store.is_ringing(m(2))
        sc = sync_for(redis_server.url, "C")
        await sc.load()
        assert sc.store.last_answered("G") == m(1)
        assert sc.store.talk_time("G", m(1)) == 10.0
        assert sc.store.is_ringing(m(2))  # node A is alive: its calls are visible
        await sc.stop()
        await sa.stop()
        await sb.stop()

    run(main)


def test_a_batch_replayed_after_a_lost_reply_is_counted_once(redis_server: RedisServer) -> None:
    async def main() -> None:
        sa = sync_for(redis_server.url, "A")
        await sa.load()
        sa.store.set_joined("G", "m1", True, now=0.0)
        sa.store.add_talk_time("G", "m1", 7.0)
        ops = sa.store.drain()
        await sa._write_batch(ops)
        sa.sync.seq -= 1  # as if the reply had been lost: the same batch is sent again
        await sa._write_batch(ops)
        client = aioredis.from_url(redis_server.url, decode_responses=True)
        assert float(await client.hget("{huntgroup}:talk", '["G","m1"]') or 0) == 7.0
        await client.aclose()
        await sa.stop()

    run(main)


def test_garbage_on_the_channel_is_ignored(redis_server: RedisServer) -> None:
    async def main() -> None:
        sb = sync_for(redis_server.url, "B")
        await sb.start()
        client = aioredis.from_url(redis_server.url, decode_responses=True)
        await client.publish("huntgroup:ops", "{not json")
        await client.publish("huntgroup:ops", '{"node":"X","seq":1,"ops":[["z"]]}')
        sa = sync_for(redis_server.url, "A")
        await sa.start()
        sa.store.set_last_answered("G", 2)
        assert await sa.flush()
        await sb.barrier()
        assert sb.store.last_answered("G") == 2
        await client.aclose()
        await sa.stop()
        await sb.stop()

    run(main)


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379/0", "redis://127.0.0.1:notaport/0"])
def test_an_invalid_url_is_a_state_error(url: str) -> None:
    async def main() -> None:
        with pytest.raises(StateError, match="Redis"):
            await sync_for(url, "A").load()

    run(main)


def test_an_unreachable_server_is_a_state_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HG_TEST_REDIS_PASSWORD", "secret")
    auth = StateAuthConfig(password_env="HG_TEST_REDIS_PASSWORD")

    async def main() -> None:
        url = f"redis://127.0.0.1:{free_port()}/0"
        with pytest.raises(StateError, match="cannot reach Redis") as info:
            await sync_for(url, "A", auth=auth).start()
        assert "secret" not in str(info.value)

    run(main)


def test_a_url_with_a_password_is_refused_without_showing_it() -> None:
    async def main() -> None:
        with pytest.raises(StateError, match="password_env") as info:
            await sync_for(f"redis://:secret@127.0.0.1:{free_port()}/0", "A").start()
        assert "secret" not in str(info.value)

    run(main)


def test_redact_hides_the_password() -> None:
    assert redact("redis://u:pw@h:1/0") == "redis://u:***@h:1/0"
    assert redact("redis://h:1/0") == "redis://h:1/0"


def test_the_end_of_another_nodes_wrap_up_wakes_the_core(redis_server: RedisServer) -> None:
    """The driver arms its one timer from the sync object's get_timer() (loop clock)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sa = RedisStateSync(redis_server.url, JournalingStore("A"), backoff=(0.02, 0.1))
        sb = RedisStateSync(redis_server.url, JournalingStore("B"), backoff=(0.02, 0.1))
        await sa.start()
        await sb.start()
        end = loop.time() + 0.3
        sa.store.set_wrap_up_until("m1", end)
        assert await sa.flush()
        await sb.barrier()
        assert sb.store.wrap_up_until("m1") == pytest.approx(end, abs=0.01)
        woken: list[float] = []
        sb.on_change = lambda: woken.append(loop.time())
        await until(lambda: bool(woken), "node B woken when A's wrap-up ended")
        assert woken[0] >= sb.store.wrap_up_until("m1")
        await sa.stop()
        await sb.stop()

    run(main)
