"""Registrations shared through a real Redis: two ``Server`` objects in this process.

A phone (a UDP socket of the test) registers with node A; a caller enters node
B: B rings the phone, at the contact A registered. Then the driver itself:
one key per (node, AOR) with its expiry, deleted when empty, the values read
again after a reconnection, hostile values ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from huntgroup.admin.server_collector import ServerCollector
from huntgroup.config.models import Config, MediaConfig, StateAuthConfig
from huntgroup.engine.aio.redis_bindings import RedisBindings
from huntgroup.engine.aio.redis_keys import RedisKeys
from huntgroup.engine.aio.server import Server
from huntgroup.engine.b2bua.line_contacts import line_bindings
from huntgroup.engine.b2bua.shared_bindings import BindingsOutput
from huntgroup.engine.sip.message import Request, Response
from huntgroup.engine.sip.parser import parse_datagram
from tests.support.b2bua_peers import (
    CALLER_NUMBER,
    DOMAIN,
    LINE_A,
    PASSWORD,
    PILOT,
    build,
    digest_authorization,
    make_config,
    parse_challenge,
    sdp,
)
from tests.support.state_harness import RedisServer

DEADLINE = 30.0  # generous: a loaded 2-core machine


def node_config(url: str, rtp: str) -> Config:
    cfg = make_config("linear", members=0, member_lines=[LINE_A])
    server = cfg.server.model_copy(
        update={
            "listen": ("udp:127.0.0.1:0",),
            "state": url,
            "media": MediaConfig(address="127.0.0.1", rtp_ports=rtp),
        }
    )
    return cfg.model_copy(update={"server": server})


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)  # the polling period, not a synchronisation


class UdpPhone:
    """A SIP endpoint of the test on 127.0.0.1 (blocking socket, read off the loop)."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(DEADLINE)
        self.port = self.sock.getsockname()[1]
        self.n = 0

    def send(self, data: bytes, port: int) -> None:
        self.sock.sendto(data, ("127.0.0.1", port))

    async def receive(self, method_or_status: str | int) -> tuple[Request | Response, int]:
        while True:
            data, addr = await asyncio.to_thread(self.sock.recvfrom, 65535)
            message = parse_datagram(data)
            if isinstance(message, Request) and message.method == method_or_status:
                return message, addr[1]
            if isinstance(message, Response) and message.status == method_or_status:
                return message, addr[1]

    def register(self, port: int, cseq: int, authorization: str | None = None) -> None:
        uri = f"sip:{self.user}@{DOMAIN}"
        self.n += 1
        headers = [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bKreg{self.n};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<{uri}>;tag=reg{self.n}"),
            ("To", f"<{uri}>"),
            ("Call-ID", "reg-redis@test"),
            ("CSeq", f"{cseq} REGISTER"),
            ("Contact", f"<sip:{self.user}@127.0.0.1:{self.port}>;expires=600"),
        ]
        if authorization:
            headers.append(("Authorization", authorization))
        self.send(build(f"REGISTER sip:{DOMAIN} SIP/2.0", headers), port)

    def close(self) -> None:
        self.sock.close()


def test_a_phone_registered_on_node_a_is_rung_by_a_call_entering_node_b(
    redis_server: RedisServer,
) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        a = Server(node_config(redis_server.url, "32100-32149"), loop=loop)
        b = Server(node_config(redis_server.url, "32150-32199"), loop=loop)
        await a.start()
        await b.start()
        phone, caller = UdpPhone(LINE_A), UdpPhone(CALLER_NUMBER)
        try:
            port_a, port_b = a._udp[0][0].port, b._udp[0][0].port
            phone.register(port_a, 1)
            challenge, _ = await phone.receive(401)
            offered = {
                parse_challenge(v)["algorithm"]: v
                for v in challenge.headers.get_all("WWW-Authenticate")
            }
            answer = digest_authorization(
                offered["SHA-256"],
                username=LINE_A,
                password=PASSWORD,
                method="REGISTER",
                uri=f"sip:{DOMAIN}",
            )
            phone.register(port_a, 2, answer)
            await phone.receive(200)
            await until(
                lambda: bool(line_bindings(b.b2bua, LINE_A)), "B never heard of A's REGISTER"
            )
            assert b.b2bua.registrar.binding_count == 0
            keys = RedisKeys()
            client = redis.Redis(host="127.0.0.1", port=redis_server.port)
            # /metrics: B holds A's contact; a value not UTF-8 on the channel is counted
            assert shared_metrics(b) == {"": 1.0, "bad_value": 0.0, "bad_share": 0.0,
                                         "too_many_nodes": 0.0, "left_out": 0.0,
                                         "write_refused": 0.0}  # fmt: skip
            client.publish(keys.bindings_channel, b"\xff\xfe")
            await until(lambda: shared_metrics(b)["bad_value"] == 1.0, "bad value not counted")
            stored = client.keys(keys.bindings_prefix.replace("{", "\\{") + "*")
            assert len(stored) == 1
            assert 0 < client.pttl(stored[0]) <= 600_000  # PXAT: the binding's own end
            client.close()
            invite = build(
                f"INVITE sip:{PILOT}@{DOMAIN} SIP/2.0",
                [
                    ("Via", f"SIP/2.0/UDP 127.0.0.1:{caller.port};branch=z9hG4bKinv1;rport"),
                    ("Max-Forwards", "70"),
                    ("From", f"<sip:{CALLER_NUMBER}@{DOMAIN}>;tag=c1"),
                    ("To", f"<sip:{PILOT}@{DOMAIN}>"),
                    ("Call-ID", "call-redis@test"),
                    ("CSeq", "1 INVITE"),
                    ("Contact", f"<sip:{CALLER_NUMBER}@127.0.0.1:{caller.port}>"),
                    ("Content-Type", "application/sdp"),
                ],
                sdp(caller.port + 2),
            )
            caller.send(invite, port_b)
            ringing, source = await phone.receive("INVITE")
            assert source == port_b  # node B rang the phone registered on node A
            assert str(ringing.uri) == f"sip:{LINE_A}@127.0.0.1:{phone.port}"
        finally:
            phone.close()
            caller.close()
            for server in (a, b):
                assert server.bindings is not None
                await server.bindings.stop()
                if server.state_sync is not None:
                    await server.state_sync.stop()
                server.close()

    asyncio.run(scenario())


def shared_metrics(server: Server) -> dict[str, float]:
    """The shared registrations' samples of ``server``'s /metrics collector, by reason
    ("" for the gauge of other nodes' contacts held)."""
    out: dict[str, float] = {}
    for family in ServerCollector(server).collect():
        if family.name.startswith("huntgroup_shared_bindings"):
            for sample in family.samples:
                out[sample.labels.get("reason", "")] = sample.value
    return out


def test_a_node_without_shared_state_has_no_shared_bindings_metrics(tmp_path: Path) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        server = Server(node_config("memory", "32200-32209"), loop=loop)
        await server.start()
        try:
            assert server.bindings is None and shared_metrics(server) == {}
        finally:
            server.close()

    asyncio.run(scenario())


# ------------------------------------------------------------------ the driver alone


def quiet_driver(url: str, **options: Any) -> RedisBindings:
    """A driver of node "n1" on ``url`` that ignores what it hears, retrying fast
    (``options``: other keyword arguments, or these overridden)."""
    defaults: dict[str, Any] = {
        "on_share": lambda _: None,
        "on_reload": lambda _: None,
        "backoff": (0.05, 0.2),
    }
    return RedisBindings(url, "n1", **{**defaults, **options})


def share(node: str, aor: str, live: int, expires_in: float = 60.0) -> BindingsOutput:
    value = json.dumps({"v": 1, "node": node, "aor": aor, "bindings": [], "removed": []})
    return BindingsOutput(aor, value, time.time() + expires_in, live)


async def _driver_scenario(
    server: RedisServer, body: Callable[..., Awaitable[None]], own: Sequence[BindingsOutput] = ()
) -> None:
    """``body(driver, client, heard, reloads)`` with a driver of node "n1" on ``server``,
    started and reloaded; after each reload the shares ``own`` are offered again, as the
    B2BUA does (``bindings_reloaded``)."""
    heard: list[str] = []
    reloads: list[list[str]] = []

    def reloaded(values: list[str]) -> None:
        reloads.append(values)
        for item in own:
            driver.offer(item)

    driver = quiet_driver(
        server.url, on_share=heard.append, on_reload=reloaded, ping_every=0.5, connect_timeout=0.5
    )
    await driver.start()
    client = redis.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
    try:
        await until(lambda: len(reloads) == 1, "no reload at start")
        await body(driver, client, heard, reloads)
    finally:
        client.close()
        await driver.stop()


def test_one_key_per_node_and_aor_written_published_and_deleted_when_empty(
    redis_server: RedisServer,
) -> None:
    keys = RedisKeys()

    async def body(
        driver: RedisBindings, client: redis.Redis, heard: list[str], _: list[list[str]]
    ) -> None:
        # another node's share, published: handed on; our own are published too
        client.publish(keys.bindings_channel, "from another node")
        await until(lambda: "from another node" in heard, "a published share not handed on")
        for i in range(50):  # coalesced per AOR: the last one wins
            driver.offer(share("n1", "100", live=1, expires_in=60 + i))
        driver.offer(share("n1", "200", live=1))
        await until(lambda: driver.pending == 0 and driver.written >= 2, "not written")
        assert client.exists(keys.bindings("n1", "100"), keys.bindings("n1", "200")) == 2
        assert 100_000 <= client.pttl(keys.bindings("n1", "100")) <= 110_000
        assert driver.written < 50
        driver.offer(share("n1", "200", live=0))
        await until(lambda: not client.exists(keys.bindings("n1", "200")), "not deleted")
        # no binding left but a tombstone: the key stays (a node that missed the removal
        # reads it on its next reload), until the tombstone's end
        removed = share("n1", "100", live=0, expires_in=3600)
        driver.offer(BindingsOutput("100", removed.value, removed.expires_at, 0, True, 1))
        await until(lambda: client.pttl(keys.bindings("n1", "100")) > 3_500_000, "deleted")

    asyncio.run(_driver_scenario(redis_server, body))


def test_after_a_reconnection_every_share_is_read_again(
    redis_server: RedisServer,
) -> None:
    keys = RedisKeys()
    hostile = "x" * 70_000

    async def body(
        driver: RedisBindings, client: redis.Redis, _: list[str], reloads: list[list[str]]
    ) -> None:
        client.set(keys.bindings("n2", "100"), "share of n2")
        client.set(keys.bindings("n3", "100"), hostile)  # too large: never read
        client.set(keys.bindings("n1", "300"), "a stale share of ours")
        client.client_kill_filter(_type="pubsub")  # the subscription drops: messages lost
        await until(lambda: len(reloads) == 2, "no reload after the subscription was lost")
        # every share, ours too (the B2BUA tells a stale one of its run from a previous
        # run's), the oversized one left out
        assert sorted(reloads[1]) == ["a stale share of ours", "share of n2"]

    asyncio.run(_driver_scenario(redis_server, body))


def test_writes_wait_while_redis_is_away_and_ours_are_rewritten_when_it_returns(
    redis_server: RedisServer,
) -> None:
    keys = RedisKeys()
    ours = [share("n1", "100", live=1)]

    async def body(
        driver: RedisBindings, client: redis.Redis, _: list[str], reloads: list[list[str]]
    ) -> None:
        redis_server.stop()
        driver.offer(share("n1", "100", live=1))  # never blocks
        await asyncio.sleep(0.3)
        assert driver.pending == 1
        redis_server.start()  # empty: Redis lost its data
        await until(lambda: len(reloads) >= 2, "no reload after Redis returned")
        await until(lambda: driver.pending == 0, "not written after Redis returned")
        fresh = redis.Redis(host="127.0.0.1", port=redis_server.port, decode_responses=True)
        await until(lambda: bool(fresh.exists(keys.bindings("n1", "100"))), "not rewritten")
        fresh.close()

    asyncio.run(_driver_scenario(redis_server, body, ours))


def test_stop_ends_a_writer_that_missed_its_cancellation(redis_server: RedisServer) -> None:
    """Before Python 3.12 ``asyncio.wait_for`` (redis-py wraps every send in it) returns its
    call's result and drops a cancellation that came as the call ended: the writer went on,
    back to waiting for a share with no timeout, and ``stop()`` awaited it for ever (the
    hang of the test above on a loaded machine: no timer left in the loop). Now ``stop()``
    also tells the tasks to end and wakes the writer, and they look before every wait."""

    async def scenario() -> None:
        driver = quiet_driver(redis_server.url, connect_timeout=0.5)
        write = driver._write_pending
        sending = asyncio.Event()

        async def cancellation_dropped(client: object) -> None:
            driver._write_pending = write  # type: ignore[method-assign]
            sending.set()
            # a send under way; its cancellation dropped, as wait_for does when its call
            # ended at that moment
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()

        driver._write_pending = cancellation_dropped  # type: ignore[method-assign]
        await driver.start()
        driver.offer(share("n1", "100", live=1))
        await asyncio.wait_for(sending.wait(), DEADLINE)
        stopping = asyncio.ensure_future(driver.stop())
        done, _ = await asyncio.wait([stopping], timeout=DEADLINE)
        assert done, "stop() never returned"  # before: the writer waited for ever
        await stopping
        assert driver.pending == 0  # the last writes went all the same

    asyncio.run(scenario())


def test_a_share_that_removed_bindings_is_published_even_when_a_later_one_replaces_it(
    redis_server: RedisServer,
) -> None:

    async def body(
        driver: RedisBindings, client: redis.Redis, heard: list[str], _: list[list[str]]
    ) -> None:
        removing = share("n1", "100", live=0)
        removing = BindingsOutput("100", removing.value + " ", 0.0, 0, removes=True)
        driver.offer(removing)  # both queued before the writer runs: coalesced...
        driver.offer(share("n1", "100", live=1))
        driver.offer(share("n1", "100", live=1, expires_in=70))
        # ... but the removal still goes out (the other nodes drop their stale bindings)
        await until(lambda: removing.value in heard, "the removing share was never published")
        await until(lambda: driver.pending == 0, "not written")
        assert driver.written == 1
        assert client.exists(RedisKeys().bindings("n1", "100"))

    asyncio.run(_driver_scenario(redis_server, body))


def test_a_write_redis_refuses_is_dropped_and_the_queue_goes_on(redis_server: RedisServer) -> None:

    async def body(
        driver: RedisBindings, client: redis.Redis, _: list[str], __: list[list[str]]
    ) -> None:
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1")  # every write refused: OOM
        driver.offer(share("n1", "100", live=1))
        await until(lambda: driver.refused == 1, "the refusal was not counted")
        assert driver.pending == 0  # dropped, not retried for ever
        client.config_set("maxmemory", "0")
        driver.offer(share("n1", "200", live=1))
        await until(lambda: driver.written == 1, "the next share was not written")
        assert client.exists(RedisKeys().bindings("n1", "200"))

    asyncio.run(_driver_scenario(redis_server, body))


def test_values_that_are_not_utf8_are_ignored_and_the_driver_goes_on(
    redis_server: RedisServer,
) -> None:
    """Review: redis-py decoding replies raised UnicodeDecodeError in the subscriber,
    which died for good, and stop() raised it again (the shutdown stopped there)."""
    keys = RedisKeys()

    async def body(
        driver: RedisBindings, client: redis.Redis, heard: list[str], reloads: list[list[str]]
    ) -> None:
        client.publish(keys.bindings_channel, b"\xff\xfe")
        client.publish(keys.bindings_channel, "after")
        await until(lambda: "after" in heard, "the subscriber died on a value not UTF-8")
        client.set(keys.bindings("evil", "100"), b"\xff\xfe")
        client.set(keys.bindings("n2", "100"), "share of n2")
        client.client_kill_filter(_type="pubsub")
        await until(lambda: len(reloads) == 2, "no reload after the subscription was lost")
        assert reloads[1] == ["share of n2"] and driver.bad_values == 2
        assert all(not task.done() for task in driver._tasks)

    asyncio.run(_driver_scenario(redis_server, body))


def test_stop_never_raises_from_a_task_that_died(redis_server: RedisServer) -> None:

    def broken(_: str) -> None:
        raise RuntimeError("a bug in the handler")

    async def scenario() -> None:
        driver = quiet_driver(redis_server.url, on_share=broken)
        await driver.start()
        await until(lambda: driver.reloads == 1, "no reload at start")
        client = redis.Redis(host="127.0.0.1", port=redis_server.port)
        client.publish(RedisKeys().bindings_channel, "x")
        client.close()
        await until(lambda: driver._tasks[0].done(), "the subscriber did not die")
        await driver.stop()  # does not raise

    asyncio.run(scenario())


def test_a_share_redis_refuses_to_store_is_not_published_either(redis_server: RedisServer) -> None:

    async def body(
        driver: RedisBindings, client: redis.Redis, heard: list[str], __: list[list[str]]
    ) -> None:
        refused = share("n1", "100", live=1)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1")
        driver.offer(refused)
        await until(lambda: driver.refused == 1, "the refusal was not counted")
        client.config_set("maxmemory", "0")
        stored = share("n1", "200", live=1)
        driver.offer(stored)
        await until(lambda: stored.value in heard, "the next share was not published")
        assert refused.value not in heard  # announced only once stored

    asyncio.run(_driver_scenario(redis_server, body))


class _Pipe:
    """A pipeline whose execute() waits for ``release`` and then finds Redis away."""

    def __init__(self, release: asyncio.Event) -> None:
        self.release = release

    def publish(self, *_: object) -> None:
        pass

    def eval(self, *_: object) -> None:
        pass

    def set(self, *_: object, **__: object) -> None:
        pass

    def delete(self, *_: object) -> None:
        pass

    async def execute(self) -> None:
        await self.release.wait()
        raise redis.exceptions.ConnectionError("away")


class _Client:
    def __init__(self, release: asyncio.Event) -> None:
        self.release = release

    def pipeline(self, transaction: bool) -> _Pipe:
        return _Pipe(self.release)


def test_a_failed_write_keeps_its_removals_for_the_newer_share_queued_meanwhile() -> None:
    """Review: the share and its removals were popped before execute(); a newer share of
    the line offered meanwhile and then a failure lost the removals."""

    async def scenario() -> None:
        driver = quiet_driver("redis://127.0.0.1:1/0")  # never started
        release = asyncio.Event()
        removing = BindingsOutput("100", "removing", 0.0, 0, removes=True)
        driver.offer(removing)
        writing = asyncio.ensure_future(driver._write_pending(_Client(release)))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        assert driver.pending == 0  # taken by the write
        newer = share("n1", "100", live=1)
        driver.offer(newer)
        release.set()
        with pytest.raises(redis.exceptions.ConnectionError):
            await writing
        assert driver._pending["100"] is newer
        assert driver._removals["100"] == ["removing"]  # published before the newer one

    asyncio.run(scenario())


def test_a_reload_redis_refuses_is_tried_again(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ACL user without SCAN: the reload fails (NOPERM); once allowed, it happens."""
    admin = redis.Redis(host="127.0.0.1", port=redis_server.port)
    admin.acl_setuser(
        "limited",
        enabled=True,
        passwords=["+secret"],
        keys=["*"],
        channels=["*"],
        commands=["+@all", "-scan"],
    )
    reloads: list[list[str]] = []
    monkeypatch.setenv("TEST_BINDINGS_PASSWORD", "secret")

    async def scenario() -> None:
        driver = RedisBindings(
            redis_server.url,
            "n1",
            auth=StateAuthConfig(username="limited", password_env="TEST_BINDINGS_PASSWORD"),
            on_share=lambda _: None,
            on_reload=reloads.append,
            backoff=(0.05, 0.1),
            ping_every=0.5,
            connect_timeout=0.5,
        )
        await driver.start()
        try:
            await asyncio.sleep(0.3)
            assert reloads == []  # refused
            admin.acl_setuser("limited", enabled=True, commands=["+scan"])
            await until(lambda: len(reloads) == 1, "the refused reload was not tried again")
        finally:
            await driver.stop()

    try:
        asyncio.run(scenario())
    finally:
        admin.close()


def test_a_reload_reads_only_configured_lines_and_well_named_nodes_within_a_byte_bound(
    redis_server: RedisServer,
) -> None:
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, decode_responses=True)
    keys = RedisKeys()
    for node in ("n2", "n3", "n4"):
        client.set(keys.bindings(node, "100"), f"{node} of 100 " + "x" * 1000)
    client.set(keys.bindings("n2", "999"), "a line not configured here")
    client.set(f"{keys.bindings_prefix}bad/node:100", "a node name that breaks keys")
    reloads: list[list[str]] = []

    async def scenario() -> None:
        driver = RedisBindings(
            redis_server.url,
            "n1",
            on_share=lambda _: None,
            on_reload=reloads.append,
            lines=lambda: ["100"],
            max_bytes=2500,
        )
        await driver.start()
        try:
            await until(lambda: len(reloads) == 1, "no reload")
        finally:
            await driver.stop()

    try:
        asyncio.run(scenario())
    finally:
        client.close()
    (values,) = reloads
    assert len(values) == 2 and all(" of 100 " in v for v in values)  # the third: beyond


def test_a_node_id_that_would_break_the_keys_is_refused() -> None:
    for bad in ("a/b", "a:b", "a~b", "", "a b"):
        with pytest.raises(ValueError, match="node id"):
            RedisBindings("redis://127.0.0.1:1/0", bad, on_share=print, on_reload=print)


def test_a_server_refuses_a_node_id_that_would_break_the_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Review: with a "/" in HUNTGROUP_NODE_ID, the B2BUA named the node by the part
    before it and the driver by the whole id: its own shares looked like another node's."""
    from huntgroup.config.models import ServerConfig
    from huntgroup.errors import StateError

    config = Config(server=ServerConfig(listen=("udp:127.0.0.1:0",)))

    async def start() -> None:
        server = Server(config, loop=asyncio.get_running_loop())
        try:
            await server.start()
        finally:
            server.close()

    monkeypatch.setenv("HUNTGROUP_SECRET", "a shared secret of 32 bytes......")
    monkeypatch.setenv("HUNTGROUP_NODE_ID", "rack1/node-7")
    with pytest.raises(StateError, match="HUNTGROUP_NODE_ID"):
        asyncio.run(start())


def test_stop_is_bounded_when_a_task_never_ends(redis_server: RedisServer) -> None:
    """A task stuck on an await that ignores its cancellation (any other such cause than
    the one above) does not hold the shutdown: ``stop()`` waits its grace, logs the task
    and goes on to its last writes."""

    async def scenario() -> None:
        driver = quiet_driver(redis_server.url, connect_timeout=0.1)
        released = asyncio.Event()
        sending = asyncio.Event()
        write = driver._write_pending

        async def stuck(client: object) -> None:
            driver._write_pending = write  # type: ignore[method-assign]  # stop's last write
            sending.set()
            while not released.is_set():  # deaf to cancellation until the test lets go
                with contextlib.suppress(asyncio.CancelledError):
                    await released.wait()

        driver._write_pending = stuck  # type: ignore[method-assign]
        driver._stop_grace = 0.2
        await driver.start()
        await until(lambda: driver.reloads == 1, "no reload at start")
        driver.offer(share("n1", "100", live=1))
        await until(sending.is_set, "the writer did not write")
        stopping = asyncio.ensure_future(driver.stop())
        await until(stopping.done, "stop() never returned")
        stopping.result()
        released.set()  # the stuck task may end now (asyncio.run waits for it)

    asyncio.run(scenario())
