"""Simulated calls per second of CPU: a day of a 100-member group (about 20,000 calls).

The scenario: one round-robin group of 100 members, Poisson arrivals at
833.3 calls/h for 24 h (about 20,000 calls), exponential talk times of mean
180 s (about 42 Erlangs), exponential patience of mean 120 s; members answer
90 % of offers after an exponential delay of mean 5 s and let the others ring
for the 15 s no-answer timeout. Timed: one replication of the driver through
the real group core (``run_replication``), and the same replication plus its
statistics (``summarize_run``), in CPU seconds (``time.process_time``).
Target: under 5 s for the day.

Baseline, measured in the same run: the same scenario written as a plain
SimPy model (members in a FIFO ``Store``, callers as processes that take the
next free member, ring it, and put it back), with none of the group core's
rules (no queue bound, no max_wait timer, no hunt passes, no state store).

Run: .venv/bin/python benchmarks/bench_simulate.py [--runs 5] [--no-write]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import simpy
import yaml
from report import write_section

from huntgroup.simulations.model.scenario import Scenario, load_scenario
from huntgroup.simulations.virtual.driver import run_replication
from huntgroup.simulations.virtual.metrics import summarize_run

MEMBERS = 100
PER_HOUR = 20_000 / 24
DURATION = 86_400.0
TALK_MEAN = 180.0
PATIENCE_MEAN = 120.0
ANSWER_P = 0.9
DELAY_MEAN = 5.0
TIMEOUT = 15.0


def build_scenario(directory: Path) -> Scenario:
    numbers = [f"01{i:08d}" for i in range(MEMBERS)]
    groups = {
        "lines": [{"number": n, "password": "x"} for n in numbers],
        "groups": [
            {
                "name": "Support",
                "pilot": "0999999999",
                "algorithm": "round_robin",
                "no_answer_timeout": TIMEOUT,
                "queue": {"max_length": 1000, "max_wait": 600},
                "members": [{"line": n, "position": i + 1} for i, n in enumerate(numbers)],
            }
        ],
    }
    (directory / "groups.yaml").write_text(yaml.safe_dump(groups))
    scenario = {
        "config": "groups.yaml",
        "duration": DURATION,
        "seed": 1,
        "traffic": [
            {
                "group": "Support",
                "arrivals": {"poisson": {"per_hour": PER_HOUR}},
                "talk_time": {"exponential": {"mean": TALK_MEAN}},
                "patience": {"exponential": {"mean": PATIENCE_MEAN}},
            }
        ],
        "members": {
            "default": {
                "answer_probability": ANSWER_P,
                "answer_delay": {"exponential": {"mean": DELAY_MEAN}},
            }
        },
    }
    (directory / "day.yaml").write_text(yaml.safe_dump(scenario))
    return load_scenario(directory / "day.yaml")


def measure_driver(scenario: Scenario, *, with_stats: bool) -> tuple[float, int]:
    t0 = time.process_time()
    run = run_replication(scenario, 0)
    if with_stats:
        summarize_run(run, scenario)
    return time.process_time() - t0, len(run.calls)


def simpy_day(seed: int) -> tuple[float, int]:
    """The same day as a plain SimPy model; returns (CPU seconds, calls)."""
    rng = np.random.default_rng(seed)
    env = simpy.Environment()
    members = simpy.Store(env)
    members.items.extend(range(MEMBERS))
    calls = 0

    def caller(patience: float, talk: float) -> Generator[Any, Any, None]:
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

    def arrivals() -> Generator[Any, Any, None]:
        nonlocal calls
        rate = PER_HOUR / 3600.0
        while True:
            yield env.timeout(rng.exponential(1 / rate))
            if env.now >= DURATION:
                return
            calls += 1
            env.process(caller(rng.exponential(PATIENCE_MEAN), rng.exponential(TALK_MEAN)))

    t0 = time.process_time()
    env.process(arrivals())
    env.run()
    return time.process_time() - t0, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scenario = build_scenario(Path(tmp))
        results: dict[str, tuple[float, int]] = {}
        for label, fn in (
            ("huntgroup driver + RoutingCore", lambda: measure_driver(scenario, with_stats=False)),
            (
                "huntgroup driver + RoutingCore + statistics",
                lambda: measure_driver(scenario, with_stats=True),
            ),
            ("baseline: plain SimPy model", lambda: simpy_day(1)),
        ):
            samples = [fn() for _ in range(args.runs)]
            results[label] = (statistics.median(s for s, _ in samples), samples[0][1])
    rows = ["| model | calls | CPU seconds | calls per CPU second |", "|---|---|---|---|"]
    for label, (seconds, calls) in results.items():
        rows.append(f"| {label} | {calls:,} | {seconds:.2f} | {calls / seconds:,.0f} |")
    day = results["huntgroup driver + RoutingCore + statistics"][0]
    body = (
        f"A day of a {MEMBERS}-member round-robin group: Poisson arrivals at {PER_HOUR:.1f}/h "
        f"for 24 h, exponential talk (mean {TALK_MEAN:.0f} s) and patience (mean "
        f"{PATIENCE_MEAN:.0f} s), members answering {ANSWER_P:.0%} of offers after an "
        f"exponential delay (mean {DELAY_MEAN:.0f} s). Median of {args.runs} runs, CPU time. "
        f"Simulated day: {day:.2f} s (target: under 5 s).\n\n" + "\n".join(rows)
    )
    print(body)
    if not args.no_write:
        write_section("simulate", "python benchmarks/bench_simulate.py --runs 5", body)


if __name__ == "__main__":
    main()
