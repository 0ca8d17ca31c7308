"""The subscriptions we serve (RFC 6665 notifier side): the table and its expiry timers.

Theory of operation
-------------------
One :class:`Subscription` per accepted SUBSCRIBE to the dialog event package
(RFC 4235): the line watching, the number watched (a line or a pilot), our
side of the subscription's dialog, when it expires, the version of the next
document, what the last NOTIFY showed, and the one NOTIFY in flight (RFC 6665
§4.2.2: never two at once; a change meanwhile only marks it ``stale``, and the
latest state goes when the answer comes: NOTIFYs to one watcher never pile
up). :class:`SubscriptionTable` finds them by id, by dialog, by the
transaction of their NOTIFY in flight, and by the number watched; it counts
them per watching line, and keeps a heap of expiry times whose stale entries
(a refresh moved the time) are skipped. Nothing here sends anything: the
functions of :mod:`subscriptions` do.

The other direction, our own subscriptions to members' phones
(:mod:`phone_watch`), are :class:`Watch` entries in a :class:`WatchTable`:
one per line at most, with the back-off of phones that refused.

Both kinds have one request of ours in flight at most (``pending``), found
again by its transaction when the answer (or the failure) comes:
:func:`take_answer` serves both tables.

Invariants: every subscription is in ``by_dialog``, ``by_target`` and the
per-line count exactly while it is in ``subs``; every subscription has an
expiry time in the heap; the table never holds more than the bound the
caller checks against ``len()``.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from huntgroup.engine.b2bua.calls import DialogKey
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.dialog_info import DialogEntry, ReportedDialog
from huntgroup.engine.sip.dialogs import Dialog
from huntgroup.engine.sip.message import Request
from huntgroup.engine.sip.transaction import TransactionKey


class _InFlight(Protocol):
    pending: TransactionKey | None


_E = TypeVar("_E", bound=_InFlight)
_K = TypeVar("_K", bound=Hashable)


def take_answer(
    in_flight: dict[TransactionKey, _K], entries: dict[_K, _E], key: TransactionKey
) -> tuple[bool, _E | None]:
    """The entry the answer to our request ``key`` is for, no longer waiting for it:
    ``(False, None)`` when ``key`` is no request of this table, ``(True, None)`` when its
    entry is gone or has sent another request since (the answer is stale)."""
    ident = in_flight.pop(key, None)
    if ident is None:
        return False, None
    entry = entries.get(ident)
    if entry is None or entry.pending != key:
        return True, None
    entry.pending = None
    return True, entry


@dataclass(slots=True)
class Subscription:
    """One subscription we serve: ``watcher`` (a line) watches ``target`` (a number)."""

    id: str
    target: str
    watcher: str
    dialog: Dialog
    expires_at: float
    version: int = 0  # of the next document (RFC 4235 §4.1.1)
    shown: tuple[DialogEntry, ...] = ()  # the dialogs the last document listed as live
    pending: TransactionKey | None = None  # our NOTIFY in flight
    stale: bool = False  # the state changed while a NOTIFY was in flight
    ending: str | None = None  # the reason of the final NOTIFY still to send

    @property
    def key(self) -> DialogKey:
        return (self.dialog.call_id, self.dialog.local_tag, self.dialog.remote_tag)


class SubscriptionTable:
    """Every subscription we serve, and every way of finding one."""

    __slots__ = (
        "_heap",
        "_seq",
        "by_dialog",
        "by_target",
        "changes",
        "last",
        "notifies",
        "per_line",
        "subs",
    )

    def __init__(self) -> None:
        self.subs: dict[str, Subscription] = {}
        self.by_dialog: dict[DialogKey, Subscription] = {}
        self.by_target: dict[str, set[str]] = {}
        self.per_line: Counter[str] = Counter()
        self.notifies: dict[TransactionKey, str] = {}  # NOTIFY in flight -> subscription id
        self.last: dict[str, tuple[DialogEntry, ...]] = {}  # watched numbers not idle, as notified
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count(1)
        # Bumped whenever get_timer's answer may change: a subscription added, re-armed,
        # removed, expired or ending (``end_subscription``).
        self.changes = 0

    def __len__(self) -> int:
        return len(self.subs)

    def add(self, sub: Subscription) -> None:
        self.subs[sub.id] = sub
        self.by_dialog[sub.key] = sub
        self.by_target.setdefault(sub.target, set()).add(sub.id)
        self.per_line[sub.watcher] += 1
        self.rearm(sub, sub.expires_at)

    def rearm(self, sub: Subscription, at: float) -> None:
        """``sub`` now expires at ``at``."""
        sub.expires_at = at
        self.changes += 1
        heapq.heappush(self._heap, (at, next(self._seq), sub.id))
        if len(self._heap) > 2 * len(self.subs) + 64:  # refreshes leave stale entries
            self._heap = [e for e in self._heap if self._live(e)]
            heapq.heapify(self._heap)

    def remove(self, sub: Subscription) -> None:
        if self.subs.pop(sub.id, None) is None:
            return
        self.changes += 1
        self.by_dialog.pop(sub.key, None)
        ids = self.by_target.get(sub.target)
        if ids is not None:
            ids.discard(sub.id)
            if not ids:
                del self.by_target[sub.target]
                self.last.pop(sub.target, None)
        self.per_line[sub.watcher] -= 1
        if self.per_line[sub.watcher] <= 0:
            del self.per_line[sub.watcher]

    def get_timer(self) -> float | None:
        heap = self._heap
        while heap and not self._live(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def expired(self, *, now: float) -> list[Subscription]:
        """The subscriptions whose time is up at ``now`` (each once)."""
        out: list[Subscription] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            self.changes += 1
            if self._live(entry):
                out.append(self.subs[entry[2]])
        return out

    def _live(self, entry: tuple[float, int, str]) -> bool:
        sub = self.subs.get(entry[2])
        return sub is not None and sub.expires_at == entry[0] and sub.ending is None


@dataclass(slots=True)
class Watch:
    """Our subscription to the dialog events of ``line``'s phone (we are the subscriber)."""

    line: str
    contact: str  # the registered contact watched (a binding's URI)
    call_id: str
    tag: str  # our From tag
    request: Request  # the last SUBSCRIBE sent (a refresh builds on its dialog)
    peer: Peer
    pending: TransactionKey | None = None  # our SUBSCRIBE in flight
    dialog: Dialog | None = None  # once a 2xx came
    refresh_at: float | None = None  # when to refresh (None: waiting for an answer)
    version: int | None = None  # of the last document taken
    dialogs: dict[str, ReportedDialog] = field(default_factory=dict)  # live on the phone
    busy: bool = False  # as last told to the core
    route: tuple[str, ...] = ()  # the binding's Path (RFC 3327): the SUBSCRIBEs' Route set


class WatchTable:
    """Our subscriptions to phones: one per line at most, the back-off of refusals.

    Bounded by the configuration: one entry per line that is a group member,
    in ``watches`` and in ``backoff`` (forgotten once its time is past and the
    line is watched again or no longer a member).
    """

    __slots__ = ("backoff", "by_call", "by_tx", "changes", "registrations", "watches")

    def __init__(self) -> None:
        self.watches: dict[str, Watch] = {}  # by line
        self.by_tx: dict[TransactionKey, str] = {}  # our SUBSCRIBE in flight -> line
        self.by_call: dict[tuple[str, str], str] = {}  # (Call-ID, our tag) -> line
        self.backoff: dict[str, tuple[float, int]] = {}  # line -> (not before, failures)
        self.registrations = -1  # the registrar's binding count at the last look
        # Bumped whenever get_timer's answer may change: a watch added or dropped, a
        # ``refresh_at`` or a back-off set (phone_watch bumps it where it sets them).
        self.changes = 0

    def add(self, watch: Watch) -> None:
        self.changes += 1
        self.watches[watch.line] = watch
        self.by_call[(watch.call_id, watch.tag)] = watch.line

    def drop(self, watch: Watch) -> None:
        self.changes += 1
        if self.watches.get(watch.line) is watch:
            del self.watches[watch.line]
        self.by_call.pop((watch.call_id, watch.tag), None)
        if watch.pending is not None:
            self.by_tx.pop(watch.pending, None)

    def find(self, call_id: str, tag: str) -> Watch | None:
        """The watch whose dialog is ``call_id`` with our tag ``tag``."""
        line = self.by_call.get((call_id, tag))
        return self.watches.get(line) if line is not None else None

    def get_timer(self) -> float | None:
        """The next refresh of a watch, or the end of a back-off (one still to wait out)."""
        if not self.watches and not self.backoff:
            return None  # asked after every input: nothing watched, nothing to build
        times = [w.refresh_at for w in self.watches.values() if w.refresh_at is not None]
        times += [until for until, _ in self.backoff.values() if until != math.inf]
        return min(times, default=None)
