"""The replications of one scenario, run and aggregated.

Theory of operation
-------------------
``simulate(scenario)`` runs the replications one after the other, each in a
fresh :class:`RoutingCore` (replication r draws its random numbers from keys
that include r), summarizes each and aggregates them; the aggregate carries
the scenario's description (``scenario_meta``). ``progress``, when given, is
told the share of the whole run done so far, replication by replication.
Both the command (``runner``) and ``--compare`` (``compare``) call it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from huntgroup.simulations.model.scenario import Scenario
from huntgroup.simulations.virtual.driver import RunResult, run_replication
from huntgroup.simulations.virtual.metrics import aggregate, summarize_run

ProgressFn = Callable[[str, float], None]


def scenario_meta(scenario: Scenario) -> dict[str, Any]:
    return {
        "file": scenario.file,
        "seed": scenario.seed,
        "replications": scenario.replications,
        "duration": scenario.duration,
        "warmup": scenario.warmup,
        "algorithms": {g.name: g.algorithm for g in scenario.config.groups},
    }


def _scaled(progress: ProgressFn, label: str, r: int, total: int) -> Callable[[float], None]:
    """Progress of replication ``r`` as a share of the whole run."""
    return lambda fraction: progress(label, (r + fraction) / total)


def simulate(
    scenario: Scenario, *, progress: ProgressFn | None = None, label: str = "simulate"
) -> tuple[dict[str, Any], list[RunResult]]:
    """Run every replication; return the aggregated summary and the runs."""
    runs: list[RunResult] = []
    summaries = []
    total = scenario.replications
    for r in range(total):
        tick = None
        if progress is not None:
            tick = _scaled(progress, label, r, total)
        run = run_replication(scenario, r, progress=tick)
        runs.append(run)
        summaries.append(summarize_run(run, scenario))
        if progress is not None:
            progress(label, (r + 1) / total)
    summary = dict(aggregate(summaries))
    summary["scenario"] = scenario_meta(scenario)
    return summary, runs
