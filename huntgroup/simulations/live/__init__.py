"""Live mode: a scenario played as real SIP calls against a running ``huntgroup serve``.

Theory of operation
-------------------
``huntgroup simulate SCENARIO --live --target HOST:PORT`` plays the same
scenario as the virtual-time simulator, but the routing is done by a real
server over UDP. This module is the outside world of that server, as SIP user
agents on one asyncio loop:

- **Calls** are planned exactly like the virtual driver plans them (same
  random streams: arrival times, talk time and patience of the n-th call of
  a group), so a live run and a virtual run of one scenario offer the same
  callers. Each call is an INVITE to the group's pilot with a PCMU SDP, from
  a caller number unique to the call (``06`` + 8 digits), sent from one
  caller socket. A caller hangs up when its patience runs out and no member
  answered yet: CANCEL before any 200, BYE after a 200 from the queue.
- **Members** are one UDP socket each. A fixed-URI member is bound exactly at
  its URI's address (which must be loopback or the ``--bind`` address); a
  line member is bound on ``--bind`` and REGISTERs its Contact with digest
  authentication (password, or the stored HA1). On an INVITE a member sends
  180, then draws from the very keys the virtual driver uses (seed, call,
  member, attempt) whether it answers and after which delay: 200 with SDP, or
  603 when it declines (``on_no_answer: decline``), or it lets it ring. The
  member who answered sends BYE after the call's talk time.
- **Availability.** A line member with a ``joined:`` schedule logs in and
  out with the server's feature codes, ``*51<pilot>`` / ``*52<pilot>``, once
  per group it belongs to (the driver applies a schedule to every group of
  the member): its state at 0 before the clock starts, then each window's
  start and end at its scaled time (``live.availability``). The intervals
  recorded are those the server accepted; at the end every scheduled member
  is put back in its configured state.
- **Own calls.** A line member's ``direct_calls`` are INVITEs to the line's
  own number from a caller number unique to the call (``07`` + 8 digits),
  drawn from the driver's streams; the server rings the line (or follows its
  forwarding, or hunts the call to a group with ``hunt_direct_calls`` when
  the line is busy: the record then joins that group, ``origin: direct``),
  the member answers with the driver's keys for that call, and the caller
  hangs up after the talk time. A line's ``outgoing_calls`` are INVITEs from
  its own socket to an external number (``09`` + 8 digits), authenticated
  after the 407, which the server sends to ``server.upstream``: the run plays
  that upstream (``live.own_calls``), which answers at once; the member hangs
  up after the talk time, and does not dial while ringing or on a call
  (``skipped``). Both are recorded as the driver's ``own_calls``.
- **Correlation.** The server tells a caller nothing when a member takes a
  call that was answered by the queue (hold music), so answers are recorded
  on the member side. The member finds the call from the INVITE's From user
  (the caller's number). When the group shows its pilot as caller id
  (``pilot_as_caller_id``), the B2BUA copies no header that could identify
  the caller; the member then takes the oldest call of that group still
  waiting for a member and not already ringing it (arrival order).
- **Time.** Real time, scaled: at ``speed`` X a scenario second lasts 1/X
  real seconds (arrivals, talk times, answer delays, patience, duration and
  drain). Times recorded are scenario seconds, ``(loop time - start) * X``.
  The server's own timers (``no_answer_timeout``, ``max_wait``, ``wrap_up``)
  run in real time: serve a configuration with those divided by X for a
  faithful comparison at speed X.

The records built are the virtual driver's :class:`CallRecord`, so
``metrics`` and ``report`` write the same files. Outcomes are inferred from
what the callers see: 486 = queue full, 480 or a BYE before any member
answered = ``no_answer`` (or ``timed_out`` once ``max_wait`` is reached), 302
= ``forwarded``. The queue length is the number of callers answered by the
queue (200 or 183 before a member answered) and not offered to a member since.

Modules: ``live.plan`` (options, the calls to place, what cannot be played),
``live.context`` (the scaled clock, records and queue view shared by the
agents), ``live.callers`` and ``live.members`` (the two kinds of agents),
``live.availability`` (the ``joined:`` schedules as feature calls),
``live.own_calls`` (outgoing calls and the played upstream), ``live.dialer``
(a line's calls through the server), ``live.sip`` (UDP endpoint, digest
answers, SDP); this module opens the sockets, registers the lines, plays the
calls and tears everything down.

Invariants: every socket is bound on a loopback or ``--bind`` address; a run
places at most ``max_calls`` calls and lasts at most ``(duration + drain) /
speed`` seconds, plus a bounded teardown; every call record gets exactly one
outcome; line members are unregistered at the end, and members with a
``joined:`` schedule are back in their configured state.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from huntgroup.simulations.live.availability import Availability
from huntgroup.simulations.live.callers import Callers
from huntgroup.simulations.live.context import LiveContext
from huntgroup.simulations.live.members import REGISTER_EXPIRES, Member
from huntgroup.simulations.live.own_calls import OutgoingCalls, Upstream
from huntgroup.simulations.live.plan import (
    LiveOptions,
    caller_number,
    live_problems,
    member_address,
    parse_target,
    plan_calls,
    plan_direct_calls,
    plan_outgoing_calls,
    upstream_address,
)
from huntgroup.simulations.live.sip import LiveError
from huntgroup.simulations.model.scenario import Scenario
from huntgroup.simulations.virtual.driver import RunResult

__all__ = [
    "LiveError",
    "LiveOptions",
    "LiveRun",
    "caller_number",
    "live_problems",
    "parse_target",
    "plan_calls",
    "plan_direct_calls",
    "plan_outgoing_calls",
    "play_live",
    "run_live",
]

TEARDOWN_SECONDS = 3.0  # real seconds for hang-ups and unregistrations at the end

log = logging.getLogger("huntgroup.live")


@dataclass(slots=True)
class LiveRun:
    """A live run: the records (as a virtual replication) and live-only numbers."""

    run: RunResult
    stats: dict[str, Any]


# --------------------------------------------------------------- orchestration
class _Discard(asyncio.DatagramProtocol):
    """Where the simulated phones' SDP sends RTP: received and dropped."""


async def _open_members(run: LiveContext) -> list[Member]:
    config = run.config
    members: list[Member] = []
    for key in run.members:
        line = config.line(key)
        member = Member(run, key, line)
        members.append(member)
        if line is not None:
            await member.open(run.opt.bind, 0)
        else:
            where = member_address(key, run.opt.bind)
            if isinstance(where, str):
                raise LiveError(f"member {where}")
            await member.open(*where)
    lines = [m for m in members if m.line is not None]
    results = await asyncio.gather(
        *(m.register(REGISTER_EXPIRES) for m in lines), return_exceptions=True
    )
    problems: list[str] = []
    for member, result in zip(lines, results, strict=True):
        if isinstance(result, LiveError):
            problems.append(str(result))
        elif isinstance(result, BaseException):
            problems.append(f"line {member.key}: no answer to REGISTER")
        elif result >= 300:
            hint = " (check its password in the configuration)" if result in (401, 403) else ""
            problems.append(f"line {member.key}: REGISTER refused with {result}{hint}")
    if problems:
        raise LiveError("members cannot be reached:\n  " + "\n  ".join(problems))
    return members


async def _open_upstream(run: LiveContext) -> Upstream | None:
    """The played ``server.upstream``, when a member places outgoing calls."""
    if not any(b.outgoing_calls is not None for b in run.sc.behaviours.values()):
        return None
    where = upstream_address(run.config, run.opt.bind)
    if isinstance(where, str):
        raise LiveError(where)
    upstream = Upstream(run)
    await upstream.open(*where)
    return upstream


async def _play(
    run: LiveContext,
    callers: Callers,
    availability: Availability,
    outgoing: OutgoingCalls,
    progress: Callable[[float], None] | None,
) -> None:
    sc = run.sc
    run.t0 = run.loop.time()
    availability.start()
    for rec in (*run.calls, *run.direct):
        run.call_at(rec.arrival, functools.partial(callers.place, rec))
    outgoing.start()
    if run.open_calls <= 0:
        run.done.set()
    horizon = run.t0 + (sc.duration + sc.drain) / run.speed
    while not run.done.is_set():
        left = horizon - run.loop.time()
        if left <= 0:
            break
        waiter: asyncio.Future[Any] = asyncio.ensure_future(run.done.wait())
        await asyncio.wait((waiter, run.fatal), timeout=min(left, 0.5))
        waiter.cancel()
        if run.fatal.done():
            run.fatal.result()  # raises the internal error
        if progress is not None:
            progress(min(1.0, run.now() / sc.duration))


async def _teardown(
    run: LiveContext,
    callers: Callers,
    members: list[Member],
    availability: Availability,
    outgoing: OutgoingCalls,
) -> None:
    run.stopping = True
    for leg in list(callers.legs.values()):
        if leg.state != "ended":
            callers.hang_up(leg)
    for member in members:
        member.hang_up_all()
    outgoing.hang_up_all()
    deadline = run.loop.time() + TEARDOWN_SECONDS
    while run.loop.time() < deadline and (
        outgoing.dialling or any(leg.state != "ended" for leg in callers.legs.values())
    ):
        await asyncio.sleep(0.05)
    await availability.restore()
    lines = [m for m in members if m.registered]
    for m in lines:
        m.stop_refresh()
    results = await asyncio.gather(*(m.register(0) for m in lines), return_exceptions=True)
    for member, result in zip(lines, results, strict=True):
        if isinstance(result, BaseException) or result >= 300:
            log.warning("member %s: unregistration failed: %r", member.key, result)


async def play_live(
    scenario: Scenario,
    options: LiveOptions,
    *,
    progress: Callable[[float], None] | None = None,
) -> LiveRun:
    """Play ``scenario`` against the server at ``options.target``; see the module doc."""
    problems = live_problems(scenario, options)
    if problems:
        raise LiveError("this scenario cannot be played live:\n  " + "\n  ".join(problems))
    run = LiveContext(scenario, options)
    sink, _ = await run.loop.create_datagram_endpoint(_Discard, local_addr=(options.bind, 0))
    run.sdp_port = int(sink.get_extra_info("sockname")[1])
    callers = Callers(run)
    members: list[Member] = []
    availability = Availability(run, {})
    outgoing = OutgoingCalls(run, {})
    upstream: Upstream | None = None
    started = time.monotonic()
    try:
        await callers.open()
        await callers.check_server()
        upstream = await _open_upstream(run)
        members = await _open_members(run)
        dialers = {m.key: m.dialer for m in members if m.dialer is not None}
        availability = Availability(run, dialers)
        outgoing = OutgoingCalls(run, {m.key: m for m in members})
        try:
            await availability.apply_initial()
            await _play(run, callers, availability, outgoing, progress)
        finally:
            end = run.now()
            for rec in (*run.calls, *run.direct):
                if rec.outcome is None:
                    rec.outcome = "unfinished" if rec.answered_at is None else "answered"
            await _teardown(run, callers, members, availability, outgoing)
    finally:
        for member in members:
            member.close()
        if upstream is not None:
            upstream.close()
        callers.endpoint.close()
        sink.close()
    endpoints = [callers.endpoint, *(m.endpoint for m in members)]
    if upstream is not None:
        endpoints.append(upstream.endpoint)
    own_calls = sorted(
        [*_direct_own_calls(run), *outgoing.records()], key=lambda c: (c[2], c[0], c[1])
    )
    result = RunResult(
        replication=0,
        calls=[*run.calls, *(r for r in run.direct if r.group is not None)],
        queue_lengths=run.queue_series,
        joined=availability.intervals(),
        end=end,
        events=sum(e.messages for e in endpoints),
        outgoing_skipped=sum(c.skipped for c in run.outgoing),
        own_calls=own_calls,
    )
    stats: dict[str, Any] = {
        "target": f"{options.target[0]}:{options.target[1]}",
        "speed": options.speed,
        "bind": options.bind,
        "calls_placed": len(run.placed),
        "real_seconds": round(time.monotonic() - started, 3),
        "sip_messages": result.events,
        "unmatched_invites": run.unmatched,
        "unexpected_statuses": dict(sorted(run.unexpected.items())),
        "members": {m.key: _member_stats(m, availability) for m in members},
        "availability_failures": availability.failures,
    }
    if run.direct:
        stats["direct_calls"] = _direct_stats(run)
    if run.outgoing:
        stats["outgoing_calls"] = outgoing.stats()
    if upstream is not None:
        stats["upstream"] = upstream.stats()
    return LiveRun(result, stats)


def _direct_own_calls(run: LiveContext) -> list[tuple[str, str, float, float]]:
    """``("direct", line, answered, ended)`` of the direct calls their own line took."""
    return [
        ("direct", r.answered_by, r.answered_at, r.ended_at)
        for r in run.direct
        if r.group is None
        and r.outcome == "answered"
        and r.answered_by == run.direct_line[r.call]
        and r.answered_at is not None
        and r.ended_at is not None
    ]


def _direct_stats(run: LiveContext) -> dict[str, Any]:
    """What became of the direct calls: taken by their line, hunted, other outcomes."""
    outcomes: dict[str, int] = {}
    for r in run.direct:
        if r.group is None:
            outcome = r.outcome or "unfinished"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return {
        "planned": len(run.direct),
        "answered_by_line": sum(
            r.group is None and r.answered_by == run.direct_line[r.call] for r in run.direct
        ),
        "hunted": sum(r.group is not None for r in run.direct),
        "outcomes": dict(sorted(outcomes.items())),
    }


def _member_stats(member: Member, availability: Availability) -> dict[str, Any]:
    """What one simulated phone did; with its ``*51`` / ``*52`` calls when it dialled any."""
    stats: dict[str, Any] = {"answers": member.answers, "declines": member.declines}
    calls = [
        {k: v for k, v in c.items() if k != "member"}
        for c in availability.feature_calls
        if c["member"] == member.key
    ]
    if calls:
        stats["feature_calls"] = calls
    return stats


def run_live(
    scenario: Scenario,
    options: LiveOptions,
    *,
    progress: Callable[[float], None] | None = None,
) -> LiveRun:
    """:func:`play_live` on a fresh event loop."""
    return asyncio.run(play_live(scenario, options, progress=progress))
