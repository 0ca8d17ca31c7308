"""What operators see of a member: since when it is in its state, its answers, its changes.

Theory of operation
-------------------
A member's state in a group (:class:`~huntgroup.queue.availability.MemberState`)
is derived from the shared state and from this node's view of its phone; it is
never stored. How long it has been in that state is: :class:`MemberStatus`
keeps, per (group, member) of the configuration, the state last seen and the
``now`` at which it was first seen. The core shows it every member whose
membership, pause, activity or availability changed at the end of each input
(the store and the availability gather them in ``touched``), so a stamp is the
``now`` of the event or timer that changed the state; nothing reads a clock.
A member first seen (at start, or added by a reload) is stamped then. It also
counts the calls of each group a member answered on this node since it started.

A *control change* is a member logging in or out, pausing or unpausing, from
any origin (the operators' API, the ``*51``/``*52`` feature codes, a reload
that changed ``joined``). The core notes each one that changed something as a
:class:`MembershipChange` for its driver, which turns it into a record
(:class:`~huntgroup.engine.b2bua.call_records.MemberChange`); another node's
changes, merged from the shared state, are recorded by that node, not here.

Invariants: ``MemberStatus`` holds at most the memberships of the configuration
it was last given (:meth:`MemberStatus.retain`); a stamp only moves when the
state seen differs from the one kept; every :class:`MembershipChange` stands
for a change of the store (no record for a pause of a paused member).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from typing import Literal

from huntgroup.queue.availability import MemberState
from huntgroup.queue.events import ChangeOrigin

ChangeAction = Literal["login", "logout", "pause", "unpause"]


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """A control change of one member in one group, at ``at`` (the core's ``now``)."""

    at: float
    group: str
    member: str
    action: ChangeAction
    reason: str
    origin: ChangeOrigin


class MemberStatus:
    """Since when each member is in its state, and its answers, per group (see the module
    docstring)."""

    __slots__ = ("_answered", "_seen", "_wrapping_up")

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], tuple[MemberState, float]] = {}
        self._answered: dict[tuple[str, str], int] = {}
        self._wrapping_up: set[tuple[str, str]] = set()

    def count_answer(self, group: str, member: str) -> None:
        key = (group, member)
        self._answered[key] = self._answered.get(key, 0) + 1

    def answered(self, group: str, member: str) -> int:
        """Calls of ``group`` that ``member`` answered on this node since it started."""
        return self._answered.get((group, member), 0)

    def observe(self, group: str, member: str, state: MemberState, *, now: float) -> float:
        """``member`` is in ``state`` in ``group`` at ``now``; returns since when."""
        key = (group, member)
        seen = self._seen.get(key)
        if seen is not None and seen[0] is state:
            return seen[1]
        self._seen[key] = (state, now)
        if state is MemberState.WRAP_UP:
            self._wrapping_up.add(key)
        else:
            self._wrapping_up.discard(key)
        return now

    def wrapping_up(self) -> set[str]:
        """Members last seen in wrap-up: its end, another node's timer, changes nothing
        in the store, so the core looks at them again when that node says so."""
        return {member for _, member in self._wrapping_up}

    def retain(self, memberships: Container[tuple[str, str]]) -> None:
        """Forget every (group, member) not in ``memberships`` (a reload removed it)."""
        self._seen = {k: v for k, v in self._seen.items() if k in memberships}
        self._answered = {k: v for k, v in self._answered.items() if k in memberships}
        self._wrapping_up = {k for k in self._wrapping_up if k in memberships}

    def __len__(self) -> int:
        return len(self._seen)
