"""Claims on members against a real redis-server: two nodes never ring one member at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from huntgroup.engine.aio import redis_connect
from huntgroup.engine.aio.redis_claims import FIFO_PATIENCE
from huntgroup.engine.aio.redis_state import RedisStateSync
from huntgroup.queue.actions import Cancel, Claim, Ring
from huntgroup.queue.core import RoutingCore
from huntgroup.queue.events import (
    CallArrived,
    CallHungUp,
    ClaimGranted,
    ClaimRefused,
    MemberAnswered,
)
from huntgroup.queue.offers import CLAIM_RETRY
from huntgroup.queue.state.journal import JournalingStore
from tests.support.state_harness import RedisServer, m, make_config, run, until

FAST = {"backoff": (0.02, 0.1), "wall_clock": lambda: 1000.0}


def sync_for(url: str, node: str, **kw: object) -> RedisStateSync:
    return RedisStateSync(url, JournalingStore(node), node, **{**FAST, **kw})  # type: ignore[arg-type]


async def claim_for(core: RoutingCore, sync: RedisStateSync, claim: Claim) -> list[Ring]:
    """What a node's server does with a Claim: ask Redis, tell the core, return its Rings."""
    granted = await sync.claims.claim(claim.member, claim.call_id, call_waiting=claim.call_waiting)
    event = ClaimGranted if granted else ClaimRefused
    out = core.handle(event(claim.call_id, claim.member), now=1.0)
    return [a for a in out if isinstance(a, Ring)]


def test_two_nodes_with_one_caller_each_never_both_ring_the_one_free_member(
    redis_server: RedisServer,
) -> None:
    async def main() -> None:
        cfg = make_config("linear", members=1)
        sa, sb = sync_for(redis_server.url, "A"), sync_for(redis_server.url, "B")
        await sa.load()
        await sb.load()
        ca = RoutingCore(cfg, now=0.0, store=sa.store, claims=True)
        cb = RoutingCore(cfg, now=0.0, store=sb.store, claims=True)
        out_a = ca.handle(CallArrived("a1", "G", "0611"), now=1.0)
        out_b = cb.handle(CallArrived("b1", "G", "0622"), now=1.0)
        (claim_a,) = [a for a in out_a if isinstance(a, Claim)]
        (claim_b,) = [a for a in out_b if isinstance(a, Claim)]
        rings_a, rings_b = await asyncio.gather(
            claim_for(ca, sa, claim_a), claim_for(cb, sb, claim_b)
        )
        assert len(rings_a) + len(rings_b) == 1  # exactly one node rings m1
        assert {r.member for r in rings_a + rings_b} == {m(1)}
        await sa.stop()
        await sb.stop()

    run(main)


def test_a_claim_is_refused_while_held_and_granted_once_released(
    redis_server: RedisServer,
) -> None:
    async def main() -> None:
        sa, sb = sync_for(redis_server.url, "A"), sync_for(redis_server.url, "B")
        await sa.load()
        await sb.load()
        sa.store.set_ringing(m(1), "a1", True)
        assert await sa.claims.claim(m(1), "a1", call_waiting=False)
        assert not await sb.claims.claim(m(1), "b1", call_waiting=False)
        assert not await sb.claims.claim(m(1), "b1", call_waiting=True)  # it rings on A
        sa.store.set_ringing(m(1), "a1", False)
        sa.store.set_active(m(1), "a1", True)  # answered on A
        assert await sa.claims.write()
        assert not await sb.claims.claim(m(1), "b1", call_waiting=False)
        assert await sb.claims.claim(m(1), "b2", call_waiting=True)  # call waiting: it may
        sa.store.set_active(m(1), "a1", False)  # the call ends on A
        assert await sa.claims.write()
        sb.claims.ledger.held.clear()
        client = aioredis.from_url(redis_server.url)
        await client.delete(sb.keys.claims(m(1)))
        await client.aclose()
        assert await sb.claims.claim(m(1), "b3", call_waiting=False)
        await sa.stop()
        await sb.stop()

    run(main)


def test_a_dead_nodes_claim_runs_out_within_the_lease(redis_server: RedisServer) -> None:
    async def main() -> None:
        lease = 0.5
        sa = sync_for(redis_server.url, "A", lease=lease)
        sb = sync_for(redis_server.url, "B", lease=lease)
        await sa.load()  # loaded, never started: A never renews (a node that died)
        await sb.load()
        assert await sa.claims.claim(m(1), "a1", call_waiting=False)
        loop = asyncio.get_running_loop()
        taken_at = loop.time()
        assert not await sb.claims.claim(m(1), "b1", call_waiting=False)
        granted: list[bool] = []

        async def try_b() -> None:
            granted.append(await sb.claims.claim(m(1), "b1", call_waiting=False))

        while not granted or not granted[-1]:
            await try_b()
            await asyncio.sleep(0.02)  # pacing the attempts, not a synchronisation
        waited = loop.time() - taken_at
        assert waited >= lease * 0.9  # not before the lease ran out...
        assert waited < lease + 5.0  # ...and soon after (bounded, generous for a loaded machine)
        await sb.stop()

    run(main)


def test_a_started_node_renews_its_claims_past_the_lease(redis_server: RedisServer) -> None:
    async def main() -> None:
        lease = 1.2  # renewed every 0.4 s: a loaded machine's stall stays well inside it
        sa = sync_for(redis_server.url, "A", lease=lease)
        sb = sync_for(redis_server.url, "B", lease=lease)
        await sa.start()
        await sb.load()
        sa.store.set_ringing(m(1), "a1", True)
        assert await sa.claims.claim(m(1), "a1", call_waiting=False)
        client = aioredis.from_url(redis_server.url, decode_responses=True)
        first = await client.hget(sa.keys.claims(m(1)), "A a1")
        assert first is not None and first.endswith(" r A")
        ends = int(first.split()[0])
        for _ in range(5):  # past several leases: each time the claim is still A's
            while True:  # polling Redis until the next renewal shows
                now = await client.hget(sa.keys.claims(m(1)), "A a1")
                assert now is not None, "A's claim ran out although A renews it"
                if int(now.split()[0]) > ends:
                    ends = int(now.split()[0])
                    break
                await asyncio.sleep(0.01)
        assert not await sb.claims.claim(m(1), "b1", call_waiting=False)
        await client.aclose()
        await sa.stop()
        await sb.stop()

    run(main)


def test_redis_down_claims_locally_and_no_double_claim_after_it_returns(
    redis_server: RedisServer,
) -> None:
    async def main() -> None:
        cfg = make_config("linear", members=2)
        sa, sb = sync_for(redis_server.url, "A"), sync_for(redis_server.url, "B")
        await sa.start()
        await sb.start()
        lost: list[tuple[str, str]] = []
        sb.claims.on_lost = lambda call_id, member: lost.append((call_id, member))
        ca = RoutingCore(cfg, now=0.0, store=sa.store, claims=True)
        cb = RoutingCore(cfg, now=0.0, store=sb.store, claims=True)
        redis_server.stop()
        # both nodes route on: each claims m1 locally and rings it
        (claim_a,) = [
            a for a in ca.handle(CallArrived("a1", "G", "0611"), now=1.0) if isinstance(a, Claim)
        ]
        assert await claim_for(ca, sa, claim_a)
        ca.handle(MemberAnswered("a1", m(1)), now=2.0)  # and it answers A's call
        (claim_b,) = [
            a for a in cb.handle(CallArrived("b1", "G", "0622"), now=1.0) if isinstance(a, Claim)
        ]
        assert await claim_for(cb, sb, claim_b)  # B rings it too: the outage allows it
        redis_server.start()
        await until(lambda: sa.connected and not sa.claims.stale, "A re-asserted its claims")
        await until(lambda: lost == [("b1", m(1))], "B's ringing offer of m1 was found lost")
        out = cb.handle(ClaimRefused("b1", m(1)), now=5.0)
        assert Cancel("b1", m(1)) in out
        client = aioredis.from_url(redis_server.url, decode_responses=True)
        holders = await client.hgetall(sa.keys.claims(m(1)))
        assert list(holders) == ["A a1"]  # one claim on m1: A's call
        ca.handle(CallHungUp("a1"), now=9.0)
        await until(lambda: not sa.claims.ledger.held, "A released m1")
        await client.aclose()
        await sa.stop()
        await sb.stop()

    run(main)


FIFO = {"backoff": (0.02, 0.1), "wall_clock": lambda: 1000.0, "local_clock": lambda: 0.0}
"""Both nodes' clocks agree: a core's time t is wall-clock 1000 + t on either node."""


def claim_of(actions: list[object]) -> Claim:
    (claim,) = [a for a in actions if isinstance(a, Claim)]
    return claim


async def ask(core: RoutingCore, sync: RedisStateSync, claim: Claim, now: float) -> list[object]:
    """Ask Redis for ``claim`` as a node's server does (group and arrival included)."""
    granted = await sync.claims.claim(
        claim.member,
        claim.call_id,
        call_waiting=claim.call_waiting,
        group=claim.group,
        arrival=claim.arrival,
    )
    event = ClaimGranted if granted else ClaimRefused
    return list(core.handle(event(claim.call_id, claim.member), now=now))


def test_the_older_caller_on_node_b_gets_the_member_that_frees_on_node_a(
    redis_server: RedisServer,
) -> None:
    async def main() -> None:
        cfg = make_config("linear", members=1)
        sa = sync_for(redis_server.url, "A", **FIFO)
        sb = sync_for(redis_server.url, "B", **FIFO)
        await sa.start()
        await sb.start()
        ca = RoutingCore(cfg, now=0.0, store=sa.store, claims=True)
        cb = RoutingCore(cfg, now=0.0, store=sb.store, claims=True)
        out = await ask(ca, sa, claim_of(ca.handle(CallArrived("a0", "G", "06"), now=1.0)), 1.0)
        assert [r.member for r in out if isinstance(r, Ring)] == [m(1)]
        ca.handle(MemberAnswered("a0", m(1)), now=1.5)
        await until(lambda: sb.store.is_on_call(m(1)), "B sees m1 on A's call")
        cb.handle(CallArrived("b1", "G", "07"), now=2.0)  # the older caller, queued on B
        ca.handle(CallArrived("a2", "G", "08"), now=3.0)  # a younger one, queued on A
        await until(lambda: ("G", "b1") in sb.claims.published, "B published its caller")
        await until(lambda: ("G", "a2") in sa.claims.published, "A published its caller")
        # m1 frees on A: A's head caller is younger than B's, so A leaves m1 to B
        out = await ask(ca, sa, claim_of(ca.handle(CallHungUp("a0"), now=4.0)), 4.0)
        assert not [r for r in out if isinstance(r, Ring)]
        assert ca.queue("G") == ["a2"]
        await until(lambda: cb.is_free("G", m(1), now=4.1), "B sees m1 free (A rang it not)")
        out = await ask(cb, sb, claim_of(cb.state_changed(now=4.1)), 4.1)
        assert [(r.call_id, r.member) for r in out if isinstance(r, Ring)] == [("b1", m(1))]
        await until(lambda: ("G", "b1") not in sb.claims.published, "B withdrew its caller")
        await sa.stop()
        await sb.stop()

    run(main)


def test_an_older_caller_elsewhere_is_waited_for_a_bounded_time(
    redis_server: RedisServer,
) -> None:
    """FIFO_PATIENCE counts refusals at least CLAIM_RETRY apart: several members freeing at
    once (refusals a few ms apart, one hunt pass) do not use it up at once."""

    async def main() -> None:
        clock = [0.0]  # A's clock; wall clock 1000 + clock, as B's
        sa = sync_for(
            redis_server.url,
            "A",
            **{**FIFO, "local_clock": lambda: clock[0], "wall_clock": lambda: 1000 + clock[0]},
        )
        sb = sync_for(redis_server.url, "B", **FIFO)
        await sa.load()
        await sb.load()
        sb.store.enqueue("G", "b1", (2.0, 1))  # B holds an older caller, and never claims
        assert await sb.claims.write(full=True)

        async def claim(member: int) -> bool:
            return await sa.claims.claim(
                m(member), "a2", call_waiting=False, group="G", arrival=3.0
            )

        for i in range(1, 5):  # four members free at once: each refused for B's caller
            assert not await claim(i)
        while not await claim(1):  # then one claim per CLAIM_RETRY
            assert clock[0] < 10
            clock[0] += CLAIM_RETRY
        # FIFO_PATIENCE refusals counted, CLAIM_RETRY apart: the claim after them skips the check
        assert clock[0] == FIFO_PATIENCE * CLAIM_RETRY
        sb.store.dequeue("G", "b1")
        assert await sb.claims.write()
        await sa.stop()
        await sb.stop()

    run(main)


def test_the_callers_of_a_dead_node_do_not_hold_members_back(redis_server: RedisServer) -> None:
    async def main() -> None:
        sa = sync_for(redis_server.url, "A", **FIFO)
        sb = sync_for(redis_server.url, "B", **FIFO)
        await sa.load()
        await sb.load()
        sb.store.enqueue("G", "b1", (2.0, 1))
        assert await sb.claims.write(full=True)
        assert not await sa.claims.claim(m(1), "a2", call_waiting=False, group="G", arrival=3.0)
        client = aioredis.from_url(redis_server.url, decode_responses=True)
        await client.hdel(sb.keys.leases, "B")  # B's lease ran out: B died
        assert await sa.claims.claim(m(1), "a3", call_waiting=False, group="G", arrival=3.5)
        assert await client.zrange(sa.keys.waiting("G"), 0, -1) == []  # B's entry went
        await client.aclose()
        await sa.stop()

    run(main)


def test_a_member_is_published_free_only_after_its_claim_is_released(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another node that hears a member is free finds its claim released: its own claim is
    not refused (the member left idle for CLAIM_RETRY, then to whichever node retries first).
    The release and the batch go in one pipeline, which Redis runs in order: the release
    (ASSERT_SCRIPT) comes first."""
    sent: list[list[str]] = []

    real_run = redis_connect.FastLane.run

    async def spied(lane: redis_connect.FastLane, fill: Any, scripts: Any) -> list[Any]:
        def record(pipe: redis_connect.PackedCommands) -> None:
            fill(pipe)
            sent.append([str(c[1]) for c in pipe.commands if c[0] == "EVALSHA"])

        return await real_run(lane, record, scripts)

    monkeypatch.setattr(redis_connect.FastLane, "run", spied)

    async def main() -> None:
        sa = sync_for(redis_server.url, "A")
        await sa.start()
        client = aioredis.from_url(redis_server.url, decode_responses=True)
        sa.store.set_ringing(m(1), "a1", True)
        assert await sa.claims.claim(m(1), "a1", call_waiting=False)
        await until(lambda: sa.outbox == 0, "A flushed m1 ringing")
        sent.clear()
        sa.store.set_ringing(m(1), "a1", False)  # the offer ended: m1 is free
        await until(lambda: sa.outbox == 0 and sent, "A flushed m1 free")
        assert not await client.hexists(sa.keys.claims(m(1)), "A a1")
        release, batch = sa.claims._assert.sha, sa._batch_script.sha
        assert sent == [[release, batch]]  # one round trip: the release, then the batch
        await client.aclose()
        await sa.stop()

    run(main)
