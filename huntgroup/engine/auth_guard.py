"""Limits on failed digest authentications: per source IP and per line, with back-off.

Theory of operation
-------------------
A password guesser answers challenges with wrong passwords as fast as it can.
:class:`AuthGuard` counts each failed authentication (a wrong answer, an
unknown username, credentials of another line) twice: under the source IP
address and under the line (the number that was being authenticated, known
or not, so unknown numbers behave exactly like known ones). When either
count reaches its maximum within ``window`` seconds, that key is *locked
out*: every request that needs authentication from that source, or for that
line, is refused without being checked until the lockout ends. The first
lockout of a key lasts ``lockout_base`` seconds, each further one of the same
key twice as long as the one before, up to ``lockout_max``.

A line's lockout does not apply to the hosts that line is registered from
(the caller passes them): a guesser elsewhere cannot knock a registered phone
offline by locking its line, while it stays limited by its own source's
count.

The module is sans-I/O: every call takes ``now``. Each table is bounded
(``max_entries``, least recently failed evicted first) and every entry ends on
time: an entry is forgotten ``window + 2 * lockout_max`` seconds after its last
failure (by then any lockout is over), so the back-off level of a key is
remembered that long. Entries are kept in last-failure order, so the table's
first entry is always the next to expire: :meth:`get_timer` gives its
deadline and :meth:`handle_timer` drops what is due.

Invariants: ``len(sources) <= max_entries`` and ``len(lines) <= max_entries``;
no entry outlives ``window + 2 * lockout_max`` seconds without a new failure;
a success never resets a source's count (one valid account must not let a
guesser go on), only its line's.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass

__all__ = ["AuthGuard", "Lockout"]


@dataclass(slots=True)
class _Entry:
    failures: int = 0
    window_start: float = 0.0
    last_failure: float = 0.0
    locked_until: float = 0.0
    level: int = 0  # lockouts so far: the next one lasts base * 2**level


@dataclass(frozen=True, slots=True)
class Lockout:
    """A key that was just locked out (what to log)."""

    kind: str  # "source" or "line"
    key: str
    failures: int
    seconds: float


class _Table:
    """One bounded, expiring table of failure counts (sources, or lines)."""

    def __init__(self, kind: str, limit: int, guard: AuthGuard) -> None:
        self.kind = kind
        self.limit = limit
        self.guard = guard
        self.entries: OrderedDict[str, _Entry] = OrderedDict()

    def locked_for(self, key: str, now: float) -> float:
        entry = self.entries.get(key)
        return max(0.0, entry.locked_until - now) if entry is not None else 0.0

    def fail(self, key: str, now: float) -> Lockout | None:
        guard = self.guard
        entry = self.entries.pop(key, None)
        if entry is None:
            entry = _Entry(window_start=now)
        self.entries[key] = entry  # last failed = last in order
        entry.last_failure = now
        if now - entry.window_start >= guard.window:
            entry.failures, entry.window_start = 0, now
        entry.failures += 1
        lockout = None
        if entry.failures >= self.limit and now >= entry.locked_until:
            seconds = min(guard.lockout_base * 2.0**entry.level, guard.lockout_max)
            entry.locked_until = now + seconds
            entry.level += 1
            lockout = Lockout(self.kind, key, entry.failures, seconds)
            entry.failures, entry.window_start = 0, now
        while len(self.entries) > guard.max_entries:
            self.entries.popitem(last=False)
        return lockout

    def first_due(self) -> float | None:
        for entry in self.entries.values():
            return entry.last_failure + self.guard.forget_after
        return None

    def expire(self, now: float) -> None:
        while self.entries:
            entry = next(iter(self.entries.values()))
            if entry.last_failure + self.guard.forget_after > now:
                break
            self.entries.popitem(last=False)


class AuthGuard:
    """Counts failed authentications and says who is locked out (see module doc)."""

    def __init__(
        self,
        *,
        window: float,
        max_failures_per_source: int,
        max_failures_per_line: int,
        lockout_base: float,
        lockout_max: float,
        max_entries: int,
    ) -> None:
        if window <= 0 or lockout_base <= 0 or lockout_max < lockout_base:
            raise ValueError("need window > 0 and 0 < lockout_base <= lockout_max")
        if max_failures_per_source < 1 or max_failures_per_line < 1 or max_entries < 1:
            raise ValueError("failure limits and max_entries must be at least 1")
        self.window = window
        self.lockout_base = lockout_base
        self.lockout_max = lockout_max
        self.max_entries = max_entries
        self.forget_after = window + 2 * lockout_max
        self.sources = _Table("source", max_failures_per_source, self)
        self.lines = _Table("line", max_failures_per_line, self)

    def locked(
        self, source: str, line: str, *, now: float, line_hosts: Collection[str] = ()
    ) -> int | None:
        """Seconds (rounded up) until ``source`` may authenticate ``line`` again, or None.

        ``line_hosts``: the hosts the line is registered from, spared its lockout.
        """
        self.handle_timer(now=now)
        wait = self.sources.locked_for(source, now)
        if source not in line_hosts:
            wait = max(wait, self.lines.locked_for(line, now))
        return math.ceil(wait) if wait > 0 else None

    def failed(self, source: str, line: str, *, now: float) -> list[Lockout]:
        """One failed authentication of ``line`` from ``source``; the lockouts it starts."""
        self.handle_timer(now=now)
        found = [self.sources.fail(source, now), self.lines.fail(line, now)]
        return [lockout for lockout in found if lockout is not None]

    def succeeded(self, line: str) -> None:
        """``line`` authenticated: its own count starts again (its source's does not)."""
        entry = self.lines.entries.get(line)
        if entry is not None:
            entry.failures = 0

    def get_timer(self) -> float | None:
        due = [t for t in (self.sources.first_due(), self.lines.first_due()) if t is not None]
        return min(due) if due else None

    def handle_timer(self, *, now: float) -> None:
        self.sources.expire(now)
        self.lines.expire(now)

    def __len__(self) -> int:
        return len(self.sources.entries) + len(self.lines.entries)
