"""What operating huntgroup costs: the B2BUA with metrics and call records on, beside off.

What is measured
----------------
``bench_b2bua.py``'s point run (a SIPp caller, ``huntgroup serve`` with a
100-member linear group, a SIPp member answering at once, 10 s at
``--rate`` calls/s, in a loopback-only network namespace), on one tree,
in two configurations:

- **off**: the benchmark's configuration as it is (no admin listener, no
  call records);
- **on**: the same with what an operator turns on (``bench_b2bua.py
  --operations``): the admin listener with ``/metrics`` scraped every
  ``SCRAPE_INTERVAL`` seconds during the run, and the call records (JSON
  lines and queue_log into the run's temporary directory, and PostgreSQL: a
  private cluster this script starts, as the tests do, reached over its Unix
  socket, its schema made by ``huntgroup records init-db``; ``--no-postgres``
  leaves it out) when the tree has them (the report says which were on). The
  server's CPU includes its PostgreSQL writer thread; the database server's
  own CPU is not counted.

The two sides alternate (off on, on off, ...) ``--runs`` times; each figure
is the median over the runs with the spread (min-max) beside it. The figure
that matters is the server's CPU per call (utime + stime over the run / the
calls placed); the target is at most 10 % more with everything on.

Run (as root, with sipp, unshare and ip installed, on a quiet machine):
    .venv/bin/python benchmarks/bench_operations.py [--rate 150] [--runs 5] [--no-postgres]
        [--no-write]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_b2bua import POSTGRES_DSN_ENV, SCRAPE_INTERVAL, in_loopback_netns
from bench_revisions import alternate, ratio, spread
from report import write_section

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.postgres import postgres_cluster  # noqa: E402  (the tests' private cluster)

TARGET = 1.10
"""CPU per call with metrics and records on, over off: at most this."""


@dataclass
class Side:
    """One configuration and what was measured with it."""

    label: str
    operations: bool
    cpu_ms_per_call: list[float] = field(default_factory=list)
    invite_ms: list[float] = field(default_factory=list)
    failed_runs: int = 0
    scrapes: list[int] = field(default_factory=list)
    record_lines: list[int] = field(default_factory=list)
    on: str = ""  # what the --operations runs had on


def point(side: Side, rate: int) -> None:
    """One run of ``side`` at ``rate`` calls/s."""
    script = ROOT / "benchmarks" / "bench_b2bua.py"
    argv = [sys.executable, str(script), "--point", "huntgroup", str(rate)]
    found = in_loopback_netns(
        argv + (["--operations"] if side.operations else []), f"{side.label} @ {rate}/s"
    )
    calls = int(str(found["calls"]))
    cpu = found.get("cpu_seconds")
    if not (found["failed"] == 0 and found["successful"] == calls):
        side.failed_runs += 1
    if isinstance(cpu, int | float) and calls:
        side.cpu_ms_per_call.append(1000.0 * cpu / calls)
    side.invite_ms.append(float(str(found["invite_ms"])))
    side.scrapes.append(int(str(found.get("scrapes", 0))))
    side.record_lines.append(int(str(found.get("record_lines", 0))))
    side.on = str(found.get("operations", ""))
    print(
        f"  {side.label:3} {rate}/s: {found['successful']}/{calls} ok, "
        f"cpu {side.cpu_ms_per_call[-1] if side.cpu_ms_per_call else float('nan'):.3f} ms/call, "
        f"{side.scrapes[-1]} scrapes, {side.record_lines[-1]} records",
        flush=True,
    )


@contextlib.contextmanager
def records_database(wanted: bool) -> Iterator[None]:
    """A private PostgreSQL cluster with the records schema, named to the --operations
    runs through the environment, while the runs go on (nothing when not ``wanted``)."""
    if not wanted:
        yield
        return
    with postgres_cluster() as cluster:
        huntgroup = str(Path(sys.executable).parent / "huntgroup")
        subprocess.run([huntgroup, "records", "init-db", "--dsn", cluster.dsn], check=True)
        os.environ[POSTGRES_DSN_ENV] = cluster.dsn
        try:
            yield
        finally:
            del os.environ[POSTGRES_DSN_ENV]


def verdict(on: Side, off: Side) -> str:
    if not on.cpu_ms_per_call or not off.cpu_ms_per_call:
        return "no measurement"
    share = statistics.median(on.cpu_ms_per_call) / statistics.median(off.cpu_ms_per_call)
    met = "met" if share <= TARGET else "**NOT met**"
    return f"{(share - 1) * 100:+.1f} % CPU per call (target: within {TARGET - 1:.0%}): {met}"


def render(off: Side, on: Side, args: argparse.Namespace) -> str:
    with_what = {
        "metrics": "the admin listener and `/metrics` (the call records were not in this "
        "tree: rerun once they are)",
        "metrics+records": "the admin listener and `/metrics`, call records in JSON lines "
        "and queue_log",
        "metrics+records+postgres": "the admin listener and `/metrics`, call records in "
        "JSON lines, queue_log and PostgreSQL (a private cluster on this machine)",
    }.get(on.on, on.on or "-")
    lines = [
        f"`bench_b2bua.py --point huntgroup {args.rate}` (10 s, a 100-member linear group, "
        f"SIPp on both sides) with everything off, beside `--operations`: {with_what}, "
        f"`/metrics` scraped every {SCRAPE_INTERVAL:g} s during the run. {args.runs} runs "
        "per side, alternating; median (min-max).",
        "",
        "| side | runs with a failed call | CPU per call | INVITE→200 | scrapes per run "
        "| records per run |",
        "|---|---|---|---|---|---|",
    ]
    for side in (off, on):
        lines.append(
            f"| {side.label} | {side.failed_runs}/{args.runs} | "
            f"{spread(side.cpu_ms_per_call, '{:.3f} ms')} | {spread(side.invite_ms, '{:.1f} ms')} "
            f"| {spread([float(n) for n in side.scrapes], '{:.0f}')} "
            f"| {spread([float(n) for n in side.record_lines], '{:.0f}')} |"
        )
    lines += [
        "",
        f"On / off CPU per call: {ratio(on.cpu_ms_per_call, off.cpu_ms_per_call)}; "
        f"{verdict(on, off)}.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=150)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    off, on = Side("off", operations=False), Side("on", operations=True)
    with records_database(not args.no_postgres):
        alternate((off, on), args.runs, lambda side: point(side, args.rate))
    body = render(off, on, args)
    print(body)
    if not args.no_write:
        command = f"python benchmarks/bench_operations.py --rate {args.rate} --runs {args.runs}"
        command += " --no-postgres" if args.no_postgres else ""
        write_section("operations", command, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
