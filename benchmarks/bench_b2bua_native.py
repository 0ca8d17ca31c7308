"""CPU per call of the live server, interpreted against the compiled build, side by side.

The call and the run are ``bench_b2bua.py``'s (a SIPp caller at a fixed rate for
10 s, a SIPp member answering at once, the caller hanging up after 1 s, one group
of 100 members; each run in its own network namespace with only loopback). Here
the same server runs at the same rates from two trees: the checkout (interpreted)
and a compiled build (``scripts/build_native.sh --set all``, ``--native DIR``).
Each round runs every rate once on each build, in turn, so a load that comes and
goes falls on both. Reported per build and rate: the server's CPU per call (CPU
seconds over calls; median and spread of the rounds), its CPU over the steady part,
and whether every call held.

The search for the highest rate held, against sippy, is ``bench_b2bua.py``'s; this
one says what the compiled build does to the same server at the same load.

Run: .venv/bin/python benchmarks/bench_b2bua_native.py --native build/native
                                                       [--rates 200,300] [--rounds 3]
                                                       [--no-write]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_b2bua import ROOT, Point, run_isolated
from report import check_native_build, write_section


def check_build(native: Path) -> None:
    """Refuse a missing or stale build, or one where the B2BUA is interpreted."""
    check_native_build(native, "all")
    if not list((native / "huntgroup/engine/b2bua").glob("*.so")):
        raise SystemExit(f"{native}: the B2BUA is not compiled there (use --set all)")


def cell(points: list[Point]) -> str:
    per_call = [p.cpu_per_call_ms for p in points if p.cpu_per_call_ms is not None]
    steady = [p.steady_cpu_percent for p in points if p.steady_cpu_percent is not None]
    held = sum(p.held for p in points)
    if not per_call:
        return "no figure"
    return (
        f"{statistics.median(per_call):.2f} ms ({min(per_call):.2f}-{max(per_call):.2f}), "
        f"steady CPU {statistics.median(steady):.0f} %, held {held}/{len(points)}"
    )


def ratio(interp: list[Point], native: list[Point]) -> str:
    a = [p.cpu_per_call_ms for p in interp if p.cpu_per_call_ms is not None]
    b = [p.cpu_per_call_ms for p in native if p.cpu_per_call_ms is not None]
    if not a or not b:
        return "-"
    return f"{statistics.median(a) / statistics.median(b):.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--native", type=Path, required=True)
    parser.add_argument("--rates", default="200,300")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    native = args.native.resolve()
    check_build(native)
    rates = [int(r) for r in args.rates.split(",") if r]
    builds = {"interpreted": ROOT, "compiled": native}
    points: dict[tuple[str, int], list[Point]] = {(b, r): [] for b in builds for r in rates}
    for n in range(args.rounds):
        for rate in rates:
            for label, tree in builds.items():
                point = run_isolated("huntgroup", rate, tree=tree)
                points[(label, rate)].append(point)
                print(
                    f"round {n + 1} {label:11} {rate}/s: {point.cpu_per_call_ms or 0:.2f} ms/call, "
                    f"{'held' if point.held else 'failed: ' + point.failure_kind}",
                    flush=True,
                )
    rows = [
        "| rate | interpreted: CPU per call | compiled: CPU per call | interpreted / compiled |",
        "|---:|---|---|---:|",
    ]
    for rate in rates:
        i, c = points[("interpreted", rate)], points[("compiled", rate)]
        rows.append(f"| {rate}/s | {cell(i)} | {cell(c)} | {ratio(i, c)} |")
    body = "\n".join(
        [
            f"{args.rounds} rounds; each rate once per build per round, in turn. CPU per call: "
            "the server's CPU seconds over the run's calls, median (min-max) of the rounds. "
            "Target of issue 14: at most 1.0 ms per call.",
            "",
            *rows,
        ]
    )
    print(body)
    if not args.no_write:
        command = (
            f"python benchmarks/bench_b2bua_native.py --native {args.native} "
            f"--rates {args.rates} --rounds {args.rounds}"
        )
        write_section("b2bua-native", command, body)


if __name__ == "__main__":
    main()
