"""The flusher carrying claims, under faults: an outage's backoff, a stop in the middle of a
round trip, Redis refusing a resync, claims asked while the node stops.

Each test drives a real redis-server; the faults are made by wrapping the fast lane's
send (its reply held back, or a connection error) or the sync object's methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from huntgroup.engine.aio import redis_connect
from huntgroup.engine.aio.redis_state import RedisStateSync
from huntgroup.queue.state.journal import JournalingStore
from tests.support.state_harness import m, until

QUIET = {"ttl": 600.0, "lease": 600.0, "resync_interval": 6000.0}
LONG_BACKOFF = (600.0, 600.0)
"""A backoff no test outlives: what ends sooner ended by something else than its delay."""


class HeldReplies:
    """Wraps the fast lane's send: Redis runs the commands, their replies are held back
    until :attr:`gate` is set (a slow network); :attr:`sent` is set once Redis ran them."""

    def __init__(self, sync: RedisStateSync) -> None:
        lane = sync._lane
        assert lane is not None
        self.real = lane._send
        self.gate = asyncio.Event()
        self.sent = asyncio.Event()
        lane._send = self.send  # type: ignore[method-assign]

    async def send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        results = await self.real(commands)
        self.sent.set()
        await self.gate.wait()
        return results


async def claims_in_redis(client: aioredis.Redis, sync: RedisStateSync, *members: str) -> int:
    return int(await client.exists(*(sync.keys.claims(member) for member in members)))


# ------------------------------------------------------------------ finding 1: backoff


def test_a_claim_goes_at_once_when_redis_came_back_during_the_flushers_backoff(
    node_a: Callable[..., None],
) -> None:
    """Redis away, the flusher backs off; another task (the subscriber's resync) finds
    Redis back: a claim asked then is sent (granted by Redis) without waiting for the
    backoff's end. Before: it waited up to the backoff's delay (5 s at most by default)."""

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        lane = sync._lane
        assert lane is not None
        real = lane.run

        async def down(*args: Any, **kwargs: Any) -> Any:
            raise RedisConnectionError("simulated outage")

        lane.run = down  # type: ignore[method-assign]
        sync.store.set_ringing(m(6), "c0", True)  # its flush fails: the flusher backs off
        await until(lambda: not sync.connected, "the outage noticed")
        await asyncio.sleep(0.05)
        lane.run = real  # type: ignore[method-assign]
        assert await sync.flush()  # what the subscriber's resync does once Redis is back
        assert sync.connected
        asked = asyncio.ensure_future(sync.claims.claim(m(1), "c1", call_waiting=False))
        await until(asked.done, "the claim answered")
        assert asked.result()
        assert not sync.claims.stale  # granted by Redis, not locally
        assert await claims_in_redis(client, sync, m(1)) == 1
        await sync.stop()

    node_a(main, **QUIET, backoff=LONG_BACKOFF)


def test_claims_asked_during_a_flush_that_fails_are_granted_locally_at_once(
    node_a: Callable[..., None],
) -> None:
    """A flush under way finds Redis away: the claims asked while it was under way (queued
    for the next flush) are granted locally at once, as a claim asked during the outage is.
    Before: they waited for the flusher's backoff to end."""

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        lane = sync._lane
        assert lane is not None
        gate = asyncio.Event()
        under_way = asyncio.Event()

        async def lost(*args: Any, **kwargs: Any) -> Any:
            under_way.set()
            await gate.wait()
            raise RedisConnectionError("simulated outage")

        lane.run = lost  # type: ignore[method-assign]
        sync.store.set_ringing(m(6), "c0", True)
        await under_way.wait()  # the flush is under way
        asked = asyncio.ensure_future(sync.claims.claim(m(1), "c1", call_waiting=False))
        await asyncio.sleep(0.01)
        assert not asked.done()  # queued for the next flush (Redis still thought there)
        gate.set()
        await until(asked.done, "the claim answered")
        assert asked.result()  # granted locally
        assert sync.claims.stale  # re-asserted once Redis is back
        assert (m(1), "c1") in sync.claims.ledger.held
        await sync.stop()

    node_a(main, **QUIET, backoff=LONG_BACKOFF)


# ------------------------------------------------------------------ finding 2: stop


@pytest.mark.parametrize("asker_cancelled", [True, False], ids=["asker-cancelled", "asker-live"])
def test_stop_lets_a_claims_round_trip_under_way_end_and_releases_the_claim(
    node_a: Callable[..., None], asker_cancelled: bool
) -> None:
    """``stop()`` while a claim's round trip is under way (Redis granted it, its reply not
    back yet): the round trip ends, its grant goes to the ledger (or to its asker) and the
    stop's release frees the member. Before: the flusher was cancelled in the middle; with
    its asker cancelled first (the server's shutdown) the ledger never learnt of the grant
    and the member stayed claimed for the whole lease; with a live asker, it was answered
    "granted locally" while Redis was reachable."""

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        held = HeldReplies(sync)
        asker = asyncio.ensure_future(sync.claims.claim(m(1), "c1", call_waiting=False))
        await held.sent.wait()  # Redis granted it; the reply is on its way
        if asker_cancelled:
            asker.cancel()
        stopping = asyncio.ensure_future(sync.stop())
        await asyncio.sleep(0.05)
        held.gate.set()
        await stopping
        if asker_cancelled:
            with contextlib.suppress(asyncio.CancelledError):
                await asker
            assert asker.cancelled()
        else:
            assert await asker  # Redis's grant
            assert not sync.claims.stale  # not granted locally
        assert await claims_in_redis(client, sync, m(1)) == 0

    node_a(main, **QUIET)


@pytest.mark.parametrize("asker_cancelled", [True, False], ids=["asker-cancelled", "asker-live"])
def test_a_flusher_cancelled_in_the_middle_of_a_claim_keeps_it_in_the_ledger(
    node_a: Callable[..., None], asker_cancelled: bool
) -> None:
    """The flusher cancelled while a claim's round trip is under way (not by ``stop()``: the
    loop's shutdown): Redis may have granted it, so the ledger holds it (the release frees
    it) and a live asker is refused (it does not ring on an unknown answer). Before: the
    asker was told "granted locally", and with the asker cancelled the grant was lost."""

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        held = HeldReplies(sync)
        asker = asyncio.ensure_future(sync.claims.claim(m(1), "c1", call_waiting=False))
        await held.sent.wait()
        if asker_cancelled:
            asker.cancel()
        assert sync._flusher_task is not None
        sync._flusher_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sync._flusher_task
        if asker_cancelled:
            with contextlib.suppress(asyncio.CancelledError):
                await asker
        else:
            assert await asker is False  # refused
        assert (m(1), "c1") in sync.claims.ledger.held
        held.gate.set()
        await sync.stop()
        assert await claims_in_redis(client, sync, m(1)) == 0

    node_a(main, **QUIET)


# ------------------------------------------------------------------ finding 3: errors


def test_redis_refusing_the_flushers_resync_leaves_the_node_working(
    node_a: Callable[..., None],
) -> None:
    """Redis refusing the resync the flusher runs after a flush (``OOM``, a key of the
    wrong type): logged, the flusher carries on, the claims queued meanwhile are answered,
    and ``stop()`` still releases and removes the node's keys. Before: the flusher died,
    the queued claims were never answered and ``stop()`` raised before its cleanup."""

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        held = HeldReplies(sync)
        refusals: list[int] = []

        async def refused() -> None:
            refusals.append(1)
            raise ResponseError("OOM command not allowed when used memory > 'maxmemory'")

        sync.resync = refused  # type: ignore[method-assign]
        sync.sync.needs_resync = True
        first = asyncio.ensure_future(sync.claims.claim(m(1), "c1", call_waiting=False))
        await held.sent.wait()  # c1's flush under way, a resync after it
        second = asyncio.ensure_future(sync.claims.claim(m(2), "c2", call_waiting=False))
        held.gate.set()
        assert await first
        await until(lambda: bool(refusals), "the resync refused")
        await until(second.done, "the queued claim answered")
        assert second.result()
        assert sync._flusher_task is not None and not sync._flusher_task.done()
        assert sync.sync.needs_resync  # tried again after the next flush
        await sync.stop()
        assert not await client.exists(sync.keys.alive("A"))  # the stop's cleanup ran
        assert not await client.exists(sync.keys.claims(m(1)), sync.keys.claims(m(2)))

    node_a(main, **QUIET, backoff=(0.02, 0.1))


def test_redis_refusing_the_heartbeats_resync_leaves_the_heartbeat_running(
    node_a: Callable[..., None],
) -> None:
    """The heartbeat's periodic resync refused by Redis: logged, the heartbeat beats on.
    Before: the heartbeat task died (the node's keys then expired under the others)."""

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        refusals: list[int] = []

        async def refused() -> None:
            refusals.append(1)
            raise ResponseError("WRONGTYPE Operation against a key holding the wrong kind")

        sync.resync = refused  # type: ignore[method-assign]
        await until(lambda: len(refusals) >= 2, "two periodic resyncs")
        heartbeat = next(t for t in sync._tasks if t.get_name() == "state-heartbeat")
        assert not heartbeat.done()
        await sync.stop()

    node_a(main, **{**QUIET, "ttl": 0.3, "resync_interval": 0.1})


def test_a_failing_subscriber_turn_leaves_the_subscriber_running(
    node_a: Callable[..., None],
) -> None:
    """An error that is not a lost connection in the subscriber's turn (Redis refusing its
    resync, say): logged, the subscriber goes on and hears the other nodes. Before: it
    died, and the node never heard another node's change again."""

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        pubsub = sync._pubsub
        assert pubsub is not None
        real = pubsub.get_message
        failures: list[int] = []

        async def failing(*args: Any, **kwargs: Any) -> Any:
            if not failures:
                failures.append(1)
                raise ResponseError("refused")
            return await real(*args, **kwargs)

        pubsub.get_message = failing  # type: ignore[method-assign]
        await until(lambda: bool(failures), "the failure")
        other = RedisStateSync(sync.url, JournalingStore("B"), "B", **QUIET)  # type: ignore[arg-type]
        await other.start()
        other.store.set_ringing(m(3), "cB", True)
        await until(lambda: "B" in sync.store.remote_nodes(), "B's change heard")
        subscriber = next(t for t in sync._tasks if t.get_name() == "state-subscriber")
        assert not subscriber.done()
        await other.stop()
        await sync.stop()

    node_a(main, **QUIET, backoff=(0.02, 0.1))


def test_a_flusher_that_died_answers_its_queued_claims_and_stop_still_cleans_up(
    node_a: Callable[..., None],
) -> None:
    """The flusher ending with an error (a bug): the claims queued for it are granted
    locally at once (re-asserted by the renewal), later claims go alone, and ``stop()``
    logs the error and still releases the claims. Before: the queued claims were never
    answered and ``stop()`` raised the error, skipping its cleanup."""

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        under_way = asyncio.Event()

        async def buggy_flush(**kwargs: Any) -> bool:
            under_way.set()
            await asyncio.sleep(0.05)
            raise RuntimeError("a bug in the flush")

        async def buggy_backoff(delay: float) -> None:
            raise RuntimeError("a bug in the backoff")

        real_flush = sync.flush
        sync.flush = buggy_flush  # type: ignore[method-assign]
        sync._back_off = buggy_backoff  # type: ignore[method-assign]
        sync._wake.set()
        await under_way.wait()
        queued = asyncio.ensure_future(sync.claims.claim(m(1), "c1", call_waiting=False))
        await until(queued.done, "the queued claim answered")
        assert queued.result()  # granted locally
        assert sync._flusher_task is not None and sync._flusher_task.done()
        sync.flush = real_flush  # type: ignore[method-assign]
        assert await sync.claims.claim(m(2), "c2", call_waiting=False)  # sent alone
        assert await claims_in_redis(client, sync, m(2)) == 1
        await sync.stop()
        assert await claims_in_redis(client, sync, m(1), m(2)) == 0

    node_a(main, **QUIET)


# ------------------------------------------------------------------ finding 4: stopping


def test_a_claim_asked_while_the_node_stops_is_refused_and_not_left_in_redis(
    node_a: Callable[..., None],
) -> None:
    """A claim asked during ``stop()`` (after the flusher ended, around the release of the
    claims) is refused: nothing is sent. Before: it went alone, after the release had
    cleared the ledger, and stayed claimed in Redis for the whole lease."""

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        release_all = sync.claims.release_all
        late: list[asyncio.Future[bool]] = []

        async def release_then_ask() -> None:
            await release_all()
            late.append(asyncio.ensure_future(sync.claims.claim(m(4), "c4", call_waiting=False)))
            await asyncio.sleep(0.1)  # it would go meanwhile

        sync.claims.release_all = release_then_ask  # type: ignore[method-assign]
        await sync.stop()
        assert await late[0] is False
        assert await claims_in_redis(client, sync, m(4)) == 0

    node_a(main, **QUIET)


# ------------------------------------------------------------------ finding 5: wake


def test_a_grant_whose_asker_gave_up_wakes_the_flusher_to_release_it(
    node_a: Callable[..., None],
) -> None:
    """A claim answered, its asker cancelled before reading the answer: the ledger takes
    the grant and the flusher is woken, so the next flush releases it with nothing else
    to send. Before: the flusher slept until some other change woke it."""

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        answer: Callable[..., None] = sync._answer
        late: list[asyncio.Future[bool]] = []

        def answer_then_cancel(asked: list[Any], answers: list[Any]) -> None:
            sent = bool(asked)
            answer(asked, answers)
            if sent and late and not late[0].done():
                late[0].cancel()  # answered, then cancelled before its asker read it

        sync._answer = answer_then_cancel  # type: ignore[method-assign]
        late.append(asyncio.ensure_future(sync.claims.claim(m(2), "c2", call_waiting=False)))
        with contextlib.suppress(asyncio.CancelledError):
            await late[0]
        assert late[0].cancelled()
        assert (m(2), "c2") in sync.claims.ledger.held  # the grant taken
        sync._answer = answer  # type: ignore[method-assign]
        await until(lambda: not sync.claims.ledger.held, "released by a flush")
        await until(lambda: not sync._wake.is_set(), "the flush taken")
        await asyncio.sleep(0.05)
        assert await claims_in_redis(client, sync, m(2)) == 0
        await sync.stop()

    node_a(main, **QUIET)


# ------------------------------------------------- stop: a cancellation lost, a task stuck


@pytest.mark.parametrize("uncancelled", [False, True], ids=["dropped", "dropped-and-uncancelled"])
def test_stop_ends_a_flusher_that_missed_its_cancellation(
    node_a: Callable[..., None], uncancelled: bool
) -> None:
    """Before Python 3.12 ``asyncio.wait_for`` (redis-py sends through it) returns its call's
    result and drops a cancellation that came as the call ended: the flusher, its flush
    failed, went to back off (600 s here) and ``stop()`` awaited it as long. Now ``stop()``
    raises a flag and wakes the flusher, which looks at it before every wait, its backoff's
    too. "uncancelled": the task no longer even counts the cancel (as a timeout that took it
    for its own), so only the flag can end the flusher. The grace is as long as the backoff:
    a flusher ended by it would fail the test."""

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        sync._stop_grace = LONG_BACKOFF[0]
        real_flush = sync.flush
        under_way = asyncio.Event()

        async def cancel_dropped(**kwargs: Any) -> bool:
            sync.flush = real_flush  # type: ignore[method-assign]  # the stop's last flush
            under_way.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()  # a round trip, its cancellation dropped
            task = asyncio.current_task()
            if uncancelled and task is not None:
                task.uncancel()
            return False  # Redis away, as far as the flusher knows: it backs off

        sync.flush = cancel_dropped  # type: ignore[method-assign]
        sync.store.set_ringing(m(6), "c0", True)
        await until(under_way.is_set, "the flush under way")
        flusher = sync._flusher_task
        assert flusher is not None
        stopping = asyncio.ensure_future(sync.stop())
        await until(stopping.done, "stop() never returned")  # before: after the backoff
        stopping.result()
        assert flusher.done()
        assert sync.outbox == 0 and sync.store.pending == 0  # the stop's flush wrote c0

    node_a(main, **QUIET, backoff=LONG_BACKOFF)


def test_stop_is_bounded_when_a_flush_never_ends(
    node_a: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A flush stuck on an await that ignores its cancellation (holding the flushes' lock)
    does not hold the shutdown: ``stop()``'s waits for the lock and for its tasks share
    one grace, it logs the stuck flush and task and goes on without its last flush."""
    caplog.set_level(logging.WARNING, logger="huntgroup.state")

    async def main(sync: RedisStateSync, client: aioredis.Redis) -> None:
        sync._stop_grace = 0.2
        given: list[float] = []  # the time each of stop()'s waits was allowed
        lock_within, end_tasks = sync._lock_within, redis_connect.end_tasks

        async def lock_timed(grace: float) -> bool:
            given.append(grace)
            return await lock_within(grace)

        async def end_timed(tasks: Any, grace: float, *args: Any) -> None:
            given.append(grace)
            await end_tasks(tasks, grace, *args)

        sync._lock_within = lock_timed  # type: ignore[method-assign]
        monkeypatch.setattr("huntgroup.engine.aio.redis_state.end_tasks", end_timed)
        released = asyncio.Event()
        under_way = asyncio.Event()

        async def stuck(**kwargs: Any) -> bool:
            async with sync._lock:
                under_way.set()
                while not released.is_set():  # deaf to cancellation until the test lets go
                    with contextlib.suppress(asyncio.CancelledError):
                        await released.wait()
            return True

        sync.flush = stuck  # type: ignore[method-assign]
        sync.store.set_ringing(m(6), "c0", True)
        await until(under_way.is_set, "the flush under way")
        stopping = asyncio.ensure_future(sync.stop())
        try:
            await until(stopping.done, "stop() never returned")
        finally:
            released.set()  # the stuck task may end now (asyncio.run waits for it)
        stopping.result()
        assert "a state flush did not end" in caplog.text
        assert "state task state-flusher did not end when stopped" in caplog.text
        assert "state changes not written" in caplog.text
        assert len(given) == 3 and sum(given) <= 0.2 + 0.01, given  # one grace in all

    node_a(main, **QUIET)
