"""Whether a member can be offered a call at all: reachability, back-off, own calls.

Theory of operation
-------------------
Being *free* (joined, not ringing, not on a call, not in wrap-up) is shared
state (:mod:`huntgroup.queue.state.store`). Whether the member's phone can be
reached, and whether it is busy on calls that never went through the server,
is what this node's SIP engine sees, so it lives here, beside the core:

- **no contact**: a line with no registered contact. The driver tells the
  core (``MemberReachable``) at start, when a line registers its first contact
  and when it loses its last one (unregistered or expired). A fixed URI is
  reachable until an offer to it fails.
- **back-off**: an offer that found the member unreachable (no status came
  back, 408, 503: :data:`~huntgroup.queue.refusals.Refusal.UNREACHABLE`) makes
  it unavailable for ``BACKOFF_FIRST`` seconds, doubled at each failure in a
  row up to ``BACKOFF_MAX``; when the back-off ends the member is tried again.
  Any other answer from it (a 2xx, a 486, a 603...) or a new registration
  ends the series.
- **own calls**: a line whose phone reports an early or confirmed dialog of
  its own (``LineActivity``) is busy: not offered group calls unless the group
  has ``call_waiting``.

An *unavailable* member (no contact, or backing off) is skipped by every
algorithm without costing a pass and is not counted as free; a group whose
joined members are all unavailable or paused is *empty* (``queue.when_empty``).

``touched`` gathers the members whose reachability or own-call activity
changed, for the time in state (:mod:`~huntgroup.queue.member_status`); the
core empties it after each input.

Every table here is keyed by the members of the configuration (``retain``
drops the others on a reload). Nothing reads a clock: times are given.

Invariants: ``is_reachable`` is false exactly while the member has no contact
or ``now`` is before the end of its back-off; a back-off delay is within
[``BACKOFF_FIRST``, ``BACKOFF_MAX``].
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from enum import Enum

from huntgroup.queue.state.store import StateStore

BACKOFF_FIRST = 5.0
"""Seconds a member found unreachable is left alone the first time."""

BACKOFF_MAX = 60.0
"""The longest back-off, reached after five failures in a row (5, 10, 20, 40, 60)."""


class MemberState(Enum):
    """A member's state in one group, as shown to operators (logs, metrics, ``ctl``)."""

    FREE = "free"
    RINGING = "ringing"
    TALKING = "talking"  # on a call through the server, or busy on one of its own
    WRAP_UP = "wrap_up"
    PAUSED = "paused"  # joined, on a break: offered no call (an operator's pause)
    UNAVAILABLE = "unavailable"  # no registered contact, or found unreachable (back-off)
    LOGGED_OUT = "logged_out"


@dataclass(slots=True)
class _Backoff:
    failures: int
    until: float


def backoff_delay(failures: int) -> float:
    """The back-off after ``failures`` (>= 1) unreachable offers in a row."""
    return min(BACKOFF_MAX, BACKOFF_FIRST * float(2 ** min(failures - 1, 16)))


class Availability:
    """Reachability and own-call activity of the members, as this node sees them."""

    __slots__ = ("_backoff", "_busy", "_no_contact", "touched")

    def __init__(self) -> None:
        self._no_contact: set[str] = set()
        self._backoff: dict[str, _Backoff] = {}
        self._busy: set[str] = set()
        self.touched: set[str] = set()

    # ------------------------------------------------------------- queries
    def is_reachable(self, member: str, *, now: float) -> bool:
        if member in self._no_contact:
            return False
        backoff = self._backoff.get(member)
        return backoff is None or backoff.until <= now

    def offerable(self, member: str, *, now: float, call_waiting: bool) -> bool:
        """Reachable, and not busy on calls of its own unless ``call_waiting`` (the test of
        :meth:`is_reachable` written out: every decision asks it once, one call less)."""
        if member in self._no_contact:
            return False
        backoff = self._backoff.get(member)
        return (backoff is None or backoff.until <= now) and (
            call_waiting or member not in self._busy
        )

    def busy_outside(self, member: str) -> bool:
        return member in self._busy

    def has_contact(self, member: str) -> bool:
        return member not in self._no_contact

    def backoff_until(self, member: str) -> float | None:
        backoff = self._backoff.get(member)
        return backoff.until if backoff is not None else None

    # ------------------------------------------------------------- changes
    def set_contact(self, member: str, reachable: bool) -> bool:
        """A line has contacts (``reachable``) or none; True when that changed.

        A new contact also ends a back-off: the phone just registered again.
        """
        self.touched.add(member)
        if reachable:
            self._backoff.pop(member, None)
            if member not in self._no_contact:
                return False
            self._no_contact.discard(member)
            return True
        if member in self._no_contact:
            return False
        self._no_contact.add(member)
        return True

    def failed(self, member: str, *, now: float) -> float:
        """An offer found ``member`` unreachable: its back-off starts; returns its end."""
        previous = self._backoff.get(member)
        failures = 1 if previous is None else previous.failures + 1
        until = now + backoff_delay(failures)
        self._backoff[member] = _Backoff(failures, until)
        self.touched.add(member)
        return until

    def answered(self, member: str) -> bool:
        """``member`` answered something: the back-off series ends; True if there was one."""
        if self._backoff.pop(member, None) is None:
            return False
        self.touched.add(member)
        return True

    def set_busy(self, member: str, busy: bool) -> bool:
        """The line reports calls of its own (``busy``) or none; True when that changed."""
        if busy == (member in self._busy):
            return False
        (self._busy.add if busy else self._busy.discard)(member)
        self.touched.add(member)
        return True

    def retain(self, members: Container[str]) -> None:
        """Forget every member not in ``members`` (a reload removed it)."""
        self._no_contact = {m for m in self._no_contact if m in members}
        self._busy = {m for m in self._busy if m in members}
        self._backoff = {m: b for m, b in self._backoff.items() if m in members}


def state_of(
    store: StateStore, availability: Availability, group: str, member: str, *, now: float
) -> MemberState:
    """``member``'s state in ``group``: the first that applies of logged out,
    paused (even on a call: the operator's word shows first), unavailable,
    ringing, talking (on a call, or busy on calls of its own), in wrap-up, free."""
    if store.joined_since(group, member) is None:
        return MemberState.LOGGED_OUT
    if store.paused(group, member) is not None:
        return MemberState.PAUSED
    if not availability.is_reachable(member, now=now):
        return MemberState.UNAVAILABLE
    if store.is_ringing(member):
        return MemberState.RINGING
    if store.is_on_call(member) or availability.busy_outside(member):
        return MemberState.TALKING
    if store.wrap_up_until(member) > now:
        return MemberState.WRAP_UP
    return MemberState.FREE
