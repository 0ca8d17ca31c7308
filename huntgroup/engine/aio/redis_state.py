"""Shared state in Redis: the asyncio driver of a :class:`JournalingStore`.

Theory of operation
-------------------
The group core reads and writes a local :class:`JournalingStore`
synchronously; this module carries its journal to Redis and brings the other
nodes' changes back. Routing never waits for Redis: when Redis is away the
node keeps routing from its local image, and catches up when it returns.

- ``load()`` (at start): connect (a bad URL or an unreachable server is a
  :class:`StateError`), subscribe to ``huntgroup:ops``, then read the shared
  snapshot (membership, talk time, pointers, the activity of live nodes) into
  the store. A node's activity and queues live in keys that expire unless the
  node refreshes them, so a dead node's calls are never resurrected.
- ``flush()``: drains the journal into an outbox and runs ONE Lua script per
  batch, atomically: last-writer-wins writes of membership and pointers
  (by Lamport stamp), ``HINCRBYFLOAT`` of talk time, this node's activity and
  queue hashes, its sequence number, its liveness key, and the ``PUBLISH`` of
  the batch. The script ignores a batch whose number it has already seen, so
  a batch retried after a lost reply is never counted twice.
- a subscriber task applies the other nodes' batches in publication order
  (its own are ignored); a gap in a node's numbers, a reconnection, or the
  periodic resync reads the snapshot again.
- a heartbeat task refreshes this node's keys and drops the calls of nodes
  whose liveness key expired.
- if Redis lost its data (restarted without persistence: the marker key is
  gone), the first node to notice writes its image back.

Invariants: ops are removed from the outbox only once Redis has accepted them;
the outbox never holds more than ``max_outbox`` ops (beyond, it is compacted,
see :func:`huntgroup.queue.state.journal.compact`); a batch is applied at most once
by Redis and by each node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from huntgroup.errors import StateError
from huntgroup.queue.state.journal import (
    AddTalk,
    Batch,
    Dequeue,
    Enqueue,
    JournalingStore,
    MemberActivity,
    NodeState,
    Op,
    SetActive,
    SetJoined,
    SetPointer,
    SetRinging,
    SetWrapUp,
    Snapshot,
    Stamp,
    compact,
    decode_activity,
    decode_batch,
    encode_activity,
    encode_batch,
)

log = logging.getLogger("huntgroup.state")

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
"""Errors that mean Redis is away (the ops are kept and retried)."""

_NEWER = """
local function newer(a, b)
  if not b then return true end
  local ia = string.find(a, '|', 1, true)
  local ib = string.find(b, '|', 1, true)
  local ca = tonumber(string.sub(a, 1, ia - 1))
  local cb = tonumber(string.sub(b, 1, ib - 1))
  if ca ~= cb then return ca > cb end
  local na = string.sub(a, ia + 1)
  local nb = string.sub(b, ib + 1)
  for i = 1, math.min(#na, #nb) do
    local x, y = string.byte(na, i), string.byte(nb, i)
    if x ~= y then return x > y end
  end
  return #na > #nb
end
"""

# KEYS: joined, joined stamps, talk, pointer, pointer stamps, seq, activity, queues, alive, marker
# ARGV: node, seq, ttl, channel, message, writes (JSON list)
_BATCH = (
    _NEWER
    + """
if redis.call('EXISTS', KEYS[10]) == 0 then return -1 end
local last = tonumber(redis.call('HGET', KEYS[6], ARGV[1]) or '0')
if tonumber(ARGV[2]) <= last then return 0 end
for _, w in ipairs(cjson.decode(ARGV[6])) do
  local k = w[1]
  if k == 'j' then
    if newer(w[4], redis.call('HGET', KEYS[2], w[2])) then
      redis.call('HSET', KEYS[1], w[2], w[3])
      redis.call('HSET', KEYS[2], w[2], w[4])
      if w[3] ~= '-' then redis.call('HSET', KEYS[3], w[2], '0') end
    end
  elseif k == 'p' then
    if newer(w[4], redis.call('HGET', KEYS[5], w[2])) then
      redis.call('HSET', KEYS[4], w[2], w[3])
      redis.call('HSET', KEYS[5], w[2], w[4])
    end
  elseif k == 't' then
    redis.call('HINCRBYFLOAT', KEYS[3], w[2], w[3])
  elseif k == 'a' or k == 'q' then
    local key = KEYS[7]
    if k == 'q' then key = KEYS[8] end
    if w[3] == '' then redis.call('HDEL', key, w[2]) else redis.call('HSET', key, w[2], w[3]) end
  elseif k == 'clear' then
    redis.call('DEL', KEYS[7], KEYS[8])
  end
end
redis.call('HSET', KEYS[6], ARGV[1], ARGV[2])
redis.call('SET', KEYS[9], '1', 'EX', ARGV[3])
redis.call('EXPIRE', KEYS[7], ARGV[3])
redis.call('EXPIRE', KEYS[8], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
"""
)

# KEYS: joined, joined stamps, talk, pointer, pointer stamps, marker, seq
# ARGV: image (JSON), token, node, seq covered by the image, channel, message to publish
_RESTORE = """
if redis.call('EXISTS', KEYS[6]) == 1 then return 0 end
local img = cjson.decode(ARGV[1])
for _, w in ipairs(img['j']) do
  redis.call('HSET', KEYS[1], w[1], w[2])
  redis.call('HSET', KEYS[2], w[1], w[3])
end
for _, w in ipairs(img['t']) do redis.call('HSET', KEYS[3], w[1], w[2]) end
for _, w in ipairs(img['p']) do
  redis.call('HSET', KEYS[4], w[1], w[2])
  redis.call('HSET', KEYS[5], w[1], w[3])
end
redis.call('SET', KEYS[6], ARGV[2])
if tonumber(ARGV[4]) > 0 then redis.call('HSET', KEYS[7], ARGV[3], ARGV[4]) end
if ARGV[6] ~= '' then redis.call('PUBLISH', ARGV[5], ARGV[6]) end
return 1
"""


def _still_running() -> None:
    """Raise CancelledError if this task was cancelled.

    On Python 3.11 a cancellation that races with a client-side timeout can
    be turned into that timeout; the background loops check this on every
    turn so that ``stop()`` (and the loop's shutdown) always ends them.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def default_node_id() -> str:
    """A node id unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def redact(url: str) -> str:
    """``url`` without its password, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _field(*parts: str) -> str:
    return json.dumps(list(parts), separators=(",", ":"))


def _stamp_str(stamp: Stamp) -> str:
    return f"{stamp[0]}|{stamp[1]}"


def _parse_stamp(text: str) -> Stamp:
    counter, sep, node = text.partition("|")
    if not sep:
        raise ValueError(f"bad stamp {text!r}")
    return (int(counter), node)


def _pair(field: str) -> tuple[str, str]:
    value = json.loads(field)
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise ValueError(f"bad field {field!r}")
    return (value[0], value[1])


class RedisStateSync:
    """Keeps a :class:`JournalingStore` in step with Redis and with the other nodes."""

    def __init__(
        self,
        url: str,
        store: JournalingStore,
        node_id: str | None = None,
        *,
        prefix: str = "huntgroup",
        ttl: float = 15.0,
        resync_interval: float = 60.0,
        max_outbox: int = 10_000,
        backoff: tuple[float, float] = (0.1, 5.0),
        connect_timeout: float = 2.0,
        local_clock: Callable[[], float] | None = None,
        wall_clock: Callable[[], float] = time.time,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        if node_id is not None and node_id != store.node_id:
            raise StateError(f"node id {node_id!r} differs from the store's {store.node_id!r}")
        self.url = url
        self.store = store
        self.node_id = store.node_id
        self.ttl = ttl
        self.resync_interval = resync_interval
        self.max_outbox = max_outbox
        self.backoff = backoff
        self.on_change = on_change
        """Called after other nodes' changes were applied (members may have become free)."""
        self._local_clock = local_clock
        self._wall_clock = wall_clock
        self._connect_timeout = connect_timeout
        p = prefix
        self.channel = f"{p}:ops"
        self._k_state = [
            f"{p}:joined",
            f"{p}:joined:stamp",
            f"{p}:talk",
            f"{p}:pointer",
            f"{p}:pointer:stamp",
            f"{p}:seq",
        ]
        self._k_activity_prefix = f"{p}:activity:"
        self._k_activity = f"{p}:activity:{self.node_id}"
        self._k_queues = f"{p}:queues:{self.node_id}"
        self._k_alive_prefix = f"{p}:alive:"
        self._k_marker = f"{p}:marker"
        self._client: aioredis.Redis | None = None
        self._pubsub: PubSub | None = None
        self._batch_script: Any = None
        self._restore_script: Any = None
        self._outbox: list[Op] = []
        self._resend_state = True  # the first batch states this node's whole activity
        self._seq = 0
        self._seen: dict[str, int] = {}
        self._recent: deque[Batch] = deque(maxlen=1024)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._barriers: dict[str, asyncio.Future[None]] = {}
        self._wakeups: list[asyncio.TimerHandle] = []
        self._needs_resync = False
        self.connected = False
        """False while Redis is unreachable (routing goes on from the local image)."""

    # ------------------------------------------------------------- clocks
    def _now(self) -> float:
        if self._local_clock is not None:
            return self._local_clock()
        return asyncio.get_running_loop().time()

    def _offset(self) -> float:
        """wall = local + offset."""
        return self._wall_clock() - self._now()

    # ---------------------------------------------------------- lifecycle
    async def load(self) -> None:
        """Connect and read the shared state into the store; StateError if impossible."""
        if self._client is not None:
            return
        try:
            client = aioredis.from_url(
                self.url,
                decode_responses=True,
                socket_connect_timeout=self._connect_timeout,
                socket_timeout=max(self._connect_timeout, 5.0),
                retry=Retry(NoBackoff(), 0),
            )
        except ValueError as err:
            raise StateError(
                f"server.state: {redact(self.url)!r} is not a Redis URL: {err}"
            ) from None
        self._batch_script = client.register_script(_BATCH)
        self._restore_script = client.register_script(_RESTORE)
        try:
            await client.ping()
            await client.delete(self._k_activity, self._k_queues)
            self._pubsub = await self._subscribe(client)
            self._client = client
            await self._restore_if_lost()
            await self._resync()
        except UNREACHABLE as err:
            self._client = None
            with contextlib.suppress(Exception):
                await client.aclose()
            raise StateError(f"cannot reach Redis at {redact(self.url)}: {err}") from None
        except RedisError as err:
            self._client = None
            with contextlib.suppress(Exception):
                await client.aclose()
            raise StateError(f"Redis at {redact(self.url)} refused the state: {err}") from None
        self.connected = True
        self.store.listener = self._wake.set
        log.info("shared state in Redis %s, node %s", redact(self.url), self.node_id)

    async def start(self) -> None:
        """Load (if not done yet) and start the flusher, subscriber and heartbeat tasks."""
        await self.load()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._flusher(), name="state-flusher"),
            loop.create_task(self._subscriber(), name="state-subscriber"),
            loop.create_task(self._heartbeat(), name="state-heartbeat"),
        ]
        self._wake.set()

    async def stop(self) -> None:
        """Flush what can be flushed, leave the cluster, close the connections."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for handle in self._wakeups:
            handle.cancel()
        self._wakeups = []
        self.store.listener = None
        if self._client is None:
            return
        flushed = await self.flush()
        if not flushed:
            log.warning("Redis unreachable at stop: %d state change(s) lost", len(self._outbox))
        client, self._client = self._client, None
        with contextlib.suppress(*UNREACHABLE, RedisError):
            if flushed:
                await client.delete(
                    self._k_activity, self._k_queues, f"{self._k_alive_prefix}{self.node_id}"
                )
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None
        with contextlib.suppress(Exception):
            await client.aclose()
        self.connected = False

    # -------------------------------------------------------------- flush
    @property
    def outbox(self) -> int:
        """Ops drained from the store and not yet accepted by Redis."""
        return len(self._outbox)

    def _take(self) -> None:
        self._outbox.extend(self.store.drain())
        if len(self._outbox) > self.max_outbox:
            self._outbox, dropped = compact(self._outbox)
            self._resend_state = self._resend_state or dropped

    async def flush(self) -> bool:
        """Write the journal to Redis and publish it; False (ops kept) if Redis is away."""
        if self._client is None:
            return False
        async with self._lock:
            self._take()
            if not self._outbox and not self._resend_state:
                return True
            ops = list(self._outbox)
            if self._resend_state:
                ops.append(self.store.node_state())
            try:
                await self._write_batch(ops)
            except UNREACHABLE as err:
                self._went_down(err)
                return False
            except RedisError:
                log.exception("Redis rejected a state batch; %d op(s) dropped", len(ops))
            self._outbox.clear()
            self._resend_state = False
            if not self.connected:
                self.connected = True
                self._needs_resync = True
                log.info("Redis %s is back; state flushed", redact(self.url))
            return True

    def _went_down(self, err: BaseException) -> None:
        if self.connected:
            log.warning(
                "Redis %s unreachable (%s): routing goes on, changes are kept",
                redact(self.url),
                err,
            )
        self.connected = False
        self._resend_state = True

    async def _write_batch(self, ops: list[Op]) -> None:
        assert self._client is not None
        seq = self._seq + 1
        offset = self._offset()
        message = encode_batch(Batch(self.node_id, seq, tuple(ops)), offset=offset)
        writes = self._writes(ops, offset)
        result = await self._run_batch(seq, message, writes)
        if result == -1:  # Redis lost its data: the first node to notice restores it
            if await self._restore_if_lost(seq=seq, message=message):
                # the image holds this batch and it was published with it; what
                # Redis still lacks is this node's activity and queues
                self._seq = seq
                seq += 1
                ops = [self.store.node_state()]
                message = encode_batch(Batch(self.node_id, seq, tuple(ops)), offset=offset)
                writes = self._writes(ops, offset)
            else:
                await self._resync(unsent=ops)
            result = await self._run_batch(seq, message, writes)
        if result == -1:
            raise RedisConnectionError("the state marker vanished again")
        self._seq = seq

    async def _run_batch(self, seq: int, message: str, writes: list[list[str]]) -> int:
        keys = [
            *self._k_state,
            self._k_activity,
            self._k_queues,
            f"{self._k_alive_prefix}{self.node_id}",
            self._k_marker,
        ]
        args = [
            self.node_id,
            seq,
            max(1, math.ceil(self.ttl)),
            self.channel,
            message,
            json.dumps(writes, separators=(",", ":")),
        ]
        return int(await self._batch_script(keys=keys, args=args))

    def _writes(self, ops: list[Op], offset: float) -> list[list[str]]:
        """The writes the batch script makes for ``ops``."""
        writes: list[list[str]] = []
        touched: set[str] = set()
        queued: dict[str, str] = {}
        full = any(isinstance(op, NodeState) for op in ops)
        for op in ops:
            match op:
                case SetJoined(g, m, since, stamp):
                    value = "-" if since is None else repr(since + offset)
                    writes.append(["j", _field(g, m), value, _stamp_str(stamp)])
                case SetPointer(g, position, stamp):
                    writes.append(["p", g, str(position), _stamp_str(stamp)])
                case AddTalk(g, m, seconds):
                    writes.append(["t", _field(g, m), repr(seconds)])
                case SetRinging(member=m) | SetActive(member=m) | SetWrapUp(member=m):
                    touched.add(m)
                case Enqueue(g, call, (t, n), _):
                    queued[_field(g, call)] = json.dumps([t + offset, n])
                case Dequeue(g, call, _):
                    queued[_field(g, call)] = ""
        if full:
            state = self.store.node_state()
            writes.append(["clear"])
            for member, act in state.activity:
                writes.append(["a", member, json.dumps(encode_activity(act, offset=offset))])
            for g, call, (t, n) in state.queues:
                writes.append(["q", _field(g, call), json.dumps([t + offset, n])])
            return writes
        for member in sorted(touched):
            act = self.store.local_activity(member)
            value = "" if act.idle else json.dumps(encode_activity(act, offset=offset))
            writes.append(["a", member, value])
        writes.extend(["q", f, v] for f, v in queued.items())
        return writes

    async def _restore_if_lost(self, *, seq: int = 0, message: str = "") -> bool:
        """Write this node's image if Redis has no state marker; True if we did.

        The image holds every change of this node up to batch ``seq``, which
        is recorded as applied and ``message`` (that batch) published in the
        same atomic step, so that no node counts its talk time twice.
        """
        assert self._client is not None
        offset = self._offset()
        image = self.store.image()
        payload = {
            "j": [
                [_field(g, m), "-" if since is None else repr(since + offset), _stamp_str(stamp)]
                for (g, m), (since, stamp) in image.joined.items()
            ],
            "t": [[_field(g, m), repr(s)] for (g, m), s in image.talk.items()],
            "p": [[g, str(p), _stamp_str(stamp)] for g, (p, stamp) in image.pointers.items()],
        }
        keys = [*self._k_state[:5], self._k_marker, self._k_state[5]]
        args = [
            json.dumps(payload, separators=(",", ":")),
            self.node_id,
            self.node_id,
            seq,
            self.channel,
            message,
        ]
        restored = int(await self._restore_script(keys=keys, args=args)) == 1
        if restored and (image.joined or image.talk or image.pointers):
            log.warning("Redis %s had lost the shared state; restored it", redact(self.url))
        return restored

    # ------------------------------------------------------------- resync
    async def _read_snapshot(self) -> tuple[Snapshot, dict[str, int]]:
        assert self._client is not None
        client = self._client
        activity_keys = [
            key async for key in client.scan_iter(match=f"{self._k_activity_prefix}*", count=500)
        ]
        pipe = client.pipeline(transaction=True)
        for key in self._k_state:
            pipe.hgetall(key)
        for key in activity_keys:
            pipe.hgetall(key)
        results = await pipe.execute()
        joined_h, joined_s, talk_h, pointer_h, pointer_s, seq_h = results[:6]
        offset = self._offset()
        joined: dict[tuple[str, str], tuple[float | None, Stamp]] = {}
        talk: dict[tuple[str, str], float] = {}
        pointers: dict[str, tuple[int, Stamp]] = {}
        activity: dict[str, dict[str, MemberActivity]] = {}
        seqs: dict[str, int] = {}
        for f, value in joined_h.items():
            try:
                since = None if value == "-" else float(value) - offset
                joined[_pair(f)] = (since, _parse_stamp(joined_s.get(f, "0|")))
            except (ValueError, StateError) as err:
                log.warning("ignored a bad membership entry in Redis: %s", err)
        for f, value in talk_h.items():
            try:
                talk[_pair(f)] = float(value)
            except ValueError as err:
                log.warning("ignored a bad talk-time entry in Redis: %s", err)
        for g, value in pointer_h.items():
            try:
                pointers[g] = (int(value), _parse_stamp(pointer_s.get(g, "0|")))
            except ValueError as err:
                log.warning("ignored a bad pointer entry in Redis: %s", err)
        for node, value in seq_h.items():
            with contextlib.suppress(ValueError):
                seqs[node] = int(value)
        for key, members in zip(activity_keys, results[6:], strict=True):
            node = key[len(self._k_activity_prefix) :]
            if node == self.node_id:
                continue
            acts: dict[str, MemberActivity] = {}
            for member, value in members.items():
                try:
                    acts[member] = decode_activity(json.loads(value), offset=offset)
                except (ValueError, StateError) as err:
                    log.warning("ignored bad activity of node %s in Redis: %s", node, err)
            activity[node] = acts
        snap = Snapshot(joined=joined, talk=talk, pointers=pointers, activity=activity)
        return snap, seqs

    async def _resync(self, *, unsent: list[Op] | None = None) -> None:
        """Read the snapshot again and merge it (then re-apply batches it did not hold)."""
        snap, seqs = await self._read_snapshot()
        self.store.apply_snapshot(snap, unsent=self._outbox if unsent is None else unsent)
        self._seq = max(self._seq, seqs.get(self.node_id, 0))
        for node, seq in seqs.items():
            self._seen[node] = max(self._seen.get(node, 0), seq)
        for batch in self._recent:
            if batch.seq > seqs.get(batch.node, 0):
                for op in batch.ops:
                    self.store.apply_remote(op)
        self._schedule_wakeups(
            [NodeState(n, tuple(a.items()), ()) for n, a in snap.activity.items()]
        )
        self._changed()

    async def resync(self) -> None:
        """Flush, then merge the shared snapshot (done by itself after outages and gaps)."""
        await self.flush()
        async with self._lock:
            if self._client is not None:
                await self._resync()

    # --------------------------------------------------------- subscriber
    async def _subscribe(self, client: aioredis.Redis) -> PubSub:
        pubsub = client.pubsub()
        await pubsub.subscribe(self.channel)
        return pubsub

    def handle_message(self, data: str) -> None:
        """Apply one message of the channel (another node's batch, or our barrier)."""
        if data.startswith("B:"):
            future = self._barriers.pop(data[2:], None)
            if future is not None and not future.done():
                future.set_result(None)
            return
        try:
            batch = decode_batch(data, offset=self._offset())
        except StateError as err:
            log.warning("ignored a bad message on %s: %s", self.channel, err)
            return
        if batch.node == self.node_id:
            return
        last = self._seen.get(batch.node)
        if last is not None and batch.seq <= last:
            return
        if last is not None and batch.seq > last + 1:
            log.info("missed batches %d..%d of node %s", last + 1, batch.seq - 1, batch.node)
            self._needs_resync = True
            self._wake.set()
        self._seen[batch.node] = batch.seq
        self._recent.append(batch)
        changed = False
        for op in batch.ops:
            changed = self.store.apply_remote(op) or changed
        self._schedule_wakeups(batch.ops)
        if changed:
            self._changed()

    def _schedule_wakeups(self, ops: Any) -> None:
        """Wake the core when another node's wrap-up ends (its member becomes free)."""
        loop = asyncio.get_running_loop()
        now = self._now()
        self._wakeups = [h for h in self._wakeups if not h.cancelled()]
        for op in ops:
            ends: list[float] = []
            if isinstance(op, SetWrapUp) and op.node != self.node_id:
                ends.append(op.until)
            elif isinstance(op, NodeState) and op.node != self.node_id:
                ends.extend(a.wrap_up_until for _, a in op.activity)
            for until in ends:
                if until > now and math.isfinite(until):
                    self._wakeups.append(loop.call_later(until - now, self._changed))

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:
                log.exception("state change callback failed")

    async def _subscriber(self) -> None:
        delay = self.backoff[0]
        while True:
            _still_running()
            try:
                if self._pubsub is None:
                    assert self._client is not None
                    self._pubsub = await self._subscribe(self._client)
                    await self.resync()  # messages were missed while away
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=1.0
                )
                delay = self.backoff[0]
                if message is not None and message.get("type") == "message":
                    self.handle_message(str(message["data"]))
            except UNREACHABLE as err:
                self._went_down(err)
                if self._pubsub is not None:
                    with contextlib.suppress(Exception):
                        await self._pubsub.aclose()
                    self._pubsub = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff[1])

    async def barrier(self) -> None:
        """Return once every message published before this call has been applied here."""
        assert self._client is not None
        token = secrets.token_hex(8)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._barriers[token] = future
        try:
            await self._client.publish(self.channel, f"B:{token}")
        except UNREACHABLE as err:
            self._barriers.pop(token, None)
            raise StateError(f"cannot reach Redis at {redact(self.url)}: {err}") from None
        await future

    # ------------------------------------------------------ flusher, heartbeat
    async def _flusher(self) -> None:
        delay = self.backoff[0]
        while True:
            _still_running()
            await self._wake.wait()
            self._wake.clear()
            if await self.flush():
                delay = self.backoff[0]
                if self._needs_resync:
                    self._needs_resync = False
                    try:
                        await self.resync()
                    except UNREACHABLE as err:
                        self._went_down(err)
                        self._needs_resync = True
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff[1])
            self._wake.set()

    async def _heartbeat(self) -> None:
        beat = max(0.05, self.ttl / 3)
        since_resync = 0.0
        while True:
            _still_running()
            await asyncio.sleep(beat)
            since_resync += beat
            try:
                await self.heartbeat()
                if since_resync >= self.resync_interval:
                    since_resync = 0.0
                    await self.resync()
            except UNREACHABLE as err:
                self._went_down(err)
                self._wake.set()  # the flusher retries with backoff

    async def heartbeat(self) -> None:
        """Refresh this node's keys; forget the calls of nodes that stopped refreshing theirs."""
        client = self._client
        if client is None:
            return
        ttl = max(1, math.ceil(self.ttl))
        pipe = client.pipeline(transaction=False)
        pipe.set(f"{self._k_alive_prefix}{self.node_id}", "1", ex=ttl)
        pipe.expire(self._k_activity, ttl)
        pipe.expire(self._k_queues, ttl)
        nodes = sorted(self.store.remote_nodes())
        for node in nodes:
            pipe.exists(f"{self._k_alive_prefix}{node}")
        results = await pipe.execute()
        forgot = False
        for node, alive in zip(nodes, results[3:], strict=True):
            if not alive:
                log.warning("node %s stopped refreshing its state: its calls are forgotten", node)
                forgot = self.store.forget_node(node) or forgot
        if forgot:
            self._changed()
        if not self.connected:
            self._wake.set()
