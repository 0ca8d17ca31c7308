"""A/B of an interpreted and a mypyc-compiled huntgroup, in the same run (docs/native.md).

Each build is a directory holding a ``huntgroup`` package: the source tree
itself (interpreted) or a copy made by ``scripts/build_native.sh`` (compiled
modules shadow their .py). Every round runs one fresh process per build, in
turn, so a load that comes and goes on the shared machine falls on both; each
process measures its own baseline (the plain SimPy model, the bare list scan)
next to huntgroup, and says which modules were compiled.

    python scripts/native_ab.py sim --build interp=. --build native=build/native
    python scripts/native_ab.py routing --build interp=. --build native=build/native
    python scripts/native_ab.py month --days 3 --build ...

``--worker KIND`` is the inner process (one JSON line). Run it under
``valgrind --tool=callgrind`` with ``--reps 0`` and ``--reps 1``: the difference
of the two instruction counts is one replication, whatever else the machine runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
PROBES = (
    "huntgroup.queue.core",
    "huntgroup.distribution.walks",
    "huntgroup.simulations.virtual.driver",
    "huntgroup.engine.sip.parser",
    "huntgroup.engine.b2bua.facade",
)


def _compiled() -> list[str]:
    """The probe modules that are extension modules in this process."""
    import importlib

    found = []
    for name in PROBES:
        module = importlib.import_module(name)
        if str(getattr(module, "__file__", "")).endswith(".so"):
            found.append(name)
    return found


def worker_sim(reps: int, days: float, month: bool, bare: bool = False) -> dict[str, Any]:
    compiled = _compiled()  # imports huntgroup from PYTHONPATH before the bench's path edits
    sys.path.insert(0, str(BENCH))
    import bench_simulate as bs

    out: dict[str, Any] = {"compiled": compiled, "hg": [], "hg_stats": [], "simpy": []}
    with tempfile.TemporaryDirectory() as tmp:
        if month:
            scenario = bs.build_month(Path(tmp), days=int(days))
        else:
            scenario = bs.build_scenario(Path(tmp))
        for _ in range(reps):
            seconds, calls = bs.measure_driver(scenario, with_stats=False)
            out["hg"].append(seconds)
            out["calls"] = calls
            if bare:
                continue
            if not month:
                out["hg_stats"].append(bs.measure_driver(scenario, with_stats=True)[0])
                out["simpy"].append(bs.simpy_day(1)[0])
            else:
                dur = int(days) * 86_400.0
                t = bs.simpy_model(1, bs.MONTH_GROUPS, dur, bs.MONTH_PROFILE)[0]
                out["simpy"].append(t)
    return out


def worker_routing(reps: int, calls: int, only: str | None = None) -> dict[str, Any]:
    compiled = _compiled()
    sys.path.insert(0, str(BENCH))
    import bench_routing as br

    from huntgroup.config.models import ALGORITHMS

    out: dict[str, Any] = {"compiled": compiled, "baseline": []}
    for _ in range(reps):
        if only is None:
            out["baseline"].append(br.baseline_us(1000, calls))
        for algorithm in [only] if only else ALGORITHMS:
            decide, hang_up, rung = br.measure(algorithm, 1000, calls)
            out.setdefault(algorithm, []).append([decide, hang_up, rung])
    return out


def run_worker(kind: str, build: str, extra: list[str]) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(Path(build).resolve()))
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", kind, *extra],
        env=env,
        cwd="/",  # no '' entry that would put another tree's huntgroup first
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"worker {kind} on {build} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def spread(values: list[float], digits: int = 2) -> str:
    med, lo, hi = statistics.median(values), min(values), max(values)
    return f"{med:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", nargs="?", choices=("sim", "month", "routing"))
    parser.add_argument("--build", action="append", default=[], help="LABEL=DIR, in order")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=2, help="measures per process")
    parser.add_argument("--calls", type=int, default=1000, help="routing: calls per figure")
    parser.add_argument("--days", type=float, default=3, help="month: days simulated")
    parser.add_argument("--algorithm", help="worker routing: this algorithm only")
    parser.add_argument("--bare", action="store_true", help="worker: huntgroup only")
    parser.add_argument("--worker", choices=("sim", "month", "routing"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        if args.worker == "routing":
            result = worker_routing(args.reps, args.calls, args.algorithm)
        else:
            result = worker_sim(args.reps, args.days, args.worker == "month", args.bare)
        print(json.dumps(result))
        return

    builds = [b.split("=", 1) for b in args.build]
    extra = ["--reps", str(args.reps), "--calls", str(args.calls), "--days", str(args.days)]
    samples: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in builds}
    t0 = time.monotonic()
    for r in range(args.rounds):
        for label, build in builds:
            samples[label].append(run_worker(args.kind, build, extra))
        print(f"round {r + 1}/{args.rounds} ({time.monotonic() - t0:.0f} s)", file=sys.stderr)

    for label, runs in samples.items():
        print(f"## {label}: compiled probes {runs[0]['compiled']}")
        if args.kind in ("sim", "month"):
            hg = [x for run in runs for x in run["hg"]]
            simpy = [x for run in runs for x in run["simpy"]]
            ratios = [s / h for run in runs for h, s in zip(run["hg"], run["simpy"], strict=True)]
            print(
                f"calls {runs[0]['calls']:,}; huntgroup CPU s {spread(hg)}; SimPy {spread(simpy)}"
            )
            print(f"SimPy/huntgroup per pair: {spread(ratios)}")
            if args.kind == "sim":
                stats = [x for run in runs for x in run["hg_stats"]]
                st_ratios = [
                    s / h
                    for run in runs
                    for h, s in zip(run["hg_stats"], run["simpy"], strict=True)
                ]
                print(f"with statistics: CPU s {spread(stats)}; SimPy/that {spread(st_ratios)}")
        else:
            base = [x for run in runs for x in run["baseline"]]
            print(f"bare scan at 1,000: {spread(base)} us")
            for algorithm in [k for k in runs[0] if k not in ("compiled", "baseline")]:
                decide = [x[0] for run in runs for x in run[algorithm]]
                hang = [x[1] for run in runs for x in run[algorithm]]
                rung = runs[0][algorithm][0][2]
                print(
                    f"{algorithm:13s} decide {spread(decide, 1)} us; hang-up {spread(hang, 1)} us;"
                    f" rung {rung:g}"
                )


if __name__ == "__main__":
    main()
