"""Redis deployments: password and TLS, a Sentinel failover, the Cluster hash tag, old key names.

Real processes started by the tests (``redis-server``, ``redis-sentinel``, ``openssl``);
a missing program FAILS the test.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from huntgroup.config.models import StateAuthConfig, StateTlsConfig
from huntgroup.engine.aio.redis_keys import RedisKeys
from huntgroup.engine.aio.redis_state import RedisStateSync
from huntgroup.errors import StateError
from huntgroup.queue.state.journal import JournalingStore
from tests.support.redis_deployments import SentinelDeployment, cluster_slot, make_certificates
from tests.support.state_harness import RedisServer, m
from tests.support.waiting import async_wait_until

FAST = {"backoff": (0.02, 0.1), "wall_clock": lambda: 1000.0, "local_clock": lambda: 0.0}
PASSWORD = "s3cret-for-the-test"


def sync_for(url: str, node: str, **kw: object) -> RedisStateSync:
    return RedisStateSync(url, JournalingStore(node), node, **{**FAST, **kw})  # type: ignore[arg-type]


async def until(cond: object, what: str, timeout: float = 30) -> None:
    await async_wait_until(cond, timeout=timeout, interval=0.02, message=f"never happened: {what}")  # type: ignore[arg-type]


async def started_sharing(sa: RedisStateSync, sb: RedisStateSync) -> None:
    """Start ``sa`` and ``sb``: a pointer moved on ``sa`` reaches ``sb`` (through Redis)."""
    await sa.start()
    await sb.start()
    sa.store.set_last_answered("G", 2)
    assert await sa.flush()
    await sb.barrier()
    assert sb.store.last_answered("G") == 2


def started(server: RedisServer) -> RedisServer:
    try:
        server.start()
    except RuntimeError as err:
        pytest.fail(str(err))
    return server


@pytest.fixture
def tls_redis(tmp_path: Path) -> tuple[RedisServer, dict[str, Path]]:
    """redis-server on TLS only, with a password and client certificates required."""
    try:
        certs = make_certificates(tmp_path)
        server = RedisServer(tmp_path)
    except RuntimeError as err:
        pytest.fail(str(err))
    server.extra = (
        "--port", "0", "--tls-port", str(server.port),
        "--tls-cert-file", str(certs["certificate"]), "--tls-key-file", str(certs["private_key"]),
        "--tls-ca-cert-file", str(certs["ca"]), "--tls-auth-clients", "yes",
        "--requirepass", PASSWORD,
    )  # fmt: skip
    started(server)
    yield server, certs  # type: ignore[misc]
    server.stop()


def test_tls_with_a_client_certificate_and_a_password_from_a_file_or_the_environment(
    tls_redis: tuple[RedisServer, dict[str, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, certs = tls_redis
    url = f"rediss://127.0.0.1:{server.port}/0"
    tls = StateTlsConfig(**{k: str(v) for k, v in certs.items()})
    secret = tmp_path / "redis.password"
    secret.write_text(PASSWORD + "\n")
    os.chmod(secret, 0o600)
    monkeypatch.setenv("HG_TEST_REDIS_PASSWORD", PASSWORD)
    from_file = StateAuthConfig(password_file=str(secret))
    from_env = StateAuthConfig(username="default", password_env="HG_TEST_REDIS_PASSWORD")

    async def main() -> None:
        sa = sync_for(url, "A", auth=from_file, tls=tls)
        sb = sync_for(url, "B", auth=from_env, tls=tls)
        await started_sharing(sa, sb)
        sa.store.set_ringing(m(1), "a1", True)  # claims go over the same TLS client
        assert await sa.claims.claim(m(1), "a1", call_waiting=False)
        assert not await sb.claims.claim(m(1), "b1", call_waiting=False)
        await sa.stop()
        await sb.stop()
        # refused: no password, a wrong one, no client certificate, a CA that is not ours
        wrong = tmp_path / "wrong.password"
        wrong.write_text("nope")
        os.chmod(wrong, 0o600)
        no_client = StateTlsConfig(ca=str(certs["ca"]))
        refusals = [
            sync_for(url, "X", tls=tls),
            sync_for(url, "X", auth=StateAuthConfig(password_file=str(wrong)), tls=tls),
            sync_for(url, "X", auth=from_file, tls=no_client),
            sync_for(url, "X", auth=from_file, tls=StateTlsConfig()),
        ]
        for sync in refusals:
            with pytest.raises(StateError) as info:
                await sync.load()
            assert PASSWORD not in str(info.value)

    asyncio.run(main())


def test_a_password_file_readable_by_others_or_an_unset_variable_is_refused(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "redis.password"
    secret.write_text(PASSWORD)
    os.chmod(secret, 0o644)

    async def main() -> None:
        url = "redis://127.0.0.1:1/0"
        with pytest.raises(StateError, match="chmod 600"):
            await sync_for(url, "X", auth=StateAuthConfig(password_file=str(secret))).load()
        with pytest.raises(StateError, match="HG_TEST_UNSET_VARIABLE is unset"):
            auth = StateAuthConfig(password_env="HG_TEST_UNSET_VARIABLE")
            await sync_for(url, "X", auth=auth).load()

    asyncio.run(main())


def test_nodes_carry_on_with_the_new_master_after_a_sentinel_failover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        deployment = SentinelDeployment(tmp_path, PASSWORD, "sentinels-own-password")
        deployment.start()
    except RuntimeError as err:
        pytest.fail(str(err))
    old_master = deployment.master.port
    monkeypatch.setenv("HG_TEST_SENTINEL_PASSWORD", "sentinels-own-password")
    auth = StateAuthConfig(
        password_file=str(tmp_path / "pw"), sentinel_password_env="HG_TEST_SENTINEL_PASSWORD"
    )
    (tmp_path / "pw").write_text(PASSWORD)
    os.chmod(tmp_path / "pw", 0o600)

    async def main() -> None:
        sa = sync_for(deployment.url, "A", auth=auth)
        sb = sync_for(deployment.url, "B", auth=auth)
        await started_sharing(sa, sb)
        # the master dies without a word; the sentinels promote the replica
        deployment.master.stop()
        await until(lambda: deployment.master_port() != old_master, "the failover", 60)
        assert deployment.master_port() == deployment.replica.port
        # a change made after the failover reaches the other node through the new master
        sa.store.set_last_answered("G", 3)
        await until(lambda: sb.store.last_answered("G") == 3, "B sees A's change", 60)
        sb.store.set_last_answered("H", 1)
        await until(lambda: sa.store.last_answered("H") == 1, "A sees B's change", 60)
        # a claim made after the failover is granted by the new master, and B's refused
        sa.store.set_ringing(m(1), "a1", True)
        assert await sa.claims.claim(m(1), "a1", call_waiting=False)
        assert not await sb.claims.claim(m(1), "b1", call_waiting=False)
        new_master = deployment.client(deployment.replica)
        stats = new_master.info("commandstats")
        assert new_master.hget(sa.keys.claims(m(1)), "A a1") is not None
        new_master.close()
        # EVALSHA met NOSCRIPT on the new master, and the script was loaded there again
        assert stats["cmdstat_evalsha"]["failed_calls"] >= 1
        assert stats["cmdstat_script|load"]["calls"] >= 1
        # and a node started after the failover finds the state there
        sc = sync_for(deployment.url, "C", auth=auth)
        await sc.load()
        assert sc.store.last_answered("G") == 3
        assert sc.store.last_answered("H") == 1
        await sc.stop()
        await sa.stop()
        await sb.stop()

    try:
        asyncio.run(main())
    finally:
        deployment.stop()


def test_every_key_shares_one_cluster_slot(redis_server: RedisServer) -> None:
    keys = RedisKeys()
    names = [
        *keys.batch("node-1"),
        *keys.restore(),
        *keys.node_keys("other-node"),
        keys.claims("0102030401"),
        keys.claims("sip:alice@example.net"),
        keys.waiting("Support"),
        keys.leases,
    ]
    assert len({cluster_slot(name) for name in names}) == 1
    assert cluster_slot("{huntgroup}:x") == cluster_slot("huntgroup")  # the tag is hashed alone

    async def main() -> None:  # and every key a running node writes is one of them
        sa = sync_for(redis_server.url, "A")
        sb = sync_for(redis_server.url, "B")
        await sa.start()
        await sb.load()
        sa.store.set_last_answered("G", 2)
        sa.store.add_talk_time("G", "m1", 3.0)
        assert await sa.flush()
        await sa.heartbeat()
        # claims: B publishes a waiting caller (younger than A's), A claims two members with
        # the group's FIFO check, then renews both in one ASSERT_SCRIPT call
        sb.store.enqueue("G", "b1", (5.0, 1))
        assert await sb.claims.write(full=True)
        for call, member in (("a1", m(1)), ("a2", m(2))):
            sa.store.set_ringing(member, call, True)
            assert await sa.claims.claim(member, call, call_waiting=False, group="G")
        assert await sa.claims.write(full=True)
        client = redis.Redis(host="127.0.0.1", port=redis_server.port, decode_responses=True)
        written = client.keys("*")
        client.close()
        claim_keys = {keys.claims(m(1)), keys.claims(m(2)), keys.waiting("G"), keys.leases}
        assert claim_keys <= set(written)
        assert {cluster_slot(key) for key in written} == {cluster_slot(keys.marker)}
        await sb.stop()
        await sa.stop()

    asyncio.run(main())


def test_the_state_under_the_old_key_names_is_copied_once(redis_server: RedisServer) -> None:
    async def main() -> None:
        client = aioredis.Redis(port=redis_server.port, decode_responses=True)
        # the layout before issue 13: untagged names
        await client.hset("huntgroup:pointer", "G", '"0102030402"')
        await client.hset("huntgroup:pointer:stamp", "G", "5|old-node")
        await client.hset("huntgroup:talk", '["G","0102030402"]', "42")
        await client.set("huntgroup:marker", "old-node")
        sa = sync_for(redis_server.url, "A")
        await sa.load()
        assert sa.store.last_answered("G") == "0102030402"
        assert sa.store.talk_time("G", "0102030402") == 42.0
        assert await client.hget("{huntgroup}:talk", '["G","0102030402"]') == "42"
        # done once: a later change of the old keys is not copied again
        await client.hset("huntgroup:talk", '["G","0102030402"]', "99")
        await sa.stop()
        sb = sync_for(redis_server.url, "B")
        await sb.load()
        assert sb.store.talk_time("G", "0102030402") == 42.0
        await sb.stop()
        await client.aclose()

    asyncio.run(main())


def test_a_subscription_gone_silent_is_dropped_and_made_again(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A master that stops answering without closing its sockets (a host down, a network
    split: here SIGSTOP) must not keep the node's subscription forever."""
    caplog.set_level(logging.WARNING, logger="huntgroup.state")
    assert redis_server.proc is not None
    pid = redis_server.proc.pid

    async def main() -> None:
        sa = sync_for(redis_server.url, "A", ttl=1.5)
        sb = sync_for(redis_server.url, "B")
        await sa.start()
        await sb.start()
        os.kill(pid, signal.SIGSTOP)
        try:
            await until(lambda: "no answer on the subscription" in caplog.text, "detection")
        finally:
            os.kill(pid, signal.SIGCONT)
        sb.store.set_last_answered("G", 2)
        await until(lambda: sa.store.last_answered("G") == 2, "A hears B again")
        await sa.stop()
        await sb.stop()

    asyncio.run(main())
