"""What one call costs Redis: commands sent by a node, and commands Redis runs for them.

One call of one node, as the B2BUA drives the shared state: the member is claimed, rings,
answers, hangs up (three flushes of the node's activity, with the claim turned ``t`` at the
answer and released at the end). The background (heartbeat, renewal, subscription PING)
is pushed far away by a long lease, so that only the call is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection

from huntgroup.engine.aio.redis_state import RedisStateSync
from tests.support.state_harness import flushed, m, until

QUIET = {"backoff": (0.02, 0.1), "ttl": 600.0, "lease": 600.0, "resync_interval": 6000.0}

ROUND_TRIPS_PER_CALL = 4
"""The claim; the ringing batch; at the answer and at the end, the claim's write and the
batch in one pipeline. Before: 8 (redis-py's pipelines asked ``SCRIPT EXISTS`` before each
claims' write, which went apart from the batch)."""

ROUND_TRIPS_UNDER_LOAD = 0.5
"""Round trips per call of a steady stream of 40 calls, one every 6 ms (about 0.28 measured:
the claims ride the flushes, one per 30 ms). Before: about 1.28 (every claim alone, unless a
batch was due)."""

RUN_UNDER_LOAD = 15
"""Commands Redis runs per call of that stream (about 14 measured, the same before the
claims rode the flushes: fewer round trips, not fewer commands)."""

RUN_PER_CALL = 47
"""Commands Redis runs for them, a script's own included (``INFO commandstats``): 44 before
the batch script asked whether anyone else listens (``PUBSUB NUMSUB``, the leases' ``HKEYS``:
two cheap reads where a lone node's ``PUBLISH`` was, and no message read back). Before that:
48 (the claims' writes swept the nodes' leases every time; ``SCRIPT EXISTS`` twice)."""


async def _commands_run(client: aioredis.Redis) -> int:
    stats = await client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def count_sends(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one at every write to a Redis connection (one per round trip:
    a pipeline is sent at once)."""
    sends: list[int] = []
    send = AbstractConnection.send_packed_command

    async def counted(self: AbstractConnection, *args: Any, **kwargs: Any) -> None:
        sends.append(1)
        await send(self, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    return sends


async def a_call(sync: RedisStateSync, call: str) -> None:
    """One call of member 1, as the B2BUA drives it: claimed, rung, answered (its claim
    turned ``t``), ended (released); each step flushed before the next."""
    store = sync.store
    assert await sync.claims.claim(m(1), call, call_waiting=False)
    store.set_ringing(m(1), call, True)
    await until(lambda: flushed(sync), "ringing flushed")
    store.set_ringing(m(1), call, False)
    store.set_active(m(1), call, True)
    held = {(m(1), call): "t"}
    await until(lambda: flushed(sync) and sync.claims.ledger.held == held, "answered")
    store.set_active(m(1), call, False)
    await until(lambda: flushed(sync) and not sync.claims.ledger.held, "the end flushed")


def test_one_call_costs_a_bounded_number_of_redis_round_trips_and_commands(
    node_a: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    sends = count_sends(monkeypatch)  # one per round trip (a pipeline is sent at once)

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        for call in ("c1", "c2"):  # the second is counted (scripts loaded, connections open)
            ran0 = await _commands_run(client)
            sends.clear()
            await a_call(sync, call)
        round_trips = len(sends)
        ran = await _commands_run(client) - ran0
        assert not await client.exists(sync.keys.claims(m(1)))
        assert round_trips <= ROUND_TRIPS_PER_CALL, round_trips
        assert ran <= RUN_PER_CALL, ran

    node_a(main, **QUIET)


def test_a_burst_of_changes_goes_in_one_batch_after_the_first(node_a: Callable[..., None]) -> None:
    """A change after a quiet spell is flushed at once; those that follow within
    ``flush_interval`` of it are gathered into one batch (one round trip, one message)."""

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        store = sync.store
        await asyncio.sleep(2.0)  # a quiet spell
        first = sync.sync.seq
        store.set_ringing(m(1), "c1", True)
        await until(lambda: flushed(sync) and sync.sync.seq == first + 1, "flushed at once")
        for call in ("c2", "c3", "c4"):  # each one would have been a batch of its own
            store.set_ringing(m(1), call, True)
            await asyncio.sleep(0.05)
        await until(lambda: flushed(sync), "the burst flushed")
        assert sync.sync.seq == first + 2
        ringing = await client.hget(sync.keys.activity("A"), m(1))
        assert ringing is not None and all(c in ringing for c in ("c1", "c2", "c3", "c4"))

    node_a(main, **QUIET, flush_interval=2.0)


def test_under_load_a_node_sends_a_batch_per_30_ms_at_most(node_a: Callable[..., None]) -> None:
    """With the default ``flush_interval`` a steady stream of changes (one per 6 ms, as
    the calls of a busy node ring, answer and end) goes in one batch per 30 ms: each batch is
    a round trip, a script and a message, so fewer of them is the cheapest gain (measured,
    ``state.md``). Before: one per 10 ms, about three times as many."""

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        store = sync.store
        loop = asyncio.get_running_loop()
        first, began = sync.sync.seq, loop.time()
        for i in range(40):
            store.set_ringing(m(1 + i % 3), f"c{i}", True)
            await asyncio.sleep(0.006)
        elapsed = loop.time() - began
        await until(lambda: flushed(sync), "the stream flushed")
        batches = sync.sync.seq - first
        assert batches <= elapsed / 0.025 + 2, (batches, elapsed)

    node_a(main, **QUIET)


def test_a_claim_carries_the_pending_changes_in_one_round_trip(
    node_a: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load a claim finds changes not flushed yet (other calls ringing, answering):
    they go in its round trip, and the flusher's next batch waits ``flush_interval`` from
    it. Before: two round trips (the claim, then the batch)."""
    sends = count_sends(monkeypatch)

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        store = sync.store
        assert await sync.claims.claim(m(1), "c1", call_waiting=False)
        store.set_ringing(m(1), "c1", True)
        await until(lambda: flushed(sync), "ringing flushed")
        await asyncio.sleep(0.05)
        sends.clear()
        store.set_active(m(1), "c1", True)  # not flushed yet when the next claim goes
        assert store.pending
        assert await sync.claims.claim(m(2), "c2", call_waiting=False)
        assert len(sends) == 1 and not store.pending  # the batch went with the claim
        store.set_ringing(m(2), "c2", True)
        await until(lambda: flushed(sync) and sync.claims.ledger.held.get((m(1), "c1")) == "t", "t")
        await asyncio.sleep(0.05)
        assert len(sends) == 2, len(sends)  # and the ringing of c2
        assert await client.hget(sync.keys.activity("A"), m(1))
        assert await client.exists(sync.keys.claims(m(2)))
        # refused (another node holds the member): answered so, with the batch
        await client.hset(sync.keys.claims(m(3)), "B x", "99999999999999 r B")
        sends.clear()
        store.set_ringing(m(2), "c2", False)
        assert not await sync.claims.claim(m(3), "c3", call_waiting=False)
        assert len(sends) == 1 and not store.pending
        assert (m(3), "c3") not in sync.claims.ledger.held

    node_a(main, **QUIET)


async def until_async(probe: Any, expected: Any) -> None:
    for _ in range(200):
        if await probe() == expected:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never {expected!r}")


def test_a_batch_is_published_only_when_someone_else_listens(node_a: Callable[..., None]) -> None:
    """A lone node does not read its own batches back: its batch script publishes them only
    to another subscriber of the channel, or when another node holds a live lease (on a
    Cluster its subscription may be on another shard). Before: every batch was published."""

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        store = sync.store

        async def published_by(call: str) -> int:
            stats = await client.info("commandstats")
            before = int(stats.get("cmdstat_publish", {}).get("calls", 0))
            store.set_ringing(m(1), call, True)
            await until(lambda: flushed(sync), f"{call} flushed")
            stats = await client.info("commandstats")
            return int(stats.get("cmdstat_publish", {}).get("calls", 0)) - before

        assert await published_by("c1") == 0  # alone
        listener = client.pubsub()
        await listener.subscribe(sync.channel)  # another subscriber (a node, a tool)
        assert await published_by("c2") == 1
        message = None
        while message is None or message["type"] != "message":
            message = await listener.get_message(timeout=1.0)
        assert "c2" in message["data"]
        await listener.aclose()
        numsub = client.pubsub_numsub
        await until_async(lambda: numsub(sync.channel), [(sync.channel, 1)])
        assert await published_by("c3") == 0
        # another node's lease: published (its subscription may be on another shard)
        await client.hset(sync.keys.leases, "B", "99999999999999")
        assert await published_by("c4") == 1
        await client.hdel(sync.keys.leases, "B")  # swept (ended)
        assert await published_by("c5") == 0
        # this node's own subscription gone, another node's there: published
        assert sync._pubsub is not None
        await sync._pubsub.unsubscribe(sync.keys.own_channel("A"))
        await asyncio.sleep(0.05)
        assert await published_by("c6") == 1

    node_a(main, **QUIET)


def test_the_hot_path_uses_one_connection_and_no_redis_py_pipeline(
    node_a: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call's claims and flushes go on the fast lane (one connection, commands packed and
    written at once), without a redis-py pipeline; ``NOSCRIPT`` (a ``SCRIPT FLUSH``) and a
    killed connection are survived. Before: a pipeline (or a script object) per round trip."""
    from redis.asyncio.client import Pipeline

    pipelines: list[int] = []
    execute = Pipeline.execute

    async def counted(self: Pipeline, *args: Any, **kwargs: Any) -> Any:
        pipelines.append(1)
        return await execute(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "execute", counted)

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        store = sync.store

        async def one_call(call: str) -> None:
            await a_call(sync, call)
            assert not await client.exists(sync.keys.claims(m(1)))

        pipelines.clear()
        await one_call("c1")
        assert pipelines == []
        await client.script_flush()  # NOSCRIPT: loaded again, the commands sent again
        await one_call("c2")
        assert sync.connected
        killed = await client.client_kill_filter(_type="normal", skipme=True)
        assert killed  # the fast lane's connection among them: connected again
        await asyncio.sleep(0.05)
        for call in ("c3", "c4"):  # the first may find Redis away (granted locally)
            assert await sync.claims.claim(m(2), call, call_waiting=False)
            store.set_ringing(m(2), call, True)
            await until(lambda: flushed(sync), "flushed after the kill")
            store.set_ringing(m(2), call, False)
            await until(lambda: flushed(sync) and not sync.claims.ledger.held, "released")
        await one_call("c5")
        assert sync.connected

    node_a(main, **QUIET)


def test_claims_asked_meanwhile_go_together_with_the_next_flush(
    node_a: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claims asked within ``flush_interval`` of the last flush wait for the next one and go
    in its round trip, all of them, granted or refused one by one. Before: one round trip per
    claim (each alone on the fast lane, unless a batch was due)."""
    sends = count_sends(monkeypatch)

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        store = sync.store
        await client.hset(sync.keys.claims(m(3)), "B x", "99999999999999 r B")  # B holds m3
        store.set_ringing(m(6), "c0", True)
        await until(lambda: flushed(sync), "a flush")  # the next one waits flush_interval from it
        sends.clear()
        answers = await asyncio.gather(
            *(sync.claims.claim(m(i), f"c{i}", call_waiting=False) for i in (1, 2, 3))
        )
        assert answers == [True, True, False]
        assert len(sends) == 1, len(sends)
        assert await client.exists(sync.keys.claims(m(1)), sync.keys.claims(m(2))) == 2
        assert set(sync.claims.ledger.held) == {(m(1), "c1"), (m(2), "c2")}

    node_a(main, **QUIET)


def test_a_claim_whose_asker_gave_up_is_released_by_the_next_flush(
    node_a: Callable[..., None],
) -> None:
    """A claim's asker cancelled (the server stopping) before the flush: the claim is not
    sent; cancelled after it was answered, before reading the answer: the ledger takes
    Redis's grant, and the next flush releases it (the member is not left claimed until its
    lease ends). Before: such a grant was lost to the ledger."""

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        store = sync.store
        store.set_ringing(m(6), "c0", True)
        await until(lambda: flushed(sync), "a flush")
        early = asyncio.ensure_future(sync.claims.claim(m(1), "c1", call_waiting=False))
        await asyncio.sleep(0)
        early.cancel()
        late = asyncio.ensure_future(sync.claims.claim(m(2), "c2", call_waiting=False))
        answer = sync._answer

        def answer_then_cancel(asked: list[Any], answers: list[Any]) -> None:
            sent = bool(asked)
            answer(asked, answers)
            if sent:  # answered, then cancelled before its asker read the answer
                sync._answer = answer  # type: ignore[method-assign]
                late.cancel()

        sync._answer = answer_then_cancel  # type: ignore[method-assign]
        with contextlib.suppress(asyncio.CancelledError):
            await late
        assert late.cancelled()
        assert (m(2), "c2") in sync.claims.ledger.held  # the grant taken all the same
        assert (m(1), "c1") not in sync.claims.ledger.held
        assert not await client.exists(sync.keys.claims(m(1)))  # never sent
        sync._wake.set()  # the next flush: c2 rings nothing here, its claim goes
        await until(lambda: not sync.claims.ledger.held, "released")
        await asyncio.sleep(0.05)
        assert not await client.exists(sync.keys.claims(m(1)), sync.keys.claims(m(2)))

    node_a(main, **QUIET)


def test_a_claim_granted_after_its_offer_ended_is_released_without_another_change(
    node_a: Callable[..., None],
) -> None:
    """A claim rides a flush that also carries the end of its offer (the offer rang and
    ended while the claim waited for the flush): that flush's claims' changes were computed
    before the grant reached the ledger, so the grant wakes the flusher and the next flush
    releases it. Before: it stayed held, the member claimed, until the next renewal (a third
    of the lease; under load a claim of the cost test never ended)."""

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        store = sync.store
        asked = asyncio.ensure_future(sync.claims.claim(m(1), "c1", call_waiting=False))
        await asyncio.sleep(0)  # asked: it waits for the flusher
        store.set_ringing(m(1), "c1", True)  # the offer rings and ends before that flush
        store.set_ringing(m(1), "c1", False)
        assert await asked
        await until(lambda: not sync.claims.ledger.held, "released")
        await until_async(lambda: client.exists(sync.keys.claims(m(1))), 0)  # released in Redis

    node_a(main, **QUIET)


def test_under_load_claims_cost_no_round_trip_of_their_own(
    node_a: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A steady stream of calls (one claimed every 6 ms, each ringing, answering and ending
    a few steps later): every claim rides a flush, so the round trips are bounded by the
    flushes (one per ``flush_interval``), not by the calls. Before: at least one per call."""
    sends = count_sends(monkeypatch)

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        store = sync.store
        loop = asyncio.get_running_loop()
        ran0 = await _commands_run(client)
        sends.clear()
        began = loop.time()
        calls = 40
        asked: list[asyncio.Future[bool]] = []
        for i in range(calls + 4):
            if i < calls:
                claim = sync.claims.claim(f"02{i:04d}", f"c{i}", call_waiting=False)
                asked.append(asyncio.ensure_future(claim))
            if 1 <= i <= calls:  # the call before rings (its claim is granted by now or soon)
                store.set_ringing(f"02{i - 1:04d}", f"c{i - 1}", True)
            if 2 <= i <= calls + 1:
                store.set_ringing(f"02{i - 2:04d}", f"c{i - 2}", False)
                store.set_active(f"02{i - 2:04d}", f"c{i - 2}", True)
            if i >= 4:
                store.set_active(f"02{i - 4:04d}", f"c{i - 4}", False)
            await asyncio.sleep(0.006)
        assert all(await asyncio.gather(*asked))
        elapsed = loop.time() - began
        await until(lambda: flushed(sync) and not sync.claims.ledger.held, "all ended")
        round_trips = len(sends)
        ran = await _commands_run(client) - ran0
        assert round_trips <= elapsed / 0.025 + 3, (round_trips, elapsed)
        assert round_trips <= calls * ROUND_TRIPS_UNDER_LOAD, (round_trips, calls)
        assert ran <= calls * RUN_UNDER_LOAD, ran / calls

    node_a(main, **QUIET)


def test_a_claims_round_trip_redis_refuses_leaves_the_flusher_running(
    node_a: Callable[..., None],
) -> None:
    """Redis refusing the claims' round trip as a whole (not unreachable): its claims are
    answered (granted locally, re-asserted at the next write) and the flusher carries on.
    Before the claims rode the flushes a lone claim caught this itself."""
    from redis.exceptions import RedisError

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        lane = sync._lane
        assert lane is not None
        run_lane = lane.run
        refusals: list[int] = []

        async def refused(fill: Any, scripts: Any) -> Any:
            if len(scripts) == 2:  # the claims without a batch (``_write_claims``)
                lane.run = run_lane  # type: ignore[method-assign]
                refusals.append(1)
                raise RedisError("refused")
            return await run_lane(fill, scripts)

        lane.run = refused  # type: ignore[method-assign]
        await asyncio.sleep(0.1)
        await until(lambda: flushed(sync), "nothing left to flush")
        assert await sync.claims.claim(m(1), "c1", call_waiting=False)  # granted locally
        assert refusals == [1]
        assert await sync.claims.claim(m(2), "c2", call_waiting=False)
        assert await client.exists(sync.keys.claims(m(2)))  # the flusher sent it
        assert all(not t.done() for t in sync._tasks)

    node_a(main, **QUIET)


def test_a_claim_asked_with_a_change_goes_in_that_changes_flush(
    node_a: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a quiet spell an input that changes the state and asks a claim (one loop turn)
    sends both in one round trip, at once: the flusher lets that turn's claims join its
    flush. Before: the change went alone and the claim waited ``flush_interval`` for the
    next flush (two round trips, the ringing later)."""
    sends = count_sends(monkeypatch)

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        store = sync.store
        await asyncio.sleep(0.1)  # a quiet spell
        sends.clear()
        store.set_ringing(m(6), "c0", False)  # another call's change, in the same turn
        store.set_active(m(6), "c0", True)
        asked = asyncio.ensure_future(sync.claims.claim(m(1), "c1", call_waiting=False))
        assert await asked
        assert len(sends) == 1, len(sends)
        assert not store.pending  # the change went with it

    node_a(main, **QUIET)
