"""Limits on failed digest authentications: per source, per line, per (source, line).

Theory of operation
-------------------
A password guesser answers challenges with wrong passwords as fast as it can.
:class:`AuthGuard` counts each failed authentication (a wrong answer, an
unknown username, credentials of another line) twice: under the source
address and under the line (the number that was being authenticated, known
or not, so unknown numbers behave exactly like known ones; the exceptions,
registered lines and trusted peers, are below). When either
count reaches its maximum within ``window`` seconds, that key is *locked
out*: every request that needs authentication from that source, or for that
line, is refused without being checked until the lockout ends. The first
lockout of a key lasts ``lockout_base`` seconds, each further one of the same
key twice as long as the one before, up to ``lockout_max``.

Sources are keyed like the connection caps
(:func:`huntgroup.engine.b2bua.connections.source_of`): an IPv4 address, or the
/64 of an IPv6 address (one host owns a whole /64, so an IPv6 guesser cannot
hop addresses to escape its count).

Nobody may knock a registered phone offline with someone else's failures.
The caller passes the exact transport addresses (:func:`address_of`:
transport, host *and* port) the line has a live binding from, and the
request's own; a request for that line from one of them is judged by a
third key, the (address, line) *pair*, and by nothing else:

- the line's lockout does not apply to it (a guesser elsewhere cannot lock a
  registered phone's line), nor the source's (failures against unknown
  numbers or other lines from the phone's host, an office NAT or a
  spoofer that fetched a nonce from its own port, cannot lock it either);
- its failures count under the pair (with the per-line maximum) and the line,
  not under the source.

Failures from any other port of the phone's host are a stranger's: they
count under the source (the host, or its /64) and the line, like anyone's,
and lock those, never the pair. So locking a registered phone out takes
guessing its exact port (and transport), and even then only that pair is
locked, for the line's requests from that address.

A trusted peer (an SBC, the upstream: the caller says so) is exempt from the
per-source count, which would otherwise lock every phone behind it at once;
it stays subject to the per-line counts (the line's, or the pair's).

The module is sans-I/O: every call takes ``now``. Each table is bounded
(``max_entries``, least recently failed evicted first) and every entry ends on
time: an entry is forgotten ``window + 2 * lockout_max`` seconds after its last
failure (by then any lockout is over), so the back-off level of a key is
remembered that long. Entries are kept in last-failure order, so the table's
first entry is always the next to expire: :meth:`get_timer` gives its
deadline and :meth:`handle_timer` drops what is due.

Invariants: ``len(sources)``, ``len(lines)`` and ``len(pairs)`` ``<= max_entries``;
no entry outlives ``window + 2 * lockout_max`` seconds without a new failure;
a success never resets a source's count (one valid account must not let a
guesser go on), only its line's.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass

from huntgroup.engine.b2bua.connections import source_of

__all__ = ["AuthGuard", "Lockout", "address_of"]


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

    kind: str  # "source", "line" or "pair"
    key: str  # the source key, the line, or "LINE from ADDRESS"
    failures: int
    seconds: float

    @property
    def what(self) -> str:
        """What is locked, for a log line: ``line 0102``, ``source 192.0.2.9``..."""
        return f"line {self.key}" if self.kind == "pair" else f"{self.kind} {self.key}"


class _Table:
    """One bounded, expiring table of failure counts (sources, or lines)."""

    def __init__(self, kind: str, limit: int, guard: AuthGuard) -> None:
        self.kind = kind
        self.limit = limit
        self.guard = guard
        self.entries: OrderedDict[str, _Entry] = OrderedDict()  # changes: bump guard.changes

    def locked_for(self, key: str, now: float) -> float:
        entry = self.entries.get(key)
        return max(0.0, entry.locked_until - now) if entry is not None else 0.0

    def fail(self, key: str, now: float) -> Lockout | None:
        guard = self.guard
        guard.changes += 1
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
            self.guard.changes += 1


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
        self.pairs = _Table("pair", max_failures_per_line, self)
        self.changes = 0  # bumped whenever get_timer's answer may change

    def locked(
        self,
        source: str,
        line: str,
        *,
        now: float,
        address: str = "",
        line_addresses: Collection[str] = (),
        trusted: bool = False,
    ) -> int | None:
        """Seconds (rounded up) until host ``source`` may authenticate ``line`` again, or None.

        ``address``: the request's exact transport address (:func:`address_of`);
        ``line_addresses``: those the line has a live binding from (see module
        doc); ``trusted``: the source is a trusted peer, exempt from the
        per-source count.
        """
        self.handle_timer(now=now)
        if address and address in line_addresses:
            wait = self.pairs.locked_for(_pair(address, line), now)
        else:
            wait = self.lines.locked_for(line, now)
            if not trusted:
                wait = max(wait, self.sources.locked_for(source_of(source), now))
        return math.ceil(wait) if wait > 0 else None

    def failed(
        self,
        source: str,
        line: str,
        *,
        now: float,
        address: str = "",
        line_addresses: Collection[str] = (),
        trusted: bool = False,
    ) -> list[Lockout]:
        """One failed authentication of ``line`` from host ``source``; the lockouts it
        starts (``address``, ``line_addresses`` and ``trusted`` as for :meth:`locked`)."""
        self.handle_timer(now=now)
        found = [self.lines.fail(line, now)]
        if address and address in line_addresses:
            found.append(self.pairs.fail(_pair(address, line), now))
        elif not trusted:
            found.append(self.sources.fail(source_of(source), now))
        return [lockout for lockout in found if lockout is not None]

    def succeeded(self, line: str) -> None:
        """``line`` authenticated: its own count starts again (its source's does not)."""
        entry = self.lines.entries.get(line)
        if entry is not None:
            entry.failures = 0

    def get_timer(self) -> float | None:
        # asked after every input, usually with nothing counted: no list, no generator
        best: float | None = None
        for table in (self.sources, self.lines, self.pairs):
            if table.entries:
                due = table.first_due()
                if due is not None and (best is None or due < best):
                    best = due
        return best

    def handle_timer(self, *, now: float) -> None:
        self.sources.expire(now)
        self.lines.expire(now)
        self.pairs.expire(now)

    def __len__(self) -> int:
        return len(self.sources.entries) + len(self.lines.entries) + len(self.pairs.entries)


def address_of(transport: str, host: str, port: int) -> str:
    """One exact transport address as a key: ``udp 192.0.2.9:5060``, ``tcp [2001:db8::1]:5061``."""
    shown = f"[{host}]" if ":" in host else host
    return f"{transport.lower()} {shown}:{port}"


def _pair(address: str, line: str) -> str:
    return f"{line} from {address}"
