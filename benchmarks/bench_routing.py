"""Routing decisions per second of the group core, per algorithm and group size.

A decision is one ``CallArrived`` handled up to the first ``Ring``: the
strategy orders the group and the hunt skips busy members to the first free
one. Half of the members are busy (every other position), so the hunt has to
skip. The caller then hangs up (not timed), so every decision starts from the
same state.

Baseline, measured in the same run: the least work any router must do, a bare
scan of a Python list of dicts for the first free member, with no queue, no
timers and no state store.

Run: .venv/bin/python benchmarks/bench_routing.py [--runs 5] [--calls 2000] [--no-write]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import median_of, write_section

from huntgroup.config.models import ALGORITHMS, Config, GroupConfig, LineConfig, MemberConfig
from huntgroup.queue.actions import Ring
from huntgroup.queue.core import RoutingCore
from huntgroup.queue.events import CallAnswered, CallArrived, CallHungUp, OutgoingCallStarted

SIZES = (10, 100, 1000)


def build(algorithm: str, size: int) -> RoutingCore:
    numbers = [f"01{i:08d}" for i in range(size)]
    cfg = Config(
        lines=tuple(LineConfig(number=n, password="x") for n in numbers),
        groups=(
            GroupConfig(
                name="G",
                pilot="0999999999",
                algorithm=algorithm,  # type: ignore[arg-type]
                members=tuple(MemberConfig(line=n, position=i + 1) for i, n in enumerate(numbers)),
                queue={"max_wait": None},  # type: ignore[arg-type]
            ),
        ),
    )
    core = RoutingCore(cfg, now=0.0)
    for i, n in enumerate(numbers):
        if i % 2 == 0:  # every other member is on a call
            core.handle(OutgoingCallStarted(f"busy{i}", n), now=0.0)
            core.handle(CallAnswered(f"busy{i}"), now=0.0)
    return core


def decisions_per_second(algorithm: str, size: int, calls: int) -> float:
    core = build(algorithm, size)
    spent = 0.0
    now = 1.0
    for k in range(calls):
        event = CallArrived(f"c{k}", "G", "0611111111")
        t0 = time.perf_counter()
        actions = core.handle(event, now=now)
        spent += time.perf_counter() - t0
        assert any(isinstance(a, Ring) for a in actions)
        core.handle(CallHungUp(f"c{k}"), now=now)
        now += 0.001
    return calls / spent


def baseline_per_second(size: int, calls: int) -> float:
    members = [{"key": f"01{i:08d}", "busy": i % 2 == 0, "ringing": False} for i in range(size)]
    spent = 0.0
    for _ in range(calls):
        t0 = time.perf_counter()
        chosen = next(m for m in members if not m["busy"] and not m["ringing"])
        spent += time.perf_counter() - t0
        assert chosen
    return calls / spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = ["| algorithm | 10 members | 100 members | 1,000 members |", "|---|---|---|---|"]
    worst_us = 0.0
    for algorithm in ALGORITHMS:
        cells = []
        for size in SIZES:
            rate = median_of(
                args.runs, lambda a=algorithm, s=size: decisions_per_second(a, s, args.calls)
            )
            worst_us = max(worst_us, 1e6 / rate)
            cells.append(f"{rate:,.0f}/s ({1e6 / rate:.1f} µs)")
        rows.append(f"| `{algorithm}` | " + " | ".join(cells) + " |")
    cells = []
    for size in SIZES:
        rate = median_of(args.runs, lambda s=size: baseline_per_second(s, args.calls))
        cells.append(f"{rate:,.0f}/s ({1e6 / rate:.2f} µs)")
    rows.append("| baseline: bare first-free list scan | " + " | ".join(cells) + " |")
    body = (
        f"Routing decisions per second (median of {args.runs} runs of {args.calls} calls; "
        "half the members busy; time per decision in brackets). "
        f"Slowest decision: {worst_us:.1f} µs (target: well under 1,000 µs).\n\n" + "\n".join(rows)
    )
    print(body)
    if not args.no_write:
        write_section("routing", "python benchmarks/bench_routing.py --runs 5 --calls 2000", body)


if __name__ == "__main__":
    main()
