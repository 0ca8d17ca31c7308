"""Service level per group: the share of its calls answered within a threshold.

Theory of operation
-------------------
:class:`ServiceLevels` counts, per group, the call records it is handed
(:meth:`ServiceLevels.add`), and says what share of them were answered within
``threshold`` seconds. The definition is Asterisk's ``servicelevel`` with short
abandons left out (docs/operations.md, "Wallboard"):

    service level = answered within N s / (answered + unanswered after waiting more than N s)

- a group call (``kind == "group"``) answered by a member counts in both terms
  when it waited at most N seconds (``wait``: arrival to answer), in the
  denominator only otherwise;
- a group call that left unanswered (``abandoned``, ``timeout``,
  ``no_answer``, ``forwarded``) after waiting more than N seconds counts
  against the group; one that left within N seconds counts for nothing: the
  group could not have answered it within the target (Asterisk's SL2 counts
  such short abandons *for* the group, which flatters it);
- a call that never entered the group (``queue_full``, ``refused``) and every
  ``direct`` or ``outgoing`` call count for nothing.

No call counted yet gives no percentage (None), not 100 %.

The object reads no clock: which records belong to "today" is the caller's
business (the wallboard's driver resets it at local midnight,
:mod:`huntgroup.admin.wallboard_data`). Its table is bounded by the groups of
the configuration: records of groups it was not told about are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

UNANSWERED = frozenset({"abandoned", "timeout", "no_answer", "forwarded"})
"""Outcomes of a call that waited in the group and left without a member."""


class EndedCall(Protocol):
    """What the service level reads of a call record (``CallRecord``, COMMON fields)."""

    @property
    def kind(self) -> str: ...
    @property
    def group(self) -> str | None: ...
    @property
    def outcome(self) -> str: ...
    @property
    def wait(self) -> float: ...
    @property
    def end(self) -> float: ...


@dataclass(slots=True)
class GroupServiceLevel:
    """The counts of one group since the last reset."""

    answered_within: int = 0  # answered after waiting at most the threshold
    answered: int = 0  # answered, whatever the wait
    unanswered_after: int = 0  # left unanswered after waiting more than the threshold
    short_abandons: int = 0  # left unanswered within the threshold: not counted

    @property
    def counted(self) -> int:
        """The denominator: the calls the service level is a share of."""
        return self.answered + self.unanswered_after

    @property
    def percent(self) -> float | None:
        """The service level in percent, None while no call counts."""
        counted = self.counted
        return None if counted == 0 else 100.0 * self.answered_within / counted

    def as_dict(self) -> dict[str, int | float | None]:
        percent = self.percent
        return {
            "percent": None if percent is None else round(percent, 1),
            "answered_within": self.answered_within,
            "answered": self.answered,
            "unanswered_after": self.unanswered_after,
            "short_abandons": self.short_abandons,
        }


class ServiceLevels:
    """Service level of every group of a configuration (see the module docstring)."""

    def __init__(self, threshold: float, groups: Iterable[str]) -> None:
        if threshold <= 0:
            raise ValueError(f"service level threshold must be positive, not {threshold}")
        self.threshold = threshold
        self._groups: dict[str, GroupServiceLevel] = {g: GroupServiceLevel() for g in groups}

    def add(self, record: EndedCall) -> None:
        """Count one ended call (ignored unless it is a call of a known group)."""
        if record.kind != "group" or record.group is None:
            return
        counts = self._groups.get(record.group)
        if counts is None:
            return
        within = record.wait <= self.threshold
        if record.outcome == "answered":
            counts.answered += 1
            counts.answered_within += within
        elif record.outcome in UNANSWERED:
            if within:
                counts.short_abandons += 1
            else:
                counts.unanswered_after += 1

    def of(self, group: str) -> GroupServiceLevel:
        """The counts of ``group`` (zero for a group it does not know)."""
        return self._groups.get(group) or GroupServiceLevel()

    def reset(self) -> None:
        """Start counting afresh (a new day)."""
        for group in self._groups:
            self._groups[group] = GroupServiceLevel()

    def regroup(self, groups: Iterable[str]) -> None:
        """Follow a reload: keep the counts of the groups still there, add the new ones."""
        self._groups = {g: self._groups.get(g) or GroupServiceLevel() for g in groups}
