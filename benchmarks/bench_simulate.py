"""Simulated calls per second of CPU: a day of a 100-member group, a month of a 1,000-member centre.

The day: one round-robin group of 100 members, Poisson arrivals at 833.3
calls/h for 24 h (about 20,000 calls), exponential talk times of mean 180 s
(about 42 Erlangs), exponential patience of mean 120 s; members answer 90 % of
offers after an exponential delay of mean 5 s and let the others ring for the
15 s no-answer timeout. Timed: one replication of the driver through the real
group core (``run_replication``), and the same replication plus its statistics
(``summarize_run``), in CPU seconds (``time.process_time``).

The month: a centre of 1,000 members in ten such groups of 100, each group
taking 750 calls/h from 9:00 to 17:00 (about 37 Erlangs, the day's load during
office hours) and none at night, every day for 30 days: about 1.8 million
calls. Timed: the replication plus its statistics.

Baseline, measured in the same run, interleaved with the huntgroup runs: the
same traffic written as a plain SimPy model (members in a FIFO ``Store``,
callers as processes that take the next free member, ring it, and put it
back), with none of the group core's rules (no queue bound, no max_wait timer,
no hunt passes, no state store). The ratio is SimPy's CPU time over
huntgroup's: above 1, huntgroup simulates faster. Target (issue 14): at least 2.

Worker processes (``simulate --jobs``): the day's scenario with ``--jobs-replications``
replications, simulated with ``jobs=1`` (one after the other) and with ``jobs`` equal
to the CPUs this process may use, in wall-clock seconds (``time.perf_counter``: what
``--jobs`` saves is waiting, not CPU), interleaved, with a check that both give the same
summary.

The compiled build (``--native DIR``, made by ``scripts/build_native.sh --out DIR``,
docs/native.md): the same replication plus statistics, timed the same way in a child
process that imports huntgroup from DIR, one child per run, interleaved with the others
in every round. The child refuses to run when the core and the driver are not extension
modules there, the bench refuses a build older than the sources, and the compiled run
must simulate the same number of calls as the interpreted one.

Run: .venv/bin/python benchmarks/bench_simulate.py [--runs 5] [--month-runs 3]
                                                   [--jobs-runs 3] [--native build/native]
                                                   [--no-write]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import simpy
import yaml
from report import check_native_build, write_section

from huntgroup.simulations.model.scenario import Scenario, load_scenario
from huntgroup.simulations.virtual.driver import run_replication
from huntgroup.simulations.virtual.metrics import summarize_run
from huntgroup.simulations.virtual.parallel import cpu_count
from huntgroup.simulations.virtual.replications import simulate

MEMBERS = 100
PER_HOUR = 20_000 / 24
DURATION = 86_400.0
TALK_MEAN = 180.0
PATIENCE_MEAN = 120.0
ANSWER_P = 0.9
DELAY_MEAN = 5.0
TIMEOUT = 15.0

MONTH_GROUPS = 10
MONTH_DAYS = 30
OFFICE_PER_HOUR = 750.0
OFFICE_HOURS = range(9, 17)
MONTH_PROFILE = tuple(OFFICE_PER_HOUR if h in OFFICE_HOURS else 0.0 for h in range(24))
DAY_PROFILE = (PER_HOUR,) * 24


def _numbers(group: int) -> list[str]:
    return [f"01{group:02d}{i:06d}" for i in range(MEMBERS)]


def _group(group: int) -> dict[str, Any]:
    return {
        "name": f"Support{group}" if group else "Support",
        "pilot": f"09{group:02d}999999",
        "algorithm": "round_robin",
        "no_answer_timeout": TIMEOUT,
        "queue": {"max_length": 1000, "max_wait": 600},
        "members": [{"line": n, "position": i + 1} for i, n in enumerate(_numbers(group))],
    }


def _scenario(directory: Path, name: str, groups: int, duration: float, arrivals: Any) -> Scenario:
    config = {
        "lines": [{"number": n, "password": "x"} for g in range(groups) for n in _numbers(g)],
        "groups": [_group(g) for g in range(groups)],
    }
    (directory / f"{name}-groups.yaml").write_text(yaml.safe_dump(config))
    scenario = {
        "config": f"{name}-groups.yaml",
        "duration": duration,
        "seed": 1,
        "traffic": [
            {
                "group": group["name"],
                "arrivals": arrivals,
                "talk_time": {"exponential": {"mean": TALK_MEAN}},
                "patience": {"exponential": {"mean": PATIENCE_MEAN}},
            }
            for group in config["groups"]
        ],
        "members": {
            "default": {
                "answer_probability": ANSWER_P,
                "answer_delay": {"exponential": {"mean": DELAY_MEAN}},
            }
        },
    }
    (directory / f"{name}.yaml").write_text(yaml.safe_dump(scenario))
    return load_scenario(directory / f"{name}.yaml")


def build_scenario(directory: Path) -> Scenario:
    """The day of the 100-member group."""
    return _scenario(directory, "day", 1, DURATION, {"poisson": {"per_hour": PER_HOUR}})


def build_month(directory: Path, days: int = MONTH_DAYS) -> Scenario:
    """The month of the 1,000-member centre (``days`` days of it)."""
    arrivals = {"profile": {"per_hour": list(MONTH_PROFILE)}}
    return _scenario(directory, "month", MONTH_GROUPS, days * 86_400.0, arrivals)


def measure_driver(scenario: Scenario, *, with_stats: bool) -> tuple[float, int]:
    t0 = time.process_time()
    run = run_replication(scenario, 0)
    if with_stats:
        summarize_run(run, scenario)
    return time.process_time() - t0, len(run.calls)


NATIVE_PROBES = ("huntgroup.queue.core", "huntgroup.simulations.virtual.driver")
ROOT = Path(__file__).resolve().parent.parent


def not_compiled() -> list[str]:
    """The probe modules this process runs interpreted (imported from a .py file)."""
    return [name for name in NATIVE_PROBES if not str(sys.modules[name].__file__).endswith(".so")]


def native_worker(point: str) -> None:
    """The child of :func:`measure_native`: one timed run, one JSON line on stdout."""
    import huntgroup.queue.core  # noqa: F401  (a probe; the driver is imported above)

    if missing := not_compiled():
        raise SystemExit(f"not compiled in this build: {', '.join(missing)}")
    with tempfile.TemporaryDirectory() as tmp:
        scenario = build_scenario(Path(tmp)) if point == "day" else build_month(Path(tmp))
        seconds, calls = measure_driver(scenario, with_stats=True)
    print(json.dumps({"seconds": seconds, "calls": calls}))


def measure_native(build: Path, point: str) -> tuple[float, int]:
    """CPU seconds and calls of one run of the compiled build in ``build`` (a child)."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", point],
        env=dict(os.environ, PYTHONPATH=str(build)),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the compiled run failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["seconds"]), int(result["calls"])


def check_native(build: Path) -> None:
    """Refuse a missing or stale build (see :func:`report.check_native_build`)."""
    check_native_build(build, "sim")


def same_calls(points: list[Point]) -> None:
    """Every model of huntgroup simulated the same calls (the compiled build too)."""
    counts = {p.label: p.calls for p in points if p.label.startswith("huntgroup")}
    if len(set(counts.values())) > 1:
        raise SystemExit(f"the builds simulated different runs: {counts}")


def measure_jobs(scenario: Scenario, jobs: int, summaries: list[Any]) -> tuple[float, int]:
    """Wall seconds of :func:`simulate` with ``jobs`` workers; its summary is kept."""
    t0 = time.perf_counter()
    summary, runs = simulate(scenario, jobs=jobs)
    summaries.append(summary)
    return time.perf_counter() - t0, sum(len(run.calls) for run in runs)


def jobs_section(scenario: Scenario, runs: int) -> list[str]:
    """The day's replications one after the other, and in one worker per CPU."""
    workers = cpu_count()
    summaries: list[Any] = []
    points = interleaved(
        runs,
        {
            "simulate, jobs 1": lambda: measure_jobs(scenario, 1, summaries),
            f"simulate, jobs {workers}": lambda: measure_jobs(scenario, workers, summaries),
        },
    )
    if any(summary != summaries[0] for summary in summaries):
        raise SystemExit("--jobs changed the results")
    alone, side = points
    return [
        f"**{scenario.replications} replications of the day, in worker processes** "
        f"(`simulate --jobs`): wall-clock seconds, {rounds(runs)}; one after the other "
        f"{alone.median:.2f} s ({alone.spread()}), in {workers} workers (one per CPU this "
        f"process may use) {side.median:.2f} s ({side.spread()}): "
        f"{alone.median / side.median:.2f}x less waiting, the same summary in every run. "
        "The CPU time is about the same (a forked worker starts at once, but each run goes "
        "back pickled and is read here, one after the other); the ratio grows with the cores.",
    ]


def simpy_model(
    seed: int, groups: int, duration: float, profile: Sequence[float]
) -> tuple[float, int]:
    """The same traffic as a plain SimPy model; returns (CPU seconds, calls).

    Each group: its members in a FIFO store, arrivals at the hourly rates of
    ``profile`` (thinned from the peak rate), callers who give up at their patience.
    """
    rng = np.random.default_rng(seed)
    env = simpy.Environment()
    calls = 0
    peak = max(profile)

    def caller(members: simpy.Store, patience: float, talk: float) -> Generator[Any, Any, None]:
        deadline = env.now + patience
        while True:
            get = members.get()
            got = yield get | env.timeout(max(0.0, deadline - env.now))
            if get not in got:
                get.cancel()
                return  # abandoned
            member = got[get]
            delay = rng.exponential(DELAY_MEAN)
            if rng.random() < ANSWER_P and delay < TIMEOUT:
                yield env.timeout(delay)
                yield env.timeout(talk)
                members.put(member)
                return
            yield env.timeout(TIMEOUT)
            members.put(member)

    def arrivals(members: simpy.Store) -> Generator[Any, Any, None]:
        nonlocal calls
        rate = peak / 3600.0
        while True:
            yield env.timeout(rng.exponential(1 / rate))
            if env.now >= duration:
                return
            if peak != profile[int(env.now // 3600) % 24] and (
                rng.random() * peak >= profile[int(env.now // 3600) % 24]
            ):
                continue  # thinned out: the rate of this hour is below the peak
            calls += 1
            patience, talk = rng.exponential(PATIENCE_MEAN), rng.exponential(TALK_MEAN)
            env.process(caller(members, patience, talk))

    t0 = time.process_time()
    for _ in range(groups):
        members = simpy.Store(env)
        members.items.extend(range(MEMBERS))
        env.process(arrivals(members))
    env.run()
    return time.process_time() - t0, calls


def simpy_day(seed: int) -> tuple[float, int]:
    """The day as a plain SimPy model; returns (CPU seconds, calls)."""
    return simpy_model(seed, 1, DURATION, DAY_PROFILE)


def simpy_month(seed: int) -> tuple[float, int]:
    """The month as a plain SimPy model; returns (CPU seconds, calls)."""
    return simpy_model(seed, MONTH_GROUPS, MONTH_DAYS * 86_400.0, MONTH_PROFILE)


@dataclass
class Point:
    """The samples of one measured model: CPU seconds of each run, calls simulated."""

    label: str
    seconds: list[float]
    calls: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def spread(self) -> str:
        return f"{min(self.seconds):.2f}-{max(self.seconds):.2f}"


def interleaved(runs: int, models: dict[str, Callable[[], tuple[float, int]]]) -> list[Point]:
    """``runs`` rounds, each model once per round in turn: a load that comes and goes on
    the machine falls on every model alike."""
    points = {label: Point(label, []) for label in models}
    for _ in range(runs):
        for label, fn in models.items():
            seconds, calls = fn()
            points[label].seconds.append(seconds)
            points[label].calls = calls
    return list(points.values())


def table(points: list[Point], baseline: Point, runs: int) -> list[str]:
    rows = [
        f"| model | calls | CPU seconds, median of {runs} | min-max | calls per CPU second "
        "| SimPy time / this time |",
        "|---|---|---|---|---|---|",
    ]
    for p in points:
        rows.append(
            f"| {p.label} | {p.calls:,} | {p.median:.2f} | {p.spread()} | "
            f"{p.calls / p.median:,.0f} | {baseline.median / p.median:.2f}x |"
        )
    return rows


def round_ratios(point: Point, baseline: Point) -> str:
    """The ratio of each round (SimPy over huntgroup, the runs of one round side by side)."""
    ratios = sorted(b / p for p, b in zip(point.seconds, baseline.seconds, strict=True))
    return ", ".join(f"{r:.2f}" for r in ratios)


COMPILED = "huntgroup compiled (mypyc) driver + RoutingCore + statistics"


def compiled_line(points: list[Point], baseline: Point) -> str:
    """The compiled build's sentence, when it was measured."""
    for p in points:
        if p.label == COMPILED:
            ratio = baseline.median / p.median
            return (
                f" Compiled build (`scripts/build_native.sh`): {p.median:.2f} s; SimPy time "
                f"over its: {ratio:.2f}x (rounds: {round_ratios(p, baseline)}); target at "
                f"least 2x: {verdict(ratio)}."
            )
    return ""


def verdict(ratio: float) -> str:
    return "met" if ratio >= 2.0 else "not met"


def rounds(n: int) -> str:
    return f"{n} interleaved round{'s' if n != 1 else ''}"


WHERE = (
    "Where the time goes (profiles of both points, what was changed, what is left): "
    "docs/simulations.md, section Performance."
)


def with_compiled_and_baseline(
    runs: int,
    ours: dict[str, Callable[[], tuple[float, int]]],
    native: Path | None,
    point: str,
    simpy: Callable[[], tuple[float, int]],
) -> list[Point]:
    """``ours``, then the compiled build (when given) and the SimPy baseline last,
    interleaved; every huntgroup model must have simulated the same calls."""
    models = dict(ours)
    if native is not None:
        models[COMPILED] = lambda: measure_native(native, point)
    models["baseline: plain SimPy model"] = simpy
    points = interleaved(runs, models)
    same_calls(points)
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="rounds of the day point")
    parser.add_argument("--month-runs", type=int, default=3, help="rounds of the month (0: skip)")
    parser.add_argument(
        "--jobs-runs", type=int, default=3, help="rounds of the --jobs point (0: skip)"
    )
    parser.add_argument("--jobs-replications", type=int, default=4)
    parser.add_argument(
        "--native", type=Path, help="also time the compiled build in this directory"
    )
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--worker", choices=("day", "month"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        native_worker(args.worker)
        return
    native: Path | None = args.native.resolve() if args.native else None
    if native is not None:
        check_native(native)
    command = (
        f"python benchmarks/bench_simulate.py --runs {args.runs} --month-runs {args.month_runs}"
        f" --jobs-runs {args.jobs_runs}" + (f" --native {args.native}" if native else "")
    )
    with tempfile.TemporaryDirectory() as tmp:
        day = build_scenario(Path(tmp))
        points = with_compiled_and_baseline(
            args.runs,
            {
                "huntgroup driver + RoutingCore": lambda: measure_driver(day, with_stats=False),
                "huntgroup driver + RoutingCore + statistics": lambda: measure_driver(
                    day, with_stats=True
                ),
            },
            native,
            "day",
            lambda: simpy_day(1),
        )
        jobs_lines: list[str] = []
        if args.jobs_runs > 0:
            several = dataclasses.replace(day, replications=args.jobs_replications)
            jobs_lines = ["", *jobs_section(several, args.jobs_runs)]
        month_points: list[Point] = []
        if args.month_runs > 0:
            month = build_month(Path(tmp))
            month_points = with_compiled_and_baseline(
                args.month_runs,
                {
                    "huntgroup driver + RoutingCore + statistics": lambda: measure_driver(
                        month, with_stats=True
                    ),
                },
                native,
                "month",
                lambda: simpy_month(1),
            )
    full, baseline = points[1], points[-1]
    ratio = baseline.median / full.median
    body = [
        f"Load average {os.getloadavg()[0]:.1f} at the end of these runs, on this 2-core "
        "machine: absolute times vary from run to run with what else runs, the ratios to "
        "the SimPy baseline, measured interleaved in the same run, are the figures to read.",
        "",
        f"**A day of a {MEMBERS}-member round-robin group**: Poisson arrivals at "
        f"{PER_HOUR:.1f}/h for 24 h, exponential talk (mean {TALK_MEAN:.0f} s) and patience "
        f"(mean {PATIENCE_MEAN:.0f} s), members answering {ANSWER_P:.0%} of offers after an "
        f"exponential delay (mean {DELAY_MEAN:.0f} s). CPU time, {rounds(args.runs)}. "
        f"Simulated day with statistics: {full.median:.2f} s; SimPy time over huntgroup's: "
        f"{ratio:.2f}x (rounds: {round_ratios(full, baseline)}); target at least 2x: "
        f"{verdict(ratio)}.{compiled_line(points, baseline)}",
        "",
        *table(points, baseline, args.runs),
    ]
    if month_points:
        m_full, m_base = month_points[0], month_points[-1]
        m_ratio = m_base.median / m_full.median
        body += [
            "",
            f"**A month of a {MEMBERS * MONTH_GROUPS:,}-member centre**: {MONTH_GROUPS} such "
            f"groups of {MEMBERS}, each taking {OFFICE_PER_HOUR:.0f} calls/h from "
            f"{OFFICE_HOURS.start}:00 to {OFFICE_HOURS.stop}:00 and none at night, for "
            f"{MONTH_DAYS} days. CPU time, {rounds(args.month_runs)}. Simulated "
            f"month with statistics: {m_full.median:.1f} s; SimPy time over huntgroup's: "
            f"{m_ratio:.2f}x (rounds: {round_ratios(m_full, m_base)})."
            f"{compiled_line(month_points, m_base)}",
            "",
            *table(month_points, m_base, args.month_runs),
        ]
    body += [*jobs_lines, "", WHERE]
    text = "\n".join(body)
    print(text)
    if not args.no_write:
        write_section("simulate", command, text)


if __name__ == "__main__":
    main()
