"""Shared state in Redis: the asyncio driver of a :class:`StateSync`.

Theory of operation
-------------------
The group core reads and writes a local :class:`JournalingStore`
synchronously; the sans-I/O :class:`StateSync` (``huntgroup.queue.state.sync``)
decides what to send, what to apply and when to resync. This driver only
moves bytes between Redis and it, runs the two Lua scripts
(``redis_scripts.py``), and keeps one ``loop.call_at`` on its ``get_timer()``
(the other nodes' wrap-up ends).
Routing never waits for Redis: when Redis is away the node keeps routing from
its local image, and catches up when it returns.

- ``load()`` (at start): connect (a bad URL or an unreachable server is a
  :class:`StateError`), clear this node's keys, subscribe to ``huntgroup:ops``,
  then carry out ``Connected``: restore Redis if it lost its data, and read
  the shared snapshot (membership, pauses, talk time, pointers, the activity of live
  nodes) into the store. A node's activity and queues live in keys that
  expire unless the node refreshes them, so a dead node's calls are never
  resurrected.
- ``flush()``: carries out ``FlushDue`` (the flusher task: at once after a quiet
  spell, else ``flush_interval`` after the last flush began, so that a burst of
  changes goes in one batch): each ``PublishBatch`` runs ONE Lua
  script, atomically: last-writer-wins writes of membership, pauses and pointers
  (by Lamport stamp), ``HINCRBYFLOAT`` of talk time, this node's activity and
  queue hashes, its sequence number, its liveness key, and the ``PUBLISH`` of
  the batch. The script ignores a batch whose number it has already seen, so
  a batch retried after a lost reply is never counted twice.
- a subscriber task hands every message of the channel to the sync object
  (``BatchReceived``), in publication order; a reconnection resyncs, and so
  does the flusher when the sync object asks for it.
- a heartbeat task refreshes this node's keys, reports the nodes whose
  liveness key expired (``NodesExpired``) and resyncs periodically.
- the claims on members (``redis_claims.py``) are written with every flush, in
  the same pipeline as the batch and before it (one round trip; a claim is
  released before the activity that frees its member is published), and
  renewed (re-asserted after an outage) by a task of their own. A claim is
  not sent alone: it waits for the flusher's next flush (at once after a quiet
  spell, else ``flush_interval`` after the last one began) and goes in its
  pipeline after the batch, with every claim asked meanwhile (``_carry_claim``):
  a node's round trips follow its flushes, not its calls.
- the flushes and the claims run on :class:`~huntgroup.engine.aio.redis_connect.FastLane`
  (one connection of the client's, commands packed and written at once).

- faults: after a failed flush the flusher backs off, but a wake-up ends the
  wait once another task found Redis back; the claims waiting for a flush are
  granted locally as soon as Redis is found away; ``stop()`` lets a flush under
  way end before it cancels the tasks, and a flush cut all the same puts its
  claims in the ledger (released by the stop) and refuses their askers; the
  background tasks log an unexpected error and carry on.
- stopping: a cancellation can be lost (before Python 3.12 ``asyncio.wait_for``,
  which redis-py sends through, returns its call's result and drops a cancel
  that comes as the call ends), so ``stop()`` also raises a stop flag and wakes
  the flusher, which looks at the flag before every wait (its backoff too, whose
  wait is a timer on the loop, not ``wait_for``); and ``stop()`` waits for the
  lock and for its tasks at most one grace in all (``STOP_GRACE``), logs a task
  that did not end and goes on.

Invariants: every Redis reply is handed back to the sync object before the
next command runs; the sync object's timer is armed after every fact; the
background tasks end on ``stop()``, which waits for them and for the lock at
most a grace (its Redis commands are bounded by the socket timeout); every
claim handed to the flusher is answered (Redis's answer, granted locally, or
refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from huntgroup.config.models import StateAuthConfig, StateTlsConfig
from huntgroup.engine.aio.loop_timer import LoopTimer
from huntgroup.engine.aio.redis_claims import ClaimPlan, ClaimRequest, RedisClaims
from huntgroup.engine.aio.redis_connect import (
    UNREACHABLE,
    FastLane,
    close_client,
    end_tasks,
    redact,
    redis_client,
)
from huntgroup.engine.aio.redis_keys import RedisKeys
from huntgroup.engine.aio.redis_migration import migrate_legacy_keys
from huntgroup.engine.aio.redis_scripts import (
    ASSERT_SCRIPT,
    BATCH_SCRIPT,
    CLAIM_SCRIPT,
    RESTORE_SCRIPT,
)
from huntgroup.errors import StateError
from huntgroup.queue.state.claims import LEASE
from huntgroup.queue.state.codec import StoredState
from huntgroup.queue.state.journal import JournalingStore
from huntgroup.queue.state.operations import Op
from huntgroup.queue.state.sync import (
    AbandonBatch,
    BatchFailed,
    BatchReceived,
    BatchWritten,
    Command,
    Connected,
    Fact,
    FlushDue,
    LoadSnapshot,
    NodesExpired,
    NotifyCore,
    PublishBatch,
    RestoreDone,
    RestoreImage,
    ResyncDue,
    ScheduleResync,
    SnapshotLoaded,
    StateSync,
    StoreUnreachable,
)

log = logging.getLogger("huntgroup.state")

FLUSH_INTERVAL = 0.03
"""Seconds between two flushes at least (``RedisStateSync.flush_interval``): under load a
node sends one batch per 30 ms (one round trip, one script, one message for the other nodes)
rather than one per change; a change after a quiet spell goes at once. 30 rather than 10 ms:
the round trips are the node's largest Redis cost (py-spy, ``docs/state.md``); the other nodes
see a change, and a released claim, up to 30 ms later (the claims still decide who rings)."""
STOP_GRACE = 10.0
"""Seconds ``stop`` waits, in all, for a flush under way and for its tasks (twice the connect
timeout if longer): twice the socket timeout (5 s) a flush's round trip is bounded by. A task
still running then is left cancelled and logged, and the shutdown goes on."""


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


class RedisStateSync:
    """Keeps a :class:`JournalingStore` in step with Redis and with the other nodes."""

    def __init__(
        self,
        url: str,
        store: JournalingStore,
        node_id: str | None = None,
        *,
        prefix: str = "huntgroup",
        auth: StateAuthConfig | None = None,
        tls: StateTlsConfig | None = None,
        ttl: float | None = None,
        resync_interval: float = 60.0,
        flush_interval: float = FLUSH_INTERVAL,
        max_outbox: int = 10_000,
        backoff: tuple[float, float] = (0.1, 5.0),
        connect_timeout: float = 2.0,
        local_clock: Callable[[], float] | None = None,
        wall_clock: Callable[[], float] = time.time,
        on_change: Callable[[], None] | None = None,
        lease: float = LEASE,
    ) -> None:
        if node_id is not None and node_id != store.node_id:
            raise StateError(f"node id {node_id!r} differs from the store's {store.node_id!r}")
        self.url = url
        self.store = store
        self.node_id = store.node_id
        self.ttl = lease if ttl is None else ttl
        """Seconds this node's keys (liveness, activity, queues) live unless refreshed
        (every third of it): by default the claims' lease, so a dead node's members are
        free for the others, claims and activity alike, within about the same time."""
        self.resync_interval = resync_interval
        self.flush_interval = flush_interval
        """Seconds between the starts of two flushes at least: a change after a quiet spell
        is sent at once; under load, the changes of that time go in one batch."""
        self.backoff = backoff
        self.on_change = on_change
        """Called after other nodes' changes were applied (members may have become free)."""
        self._local_clock = local_clock
        self._wall_clock = wall_clock
        self._connect_timeout = connect_timeout
        self._stop_grace = max(STOP_GRACE, 2 * connect_timeout)
        self._auth = auth or StateAuthConfig()
        self._tls = tls or StateTlsConfig()
        self.keys = RedisKeys(prefix)
        """Every key name (one hash tag: the keys fit one Redis Cluster slot)."""
        self.channel = self.keys.channel
        self._own_channel = self.keys.own_channel(self.node_id)
        self.sync = StateSync(store, max_outbox=max_outbox, channel=self.channel)
        self._k_state = self.keys.state
        self._k_paused = self.keys.paused
        self._k_activity_prefix = self.keys.activity_prefix
        self._k_activity = self.keys.activity(self.node_id)
        self._k_queues = self.keys.queues(self.node_id)
        self._client: aioredis.Redis | None = None
        self._lane: FastLane | None = None  # the hot path's connection (flushes, claims)
        self._pubsub: PubSub | None = None
        self._batch_script: Any = None
        self._restore_script: Any = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._flusher_task: asyncio.Task[None] | None = None
        self._barriers: dict[str, asyncio.Future[None]] = {}
        self._timer: LoopTimer | None = None  # the sync object's wrap-up timer
        self._prelude: ClaimPlan | None = None  # the claims sent with the next batch
        self.claims = RedisClaims(
            store,
            keys=self.keys,
            lease=lease,
            client=lambda: self._client,
            connected=lambda: self.connected,
            went_down=self._went_down,
            clock=self._now,
            wall=wall_clock,
        )
        """This node's claims on members (``redis_claims.py``)."""
        self.claims.carrier = self._carry_claim
        self._asked: list[tuple[ClaimRequest, asyncio.Future[Any]]] = []
        """Claims waiting for the next flush (``_carry_claim``), each with its answer."""
        self._riders: list[tuple[ClaimRequest, asyncio.Future[Any]]] = []  # sent with the batch
        self._last_flush = -math.inf  # loop time the last flush began
        self._stopping = False  # stop() began: claims are refused, the flusher ends

    @property
    def connected(self) -> bool:
        """False while Redis is unreachable (routing goes on from the local image)."""
        return self.sync.connected

    @property
    def outbox(self) -> int:
        """Ops drained from the store and not yet accepted by Redis."""
        return self.sync.outbox

    # ------------------------------------------------------------- clocks
    def _now(self) -> float:
        if self._local_clock is not None:
            return self._local_clock()
        return asyncio.get_running_loop().time()

    # ------------------------------------------------- the sync object
    def _handle(self, fact: Fact) -> list[Command]:
        commands = self.sync.handle(fact, now=self._now(), wall=self._wall_clock())
        self._rearm()
        return commands

    def _rearm(self) -> None:
        if self._timer is None:
            return
        due = self.sync.get_timer()
        if due is not None and self._local_clock is not None:  # to the loop's clock
            due = asyncio.get_running_loop().time() + (due - self._local_clock())
        self._timer.arm(due)

    def _on_timer(self) -> None:
        self._run_local(self.sync.handle_timer(now=self._now()))
        self._rearm()

    def _run_local(self, commands: Sequence[Command]) -> None:
        """Carry out the commands that need no Redis."""
        for command in commands:
            match command:
                case NotifyCore():
                    self._changed()
                case ScheduleResync():
                    self._wake.set()
                case _:
                    raise AssertionError(f"{command!r} needs Redis")

    async def _execute(self, commands: Sequence[Command]) -> None:
        """Carry out ``commands`` and those the answers lead to, in order."""
        pending = deque(commands)
        while pending:
            command = pending.popleft()
            match command:
                case PublishBatch(seq):
                    result = await self._run_batch(command)
                    pending.extend(self._handle(BatchWritten(seq, result)))
                case RestoreImage():
                    restored = await self._run_restore(command)
                    if restored and command.has_state:
                        log.warning(
                            "Redis %s had lost the shared state; restored it", redact(self.url)
                        )
                    pending.extend(self._handle(RestoreDone(restored)))
                case LoadSnapshot():
                    stored = await self._read_stored()
                    pending.extend(self._handle(SnapshotLoaded(stored)))
                case AbandonBatch(reason):
                    raise RedisConnectionError(reason)
                case _:
                    self._run_local([command])

    # ---------------------------------------------------------- lifecycle
    async def load(self) -> None:
        """Connect and read the shared state into the store; StateError if impossible."""
        if self._client is not None:
            return
        client = redis_client(
            self.url, self._auth, self._tls, connect_timeout=self._connect_timeout
        )
        self._batch_script = client.register_script(BATCH_SCRIPT)
        self._restore_script = client.register_script(RESTORE_SCRIPT)
        self.claims.register(client)
        self._timer = LoopTimer(asyncio.get_running_loop(), self._on_timer)
        try:
            await client.ping()
            for script in (BATCH_SCRIPT, ASSERT_SCRIPT, CLAIM_SCRIPT):  # no NOSCRIPT later
                await client.script_load(script)
            await migrate_legacy_keys(client, self.keys)
            await client.delete(self._k_activity, self._k_queues)
            self._pubsub = await self._subscribe(client)
            self._client = client
            self._lane = FastLane(client)
            await self._execute(self._handle(Connected()))
        except UNREACHABLE as err:
            await self._abandon(client)
            raise StateError(f"cannot reach Redis at {redact(self.url)}: {err}") from None
        except RedisError as err:
            await self._abandon(client)
            raise StateError(f"Redis at {redact(self.url)} refused the state: {err}") from None
        self.store.listener = self._wake.set
        log.info("shared state in Redis %s, node %s", redact(self.url), self.node_id)

    async def _abandon(self, client: aioredis.Redis) -> None:
        """A failed load: forget the connection."""
        self._client = None
        if self._lane is not None:
            await self._lane.close()
            self._lane = None
        self._handle(StoreUnreachable())
        await close_client(client)

    async def start(self) -> None:
        """Load (if not done yet) and start the flusher, subscriber and heartbeat tasks."""
        await self.load()
        loop = asyncio.get_running_loop()
        self._stopping = False
        self._flusher_task = loop.create_task(self._flusher(), name="state-flusher")
        self._flusher_task.add_done_callback(self._flusher_ended)
        self._tasks = [
            self._flusher_task,
            loop.create_task(self._subscriber(), name="state-subscriber"),
            loop.create_task(self._heartbeat(), name="state-heartbeat"),
            loop.create_task(self._renewer(), name="state-claims"),
        ]
        self._wake.set()

    async def stop(self) -> None:
        """Flush what can be flushed, leave the cluster, close the connections.

        A flush under way ends first (the lock): its claims get Redis's answers and the
        ledger its grants, so that ``release_all`` frees them. A background task that
        failed is logged; the shutdown goes on. The tasks are told to end (a flag, the
        flusher woken) as well as cancelled, a cancellation may be lost; a task stuck all
        the same does not hold the shutdown: the waits here share one grace, in all (then
        the Redis calls, each bounded by the socket timeout)."""
        self._stopping = True  # a claim asked from now on is refused (``_carry_claim``)
        self._wake.set()  # a flusher backing off, or that missed its cancellation, looks
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._stop_grace

        def left() -> float:
            return max(0.0, deadline - loop.time())

        locked = await self._lock_within(left())  # a flush under way ends first
        if not locked:
            log.warning("stop: a state flush did not end within %.0f s", self._stop_grace)
        for task in self._tasks:
            task.cancel()
        if locked:
            self._lock.release()
        tasks, self._tasks = self._tasks, []
        await end_tasks(tasks, left(), log, "state")
        self._flusher_task = None
        asked = self._take_asked()
        self._answer(asked, [0] * len(asked))  # refused: the node stops
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.store.listener = None
        if self._client is None:
            return
        flushed = False
        if not await self._lock_within(left()):  # held by a task stuck in a flush
            log.warning("stop: a flush still under way; state changes not written")
        else:
            self._lock.release()
            flushed = await self.flush()
            if not flushed:
                log.warning("Redis unreachable at stop: %d state change(s) lost", self.outbox)
        with contextlib.suppress(*UNREACHABLE, RedisError):
            await self.claims.release_all()
        client, self._client = self._client, None
        if self._lane is not None:
            await self._lane.close()
            self._lane = None
        with contextlib.suppress(*UNREACHABLE, RedisError):
            if flushed:
                await client.delete(*self.keys.node_keys(self.node_id))
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None
        await close_client(client)
        self._handle(StoreUnreachable())

    async def _lock_within(self, grace: float) -> bool:
        """Take the flushes' lock, waiting at most ``grace`` s; False (not taken) when a
        task stuck in a flush (or a resync) still holds it."""
        if not self._lock.locked():  # free: taken at once, even with no time left
            await self._lock.acquire()
            return True
        taking = asyncio.ensure_future(self._lock.acquire())
        try:
            await asyncio.wait([taking], timeout=grace)
        except BaseException:  # stop() cancelled: the lock not kept
            taking.cancel()
            if taking.done() and not taking.cancelled():
                self._lock.release()
            raise
        if taking.done():
            return True
        taking.cancel()  # a lock granted meanwhile goes to its next waiter (Lock.acquire)
        return False

    # -------------------------------------------------------------- flush
    async def flush(self, *, claims: bool = False) -> bool:
        """Write the journal to Redis and publish it; False (ops kept) if Redis is away.
        ``claims``: the claims' changes too (``RedisClaims.plan``), sent before the batch
        in the same round trip, and the claims asked since the last flush, after it."""
        if self._client is None:
            return False
        async with self._lock:
            asked = self._take_asked() if claims else []
            try:
                done = await self._flush(claims, asked)
            except BaseException:  # cancelled, or an unexpected error
                if claims:  # the claims' writes may or may not have gone: re-asserted
                    self.claims.stale = True
                self._abandon_claims(asked)
                raise
            self._answer(asked, [None] * len(asked))  # not sent: granted locally
            if not done:  # Redis away: the claims asked meanwhile too, at once
                self._grant_asked_locally()
            return done

    def _abandon_claims(self, asked: list[tuple[ClaimRequest, asyncio.Future[Any]]]) -> None:
        """Claims whose round trip was cut (cancelled, or an unexpected error): Redis may
        have granted them, so the ledger holds them (``release_all``, or the next flush,
        frees them: releasing only drops this node's own field) and their askers are
        refused (they do not ring on an unknown answer)."""
        for request, future in asked:
            self.claims.ledger.granted(request.member, request.call_id)
            if not future.done():
                future.set_result(0)
            self._wake.set()
        asked.clear()

    def _grant_asked_locally(self) -> None:
        """Redis is away: the claims waiting for a flush are granted locally at once, as a
        claim asked now would be (``RedisClaims.claim``)."""
        asked = self._take_asked()
        self._answer(asked, [None] * len(asked))

    def _flusher_ended(self, task: asyncio.Task[None]) -> None:
        """The flusher ended otherwise than by ``stop()``: the claims it would have sent are
        granted locally (re-asserted by the renewal); later claims are sent alone."""
        if task.cancelled() or self._stopping:
            return
        log.error("the state flusher ended: %r", task.exception())
        self._grant_asked_locally()

    async def _flush(
        self, claims: bool, asked: list[tuple[ClaimRequest, asyncio.Future[Any]]]
    ) -> bool:
        plan = self.claims.plan() if claims else None
        commands = self._handle(FlushDue())
        if not commands:
            if plan is None and not asked:
                return True
            return await self._write_claims(plan, asked)  # the claims alone
        self._prelude = plan
        self._riders = asked
        was_connected = self.connected
        try:
            await self._execute(commands)
        except UNREACHABLE as err:
            self._went_down(err)
            self._handle(BatchFailed(refused=False))
            return False
        except RedisError:
            count = commands[0].ops if isinstance(commands[0], PublishBatch) else 0
            log.exception("Redis rejected a state batch; %d op(s) dropped", count)
            self.claims.stale = True  # the claims' writes may not have gone: re-asserted
            self._handle(BatchFailed(refused=True))
        finally:
            self._prelude = None
            self._riders = []
        if asked and self.connected:  # no batch carried them (none to send)
            return await self._write_claims(None, asked)
        if self.connected and not was_connected:
            log.info("Redis %s is back; state flushed", redact(self.url))
        return True

    async def _carry_claim(self, request: ClaimRequest) -> tuple[bool, Any]:
        """Send ``request`` with the flusher's next flush: at once after a quiet spell, else
        ``flush_interval`` after the last flush began, in one round trip with the pending
        changes, the claims' writes and every other claim asked meanwhile (a claim no
        longer costs a round trip of its own under load). (True, the answer or the error);
        (False, None) when it must go the ordinary way (no connection, no flusher: sent
        alone). A claim whose asker was cancelled after it went is still taken by the
        ledger (``_answer``): the next flush releases it (its offer is gone); so is one
        answered after its offer ended (the flusher is woken at every answer)."""
        if self._stopping:  # refused: the node stops (its claims are being released)
            return True, 0
        if self._client is None or self._lane is None:
            return False, None
        flusher = self._flusher_task
        if flusher is None or flusher.done():  # no flusher (load() alone): sent alone
            try:
                results = await self._lane.run(
                    lambda pipe: self.claims.queue_claim(pipe, request), (CLAIM_SCRIPT,)
                )
            except UNREACHABLE as err:
                self._went_down(err)
                return True, err
            except RedisError as err:
                return True, err
            return True, results[0]
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._asked.append((request, future))
        self._wake.set()
        try:
            answer = await future
        except asyncio.CancelledError:  # answered, but cancelled before it was read
            if future.done() and not future.cancelled():
                self._take_grant(request, future.result())
            raise
        # A grant (Redis's, or local) reaches the ledger now (``RedisClaims.answered``),
        # after the claims' changes of the flush that carried it were computed: the next
        # flush releases it if its offer ended meanwhile (else it stayed held, the member
        # claimed, until the renewal).
        self._wake.set()
        return True, answer

    def _take_asked(self) -> list[tuple[ClaimRequest, asyncio.Future[Any]]]:
        """The claims asked since the last flush, those whose asker gave up left out."""
        asked, self._asked = self._asked, []
        return [(request, future) for request, future in asked if not future.done()]

    def _answer(
        self, asked: list[tuple[ClaimRequest, asyncio.Future[Any]]], answers: Sequence[Any]
    ) -> None:
        """Hand each claim its answer (an exception object: Redis refused it, or is away);
        a claim whose asker gave up meanwhile goes to the ledger all the same."""
        for (request, future), answer in zip(asked, answers, strict=True):
            if future.done():
                self._take_grant(request, answer)
            else:
                future.set_result(answer)
        asked.clear()

    def _take_grant(self, request: ClaimRequest, answer: Any) -> None:
        """The answer to a claim whose asker gave up: a grant goes to the ledger (the next
        flush releases it: no offer rings the member)."""
        granted = answer is not None and not isinstance(answer, BaseException)
        if granted and self.claims.answered(request, answer):
            self._wake.set()  # the next flush releases it

    async def _write_claims(
        self, plan: ClaimPlan | None, asked: list[tuple[ClaimRequest, asyncio.Future[Any]]]
    ) -> bool:
        """The claims' writes and the claims asked, without a batch: one round trip."""
        assert self._lane is not None

        def fill(pipe: Any) -> None:
            if plan is not None:
                self.claims.queue(pipe, plan)
            for request, _ in asked:
                self.claims.queue_claim(pipe, request)

        try:
            results = await self._lane.run(fill, (ASSERT_SCRIPT, CLAIM_SCRIPT))
        except UNREACHABLE as err:
            if plan is not None:
                self.claims.failed(err)
            else:
                self._went_down(err)
            self._answer(asked, [err] * len(asked))
            return False
        except RedisError as err:  # refused as a whole: re-asserted at the next write
            log.error("Redis refused the claims' round trip: %s", err)
            self.claims.stale = True
            self._answer(asked, [err] * len(asked))
            return True
        cut = len(results) - len(asked)
        self._answer(asked, results[cut:])
        if plan is not None:
            self.claims.settle(plan, results[:cut])
        return True

    def _went_down(self, err: BaseException) -> None:
        if self.connected:
            log.warning(
                "Redis %s unreachable (%s): routing goes on, changes are kept",
                redact(self.url),
                err,
            )
        self._handle(StoreUnreachable())
        self._grant_asked_locally()

    async def _write_batch(self, ops: list[Op]) -> None:
        """Send ``ops`` as the next batch, apart from the outbox."""
        assert self._client is not None
        await self._execute(self.sync.publish(ops, now=self._now(), wall=self._wall_clock()))

    async def _run_batch(self, command: PublishBatch) -> int:
        """Run the batch script; with the claims' plan of this flush (``_prelude``) before
        it in the same pipeline: one round trip, and a claim released before the activity
        that frees its member is published (the order Redis runs them in)."""
        keys = self.keys.batch(self.node_id)
        args = [
            self.node_id,
            command.seq,
            max(1, math.ceil(self.ttl)),
            self.channel,
            command.message,
            command.writes,
            self._own_channel,
        ]
        plan, self._prelude = self._prelude, None
        asked, self._riders = self._riders, []
        assert self._lane is not None

        def fill(pipe: Any) -> None:
            if plan is not None:
                self.claims.queue(pipe, plan)
            pipe.evalsha(self._batch_script.sha, len(keys), *keys, *args)
            for request, _ in asked:
                self.claims.queue_claim(pipe, request)

        try:
            results = await self._lane.run(fill, (ASSERT_SCRIPT, BATCH_SCRIPT, CLAIM_SCRIPT))
        except UNREACHABLE as err:
            self.claims.stale = True  # re-asserted once Redis is back
            self._answer(asked, [err] * len(asked))
            raise
        if asked:
            cut = len(results) - len(asked)
            self._answer(asked, results[cut:])
            del results[cut:]
        if plan is not None:
            self.claims.settle(plan, results[:-1])
        if isinstance(results[-1], Exception):
            raise results[-1]
        return int(results[-1])

    async def _run_restore(self, command: RestoreImage) -> bool:
        """Write this node's image if Redis has no state marker; True if we did."""
        keys = self.keys.restore()
        args = [
            command.image,
            self.node_id,
            self.node_id,
            command.seq,
            self.channel,
            command.message,
        ]
        return int(await self._restore_script(keys=keys, args=args)) == 1

    # ------------------------------------------------------------- resync
    async def _read_stored(self) -> StoredState:
        assert self._client is not None
        client = self._client
        activity_keys = [
            key async for key in client.scan_iter(match=f"{self._k_activity_prefix}*", count=500)
        ]
        pipe = client.pipeline(transaction=True)
        for key in [*self._k_state, *self._k_paused]:
            pipe.hgetall(key)
        for key in activity_keys:
            pipe.hgetall(key)
        results = await pipe.execute()
        joined, joined_stamps, talk, pointers, pointer_stamps, seqs, paused, paused_stamps = (
            results[:8]
        )
        activity = {
            key[len(self._k_activity_prefix) :]: members
            for key, members in zip(activity_keys, results[8:], strict=True)
        }
        return StoredState(
            joined,
            joined_stamps,
            talk,
            pointers,
            pointer_stamps,
            seqs,
            activity=activity,
            paused=paused,
            paused_stamps=paused_stamps,
        )

    async def resync(self) -> None:
        """Flush, then merge the shared snapshot (done by itself after outages and gaps)."""
        await self.flush()
        async with self._lock:
            if self._client is not None:
                await self._execute(self._handle(ResyncDue()))

    # --------------------------------------------------------- subscriber
    async def _subscribe(self, client: aioredis.Redis) -> PubSub:
        pubsub = client.pubsub()
        await pubsub.subscribe(self.channel, self._own_channel)
        return pubsub

    def handle_message(self, data: str) -> None:
        """Apply one message of the channel (another node's batch, or our barrier)."""
        if data.startswith("B:"):
            future = self._barriers.pop(data[2:], None)
            if future is not None and not future.done():
                future.set_result(None)
            return
        self._run_local(self._handle(BatchReceived(data)))

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:
                log.exception("state change callback failed")

    async def _subscriber(self) -> None:
        """Hand the channel's messages to the sync object; PING the subscription every
        ``ttl / 3`` s and drop it when nothing (not even the PONG) came back for two beats
        and a connection timeout: a master gone silent (host down, network split, a
        Sentinel failover) never closes the socket, and a subscription left on it would
        never hear the other nodes again."""
        delay = self.backoff[0]
        loop = asyncio.get_running_loop()
        beat = max(0.05, self.ttl / 3)
        silence = 2 * beat + self._connect_timeout
        heard = pinged = loop.time()
        while True:
            _still_running()
            try:
                if self._pubsub is None:
                    assert self._client is not None
                    self._pubsub = await self._subscribe(self._client)
                    heard = pinged = loop.time()
                    await self.resync()  # messages were missed while away
                if loop.time() - pinged >= beat:
                    pinged = loop.time()
                    await self._pubsub.ping()
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=min(1.0, beat)
                )
                delay = self.backoff[0]
                if message is not None:
                    heard = loop.time()
                elif loop.time() - heard > silence:
                    log.warning(
                        "no answer on the subscription to Redis %s for %.0f s: subscribing again",
                        redact(self.url),
                        loop.time() - heard,
                    )
                    raise RedisTimeoutError("no answer on the subscription")
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
            except Exception:  # Redis refusing the resync (OOM...), or a bug: go on
                log.exception("the state subscriber failed; it carries on")
                self.sync.needs_resync = True  # the flusher resyncs after its next flush
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
        loop = asyncio.get_running_loop()
        while True:
            _still_running()
            if self._stopping:  # stop() flushes what is left itself
                return
            await self._wake.wait()
            if self._stopping:  # woken by stop(): a cancellation missed, perhaps
                return
            pause = self._last_flush + self.flush_interval - loop.time()
            while pause > 0:  # a flush just went: gather this one's changes a little longer
                await asyncio.sleep(pause)
                pause = self._last_flush + self.flush_interval - loop.time()
            await asyncio.sleep(0)  # the claims asked in this loop turn join this flush
            if self._stopping:
                return
            self._wake.clear()
            self._last_flush = loop.time()
            try:
                # Claims first: a member's claim is released before its activity tells the
                # other nodes it is free (else their claim of it is refused: CLAIM_RETRY lost).
                if await self.flush(claims=True):
                    delay = self.backoff[0]
                    if self.sync.needs_resync and not self._stopping:
                        self.sync.needs_resync = False
                        await self._resync_or_later()
                    continue
            except Exception:  # a bug: logged, the flusher carries on after a backoff
                log.exception("the state flusher failed; it carries on")
            await self._back_off(delay)
            delay = min(delay * 2, self.backoff[1])
            self._wake.set()

    async def _back_off(self, delay: float) -> None:
        """Wait ``delay`` s after a failed flush, or less: once another task found Redis
        back (the subscriber's resync), a wake-up (a claim asked, a change) ends the wait;
        so does ``stop()``. The wait is bounded by a timer on the loop that wakes it, not
        by ``asyncio.wait_for`` (before Python 3.12 it may drop a cancellation), and the
        stop flag is looked at before every wait."""
        loop = asyncio.get_running_loop()
        end = loop.time() + delay
        while not self._stopping and (left := end - loop.time()) > 0:
            self._wake.clear()
            timer = loop.call_later(left, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                timer.cancel()
            _still_running()
            if self.connected:  # woken with Redis back (or the delay is over)
                return

    async def _resync_or_later(self) -> None:
        """Resync; if Redis is away or refuses it (OOM, a key of the wrong type), log it and
        leave it for after the next flush."""
        try:
            await self.resync()
        except UNREACHABLE as err:
            self._went_down(err)
            self.sync.needs_resync = True
        except (RedisError, StateError) as err:
            log.error("Redis %s refused the resync: %s", redact(self.url), err)
            self.sync.needs_resync = True

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
            except Exception:  # Redis refusing (OOM...), or a bug: the next beat goes on
                log.exception("the state heartbeat failed; it carries on")
                self.sync.needs_resync = True
                self._wake.set()

    async def _renewer(self) -> None:
        """Renew this node's claims (and re-assert them after an outage)."""
        every = self.claims.ledger.lease / 3
        while True:
            _still_running()
            await asyncio.sleep(every)
            if self.connected and not await self.claims.write(full=True):
                self._wake.set()  # the flusher retries with backoff

    async def heartbeat(self) -> None:
        """Refresh this node's keys; forget the calls of nodes that stopped refreshing theirs."""
        client = self._client
        if client is None:
            return
        ttl = max(1, math.ceil(self.ttl))
        pipe = client.pipeline(transaction=False)
        pipe.set(self.keys.alive(self.node_id), "1", ex=ttl)
        pipe.expire(self._k_activity, ttl)
        pipe.expire(self._k_queues, ttl)
        nodes = sorted(self.store.remote_nodes())
        for node in nodes:
            pipe.exists(self.keys.alive(node))
        results = await pipe.execute()
        dead = tuple(node for node, alive in zip(nodes, results[3:], strict=True) if not alive)
        if dead:
            self._run_local(self._handle(NodesExpired(dead)))
        if not self.connected:
            self._wake.set()
