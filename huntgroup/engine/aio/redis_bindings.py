"""Registrations shared between nodes through Redis: the asyncio driver.

Theory of operation
-------------------
The B2BUA (sans-I/O, :mod:`huntgroup.engine.b2bua.shared_bindings`) emits a
:class:`BindingsOutput` whenever this node's share of an AOR changed: its
JSON value, its latest expiry (wall clock) and how many bindings it holds.
This driver:

- **writes** each one under ``{huntgroup}:bindings:NODE:AOR`` with ``PXAT`` at
  the latest expiry (so Redis itself forgets a dead node's bindings when they
  run out), or deletes the key when the share is empty, then ``PUBLISH``\\ es
  the value on ``huntgroup:bindings``. Writes never block routing:
  :meth:`RedisBindings.offer` only queues, coalescing per AOR (the latest
  share wins; an older one that removed bindings is still published first),
  at most ``max_pending`` AORs (beyond, the share is dropped and counted: the
  next change of that AOR carries the whole share again). A writer task
  drains the queue; while Redis is away it keeps the queue and retries.
- **reads** the channel (its own subscriber task): every message goes to
  ``on_share`` (the server hands it to :meth:`B2BUA.bindings_received`).
- **reloads** at start and after every new subscription (pub/sub loses what
  is published while a node is away): ``SCAN`` over the prefix (at most
  ``max_keys`` keys), only the keys of a well-formed node name and of a
  configured line (``lines``) kept, ``MGET`` in chunks of :data:`MGET_CHUNK`,
  at most ``max_bytes`` in all, every value to ``on_reload`` (the B2BUA
  replaces its table, then publishes its own shares again: Redis may have
  lost them). A reload Redis refuses (an ACL without ``SCAN``, say) is tried
  again with back-off, on a new subscription.

Values are hostile: the client does not decode replies (a value that is not
UTF-8 would raise inside redis-py and end the task), this driver decodes and
skips, logged and counted (``bad_values``), one that is not UTF-8 or larger
than :data:`MAX_SHARE_BYTES`; the rest is checked by the decoder of the B2BUA.
A write is one script: the ``SET`` (or ``DEL``) and then the ``PUBLISH``, so a
share Redis refuses to store (``maxmemory``) is not announced either. With
``server.state: memory`` nothing of this runs.

Invariants: one writer and one subscriber task; the queue holds at most one
share per AOR (plus at most :data:`MAX_REMOVALS` older removing ones, kept
when a write of their AOR fails even if a newer share was queued meanwhile);
the tasks end on :meth:`stop` (which never raises, unless it is cancelled),
even one that missed its cancellation: each looks at a stop flag before it
waits again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Collection

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from huntgroup.config.models import StateAuthConfig, StateTlsConfig
from huntgroup.engine.aio.redis_connect import (
    UNREACHABLE,
    close_client,
    end_tasks,
    redact,
    redis_client,
)
from huntgroup.engine.aio.redis_keys import RedisKeys
from huntgroup.engine.b2bua.shared_bindings import (
    MAX_SHARE_BYTES,
    BindingsOutput,
    check_node_name,
)

log = logging.getLogger("huntgroup.state")

MAX_REMOVALS = 8
"""Older shares of one AOR that removed bindings, published before the latest one."""
READ_CHUNK = 500
"""Keys per SCAN step of a reload."""
MGET_CHUNK = 100
"""Keys per MGET of a reload (at most 6.4 MB of values in one reply)."""
MAX_RELOAD_BYTES = 64 * 1024 * 1024
"""The most bytes of shares one reload keeps."""
STOP_GRACE = 5.0
"""Seconds ``stop`` waits for its tasks at least (twice the connect timeout if longer);
a task still running then is left cancelled and logged, and the shutdown goes on."""
WRITE_SCRIPT = """
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
end
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1
"""
"""A share stored (or its key deleted), then published: a refused SET publishes nothing."""


class RedisBindings:
    """This node's registrations out to Redis, the other nodes' in (see module doc)."""

    def __init__(
        self,
        url: str,
        node: str,
        *,
        on_share: Callable[[str], None],
        on_reload: Callable[[list[str]], None],
        prefix: str = "huntgroup",
        auth: StateAuthConfig | None = None,
        tls: StateTlsConfig | None = None,
        connect_timeout: float = 2.0,
        max_pending: int = 10_000,
        max_keys: int = 100_000,
        max_bytes: int = MAX_RELOAD_BYTES,
        lines: Callable[[], Collection[str]] | None = None,
        backoff: tuple[float, float] = (0.1, 5.0),
        ping_every: float = 5.0,
    ) -> None:
        self.url = url
        self.node = check_node_name(node)  # ValueError: it would break the keys
        self.lines = lines  # the configured lines' numbers (None: every AOR)
        self.max_bytes = max_bytes
        self.keys = RedisKeys(prefix)
        self.channel = self.keys.bindings_channel
        self.on_share = on_share
        self.on_reload = on_reload
        self.max_pending = max_pending
        self.max_keys = max_keys
        self.backoff = backoff
        self.ping_every = ping_every
        self._auth = auth or StateAuthConfig()
        self._tls = tls or StateTlsConfig()
        self._connect_timeout = connect_timeout
        self._stop_grace = max(STOP_GRACE, 2 * connect_timeout)
        self._client: aioredis.Redis | None = None
        self._pending: dict[str, BindingsOutput] = {}
        self._removals: dict[str, list[str]] = {}  # AOR -> older removing shares to publish
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False  # stop() began: the tasks end at their next look
        self.dropped = 0  # shares not queued: max_pending AORs waiting already
        self.reloads = 0  # reloads done (start and every new subscription)
        self.written = 0  # shares written to Redis
        self.refused = 0  # shares Redis refused (dropped)
        self.bad_values = 0  # values read or heard that are not UTF-8 (ignored)

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Start the writer and the subscriber (which connects and reloads); never raises:
        Redis away at start is retried like an outage later."""
        self._client = redis_client(
            self.url,
            self._auth,
            self._tls,
            connect_timeout=self._connect_timeout,
            decode_responses=False,  # values are not trusted to be UTF-8: decoded here
        )
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._subscriber(), name="bindings-subscriber"),
            loop.create_task(self._writer(), name="bindings-writer"),
        ]

    async def stop(self) -> None:
        """Stop the tasks; what is queued is written once more, best effort. This node's
        shares stay in Redis until they expire: the other nodes keep reaching the phones
        (UDP, Path) that registered here. The tasks are told to end as well as cancelled:
        before Python 3.12 ``asyncio.wait_for`` (redis-py sends through it) drops a
        cancellation that comes as its call ends, and the task carries on."""
        self._stopping = True
        self._wake.set()  # a writer that missed its cancellation looks at once
        for task in self._tasks:
            task.cancel()
        tasks, self._tasks = self._tasks, []
        await end_tasks(tasks, self._stop_grace, log, "bindings")
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await asyncio.wait_for(self._write_pending(client), self._connect_timeout)
        except (*UNREACHABLE, RedisError, TimeoutError):
            pass  # best effort: Redis keeps what it had, the shares expire on their own
        except Exception:  # never stop the shutdown
            log.exception("bindings: the last writes failed")
        await close_client(client)

    def cancel(self) -> None:
        """Stop the tasks at once, without waiting (the server closes without a shutdown)."""
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        self._tasks = []

    # ----------------------------------------------------------------- out
    def offer(self, share: BindingsOutput) -> None:
        """Queue this node's new share of an AOR (never blocks)."""
        aor = share.aor
        older = self._pending.get(aor)
        if older is None and len(self._pending) >= self.max_pending:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "bindings: %d share(s) not written (Redis slow or away, %d waiting)",
                    self.dropped,
                    len(self._pending),
                )
            return
        if older is not None and older.removes:
            kept = self._removals.setdefault(aor, [])
            if len(kept) < MAX_REMOVALS:
                kept.append(older.value)
        self._pending[aor] = share
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def _writer(self) -> None:
        delay = self.backoff[0]
        while True:
            await self._wake.wait()
            if self._stopping:  # stop() writes what is left itself
                return
            self._wake.clear()
            client = self._client
            if client is None:
                continue
            try:
                await self._write_pending(client)
                delay = self.backoff[0]
            except UNREACHABLE as err:
                log.debug("bindings: Redis unreachable for a write: %s", err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff[1])
                self._wake.set()
            except RedisError as err:  # refused (not away): that share is lost, the next
                # change of the line carries the whole share again, a reconnection all
                self.refused += 1
                log.warning("bindings: Redis refused a write, the share is dropped: %s", err)
                self._wake.set()  # the rest of the queue

    async def _write_pending(self, client: aioredis.Redis) -> None:
        while self._pending:
            aor = next(iter(self._pending))
            share = self._pending.pop(aor)
            removals = self._removals.pop(aor, [])
            key = self.keys.bindings(self.node, aor)
            pipe = client.pipeline(transaction=False)
            for value in removals:
                pipe.publish(self.channel, value)
            keep = share.live or share.tombstones
            pxat = str(max(1, math.ceil(share.expires_at * 1000))) if keep else ""
            pipe.eval(WRITE_SCRIPT, 1, key, share.value, pxat, self.channel)
            try:
                await pipe.execute()
            except (*UNREACHABLE, asyncio.CancelledError):
                if aor not in self._pending:  # not replaced meanwhile: retried later
                    self._pending[aor] = share
                    if removals:
                        self._removals.setdefault(aor, [])[:0] = removals
                else:  # a newer share waits: it goes after the removals of this one
                    lost = [*removals, *([share.value] if share.removes else [])]
                    if lost:
                        kept = self._removals.setdefault(aor, [])
                        kept[:] = [*lost, *kept][:MAX_REMOVALS]
                raise
            self.written += 1

    # ------------------------------------------------------------------ in
    async def _subscriber(self) -> None:
        """Subscribe, reload, then hand every message to ``on_share``; after any loss
        (and when nothing, not even a PONG, came back for a while) subscribe again."""
        delay = self.backoff[0]
        loop = asyncio.get_running_loop()
        pubsub: PubSub | None = None
        silence = 2 * self.ping_every + self._connect_timeout
        heard = pinged = loop.time()
        while True:
            client = self._client
            if client is None or self._stopping:  # stop() closes the client's connections
                return
            try:
                if pubsub is None:
                    pubsub = client.pubsub()
                    await pubsub.subscribe(self.channel)
                    heard = pinged = loop.time()
                    await self.reload(client)
                if loop.time() - pinged >= self.ping_every:
                    pinged = loop.time()
                    await pubsub.ping()
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                delay = self.backoff[0]
                if message is not None:
                    heard = loop.time()
                elif loop.time() - heard > silence:
                    raise RedisTimeoutError("no answer on the bindings subscription")
                if message is not None and message.get("type") in ("message", b"message"):
                    value = self._text(message["data"])
                    if value is not None:
                        self.on_share(value)
            except (*UNREACHABLE, RedisError) as err:
                # lost, or refused (an ACL, a script): subscribe and reload again, later
                if isinstance(err, UNREACHABLE):
                    log.debug("bindings: subscription lost: %s", err)
                else:
                    log.warning("bindings: Redis %s refused: %s", redact(self.url), err)
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
                    pubsub = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff[1])

    def _text(self, data: object) -> str | None:
        """A value read or heard as text; None (counted, logged) when it is too large or
        not UTF-8."""
        if isinstance(data, str):
            return data if len(data) <= MAX_SHARE_BYTES else None
        if not isinstance(data, bytes) or len(data) > MAX_SHARE_BYTES:
            return None
        try:
            return data.decode()
        except UnicodeDecodeError:
            self.bad_values += 1
            if self.bad_values == 1 or self.bad_values % 1000 == 0:
                log.warning("bindings: %d value(s) not UTF-8 ignored", self.bad_values)
            return None

    def _wanted(self, key: bytes | str, lines: Collection[str] | None) -> bool:
        """A key of a well-formed node name and (``lines``) of a configured line."""
        raw = key.encode() if isinstance(key, str) else key
        prefix = self.keys.bindings_prefix.encode()
        try:
            rest = raw[len(prefix) :].decode()
        except UnicodeDecodeError:
            return False
        node, _, aor = rest.partition(":")
        try:
            check_node_name(node)
        except ValueError:
            return False
        return bool(aor) and (lines is None or aor in lines)

    async def reload(self, client: aioredis.Redis) -> None:
        """Read every node's shares of the configured lines, this node's included (the
        B2BUA tells a stale one of this run from one of a previous run), and hand them to
        ``on_reload``. At most ``max_keys`` keys are scanned, ``max_bytes`` kept."""
        prefix = self.keys.bindings_prefix
        lines = None if self.lines is None else frozenset(self.lines())
        keys: list[bytes | str] = []
        scanned = 0
        async for raw in client.scan_iter(match=f"{_glob_escape(prefix)}*", count=READ_CHUNK):
            scanned += 1
            if self._wanted(raw, lines):
                keys.append(raw)
            if scanned >= self.max_keys:
                log.warning("bindings: more than %d shares in Redis; the rest unread", scanned)
                break
        values: list[str] = []
        size = 0
        for start in range(0, len(keys), MGET_CHUNK):
            for raw in await client.mget(keys[start : start + MGET_CHUNK]):
                value = None if raw is None else self._text(raw)
                if value is None:
                    continue
                size += len(value)
                if size > self.max_bytes:
                    log.warning("bindings: shares beyond %d bytes unread", self.max_bytes)
                    break
                values.append(value)
            if size > self.max_bytes:
                break
        self.reloads += 1
        log.info("bindings: %d share(s) read from Redis", len(values))
        self.on_reload(values)
        self._wake.set()


def _glob_escape(text: str) -> str:
    """``text`` with the glob characters of a SCAN MATCH pattern escaped."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
