"""Two revisions of huntgroup side by side: B2BUA CPU per call and routing decision time.

What is measured
----------------
A change that should not change speed (a restructure, say) is checked
against the revision before it, in one run on one machine, so that the
machine's mood of the day weighs on both sides alike:

- **B2BUA**: ``bench_b2bua.py``'s point run (a SIPp caller, ``huntgroup
  serve`` with a 100-member linear group, a SIPp member answering at once,
  10 s at ``--rate`` calls/s, in a loopback-only network namespace). Both
  sides run this tree's ``bench_b2bua.py`` (same SIPp scenarios, same
  configuration), each with its own package first on the server's
  ``PYTHONPATH``. Reported: whether every call succeeded,
  the server's CPU per call (utime + stime / calls, the steadier figure) and
  the mean INVITE-to-200 time seen by the caller.
- **Routing**: ``bench_routing.py``'s ``decisions_per_second`` (one
  ``CallArrived`` up to the first ``Ring``, half the members busy) for every
  algorithm at ``--members``, imported from each side's own tree in a fresh
  interpreter; each run keeps the best of three measurements.

The two sides alternate (A B, B A, ...) ``--runs`` times and each figure is
the median over the runs, with the spread (min-max) beside it. The baseline
revision is exported with ``git archive`` into a temporary directory.

Run (as root, with sipp, unshare and ip installed):
    .venv/bin/python benchmarks/bench_revisions.py --baseline REV [--rate 150]
        [--runs 5] [--members 1000] [--pin CPU] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_b2bua import in_loopback_netns
from report import write_section

ROOT = Path(__file__).resolve().parent.parent
ALGORITHMS = ("ring_all", "linear", "circular", "round_robin", "least_active")
ROUTING_PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1] + "/benchmarks")
import bench_routing
out = {a: max(bench_routing.decisions_per_second(a, int(sys.argv[2]), int(sys.argv[3]))
           for _ in range(3))
       for a in sys.argv[4].split(",")}
print(json.dumps(out))
"""


@dataclass
class Side:
    """One revision's tree and what was measured on it."""

    label: str
    tree: Path
    cpu_ms_per_call: list[float] = field(default_factory=list)
    invite_ms: list[float] = field(default_factory=list)
    failed_runs: int = 0
    decision_us: dict[str, list[float]] = field(default_factory=dict)


def export(revision: str, into: Path) -> Path:
    """The tree of ``revision`` (``git archive``) under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision],
        capture_output=True,
        check=True,
    ).stdout
    tree = into / "baseline"
    tree.mkdir()
    tar_path = into / "baseline.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(tree, filter="data")
    return tree


def b2bua_point(side: Side, rate: int) -> None:
    script = ROOT / "benchmarks" / "bench_b2bua.py"
    point = in_loopback_netns(
        [sys.executable, str(script), "--point", "huntgroup", str(rate), "--tree", str(side.tree)],
        f"{side.label} @ {rate}/s",
    )
    calls = int(str(point["calls"]))
    cpu = point.get("cpu_seconds")
    held = point["failed"] == 0 and point["successful"] == calls
    if not held:
        side.failed_runs += 1
    if isinstance(cpu, int | float) and calls:
        side.cpu_ms_per_call.append(1000.0 * cpu / calls)
    side.invite_ms.append(float(str(point["invite_ms"])))
    print(
        f"  b2bua {side.label:9} {rate}/s: {point['successful']}/{calls} ok, "
        f"cpu {side.cpu_ms_per_call[-1] if side.cpu_ms_per_call else float('nan'):.3f} ms/call",
        flush=True,
    )


def routing_point(side: Side, members: int, calls: int, pin: str | None) -> None:
    env = dict(os.environ, PYTHONPATH=str(side.tree))
    pinned = ["taskset", "-c", pin] if pin else []
    done = subprocess.run(
        [*pinned, sys.executable, "-c", ROUTING_PROBE, str(side.tree), str(members), str(calls),
         ",".join(ALGORITHMS)],
        capture_output=True, text=True, check=True, env=env, timeout=600,
    )  # fmt: skip
    rates: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    for algorithm, rate in rates.items():
        side.decision_us.setdefault(algorithm, []).append(1e6 / rate)
    print(f"  routing {side.label:9} " + ", ".join(
        f"{a} {1e6 / r:.1f} µs" for a, r in rates.items()), flush=True)  # fmt: skip


def alternate(sides: tuple[Side, Side], runs: int, measure: Callable[[Side], None]) -> None:
    for run in range(runs):
        for side in sides if run % 2 == 0 else sides[::-1]:
            measure(side)


def spread(values: list[float], pattern: str) -> str:
    if not values:
        return "-"
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{pattern.format(mid)} ({pattern.format(low)}-{pattern.format(high)})"


def ratio(new: list[float], old: list[float]) -> str:
    """New over baseline, of the medians and of the best runs."""
    if not new or not old:
        return "-"
    return (
        f"{statistics.median(new) / statistics.median(old):.2f}x "
        f"(best runs: {min(new) / min(old):.2f}x)"
    )


def render(base: Side, head: Side, revision: str, args: argparse.Namespace) -> str:
    lines = [
        f"Baseline: revision `{revision}`; new: the working tree. {args.runs} runs per side, "
        "alternating; median (min-max).",
        "",
        f"B2BUA at {args.rate} calls/s for 10 s (`bench_b2bua.py --point`):",
        "",
        "| side | runs with a failed call | CPU per call | INVITE→200 |",
        "|---|---|---|---|",
    ]
    for side in (base, head):
        lines.append(
            f"| {side.label} | {side.failed_runs}/{args.runs} | "
            f"{spread(side.cpu_ms_per_call, '{:.3f} ms')} | {spread(side.invite_ms, '{:.1f} ms')} |"
        )
    lines += [
        "",
        f"New / baseline CPU per call: {ratio(head.cpu_ms_per_call, base.cpu_ms_per_call)}.",
        "",
        f"Routing decision at {args.members} members (`bench_routing.decisions_per_second`, "
        f"{args.calls} calls per run"
        + (f", pinned to CPU {args.pin}" if args.pin else "")
        + "). Timings on this shared machine are bimodal (about 14 or 27 µs for the same "
        "code), so the best run is the steadier figure:",
        "",
        "| algorithm | baseline | new | new / baseline |",
        "|---|---|---|---|",
    ]
    for algorithm in ALGORITHMS:
        old = base.decision_us.get(algorithm, [])
        new = head.decision_us.get(algorithm, [])
        lines.append(
            f"| `{algorithm}` | {spread(old, '{:.1f} µs')} | {spread(new, '{:.1f} µs')} | "
            f"{ratio(new, old)} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="git revision to compare against")
    parser.add_argument("--rate", type=int, default=150)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--pin", default=None, help="CPU to pin the routing runs to (taskset)")
    parser.add_argument("--skip-b2bua", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hg-revisions-") as tmp:
        base = Side("baseline", export(args.baseline, Path(tmp)))
        head = Side("new", ROOT)
        if not args.skip_b2bua:
            alternate((base, head), args.runs, lambda s: b2bua_point(s, args.rate))
        alternate(
            (base, head), args.runs, lambda s: routing_point(s, args.members, args.calls, args.pin)
        )
        body = render(base, head, args.baseline, args)
    print(body)
    if not args.no_write:
        command = (
            f"python benchmarks/bench_revisions.py --baseline {args.baseline} "
            f"--rate {args.rate} --runs {args.runs}" + (f" --pin {args.pin}" if args.pin else "")
        )
        write_section("revisions", command, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
