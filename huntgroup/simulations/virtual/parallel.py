"""Replications run side by side, in worker processes.

Theory of operation
-------------------
A replication is a function of its scenario and its number alone: it draws its
random numbers from keys that include the number, builds its own RoutingCore and
shares nothing with the others (``driver.run_replication``). So :func:`run_many`
hands each ``(scenario, replication)`` task to a pool of worker processes and puts
the results back in the tasks' order: the same runs and the same summaries as one
after the other, in less wall time when cores are free (the CPU time is the same;
what a staffing sweep or ``--compare`` gains is the machine's other cores).

The workers are fresh interpreters (``spawn``): nothing is inherited from the
parent but the task, so no thread, lock or open file of the parent (a BLAS thread
pool, say) can be copied into them half-held. There are at most ``jobs`` of them,
never more than there are tasks. A worker's exception is raised in the parent,
as a run one after the other would raise it, once the tasks already running
have ended (those not yet started are cancelled). ``on_done`` is told how many tasks have
finished, as each one does.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from typing import Any

from huntgroup.simulations.model.scenario import Scenario
from huntgroup.simulations.virtual.driver import RunResult, run_replication
from huntgroup.simulations.virtual.metrics import summarize_run

Task = tuple[Scenario, int]
"""One replication to run: the scenario and the replication's number."""
Outcome = tuple[RunResult, dict[str, Any]]
"""A replication's run and its summary (``summarize_run``)."""
MAX_JOBS = 256
"""More worker processes than this is a typo, not a machine."""


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_jobs(jobs: int) -> int:
    """How many processes ``--jobs N`` asks for: N, or one per CPU for 0."""
    if jobs < 0 or jobs > MAX_JOBS:
        raise ValueError(f"jobs must be 0 (one per CPU) to {MAX_JOBS}, not {jobs}")
    return cpu_count() if jobs == 0 else jobs


def replicate(task: Task) -> Outcome:
    """Run one replication and summarize it (in a worker, or here)."""
    scenario, replication = task
    run = run_replication(scenario, replication)
    return run, summarize_run(run, scenario)


def run_many(
    tasks: Sequence[Task],
    jobs: int,
    *,
    on_done: Callable[[int], None] | None = None,
    work: Callable[[Task], Outcome] = replicate,
) -> list[Outcome]:
    """Every task's outcome, in the tasks' order, from up to ``jobs`` worker processes.

    ``work`` is what each worker runs on a task (a module-level function: it is
    sent to the workers by name)."""
    outcomes: list[Outcome | None] = [None] * len(tasks)
    if not tasks:
        return []
    workers = min(resolve_jobs(jobs), len(tasks))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        index: dict[Future[Outcome], int] = {
            pool.submit(work, task): i for i, task in enumerate(tasks)
        }
        pending: set[Future[Outcome]] = set(index)
        finished = 0
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                error = future.exception()
                if error is not None:
                    for other in pending:
                        other.cancel()
                    raise error
                outcomes[index[future]] = future.result()
                finished += 1
                if on_done is not None:
                    on_done(finished)
    return [outcome for outcome in outcomes if outcome is not None]
