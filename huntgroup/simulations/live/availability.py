"""Live mode: members' ``joined:`` windows played as ``*51`` / ``*52`` calls.

Theory of operation
-------------------
The virtual driver logs a member with a ``joined:`` schedule in and out of
*every* group it belongs to: at 0 it sets the state the schedule wants at 0
(a member whose first window starts later leaves at once, a configured
``joined: false`` member whose window starts at 0 joins), then it joins at
each window's start and leaves at its end; at an instant where one window
ends and the next starts it leaves first, then joins. Live mode plays the
same switches against the server with its feature codes: the member's line
dials ``*51<pilot>`` (join) or ``*52<pilot>`` (leave) once per group, so
the server applies the switch to exactly that group, as the driver does.

:func:`availability_plan` turns the schedules into :class:`Switch` lists.
The line's side of one feature call is a
:class:`~huntgroup.simulations.live.dialer.LineDialer` call on the member's
own socket: INVITE with a PCMU offer, the digest answer to the 407
(``Proxy-Authorization``, like the REGISTER digest), ACK to the 200, 200 to
the BYE the server sends right after. :class:`Availability` applies the
state at 0 *before* the clock starts (so no call of the run meets a member in
the wrong state, as in the driver where availability events come first),
follows the later switches at their scaled times (one task per member, so a
member's switches reach the server in order; the groups of one switch are
dialled at once), records when the server accepted each switch (scenario
seconds, when its 200 came back) and, at the end, puts every scheduled member
back in its configured state so the server is left as configured.

Invariants: a member's switches are dialled in schedule order, each once the
previous one was answered in every group; a switch is recorded only when the
server answered it with a 2xx; the recorded intervals have the driver's shape
``(group, member) -> [(start, end)]``, an open window ending at ``inf``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any

from huntgroup.config.models import Config
from huntgroup.simulations.live.context import LiveContext
from huntgroup.simulations.live.dialer import LineDialer
from huntgroup.simulations.live.sip import LiveError
from huntgroup.simulations.model.scenario import Scenario

JOIN, LEAVE = "*51", "*52"

log = logging.getLogger("huntgroup.live")

Intervals = dict[tuple[str, str], list[tuple[float, float]]]


@dataclass(frozen=True, slots=True)
class Switch:
    """A member's state from scenario time ``at`` on, in every group it belongs to."""

    at: float
    joined: bool


def availability_plan(scenario: Scenario) -> dict[str, list[Switch]]:
    """For each member with a ``joined:`` schedule: its state at 0, then each boundary.

    Switches come in the driver's order: by time, a leave before a join at
    the same instant (one window ending where the next one starts).
    """
    plan: dict[str, list[Switch]] = {}
    for key in sorted({m.key for g in scenario.config.groups for m in g.members}):
        schedule = scenario.behaviours[key].joined
        if schedule is None:
            continue
        windows = [(s, math.inf if e is None else e) for s, e in schedule]
        switches = [Switch(0.0, any(s <= 0.0 < e for s, e in windows))]
        for start, end in windows:
            if start > 0.0:
                switches.append(Switch(start, True))
            if end < math.inf:
                switches.append(Switch(end, False))
        plan[key] = switches
    return plan


def pilots_of(config: Config, member: str) -> list[tuple[str, str]]:
    """``(group, pilot)`` of every group ``member`` belongs to, in configuration order."""
    return [(g.name, g.pilot) for g in config.groups if any(m.key == member for m in g.members)]


# -------------------------------------------------------------- the schedules
class Availability:
    """Plays every ``joined:`` schedule of a run and records what the server accepted."""

    def __init__(self, run: LiveContext, dialers: dict[str, LineDialer]) -> None:
        self.run = run
        self.plan = availability_plan(run.sc)
        self.dialers = dialers
        self.state: dict[tuple[str, str], bool] = {}  # (group, member) -> joined, as accepted
        self.changes: dict[tuple[str, str], list[tuple[float, bool]]] = {}
        self.feature_calls: list[dict[str, Any]] = []  # every feature call, for the live stats
        self.failures = 0
        self._tasks: list[asyncio.Task[None]] = []

    # --------------------------------------------------------------- steps
    async def apply_initial(self) -> None:
        """The state at 0 of every schedule, before the clock starts; LiveError if refused."""
        members = sorted(self.plan)
        results = await asyncio.gather(
            *(self._apply(m, self.plan[m][0], initial=True) for m in members)
        )
        problems = [p for found in results for p in found]
        if problems:
            raise LiveError(
                "members cannot follow their 'joined' schedule:\n  " + "\n  ".join(problems)
            )

    def start(self) -> None:
        """Follow the later switches at their scaled times (after ``run.t0`` is set)."""
        for member in sorted(self.plan):
            later = self.plan[member][1:]
            if later:
                task = self.run.loop.create_task(self._follow(member, later))
                self._tasks.append(task)

    async def restore(self) -> None:
        """Cancel what is pending and put every scheduled member back as configured."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        config = self.run.config
        configured = {(g.name, m.key): m.joined for g in config.groups for m in g.members}
        members = sorted(self.plan)
        done = await asyncio.gather(*(self._switch(m, configured) for m in members))
        for member, results in zip(members, done, strict=True):
            for group, joined, status, _ in results:
                self._log(member, group, joined, status, None, None)
                if not _accepted(status):
                    log.warning(
                        "member %s: could not restore its configured state in %s (%s)",
                        member,
                        group,
                        status,
                    )

    # ------------------------------------------------------------- records
    def intervals(self) -> Intervals:
        """``(group, member) -> [(start, end)]`` joined, as the driver records them."""
        out: Intervals = {}
        for g in self.run.config.groups:
            for m in g.members:
                key = (g.name, m.key)
                changes = self.changes.get(key)
                if m.key not in self.plan or changes is None:
                    out[key] = [(0.0, math.inf)] if m.joined else []
                    continue
                spans: list[tuple[float, float]] = []
                since: float | None = None
                for at, joined in changes:
                    if joined and since is None:
                        since = at
                    elif not joined and since is not None:
                        spans.append((since, at))
                        since = None
                if since is not None:
                    spans.append((since, math.inf))
                out[key] = spans
        return out

    # ------------------------------------------------------------ plumbing
    async def _follow(self, member: str, switches: list[Switch]) -> None:
        run = self.run
        try:
            for switch in switches:
                wait = run.t0 + switch.at / run.speed - run.loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if run.stopping:
                    return
                await self._apply(member, switch, initial=False)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a bug in the schedule task stops the run, loudly
            run.fail(err)

    async def _apply(self, member: str, switch: Switch, *, initial: bool) -> list[str]:
        problems: list[str] = []
        code = JOIN if switch.joined else LEAVE
        wanted = {(g, member): switch.joined for g, _ in pilots_of(self.run.config, member)}
        for group, joined, status, at in await self._switch(member, wanted):
            at = 0.0 if initial else at
            self._log(member, group, joined, status, round(at, 3), switch.at)
            if _accepted(status):
                self._record(group, member, at, joined)
                continue
            self.failures += 1
            pilot = self.run.config.group(group).pilot
            problem = f"member {member}: {code}{pilot} ({group}) answered {status}"
            log.warning("%s", problem)
            problems.append(problem)
        return problems

    async def _switch(
        self, member: str, wanted: dict[tuple[str, str], bool]
    ) -> list[tuple[str, bool, int | str, float]]:
        """One feature call per group of ``member``, to the state ``wanted`` there.

        The groups are dialled at once (a member's switches are still awaited
        one after the other, so each group gets them in order). Per group: its
        name, the state dialled, the status, when the answer came.
        """

        async def one(group: str, pilot: str) -> tuple[str, bool, int | str, float]:
            joined = wanted[(group, member)]
            status = await self._dial(member, (JOIN if joined else LEAVE) + pilot)
            return group, joined, status, self.run.now()

        pilots = pilots_of(self.run.config, member)
        return list(await asyncio.gather(*(one(g, p) for g, p in pilots)))

    def _log(
        self,
        member: str,
        group: str,
        joined: bool,
        status: int | str,
        at: float | None,
        planned: float | None,
    ) -> None:
        self.feature_calls.append(
            {
                "member": member,
                "group": group,
                "joined": joined,
                "at": at,
                "planned": planned,
                "status": status,
                "restore": planned is None,
            }
        )

    async def _dial(self, member: str, code: str) -> int | str:
        dialer = self.dialers.get(member)
        if dialer is None:
            return "not a line"
        try:
            return await dialer.dial(code)
        except TimeoutError:
            return "timeout"
        except LiveError as err:
            return str(err)

    def _record(self, group: str, member: str, at: float, joined: bool) -> None:
        key = (group, member)
        if self.state.get(key) is joined:
            return
        self.state[key] = joined
        self.run.joined_state[key] = joined
        self.changes.setdefault(key, []).append((at, joined))


def _accepted(status: int | str) -> bool:
    return isinstance(status, int) and 200 <= status < 300
