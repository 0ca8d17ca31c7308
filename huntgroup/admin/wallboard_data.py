"""What the wallboard shows: one JSON snapshot of every group, and today's service level.

Theory of operation
-------------------
:class:`WallboardData` builds the snapshot the page renders
(:meth:`WallboardData.snapshot`) from the B2BUA's views of the queues and
members and from :class:`TodaysServiceLevels`, a report sink fed with every
call record. Durations are sent as the wall-clock time they started
(``oldest_since``, ``since``, whole epoch seconds), not as seconds elapsed: the
page makes them tick, and two snapshots of an unchanged node are equal, so the
event stream sends one only when something changed. The snapshot's ``time``
(the server's clock, which the page uses to correct its own) is left out of
that comparison (:func:`without_time`).

"Today" is the server's local day: :class:`TodaysServiceLevels` starts
afresh at the first record or snapshot of a new local date (the day boundary
is read from the wall clock here, in the driver, never in the sans-I/O code).
Records of an earlier day (a call that ended at 23:59:59, delivered after
midnight) are not counted.

The queues and members are the B2BUA's views (``view_queues``,
``view_members``: the same figures as ``huntgroup ctl``); waits and times in
state come as seconds at ``now`` and are turned into start times here.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from huntgroup.admin.service_level import EndedCall, ServiceLevels

if TYPE_CHECKING:
    from huntgroup.config.models import Config
    from huntgroup.engine.aio.server import Server

Snapshot = dict[str, Any]


def local_day(wall: float) -> datetime.date:
    """The server's local date at epoch ``wall``."""
    return datetime.datetime.fromtimestamp(wall).date()  # local time: "today"


class TodaysServiceLevels:
    """A report sink: today's service level per group (see the module docstring).

    ``config`` gives the running configuration: its groups are the ones
    counted, followed across reloads (a group removed is forgotten, a new one
    counted from its first call).
    """

    def __init__(self, threshold: float, config: Callable[[], Config], *, wall: float) -> None:
        self._config = config
        self._groups_of: Config = config()
        self.levels = ServiceLevels(threshold, (g.name for g in self._groups_of.groups))
        self.day = local_day(wall)

    def roll(self, wall: float) -> datetime.date:
        """Start afresh when ``wall`` is on a later local day; return that day. Follow a
        reload of the configuration too."""
        config = self._config()
        if config is not self._groups_of:
            self._groups_of = config
            self.levels.regroup(g.name for g in config.groups)
        day = local_day(wall)
        if day > self.day:
            self.levels.reset()
            self.day = day
        return day

    def call_ended(self, record: EndedCall) -> None:
        """A call record (``Server.reports``): counted when it ended today."""
        if self.roll(record.end) == self.day:
            self.levels.add(record)

    def member_changed(self, change: object) -> None:
        """Member changes do not move the service level."""


class WallboardData:
    """Builds the wallboard's snapshots for one server (see the module docstring)."""

    def __init__(self, server: Server, service_levels: TodaysServiceLevels) -> None:
        self.server = server
        self.service_levels = service_levels

    def snapshot(self, *, now: float, wall: float) -> Snapshot:
        """Every group as the page shows it; ``now`` is the loop's clock, ``wall`` epoch."""
        b2bua = self.server.b2bua
        levels = self.service_levels
        levels.roll(wall)
        groups: list[dict[str, Any]] = []
        for queue in b2bua.view_queues(now=now):
            name = queue["group"]
            callers = int(queue["callers"])
            groups.append(
                {
                    "group": name,
                    "pilot": queue["pilot"],
                    "callers": callers,
                    "oldest_since": (
                        round(wall - float(queue["oldest_wait_seconds"])) if callers else None
                    ),
                    "members_total": queue["members_total"],
                    "members_free": queue["members_free"],
                    "service_level": levels.levels.of(name).as_dict(),
                    "members": [
                        {
                            "member": m["member"],
                            "name": m["name"],
                            "state": m["state"],
                            "since": round(wall - float(m["state_seconds"])),
                            "paused_reason": m["paused_reason"],
                        }
                        for m in b2bua.view_members(name, now=now) or []
                    ],
                }
            )
        return {
            "time": wall,
            "day": levels.day.isoformat(),
            "service_level_seconds": levels.levels.threshold,
            "draining": not b2bua.accepting,
            "groups": groups,
        }


def without_time(snapshot: Snapshot) -> Snapshot:
    """The snapshot less its ``time``: what says whether anything changed."""
    return {k: v for k, v in snapshot.items() if k != "time"}
