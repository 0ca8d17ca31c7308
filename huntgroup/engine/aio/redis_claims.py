"""Claims on members in Redis: the asyncio driver of a :class:`ClaimLedger`.

Theory of operation
-------------------
Before a node rings a member its core asks for a claim (``Claim``); the
server hands it to :meth:`RedisClaims.claim`, which runs ``CLAIM_SCRIPT``
(``redis_scripts.py``) and answers granted or refused. The sans-I/O
:class:`~huntgroup.queue.state.claims.ClaimLedger` knows which claims this
node holds and wants; this driver writes what it computes, in one
``ASSERT_SCRIPT`` each time:

- :meth:`write` after every flush of the shared state (the node's activity
  changed: an answer turns a claim ``r`` → ``t``, an ended offer or call
  releases it, a wrap-up keeps it as ``w``);
- :meth:`write` with ``full`` every :data:`~huntgroup.queue.state.claims.RENEW_EVERY`
  seconds (the renewal), and after Redis comes back (the re-assertion).

While Redis is away a claim is **granted locally**, at once (no round trip
that would only time out); the re-assertion then resolves what the outage
let happen: a claim refused on re-assertion is dropped, and an offer still
ringing for it is ended through ``on_lost`` (the core cancels it). Claims
are keyed by :meth:`key`, one hash per member (``docs/state.md``).

Invariants: a claim is reported granted only after Redis granted it, or
while Redis is known to be away; a failed write marks the ledger for a full
re-assertion at the next successful flush.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from huntgroup.engine.aio.redis_scripts import ASSERT_SCRIPT, CLAIM_SCRIPT
from huntgroup.queue.state.claims import ClaimLedger, ClaimWrite
from huntgroup.queue.state.journal import JournalingStore

log = logging.getLogger("huntgroup.state")

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisClaims:
    """This node's claims on members, in Redis (see the module docstring)."""

    def __init__(
        self,
        store: JournalingStore,
        *,
        prefix: str,
        lease: float,
        client: Callable[[], aioredis.Redis | None],
        connected: Callable[[], bool],
        went_down: Callable[[BaseException], None],
        clock: Callable[[], float],
    ) -> None:
        self.ledger = ClaimLedger(store, lease=lease)
        self.node_id = store.node_id
        self.on_lost: Callable[[str, str], None] | None = None
        """Called with (call id, member) when an offer's claim was lost (after an outage)."""
        self.stale = False
        """A write failed: the next :meth:`write` re-asserts every claim."""
        self._prefix = f"{prefix}:claims:"
        self._client = client
        self._connected = connected
        self._went_down = went_down
        self._clock = clock
        self._claim: Any = None
        self._assert: Any = None

    def key(self, member: str) -> str:
        """The Redis key of ``member``'s claims."""
        return f"{self._prefix}{member}"

    def register(self, client: aioredis.Redis) -> None:
        self._claim = client.register_script(CLAIM_SCRIPT)
        self._assert = client.register_script(ASSERT_SCRIPT)

    def _ms(self, seconds: float) -> int:
        return max(1, math.ceil(seconds * 1000))

    async def claim(self, member: str, call_id: str, *, call_waiting: bool) -> bool:
        """Claim ``member`` for ``call_id``: True (granted, or Redis away) or False."""
        client = self._client()
        granted = True
        if client is None or not self._connected():
            self.stale = True  # granted locally: re-asserted when Redis is back
        else:
            args = [
                self.node_id,
                call_id,
                "1" if call_waiting else "0",
                self._ms(self.ledger.lease),
            ]
            try:
                granted = int(await self._claim(keys=[self.key(member)], args=args)) == 1
            except _UNREACHABLE as err:
                self._went_down(err)
                self.stale = True
            except RedisError:
                log.exception("Redis refused the claim of %s: granted locally", member)
                self.stale = True
        if granted:
            self.ledger.granted(member, call_id)
        return granted

    async def write(self, *, full: bool = False) -> bool:
        """Write the ledger's changes (``full``: every claim, renewed); False if Redis is
        away (the claims are re-asserted once it is back)."""
        client = self._client()
        if client is None:
            return False
        now = self._clock()
        full = full or self.stale
        writes = self.ledger.renewals(now=now) if full else self.ledger.changes(now=now)
        if not writes:
            self.stale = False
            return True
        try:
            refused = await self._run(writes)
        except _UNREACHABLE as err:
            self._went_down(err)
            self.stale = True
            return False
        except RedisError:
            log.exception("Redis refused %d claim write(s)", len(writes))
            self.stale = True
            return True
        self.stale = False
        for write in refused:
            self._conflict(write)
        return True

    async def release_all(self) -> None:
        """Release every claim held (a node stopping)."""
        writes = [ClaimWrite(m, c, "", 0.0) for m, c in self.ledger.held]
        self.ledger.held.clear()
        if writes and self._client() is not None:
            await self._run(writes)

    async def _run(self, writes: list[ClaimWrite]) -> list[ClaimWrite]:
        keys = [self.key(w.member) for w in writes]
        payload = json.dumps([[w.call_id, w.kind, self._ms(w.lease)] for w in writes])
        refused = await self._assert(keys=keys, args=[self.node_id, payload])
        return [writes[int(i) - 1] for i in refused]

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
