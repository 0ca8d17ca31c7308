"""Claims on members in Redis: the asyncio driver of a :class:`ClaimLedger`.

Theory of operation
-------------------
Before a node rings a member its core asks for a claim (``Claim``); the
server hands it to :meth:`RedisClaims.claim`, which runs ``CLAIM_SCRIPT``
(``redis_scripts.py``) and answers granted or refused. The sans-I/O
:class:`~huntgroup.queue.state.claims.ClaimLedger` knows which claims this
node holds and wants; this driver writes what it computes, in one
``ASSERT_SCRIPT`` each time:

- with every flush of the shared state (the node's activity changed: an
  answer turns a claim ``r`` → ``t``, an ended offer or call releases it, a
  wrap-up keeps it as ``w``): the flush sends :meth:`plan` in the same round
  trip as its batch, claims first (``redis_state.py``);
- :meth:`write` with ``full`` every :data:`~huntgroup.queue.state.claims.RENEW_EVERY`
  seconds (the renewal), and after Redis comes back (the re-assertion).

While Redis is away a claim is **granted locally**, at once (no round trip
that would only time out); the re-assertion then resolves what the outage
let happen: a claim refused on re-assertion is dropped, and an offer still
ringing for it is ended through ``on_lost`` (the core cancels it). Every
key is named by :class:`~huntgroup.engine.aio.redis_keys.RedisKeys`: one hash
per member (``claims``), one sorted set per group (``waiting``), the nodes'
leases (``leases``), all under the state's hash tag (``docs/state.md``).

Invariants: a claim is reported granted only after Redis granted it, or
while Redis is known to be away; a failed write marks the ledger for a full
re-assertion at the next successful flush.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from huntgroup.engine.aio.redis_connect import run_pipeline
from huntgroup.engine.aio.redis_keys import RedisKeys
from huntgroup.engine.aio.redis_scripts import ASSERT_SCRIPT, CLAIM_SCRIPT
from huntgroup.errors import StateError
from huntgroup.queue.offers import CLAIM_RETRY
from huntgroup.queue.state.claims import ClaimLedger, ClaimWrite
from huntgroup.queue.state.journal import JournalingStore

log = logging.getLogger("huntgroup.state")

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)

FIFO_PATIENCE = 3
"""Refusals of one call's claims, for older callers of other nodes, a node accepts; the next
claim skips the check (the node holding them cannot take the member: slow, or cannot reach
it). Refusals count at most once per ``CLAIM_RETRY``: several members refused in one hunt
pass (they freed together) count once; the claim that skips the check comes about 3 s
after the first refusal."""

MAX_DEFERRED = 10_000
"""Calls whose refusals for older callers elsewhere are counted (beyond: counted afresh)."""


@dataclass(frozen=True, slots=True)
class ClaimPlan:
    """The claim writes and waiting callers one round trip sends (:meth:`RedisClaims.plan`)."""

    writes: list[ClaimWrite]
    queued: dict[tuple[str, str], float | None]
    """(group, call) → arrival (wall clock) to publish, or None to withdraw."""
    full: bool
    """Every claim renewed, and the other nodes' ended leases dropped."""


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """One claim to send (:meth:`RedisClaims.request`), alone or with a flush's batch."""

    member: str
    call_id: str
    keys: list[str]
    args: list[Any]
    deferred: tuple[int, float]


class RedisClaims:
    """This node's claims on members, in Redis (see the module docstring)."""

    def __init__(
        self,
        store: JournalingStore,
        *,
        keys: RedisKeys,
        lease: float,
        client: Callable[[], aioredis.Redis | None],
        connected: Callable[[], bool],
        went_down: Callable[[BaseException], None],
        clock: Callable[[], float],
        wall: Callable[[], float],
    ) -> None:
        if " " in store.node_id:
            raise StateError(f"node id {store.node_id!r}: no spaces allowed (claims use them)")
        self.ledger = ClaimLedger(store, lease=lease)
        self.store = store
        self.node_id = store.node_id
        self.on_lost: Callable[[str, str], None] | None = None
        """Called with (call id, member) when an offer's claim was lost (after an outage)."""
        self.stale = False
        """A write failed: the next :meth:`write` re-asserts every claim."""
        self.keys = keys
        self._client = client
        self._connected = connected
        self._went_down = went_down
        self._clock = clock
        self._wall = wall
        self.published: dict[tuple[str, str], float] = {}
        """(group, call) → arrival (wall clock) of this node's waiting callers, in Redis."""
        self._deferred: dict[str, tuple[int, float]] = {}
        """call → (refusals counted for older callers elsewhere, clock of the last counted)."""
        self._claim: Any = None
        self.carrier: Callable[[ClaimRequest], Awaitable[tuple[bool, Any]]] | None = None
        """Sends a claim with the pending batch, in one round trip (``redis_state.py``):
        (True, the answer or the error) if it did, (False, None) to send it alone."""
        self._assert: Any = None

    def register(self, client: aioredis.Redis) -> None:
        self._claim = client.register_script(CLAIM_SCRIPT)
        self._assert = client.register_script(ASSERT_SCRIPT)

    def _ms(self, seconds: float) -> int:
        return max(1, math.ceil(seconds * 1000))

    async def claim(
        self,
        member: str,
        call_id: str,
        *,
        call_waiting: bool,
        group: str | None = None,
        arrival: float = 0.0,
    ) -> bool:
        """Claim ``member`` for ``call_id`` (of ``group``, arrived at ``arrival``, the
        core's clock): True (granted, or Redis away) or False."""
        request = self.request(member, call_id, call_waiting, group, arrival)
        answer: Any = None
        if self._client() is None or not self._connected():
            return self.answered(request, None)
        if self.carrier is not None:
            carried, answer = await self.carrier(request)
            if carried:
                return self.answered(request, answer)
        try:
            answer = await self._claim(keys=request.keys, args=request.args)
        except _UNREACHABLE as err:
            self._went_down(err)
            answer = err
        except RedisError as err:
            answer = err
        return self.answered(request, answer)

    def request(
        self, member: str, call_id: str, call_waiting: bool, group: str | None, arrival: float
    ) -> ClaimRequest:
        """The ``CLAIM_SCRIPT`` run that claims ``member`` for ``call_id`` (see :meth:`claim`)."""
        keys = [self.keys.claims(member), self.keys.leases]
        wall = arrival + self._wall() - self._clock()
        deferred = self._deferred.get(call_id, (0, 0.0))
        if group is not None and deferred[0] < FIFO_PATIENCE:
            keys.append(self.keys.waiting(group))
        lease = self._ms(self.ledger.lease)
        args = [self.node_id, call_id, int(call_waiting), lease, repr(wall)]
        return ClaimRequest(member, call_id, keys, args, deferred)

    def queue_claim(self, pipe: Any, request: ClaimRequest) -> None:
        """Queue ``request`` on ``pipe`` (its answer goes to :meth:`answered`)."""
        keys = request.keys
        pipe.evalsha(self._claim.sha, len(keys), *keys, *request.args)

    def answered(self, request: ClaimRequest, answer: Any) -> bool:
        """Take Redis's answer to ``request`` (None: Redis away, granted locally; an
        exception: Redis unreachable or refusing, granted locally too): True if granted."""
        code = 1
        if answer is None or isinstance(answer, BaseException):
            if isinstance(answer, RedisError) and not isinstance(answer, _UNREACHABLE):
                log.error(
                    "Redis refused the claim of %s (%s): granted locally", request.member, answer
                )
            self.stale = True  # granted locally: re-asserted when Redis is back
        else:
            code = int(answer)
        if code == 2:  # an older caller waits on another node: the member is its
            self._defer(request.call_id, request.deferred)
        if code != 1:
            return False
        self._deferred.pop(request.call_id, None)
        self.ledger.granted(request.member, request.call_id)
        return True

    def _defer(self, call_id: str, deferred: tuple[int, float]) -> None:
        """Count a refusal of ``call_id``'s claim for an older caller elsewhere, unless the
        last one counted is less than ``CLAIM_RETRY`` old (the same members' freeing)."""
        count, last = deferred
        now = self._clock()
        if count and now - last < CLAIM_RETRY:
            return
        if len(self._deferred) >= MAX_DEFERRED:
            self._deferred.clear()
        self._deferred[call_id] = (count + 1, now)

    def plan(self, *, full: bool = False) -> ClaimPlan | None:
        """What to write now: the ledger's changes (``full``, or after a failed write: every
        claim renewed, and this node's lease) and this node's waiting callers; None when
        there is nothing. The ledger counts the writes as done: send the plan (with
        :meth:`queue` and :meth:`settle`, or :meth:`write`)."""
        now = self._clock()
        full = full or self.stale
        writes = self.ledger.renewals(now=now) if full else self.ledger.changes(now=now)
        queued = self._queue_changes(now, self.store.local_ranks())
        if not writes and not queued and not full:
            return None
        return ClaimPlan(writes, queued, full)

    def queue(self, pipe: Any, plan: ClaimPlan) -> None:
        """Queue ``plan``'s commands on ``pipe``: the waiting callers' ``ZADD``/``ZREM``,
        then one ``ASSERT_SCRIPT`` (answers in that order, for :meth:`settle`)."""
        for (group, call_id), wall in plan.queued.items():
            entry = f"{self.node_id} {call_id}"
            if wall is None:
                pipe.zrem(self.keys.waiting(group), entry)
            else:
                pipe.zadd(self.keys.waiting(group), {entry: wall})
        self._queue_assert(pipe, plan.writes, self._ms(self.ledger.lease), sweep=plan.full)

    def settle(self, plan: ClaimPlan, results: Sequence[Any]) -> None:
        """Take the answers of :meth:`queue`'s commands (an exception object for a
        command Redis refused: the claims are re-asserted at the next write)."""
        refused = next((r for r in results if isinstance(r, Exception)), None)
        if refused is not None:
            log.error("Redis refused %d claim write(s): %s", len(plan.writes), refused)
            self.stale = True
            return
        self._published(plan.queued)
        self.stale = False
        for index in results[-1]:
            self._conflict(plan.writes[int(index) - 1])

    def failed(self, err: BaseException) -> None:
        """Redis went away while a plan was sent: every claim is re-asserted once back."""
        self._went_down(err)
        self.stale = True

    async def write(self, *, full: bool = False) -> bool:
        """Write the ledger's changes and this node's waiting callers (``full``: every
        claim renewed, and this node's lease), in one round trip; False if Redis is away
        (the claims are re-asserted once it is back)."""
        client = self._client()
        if client is None:
            return False
        plan = self.plan(full=full)
        if plan is None:
            return True
        try:
            results = await run_pipeline(client, lambda p: self.queue(p, plan), (ASSERT_SCRIPT,))
        except _UNREACHABLE as err:
            self.failed(err)
            return False
        except RedisError:
            log.exception("Redis refused %d claim write(s)", len(plan.writes))
            self.stale = True
            return True
        self.settle(plan, results)
        return True

    def _queue_changes(
        self, now: float, queues: Iterable[tuple[tuple[str, str], tuple[float, int]]]
    ) -> dict[tuple[str, str], float | None]:
        """This node's waiting callers to publish (arrival, wall clock) or withdraw (None)."""
        offset = self._wall() - now
        queued = {key: rank[0] + offset for key, rank in queues}
        changes: dict[tuple[str, str], float | None] = {
            key: wall for key, wall in queued.items() if key not in self.published
        }
        changes.update((key, None) for key in self.published if key not in queued)
        return changes

    def _published(self, changes: dict[tuple[str, str], float | None]) -> None:
        for key, wall in changes.items():
            if wall is None:
                self.published.pop(key, None)
            else:
                self.published[key] = wall

    async def release_all(self) -> None:
        """Release every claim held and withdraw the waiting callers (a node stopping)."""
        writes = [ClaimWrite(m, c, "", 0.0) for m, c in self.ledger.held]
        self.ledger.held.clear()
        published, self.published = self.published, {}
        client = self._client()
        if client is None:
            return

        def fill(pipe: Any) -> None:
            for group, call_id in published:
                pipe.zrem(self.keys.waiting(group), f"{self.node_id} {call_id}")
            self._queue_assert(pipe, writes, None)  # and ends this node's lease

        await run_pipeline(client, fill, (ASSERT_SCRIPT,))

    def _queue_assert(
        self, pipe: Any, writes: list[ClaimWrite], lease_ms: int | None, *, sweep: bool = False
    ) -> None:
        """Queue ``ASSERT_SCRIPT`` on ``pipe``: ``writes``, and this node's lease renewed
        for ``lease_ms`` (None: ended); ``sweep``: drop the other nodes' ended leases."""
        keys = [self.keys.leases, *(self.keys.claims(w.member) for w in writes)]
        payload = json.dumps([[w.call_id, w.kind, self._ms(w.lease)] for w in writes])
        lease = "" if lease_ms is None else str(lease_ms)
        args = [self.node_id, payload, lease, "1" if sweep else ""]
        pipe.evalsha(self._assert.sha, len(keys), *keys, *args)

    def _conflict(self, write: ClaimWrite) -> None:
        if write.kind == "r":
            self.ledger.lost(write.member, write.call_id)
            log.warning(
                "member %s: another node took it while Redis was away; offer of call %s ended",
                write.member,
                write.call_id,
            )
            if self.on_lost is not None:
                self.on_lost(write.call_id, write.member)
        else:
            log.warning(
                "member %s was claimed by two nodes during the Redis outage (call %s here)",
                write.member,
                write.call_id,
            )
