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

Saturation is noticed without a configured rate too. Every 50 ms the asyncio
driver hands over two facts: how late input is handled (:meth:`CallAdmission.loop_lag`:
the larger of how late a periodic callback ran and how long the SIP
datagrams queued in the kernel will wait) and how busy the process was
(:meth:`CallAdmission.loop_load`: its share of a CPU, plus the share of the
wall clock it was runnable but waiting for a core, which other processes
held). A busy share of 1 means the process is never idle: each new call
waits for the ones before it, whatever share of a core it gets.

Bursts are not overload. A garbage collection (5-60 ms), or other processes
holding the cores for a few hundred milliseconds, make input late once; a
server with headroom catches up and no call suffers (SIP retransmits only
after 500 ms). What hurts calls is lateness that stays, a queue that does not
drain. So the two facts are read over time:

- *sustained lag*: the lateness every fact of the last :data:`LAG_WINDOW`
  seconds reached (their minimum, counted only when the facts cover the
  whole window; each fact stands until the next one, so the last fact
  before the window's start covers it, and a gap in the facts, the driver
  not running, counts at the level of the fact before it; facts that began
  less than the window ago count 0), or of half or a quarter of that window
  at two or four times the level:
  ``max(min over 0.5 s, min over 0.25 s / 2, min over 0.125 s / 4)``.
  A 100 ms lateness that lasts half a second counts 100 ms; a flood, whose
  queue grows past 400 ms within 125 ms, counts as soon; one late fact never
  counts, however late;
- *load*: the busy share averaged over :data:`LOAD_WINDOW` seconds (an
  exponential moving average).

The node becomes overloaded when the sustained lag passes ``max_loop_lag``
or the load passes ``max_load``. From then on it refuses a *share* of new
INVITEs (503 with ``Retry-After: 1``, spread evenly over the INVITEs), steered
by each lag fact, since the node is now known to be at its capacity: the share
rises by :data:`RISE` per second while input is later than ``max_loop_lag``
(for the last :data:`STEER` seconds: one late fact alone, a descheduling,
does not push it), falls by :data:`FALL` per second while it is under half
of it and by half that while it is between half of it and it, and never drops
below what the excess asks for (``min(1, 2 x)`` past a limit by a share ``x``).
A load past ``max_load`` thus holds only the share its own excess asks for,
not the share reached during a lag episode: a node that keeps up while busy
(relaying media, or waiting for a core on a shared machine) is not left
refusing every new call. The overload ends when the
share is back to 0. This hysteresis keeps the queue short without
all-or-nothing swings: entering needs sustained evidence, leaving is
gradual. Everything inside a dialog goes on. A fact older than :data:`STALE`
seconds no longer counts: a driver that stopped measuring does not block
calls for good.

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
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Literal

LAG_WINDOW = 0.5
"""Seconds the lateness must last at ``max_loop_lag`` to count (a quarter of it at four
times the level, half of it at twice)."""
LOAD_WINDOW = 1.0
"""Seconds: the time constant of the moving average of the busy share."""
RISE = 2.0
"""Share of new calls refused added per second while input is late, once overloaded."""
FALL = 0.5
"""Share of new calls refused taken off per second while input is on time again."""
STEER = 0.1
"""Seconds the lag must last to steer the refused share (two facts: not one alone)."""
STALE = 2.0
"""Seconds: a lag or load fact older than this no longer makes the node overloaded."""
_SPANS = (LAG_WINDOW, LAG_WINDOW / 2, LAG_WINDOW / 4)


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    retry_after: int  # seconds, for the Retry-After header


class _Smoothed:
    """An exponential moving average of samples that arrive at uneven times."""

    __slots__ = ("at", "tau", "value")

    def __init__(self, tau: float) -> None:
        self.tau = tau
        self.value = 0.0
        self.at: float | None = None

    def add(self, sample: float, now: float) -> None:
        """The first sample only starts the clock: one spike at start-up trips nothing."""
        if self.at is not None:
            weight = 1.0 - math.exp(-max(0.0, now - self.at) / self.tau)
            self.value += weight * (sample - self.value)
        self.at = now if self.at is None else max(self.at, now)

    def current(self, now: float) -> float:
        return 0.0 if self.at is None or now - self.at > STALE else self.value


class _Sustained:
    """The lateness that lasted: the facts of the last :data:`LAG_WINDOW` seconds."""

    __slots__ = ("facts", "value")

    def __init__(self) -> None:
        self.facts: deque[tuple[float, float]] = deque()  # (at, lag), oldest first
        self.value = 0.0  # sustained lag as of the last fact

    def add(self, lag: float, now: float) -> float:
        facts = self.facts
        if facts and now < facts[-1][0]:
            return self.value  # out of order: ignored
        facts.append((now, lag))
        # keep one fact at or before the window's start: it covers the start
        while len(facts) > 1 and facts[1][0] <= now - LAG_WINDOW:
            facts.popleft()
        self.value = max(self.lasting(span, now) * span / LAG_WINDOW for span in _SPANS)
        return self.value

    def lasting(self, span: float, now: float) -> float:
        """The lag every fact reached over the last ``span`` seconds (0: not covered)."""
        start = now - span
        least = math.inf
        for at, lag in reversed(self.facts):
            least = min(least, lag)
            if at <= start:
                return least
        return 0.0  # the facts began less than ``span`` ago (or a gap left it uncovered)

    def current(self, now: float) -> float:
        facts = self.facts
        return 0.0 if not facts or now - facts[-1][0] > STALE else self.value


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
        self._lag = _Sustained()
        self._last_lag = 0.0  # the latest lag fact, as it came
        self._load = _Smoothed(LOAD_WINDOW)
        self._share = 0.0  # share of new calls refused (0: not overloaded)
        self._stepped: float | None = None  # when the share was last updated
        self._reason = ""
        self._debt = 0.0  # refusals owed while overloaded (see overloaded())

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
        """Fact from the driver: input is handled ``seconds`` late (see module docstring)."""
        self._last_lag = max(0.0, seconds)
        self._lag.add(self._last_lag, now)
        self._step(now)

    def loop_load(self, share: float, *, now: float, waiting: float = 0.0) -> None:
        """Fact from the driver: lately the process used ``share`` (0..1) of a CPU, and
        was runnable but waiting for a core ``waiting`` (0..1) of the time."""
        self._load.add(min(1.0, max(0.0, share) + max(0.0, waiting)), now)
        self._step(now)

    def lag(self, *, now: float) -> float:
        """The sustained lag (seconds), what ``max_loop_lag`` is compared with."""
        return self._lag.current(now)

    def load(self, *, now: float) -> float:
        """The busy share (0..1, averaged over :data:`LOAD_WINDOW`), against ``max_load``."""
        return self._load.current(now)

    def shedding(self, *, now: float) -> float:
        """The share (0..1) of new calls refused now; 0 when not overloaded."""
        if self._stepped is None or now - self._stepped > STALE:
            return 0.0
        return self._share

    def _step(self, now: float) -> None:
        """Update the refused share from the facts (see module docstring)."""
        dt = 0.0 if self._stepped is None else max(0.0, now - self._stepped)
        if dt > STALE:
            self._share = 0.0  # the facts had stopped: start afresh
        self._stepped = now if self._stepped is None else max(self._stepped, now)
        floor, reason = 0.0, ""
        limit = self.max_loop_lag
        lag = self._lag.current(now)
        if limit is not None and lag > limit:
            floor = min(1.0, 2.0 * (lag / limit - 1.0))
            reason = f"event loop {lag * 1000:.0f} ms late for a while (server.limits.max_loop_lag)"
        load = self._load.current(now)
        load_over = self.max_load is not None and load > self.max_load
        if self.max_load is not None and load_over:
            excess = min(1.0, 2.0 * (load / self.max_load - 1.0))
            if not reason or excess > floor:
                floor = excess
                reason = f"process busy {load:.0%} of the time (server.limits.max_load)"
        if reason:
            self._reason = reason
        share = self._share
        if share > 0.0:  # overloaded: each fact steers the share, by the recent lag
            recent = self._lag.lasting(STEER, now)  # one late fact alone does not count
            if limit is not None and recent > limit:
                share += RISE * dt
            elif limit is None or recent < limit / 2:
                share -= FALL * dt
            else:  # keeping up, not with much room: back to the floor, but slowly
                share -= FALL / 2 * dt
        self._share = min(1.0, max(floor, share, 0.0))

    def overloaded(self, *, now: float) -> Refusal | None:
        """Why a new call must be refused now that the node is saturated, or None.

        Refuses the share :meth:`shedding` of new calls, spread evenly (every other
        call at 0.5, one in ten at 0.1): the load comes down without the
        all-or-nothing swings that would leave the node idle in between.
        """
        share = self.shedding(now=now)
        if share <= 0.0:
            self._debt = 0.0
            return None
        self._debt += share  # refusals owed: one each time a whole one has built up
        if self._debt < 1.0:
            return None
        self._debt -= 1.0
        return Refusal(self._reason, 1)


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
