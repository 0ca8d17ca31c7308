"""Helpers of the shared-state tests: a small group config, a node, a real redis-server,
a started :class:`RedisStateSync` on it and the loop's waits."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from huntgroup.config.models import Config, GroupConfig, LineConfig, MemberConfig
from huntgroup.engine.aio.redis_state import RedisStateSync
from huntgroup.queue.actions import Action, Ring, RingAll
from huntgroup.queue.core import RoutingCore
from huntgroup.queue.events import Event
from huntgroup.queue.state.journal import JournalingStore
from huntgroup.queue.state.store import MemoryStore
from tests.support.ports import free_port
from tests.support.waiting import async_wait_until, wait_until

LINES = [f"010000000{i}" for i in range(1, 7)]


def m(i: int) -> str:
    """The key of member i (1-based)."""
    return LINES[i - 1]


def make_config(algorithm: str = "round_robin", members: int = 3, **group: Any) -> Config:
    fields: dict[str, Any] = {
        "name": "G",
        "pilot": "0140000000",
        "algorithm": algorithm,
        "members": [MemberConfig(line=LINES[i], position=i + 1) for i in range(members)],
    }
    fields.update(group)
    lines = tuple(LineConfig(number=n, password="pw") for n in LINES)
    return Config(lines=lines, groups=(GroupConfig(**fields),))


class Node:
    """A RoutingCore on a store, driven with scripted time."""

    def __init__(self, config: Config, store: MemoryStore, *, now: float = 0.0) -> None:
        self.store = store
        self.now = now
        self.core = RoutingCore(config, now=now, store=store)
        self.log: list[tuple[float, Action]] = []

    def at(self, t: float) -> list[Action]:
        out: list[Action] = []
        while (due := self.core.get_timer()) is not None and due <= t:
            self.now = max(self.now, due)
            out += self.core.handle_timer(now=self.now)
        self.now = max(self.now, t)
        self.log.extend((self.now, a) for a in out)
        return out

    def ev(self, event: Event, at: float | None = None) -> list[Action]:
        out = self.at(at) if at is not None else []
        got = self.core.handle(event, now=self.now)
        self.log.extend((self.now, a) for a in got)
        return out + got

    def rings(self, call: str) -> list[str]:
        return [
            m
            for _, a in self.log
            if isinstance(a, Ring | RingAll) and a.call_id == call
            for m in ((a.member,) if isinstance(a, Ring) else a.members)
        ]


def journaling(node: str) -> JournalingStore:
    return JournalingStore(node)


# ------------------------------------------------------- a node on a redis-server
async def until(cond: Callable[[], object], what: str) -> None:
    """Yield to the loop until ``cond`` holds (fails after 20 s)."""
    await async_wait_until(cond, timeout=20, interval=0.01, message=f"never happened: {what}")


def run(coro: Callable[[], Awaitable[None]]) -> None:
    """Run the scenario ``coro()`` in a fresh event loop."""
    asyncio.run(coro())  # type: ignore[arg-type]


def flushed(sync: RedisStateSync) -> bool:
    """Nothing of ``sync``'s node waits to be written: its journal drained, its outbox empty."""
    return sync.store.pending == 0 and sync.outbox == 0


async def started(url: str, node: str = "A", **options: Any) -> RedisStateSync:
    """A started :class:`RedisStateSync` of ``node`` on ``url`` (``options``: its keyword
    arguments), its first flush done."""
    sync = RedisStateSync(url, JournalingStore(node), node, **options)
    await sync.start()
    await until(lambda: flushed(sync), "the first flush")
    return sync


NodeBody = Callable[[RedisStateSync, aioredis.Redis], Awaitable[None]]
"""A scenario on a started node: ``body(sync, client)``."""


async def on_node(url: str, body: NodeBody, **options: Any) -> None:
    """``await body(sync, client)``: ``sync`` :func:`started` (node "A", ``options``),
    ``client`` a client of ``url`` (str replies); the client closed and the node stopped
    after, whatever happened (a second ``stop()``, after the body's own, does nothing)."""
    sync = await started(url, **options)
    client = aioredis.from_url(url, decode_responses=True)
    try:
        await body(sync, client)
    finally:
        await client.aclose()
        stopping = asyncio.ensure_future(sync.stop())
        await until(stopping.done, "the node stopped")  # a stop that hangs fails the test
        stopping.result()


class RedisServer:
    """A throw-away redis-server on 127.0.0.1 without persistence."""

    def __init__(
        self, workdir: Path, *, extra: tuple[str, ...] = (), program: str = "redis-server"
    ) -> None:
        binary = shutil.which(program)
        if binary is None:
            raise RuntimeError(
                f"{program} is not installed: run scripts/setup.sh (it installs the "
                f"Debian package {program}); the shared-state tests need a real server"
            )
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.extra = extra
        """More arguments (TLS, requirepass, replicaof ...); ``--port`` stays ours."""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        proc = self.proc

        def listening() -> bool:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"redis-server exited at start: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False

        wait_until(  # generous: the machine may be loaded
            listening,
            timeout=30,
            message=f"redis-server did not listen on port {self.port}",
            error=RuntimeError,
        )

    def stop(self) -> None:
        """Kill the server (SIGKILL: no goodbye to its clients or its replicas)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            if self.proc.stderr:
                self.proc.stderr.close()
            self.proc = None
