"""The hunt of one call: its passes over the group and the offers they make.

Theory of operation
-------------------
A hunt walks a strategy's order one *pass* at a time (a
:class:`~huntgroup.distribution.walks.Walk`: the order of the pass, read from
the group's index of free members). ``take(is_free)``
returns the next member(s) to offer: the next free member of the pass (one at a
time), or every free member left in the pass (``simultaneous``, ring all).
Members that are not free when the walk reaches them are skipped for this
pass. When the walk runs out, the pass is *exhausted*; the group core then
applies the algorithm's end-of-pass rule (stop for linear, a new pass
otherwise) or, when a fresh pass finds nobody free, puts the call back at the
head of the queue with no pass in progress.

Invariants: a member is offered at most once per pass; ``offers_in_pass``
counts the offers of the pass in progress; no pass is in progress exactly when
``in_pass`` is false.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from huntgroup.distribution.algorithms import Strategy
from huntgroup.distribution.walks import Walk


@dataclass(slots=True, init=False)
class Hunt:
    strategy: Strategy
    started_at: float | None = None
    passes: int = 0
    pass_started_at: float = float("-inf")
    offers_in_pass: int = 0
    _walk: Walk | None = field(default=None, repr=False)

    def __init__(
        self,
        strategy: Strategy,
        started_at: float | None = None,
        passes: int = 0,
        pass_started_at: float = float("-inf"),
        offers_in_pass: int = 0,
        _walk: Walk | None = None,
    ) -> None:
        self.strategy = strategy
        self.started_at = started_at
        self.passes = passes
        self.pass_started_at = pass_started_at
        self.offers_in_pass = offers_in_pass
        self._walk = _walk

    @property
    def in_pass(self) -> bool:
        return self._walk is not None

    def begin_pass(self, walk: Walk, *, now: float) -> None:
        if self.started_at is None:
            self.started_at = now
        self._walk = walk
        self.passes += 1
        self.pass_started_at = now
        self.offers_in_pass = 0

    def end_pass(self) -> None:
        self._walk = None

    def take(self, is_free: Callable[[str], bool]) -> list[str]:
        """The member(s) to offer next in this pass; [] when the pass is exhausted."""
        walk = self._walk
        if walk is None:
            return []
        if self.strategy.simultaneous:
            chosen = walk.rest(is_free)
        else:
            member = walk.next(is_free)
            chosen = [] if member is None else [member]
        self.offers_in_pass += len(chosen)
        return chosen
