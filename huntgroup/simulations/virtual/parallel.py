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

The workers are forked where the system can (Linux): they start at once with
the modules and the scenario already loaded, where a fresh interpreter
(``spawn``, the fallback elsewhere) pays every import again, 2 to 5 s per
worker measured on the 2-core machine. The command is one Python thread when it
forks (the pool forks its workers before it starts its own thread), and the BLAS
library numpy loads re-creates its threads in a forked child. There are at most
``jobs`` workers, never more than there are tasks. The collector is off in the
workers and in this process while the results come back: the runs are large,
acyclic trees of records (see ``driver.run_replication``), and collections while
they are unpickled would walk them again and again (it halves the cost of
sending a run back: 0.35 to 0.14 s each way for a day of 20,000 calls).

A worker's exception is raised here, as a run one after the other would raise
it, once the tasks already running have ended (those not yet started are
cancelled). ``on_done`` is told how many tasks have finished, as each one does.
"""

from __future__ import annotations

import gc
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
    start_method: str | None = None,
) -> list[Outcome]:
    """Every task's outcome, in the tasks' order, from up to ``jobs`` worker processes.

    ``work`` is what each worker runs on a task (a module-level function: it is
    sent to the workers by name); ``start_method``: how they start (None: fork
    where the system can, else spawn)."""
    if not tasks:
        return []
    outcomes: list[Outcome | None] = [None] * len(tasks)
    workers = min(resolve_jobs(jobs), len(tasks))
    method = start_method or (
        "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    )
    context = multiprocessing.get_context(method)
    collecting = gc.isenabled()
    gc.disable()
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=gc.disable) as pool:
            _collect(pool, tasks, work, outcomes, on_done)
    finally:
        if collecting:
            gc.enable()
    # every index is filled once _collect returns (it raises otherwise)
    return [outcome for outcome in outcomes if outcome is not None]


def _collect(
    pool: ProcessPoolExecutor,
    tasks: Sequence[Task],
    work: Callable[[Task], Outcome],
    outcomes: list[Outcome | None],
    on_done: Callable[[int], None] | None,
) -> None:
    """Submit every task to ``pool`` and put each outcome at its task's index."""
    index: dict[Future[Outcome], int] = {pool.submit(work, task): i for i, task in enumerate(tasks)}
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
