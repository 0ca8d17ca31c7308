"""The replications of one scenario, run and aggregated.

Theory of operation
-------------------
``simulate(scenario)`` runs the replications one after the other, each in a
fresh :class:`RoutingCore` (replication r draws its random numbers from keys
that include r), summarizes each and aggregates them; the aggregate carries
the scenario's description (``scenario_meta``). ``progress``, when given, is
told the share of the whole run done so far, replication by replication.
``simulate_variants`` does the same for several scenarios at once (``--compare``'s
one per algorithm). With ``jobs`` other than 1 the replications (of every variant)
run side by side in worker processes (``parallel``): the same results, in the same
order; progress then moves as each replication ends. Both the command
(``runner``) and ``--compare`` (``compare``) call them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from huntgroup.simulations.model.scenario import Scenario
from huntgroup.simulations.virtual.driver import RunResult, run_replication
from huntgroup.simulations.virtual.metrics import aggregate, summarize_run
from huntgroup.simulations.virtual.parallel import Outcome, run_many

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


def _summary(scenario: Scenario, outcomes: list[Outcome]) -> dict[str, Any]:
    summary = dict(aggregate([summary for _, summary in outcomes]))
    summary["scenario"] = scenario_meta(scenario)
    return summary


def simulate_variants(
    variants: list[tuple[Scenario, str]],
    *,
    progress: ProgressFn | None = None,
    jobs: int = 1,
) -> list[tuple[dict[str, Any], list[RunResult]]]:
    """:func:`simulate` of each ``(scenario, progress label)``, in order; with ``jobs``
    other than 1 (0: one per CPU) every replication of every variant in one pool."""
    if jobs == 1:
        return [simulate(s, progress=progress, label=label) for s, label in variants]
    tasks = [(scenario, r) for scenario, _ in variants for r in range(scenario.replications)]
    label = variants[0][1] if len(variants) == 1 else "simulate (parallel)"

    def done(finished: int) -> None:
        if progress is not None:
            progress(label, finished / len(tasks))

    outcomes = run_many(tasks, jobs, on_done=done)
    results = []
    for scenario, _ in variants:
        mine, outcomes = outcomes[: scenario.replications], outcomes[scenario.replications :]
        results.append((_summary(scenario, mine), [run for run, _ in mine]))
    return results


def simulate(
    scenario: Scenario,
    *,
    progress: ProgressFn | None = None,
    label: str = "simulate",
    jobs: int = 1,
) -> tuple[dict[str, Any], list[RunResult]]:
    """Run every replication; return the aggregated summary and the runs. ``jobs``:
    worker processes for the replications (1: here, one after the other)."""
    if jobs != 1 and scenario.replications > 1:
        return simulate_variants([(scenario, label)], progress=progress, jobs=jobs)[0]
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
    return _summary(scenario, list(zip(runs, summaries, strict=True))), runs
