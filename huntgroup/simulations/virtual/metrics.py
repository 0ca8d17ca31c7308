"""Statistics of simulated calls: per group, per member, across replications.

Theory of operation
-------------------
``summarize_run`` turns one replication into the numbers of summary.json,
sorting the calls by group once (not once per group: a centre has many).
Calls count when they *arrive* inside the measurement window ``[warmup,
duration)``; time averages (queue length, occupancy) are taken over the same
window. ``aggregate`` combines the replications: every number becomes the
mean over replications, and when there are several a sibling ``NAME_ci95``
holds the half-width of its 95 % confidence interval (Student's t over the
replication means, which are independent).

Definitions (one group):

- ``offered``: calls that arrived; each ends with exactly one outcome
  (``answered``, ``abandoned``, ``timed_out``, ``rejected_full``,
  ``forwarded``, ``no_answer``, or ``unfinished`` when the run stopped first);
- ``wait``: arrival to answer, over answered calls (mean, p50, p90, p95, max);
- ``service_level[T]``: share of offered calls answered within T seconds;
- ``wait_probability``: share of offered calls not answered at once;
- ``mean_queue_length``: time-average of the number of queued callers;
- per member: ``offers``, ``answers``, ``talk_time`` (seconds of this group's
  calls) and ``occupancy`` (talk time inside the window over joined time
  inside the window);
- ``fairness``: Jain's index (sum x)^2 / (n sum x^2) of members' talk time,
  over members joined at some point of the window; 1 is perfectly even.

Invariants: shares are in [0, 1]; outcomes add up to ``offered``; a number
that has no sample (no answered call...) is ``null``, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy import stats

from huntgroup.simulations.model.scenario import Scenario
from huntgroup.simulations.virtual.driver import OUTCOMES, CallRecord, RunResult

SERVICE_LEVELS = (10, 20, 30)
ALL_OUTCOMES = (*OUTCOMES, "unfinished")


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _time_average(series: Sequence[tuple[float, int]], start: float, end: float) -> float:
    """Mean of a step function given as (time, value) changes, over [start, end)."""
    if end <= start:
        return 0.0
    area = 0.0
    for i, (t, value) in enumerate(series):
        t_next = series[i + 1][0] if i + 1 < len(series) else math.inf
        area += value * _overlap(t, t_next, start, end)
    return area / (end - start)


def jain(values: Sequence[float]) -> float | None:
    """Jain's fairness index; None when every value is zero or there are none."""
    squares = sum(v * v for v in values)
    if not values or squares == 0:
        return None
    return sum(values) ** 2 / (len(values) * squares)


def wait_stats(waits: Sequence[float]) -> dict[str, float | None]:
    if not waits:
        return {"mean": None, "p50": None, "p90": None, "p95": None, "max": None}
    arr = np.asarray(waits)
    p50, p90, p95 = np.percentile(arr, [50, 90, 95]).tolist()
    return {
        "mean": float(arr.mean()),
        "p50": p50,
        "p90": p90,
        "p95": p95,
        "max": float(arr.max()),
    }


def group_summary(
    group: str,
    members: Sequence[str],
    calls: Iterable[CallRecord],
    run: RunResult,
    scenario: Scenario,
) -> dict[str, Any]:
    start, end = scenario.warmup, scenario.duration
    all_calls = [c for c in calls if c.group == group]
    window = [c for c in all_calls if start <= c.arrival < end]
    offered = len(window)
    counts = dict.fromkeys(ALL_OUTCOMES, 0)
    for c in window:
        counts[c.outcome or "unfinished"] += 1
    waits = [w for c in window if (w := c.wait) is not None]

    def share(n: int) -> float | None:
        return n / offered if offered else None

    per_member: dict[str, dict[str, Any]] = {}
    for m in members:
        per_member[m] = {"offers": 0, "answers": 0, "talk_time": 0.0, "occupancy": None}
    for c in window:
        for o in c.offers:
            if o.member in per_member:
                per_member[o.member]["offers"] += 1
        if c.answered_by in per_member and c.answered_at is not None:
            stats_m = per_member[c.answered_by]
            stats_m["answers"] += 1
            stats_m["talk_time"] += (c.ended_at if c.ended_at is not None else run.end) - (
                c.answered_at
            )
    busy = dict.fromkeys(members, 0.0)
    for c in all_calls:
        if c.answered_by in busy and c.answered_at is not None:
            stop = c.ended_at if c.ended_at is not None else run.end
            busy[c.answered_by] += _overlap(c.answered_at, stop, start, end)
    present = []
    for m in members:
        joined = sum(_overlap(s, e, start, end) for s, e in run.joined.get((group, m), ()))
        if joined > 0:
            per_member[m]["occupancy"] = busy[m] / joined
            present.append(per_member[m]["talk_time"])
    series = run.queue_lengths.get(group)
    return {
        "offered": offered,
        **counts,
        "wait": wait_stats(waits),
        "service_level": {str(t): share(sum(1 for w in waits if w <= t)) for t in SERVICE_LEVELS},
        "wait_probability": share(
            sum(1 for c in window if not (c.wait is not None and c.wait <= 1e-9))
        ),
        "abandon_rate": share(counts["abandoned"]),
        "block_rate": share(counts["rejected_full"]),
        "mean_queue_length": _time_average(series, start, end) if series is not None else None,
        "members": per_member,
        "fairness": jain(present),
    }


def summarize_run(run: RunResult, scenario: Scenario) -> dict[str, Any]:
    """The ``groups`` part of summary.json for one replication."""
    by_group: dict[str, list[CallRecord]] = {}  # each group's calls, in the run's order
    for c in run.calls:
        if c.group is not None:
            by_group.setdefault(c.group, []).append(c)
    names = [t.group for t in scenario.traffic]
    names += sorted(set(by_group) - set(names))
    groups = {}
    for name in names:
        members = [m.key for m in scenario.config.group(name).ordered_members()]
        groups[name] = group_summary(name, members, by_group.get(name, ()), run, scenario)
    return {"groups": groups}


def _ci95(values: Sequence[float]) -> float | None:
    n = len(values)
    if n < 2:
        return None
    sd = float(np.std(values, ddof=1))
    return float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)


def aggregate(summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean of each number over replications, with ``NAME_ci95`` beside it when several."""
    if len(summaries) == 1:
        return summaries[0]
    out: dict[str, Any] = {}
    keys: list[str] = []
    for s in summaries:
        keys += [k for k in s if k not in keys]
    for key in keys:
        values = [s.get(key) for s in summaries]
        if any(isinstance(v, dict) for v in values):
            out[key] = aggregate([v for v in values if isinstance(v, dict)])
            continue
        numbers = [float(v) for v in values if isinstance(v, int | float)]
        if not numbers:
            out[key] = None
            out[f"{key}_ci95"] = None
            continue
        out[key] = float(np.mean(numbers))
        out[f"{key}_ci95"] = _ci95(numbers)
    return out
