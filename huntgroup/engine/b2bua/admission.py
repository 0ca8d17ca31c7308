"""Admission of new calls: ``server.limits``, so that a flood is refused, not half-served.

Theory of operation
-------------------
A server past its capacity does not fail cleanly on its own: every call gets
slower until retransmissions and timeouts break calls already up. Operators
therefore set limits (FreeSWITCH's ``max-sessions`` and
``sessions-per-second`` are the same idea): beyond ``max_calls`` calls in
progress, or beyond ``max_call_rate`` new calls per second, a new call is
refused at once with ``503 Service Unavailable`` and a ``Retry-After``, and
the calls in progress keep all the capacity.

The rate is a token bucket holding one second of calls: it refills at
``max_call_rate`` tokens per second, each admitted call takes one. Sans-I/O:
the caller passes ``now``.

Saturation is noticed without a configured rate too. The asyncio driver
measures two facts and hands them over: how late a periodic callback of the
event loop runs (:meth:`CallAdmission.loop_lag`) and which share of the wall
clock the process spent on the CPU (:meth:`CallAdmission.loop_load`). Both
are smoothed (an exponential moving average over about 0.15 s); while
either is past its limit (``max_loop_lag``, ``max_load``) the node is
:meth:`~CallAdmission.overloaded`: new INVITEs get 503 at once, a share that
grows with how far past the limit it is (all of them from 1.5 times the
limit), while everything inside a dialog goes on. A fact older than :data:`STALE` seconds
no longer counts: a driver that stopped measuring does not block calls for
good.

:class:`SourceLimiter` is the per-source flood guard (the idea of Kamailio's
``pike``): one token bucket per source (``rate`` per second,
``burst`` at once) decides whether a new INVITE or REGISTER from that address
is taken in. Over the rate, the request gets 503 with Retry-After, itself
limited by a second bucket of the same size; a source that goes on past
twice its rate gets no answer at all (:data:`DROP`), so a flood cannot turn
the server into a reflector. The caller chooses the key: the B2BUA uses the
source's address (the /64 of an IPv6 one,
:func:`huntgroup.engine.b2bua.connections.source_of`), or a registered phone's
exact transport address.

The table keeps at most ``table_size`` keys. A key that was refused is
*held* for ``burst / rate`` seconds after its last refusal (until its bucket
would be full again, when forgetting it loses nothing): a flood of new keys
(spoofed UDP sources) cannot evict it to give it a fresh bucket. A new key
evicts the least recently seen key that is not held; when every key is
held, the new key is not taken in and its request gets :data:`DROP`.

Invariants: a refused call takes no token; a bucket never holds more than
its capacity; the table never holds more than ``table_size`` keys; a held key
stays held ``burst / rate`` seconds after its last refusal, no longer.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

SMOOTHING = 0.15
"""Seconds: the time constant of the moving averages of lag and load."""
STALE = 2.0
"""Seconds: a lag or load fact older than this no longer makes the node overloaded."""


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    retry_after: int  # seconds, for the Retry-After header


class _Smoothed:
    """An exponential moving average of samples that arrive at uneven times."""

    __slots__ = ("at", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.at: float | None = None

    def add(self, sample: float, now: float) -> None:
        """The first sample only starts the clock: one spike at start-up trips nothing."""
        if self.at is not None:
            weight = 1.0 - math.exp(-max(0.0, now - self.at) / SMOOTHING)
            self.value += weight * (sample - self.value)
        self.at = now if self.at is None else max(self.at, now)

    def current(self, now: float) -> float:
        return 0.0 if self.at is None or now - self.at > STALE else self.value


class CallAdmission:
    def __init__(
        self,
        max_calls: int | None,
        max_call_rate: float | None,
        *,
        now: float,
        max_loop_lag: float | None = None,
        max_load: float | None = None,
    ) -> None:
        self.max_calls = max_calls
        self.max_call_rate = max_call_rate
        self.max_loop_lag = max_loop_lag
        self.max_load = max_load
        self._tokens = float(max_call_rate or 0)
        self._at = now
        self._lag = _Smoothed()
        self._load = _Smoothed()
        self._credit = 0.0  # admissions owed while overloaded (see overloaded())

    def admit(self, active_calls: int, *, now: float) -> Refusal | None:
        """None when a new call may start now (it takes a token); else why not."""
        if self.max_calls is not None and active_calls >= self.max_calls:
            return Refusal(f"{active_calls} calls in progress (server.limits.max_calls)", 5)
        rate = self.max_call_rate
        if rate is not None:
            self._tokens = min(rate, self._tokens + max(0.0, now - self._at) * rate)
            self._at = max(self._at, now)
            if self._tokens < 1.0:
                return Refusal(f"over {rate:g} new calls per second (server.limits)", 1)
            self._tokens -= 1.0
        return None

    # ------------------------------------------------------------ saturation
    def loop_lag(self, seconds: float, *, now: float) -> None:
        """Fact from the driver: a periodic callback ran ``seconds`` late."""
        self._lag.add(max(0.0, seconds), now)

    def loop_load(self, share: float, *, now: float) -> None:
        """Fact from the driver: the process used ``share`` (0..1) of a CPU lately."""
        self._load.add(min(1.0, max(0.0, share)), now)

    def lag(self, *, now: float) -> float:
        return self._lag.current(now)

    def load(self, *, now: float) -> float:
        return self._load.current(now)

    def overloaded(self, *, now: float) -> Refusal | None:
        """Why a new call must be refused now that the node is saturated, or None.

        Past a limit by a share ``x`` (lag at 1.25 times ``max_loop_lag``: x = 0.25),
        the node refuses a share ``min(1, 2 x)`` of new calls, spread evenly (every
        other call at x = 0.25, all from x = 0.5): the load comes down without
        the all-or-nothing swings that would leave the node idle in between.
        """
        lag = self._lag.current(now)
        load = self._load.current(now)
        over, reason = 0.0, ""
        if self.max_loop_lag is not None and lag > self.max_loop_lag:
            over = lag / self.max_loop_lag - 1.0
            reason = f"event loop {lag * 1000:.0f} ms late (server.limits.max_loop_lag)"
        if self.max_load is not None and load / self.max_load - 1.0 > max(over, 0.0):
            over = load / self.max_load - 1.0
            reason = f"process at {load:.0%} of a CPU (server.limits.max_load)"
        if not reason:
            self._credit = 0.0
            return None
        self._credit = min(1.0, self._credit + 1.0 - min(1.0, 2.0 * over))
        if self._credit >= 1.0:
            self._credit -= 1.0
            return None
        return Refusal(reason, 1)


Verdict = Literal["pass", "refuse", "drop"]
PASS: Verdict = "pass"
REFUSE: Verdict = "refuse"  # 503 with Retry-After
DROP: Verdict = "drop"  # no answer at all


class _Bucket:
    __slots__ = ("at", "held_until", "refusals", "tokens")

    def __init__(self, burst: float, now: float) -> None:
        self.tokens = burst
        self.refusals = burst  # 503s this source may still get before silence
        self.at = now
        self.held_until = 0.0  # refused lately: not evicted before then


class SourceLimiter:
    """Per-key token buckets for one kind of request (see module docstring)."""

    def __init__(self, rate: float, burst: int, *, table_size: int) -> None:
        if rate <= 0 or burst < 1 or table_size < 1:
            raise ValueError("rate, burst and table_size must be positive")
        self.rate = rate
        self.burst = float(burst)
        self.table_size = table_size
        self.hold = self.burst / rate  # seconds a refused key cannot be evicted
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()  # not held, least recent first
        self._held: OrderedDict[str, _Bucket] = OrderedDict()  # held, by end of hold

    def __len__(self) -> int:
        return len(self._buckets) + len(self._held)

    @property
    def retry_after(self) -> int:
        """Seconds until a source that emptied its bucket has a full one again."""
        return max(1, math.ceil(self.burst / self.rate))

    def held(self, key: str, *, now: float) -> bool:
        """``key`` was refused within the last ``burst / rate`` seconds."""
        self._release(now)
        return key in self._held

    def check(self, key: str, *, now: float) -> Verdict:
        self._release(now)
        bucket = self._held.get(key)
        if bucket is None:
            bucket = self._buckets.get(key)
            if bucket is not None:
                self._buckets.move_to_end(key)
        if bucket is None:
            if len(self) >= self.table_size:
                if not self._buckets:
                    return DROP  # every key is held: a flood of new keys evicts none
                self._buckets.popitem(last=False)  # the least recently seen, not held
            bucket = _Bucket(self.burst, now)
            self._buckets[key] = bucket
        else:
            elapsed = max(0.0, now - bucket.at)
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
            bucket.refusals = min(self.burst, bucket.refusals + elapsed * self.rate)
            bucket.at = max(bucket.at, now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return PASS
        # over its rate: held (moved to the end, the latest hold ends last)
        bucket.held_until = now + self.hold
        self._buckets.pop(key, None)
        self._held.pop(key, None)
        self._held[key] = bucket
        if bucket.refusals >= 1.0:
            bucket.refusals -= 1.0
            return REFUSE
        return DROP

    def _release(self, now: float) -> None:
        """Keys whose hold ended go back among the evictable ones, as the least recent."""
        while self._held:
            key, bucket = next(iter(self._held.items()))
            if bucket.held_until > now:
                break
            del self._held[key]
            self._buckets[key] = bucket
            self._buckets.move_to_end(key, last=False)
