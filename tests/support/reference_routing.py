"""The routing decisions as they were before the index of free members: a reference.

Each decision scans the group: ``has_free`` tests every member until one is
free, ``is_empty`` every member, and a pass walks the strategy's full order
(``Strategy.order``: every member, least talk time sorting the whole group by
talk times computed from every call of the core), skipping those not free.
:func:`reference_decisions` puts these in place of the core's, for the tests
that hold the incremental decisions to the same actions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from unittest import mock

from huntgroup.distribution.walks import IsFree
from huntgroup.queue import arrivals, hunting, offers
from huntgroup.queue.context import RoutingContext
from huntgroup.queue.groups import GroupInfo
from huntgroup.queue.offers import GroupView, free_predicate


class IteratorWalk:
    """A pass over a strategy's full order, each member tested as the walk reaches it."""

    def __init__(self, order: Iterator[str]) -> None:
        self._order = order

    def next(self, is_free: IsFree) -> str | None:
        for member in self._order:
            if is_free(member):
                return member
        return None

    def rest(self, is_free: IsFree) -> list[str]:
        return [m for m in self._order if is_free(m)]


def has_free(core: RoutingContext, info: GroupInfo) -> bool:
    free = free_predicate(core, info.config, core._now)
    return any(free(c.key) for c in info.candidates)


def is_empty(core: RoutingContext, info: GroupInfo) -> bool:
    if info.config.queue.when_empty != "overflow":
        return False
    name, now, store, reachable = info.config.name, core._now, core.store, core.availability
    return not any(
        store.joined_since(name, c.key) is not None
        and store.paused(name, c.key) is None
        and reachable.is_reachable(c.key, now=now)
        for c in info.candidates
    )


def order(core: RoutingContext, info: GroupInfo) -> IteratorWalk:
    view = GroupView(core, info.config.name, core._now)
    return IteratorWalk(info.strategy.order(info.candidates, view))


@contextmanager
def reference_decisions() -> Iterator[None]:
    """Within: the core decides by scanning, as before the index (this module)."""
    with ExitStack() as stack:
        for module, names in (
            (offers, ("has_free", "is_empty", "order")),
            (hunting, ("has_free", "is_empty", "order")),
            (arrivals, ("has_free", "is_empty")),
        ):
            for name in names:
                stack.enter_context(mock.patch.object(module, name, globals()[name]))
        yield
