"""Claims on members in the shared state: which this node holds, renews and releases.

Theory of operation
-------------------
With several nodes on one shared state, a node claims a member in the store
of record (Redis) before ringing it (``Claim`` from the group core; the
driver runs the claim script). A claim is held by one call of one node and
says what that call does with the member: ``r`` it rings, ``t`` it talks,
``w`` it wraps up after a call. It is a **lease**: it ends by itself after
``lease`` seconds unless the node renews it, so a dead node's claims go.

:class:`ClaimLedger` is the sans-I/O bookkeeping of one node's claims. It
never decides *whether* a claim is granted (the script does, atomically); it
knows which claims this node **holds** (granted by the store, or granted
locally while the store was away) and which it **wants**: the members its
own calls ring or talk with, read from the node's own activity in the
:class:`~huntgroup.queue.state.journal.JournalingStore`. Deriving releases
from the activity, rather than from each way an offer or a call can end,
means a claim is released whatever ended it. From the two it computes:

- :meth:`changes`: what to write after the activity changed: a claim whose
  call answered turns ``r`` → ``t``; a claim no longer wanted is released,
  or turned into a ``w`` claim lasting exactly the rest of the member's
  wrap-up (not renewed) when a wrap-up started; a member on a call never
  offered here (a line's own call) is claimed ``t`` as it is: it talks,
  whatever the store says;
- :meth:`renewals`: every held claim, with its current kind, for the periodic
  renewal, which also **re-asserts** them after an outage of the store (a
  claim the store lost is taken again under the same rule, or reported as a
  conflict).

A claim the store grants for an offer that already ended is held until the
next :meth:`changes` or :meth:`renewals`, which release it.

Invariants: only granted claims are held (a wanted claim never held is never
written: that would bypass the store's check); ``held`` is bounded by this
node's calls (each entry is released once its call no longer rings or talks
with the member).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from huntgroup.queue.state.journal import JournalingStore
from huntgroup.queue.state.operations import MemberCalls

LEASE = 6.0
"""Seconds a claim lasts unless renewed: a dead node's members are free within it."""

RENEW_EVERY = 2.0
"""Seconds between two renewals of a node's claims (a third of the lease)."""

Kind = Literal["r", "t", "w", ""]
"""``r`` rings, ``t`` talks, ``w`` wraps up; ``""`` releases the claim."""


@dataclass(frozen=True, slots=True)
class ClaimWrite:
    """Write (or release, ``kind == ""``) this node's claim of ``call`` on ``member``,
    lasting ``lease`` seconds from the store's clock."""

    member: str
    call_id: str
    kind: Kind
    lease: float


class ClaimLedger:
    """The claims one node holds in the shared state (see the module docstring)."""

    def __init__(self, store: JournalingStore, *, lease: float = LEASE) -> None:
        if lease <= 0:
            raise ValueError(f"lease must be positive, not {lease!r}")
        self.store = store
        self.lease = lease
        self.held: dict[tuple[str, str], Kind] = {}
        """(member, call id) → what the call does with the member, as last written."""

    def wanted(
        self, activity: Iterable[tuple[str, MemberCalls]] | None = None
    ) -> dict[tuple[str, str], Kind]:
        """The claims this node's calls need: the members they ring or talk with
        (``activity``: the node's own; by default read from the store in place,
        :meth:`JournalingStore.local_calls`)."""
        if activity is None:
            activity = self.store.local_calls()
        want: dict[tuple[str, str], Kind] = {}
        for member, act in activity:
            for call_id in act.ringing:
                want[(member, call_id)] = "r"
            for call_id in act.active:
                want[(member, call_id)] = "t"
        return want

    def granted(self, member: str, call_id: str) -> None:
        """The store (or, while it is away, this node) granted a claim: it is held."""
        self.held[(member, call_id)] = "r"

    def changes(
        self, *, now: float, activity: Iterable[tuple[str, MemberCalls]] | None = None
    ) -> list[ClaimWrite]:
        """The writes that bring the held claims in line with this node's activity;
        ``held`` is updated as if they succeed (a failed write is caught up by the next
        :meth:`renewals`, or its claim runs out by itself)."""
        want = self.wanted(activity)
        writes: list[ClaimWrite] = []
        for (member, call_id), kind in list(self.held.items()):
            now_kind = want.get((member, call_id))
            if now_kind == kind:
                continue
            if now_kind is not None:
                self.held[(member, call_id)] = now_kind
                writes.append(ClaimWrite(member, call_id, now_kind, self.lease))
                continue
            del self.held[(member, call_id)]
            wrap = self.store.local_activity(member).wrap_up_until - now
            if kind == "t" and wrap > 0:
                writes.append(ClaimWrite(member, call_id, "w", wrap))
            else:
                writes.append(ClaimWrite(member, call_id, "", 0.0))
        for key, kind in want.items():
            if kind == "t" and key not in self.held:  # a call of its own: it talks, claimed or not
                self.held[key] = "t"
                writes.append(ClaimWrite(*key, "t", self.lease))
        return writes

    def renewals(
        self, *, now: float, activity: Iterable[tuple[str, MemberCalls]] | None = None
    ) -> list[ClaimWrite]:
        """:meth:`changes`, then every claim still held, renewed for a full lease."""
        writes = self.changes(now=now, activity=activity)
        renewed = {(w.member, w.call_id) for w in writes}
        writes.extend(
            ClaimWrite(member, call_id, kind, self.lease)
            for (member, call_id), kind in self.held.items()
            if (member, call_id) not in renewed
        )
        return writes

    def lost(self, member: str, call_id: str) -> None:
        """The store refused to re-assert this claim: another node holds the member."""
        self.held.pop((member, call_id), None)
