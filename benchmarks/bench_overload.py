"""Overload: calls completed at 1x, 1.5x, 2x and 3x the rate the node holds.

Command (as root, with sipp, unshare and ip installed):
    .venv/bin/python benchmarks/bench_overload.py [--held RATE] [--repeat N]
        [--seconds S] [--no-write] [--tree DIR]

What is measured
----------------
A SIPp caller (``sipp/uac_1s_shed.xml``) places calls at a fixed rate for
``--seconds`` (default 10); a SIPp member (``sipp/uas_answer.xml``) answers
each at once, the call is held 1 s, then the caller hangs up. A 503 from the
server is an expected outcome for this caller: it is ACKed and counted apart
(the 503 step of SIPp's ``-trace_counts``). For each run:

- *completed*: calls answered and hung up normally, per second of offered load;
- *503*: calls the server shed at once (``Retry-After``);
- *failed*: calls that failed anyway (a timeout, a lost or unexpected message):
  calls that were admitted and then broke;
- *latency*: SIPp's mean INVITE -> 200 time of the completed calls.

Two configurations of ``huntgroup serve`` run at every load:

- ``shedding``: the defaults of ``server.limits`` in the tree that runs (here
  ``max_loop_lag: 0.1``, ``max_load: 0.98``), per-source limits off (SIPp is
  one source);
- ``baseline``: the same with ``max_loop_lag`` and ``max_load`` set to null, i.e.
  what the server did before it noticed saturation.

The *held* rate (``--held``, or found here: a ladder of baseline runs, the
highest rate with every call successful) is the 1x step; then 1.5x, 2x, 3x.
Each point runs ``--repeat`` times (default 3); the table shows medians.
Target (issue 9): at 2x, completed >= 90% of the held rate, and no failed call.

Isolation and bounds: every run happens in a fresh network namespace holding
only loopback (``unshare -n``, then ``ip link set lo up``); the script runs
itself there with ``--point MODE RATE SECONDS`` and prints one JSON line.
SIPp stops after the run's calls (``-m``) and a 60 s timeout; each run is
killed after 120 s whatever happens; the ladder has at most 8 steps.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_b2bua import (
    HOST,
    HUNTGROUP_CONFIG,
    PILOT,
    SCENARIOS,
    SERVER_PORT,
    UAC_PORT,
    UAS_PORT,
    _last_stats,
    _proc_cpu_seconds,
    _sipp_ms,
    _stop,
    _wait_bound,
    in_loopback_netns,
)
from report import write_section

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT
"""The source tree the server runs (``--tree``)."""
LADDER = (100, 200, 300, 400, 500, 600, 800, 1000)
FACTORS = (1.0, 1.5, 2.0, 3.0)
MODES = ("shedding", "baseline")
LIMITS = {
    "shedding": "",  # the tree's defaults
    "baseline": "    max_loop_lag: null\n    max_load: null\n",
}


@dataclass(frozen=True, slots=True)
class Run:
    mode: str
    rate: int
    seconds: int  # of offered load
    calls: int  # offered
    successful: int  # SIPp's successful calls: completed and refused
    refused: int  # 503s
    failed: int
    elapsed: float
    invite_ms: float
    cpu_seconds: float

    @property
    def completed(self) -> int:
        return self.successful - self.refused

    @property
    def completed_rate(self) -> float:
        return self.completed / self.seconds

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.refused == 0 and self.successful == self.calls


def _config(mode: str) -> str:
    head, sep, rest = HUNTGROUP_CONFIG.partition("  limits:\n")  # per-source limits off
    return head + sep + LIMITS[mode] + rest


def _refused(work: Path) -> int:
    """503s received, from SIPp's -trace_counts file (the row of the 503 step)."""
    total = 0
    for path in work.glob("*_counts.csv"):
        with path.open(newline="") as f:
            rows = [row for row in csv.reader(f, delimiter=";") if row]
        if len(rows) < 2:
            continue
        header, last = rows[0], rows[-1]
        for i, name in enumerate(header):
            if name.endswith("_503_Recv") and i < len(last) and last[i].isdigit():
                total += int(last[i])
    return total


def measure(mode: str, rate: int, seconds: int, tree: Path = ROOT) -> Run:
    """One run; must be called inside the network namespace. ``tree``: the source tree
    whose ``huntgroup`` the server runs (another revision's, for an A/B)."""
    calls = rate * seconds
    with tempfile.TemporaryDirectory(prefix="hg-overload-") as tmp:
        work = Path(tmp)
        started: list[subprocess.Popen[bytes]] = []
        server = None
        try:
            uas = subprocess.Popen(
                ["sipp", "-sf", str(SCENARIOS / "uas_answer.xml"), "-i", HOST,
                 "-p", str(UAS_PORT), "-nostdin", "-timeout", "90s"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work,
            )  # fmt: skip
            started.append(uas)
            _wait_bound(UAS_PORT, uas, "the SIPp member")
            config = work / "bench.yaml"
            config.write_text(_config(mode))
            server = subprocess.Popen(
                [sys.executable, "-m", "huntgroup", "serve", "--config", str(config),
                 "--log-level", "WARNING"],
                cwd=work, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
                stdout=subprocess.DEVNULL, stderr=(work / "server.err").open("wb"),
            )  # fmt: skip
            started.append(server)
            _wait_bound(SERVER_PORT, server, "huntgroup")
            time.sleep(1.0)  # let it settle
            cpu0 = _proc_cpu_seconds(server.pid)
            stats = work / "uac.csv"
            t0 = time.monotonic()
            uac = subprocess.Popen(
                ["sipp", f"{HOST}:{SERVER_PORT}", "-sf", str(SCENARIOS / "uac_1s_shed.xml"),
                 "-s", PILOT, "-i", HOST, "-p", str(UAC_PORT),
                 "-r", str(rate), "-m", str(calls), "-l", str(rate * 4),
                 "-nostdin", "-recv_timeout", "5000", "-timeout", "60s",
                 "-trace_stat", "-stf", str(stats), "-fd", "1", "-trace_counts"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work,
            )  # fmt: skip
            started.append(uac)
            for _ in range(1200):  # 120 s at most
                if uac.poll() is not None:
                    break
                time.sleep(0.1)
            else:
                uac.kill()
            uac.wait()
            elapsed = time.monotonic() - t0
            cpu = _proc_cpu_seconds(server.pid) - cpu0
            last = _last_stats(stats) if stats.exists() else {}
            refused = _refused(work)
            if server.poll() is not None:
                err = (work / "server.err").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"huntgroup died during the run:\n{err}")
        finally:
            for proc in reversed(started):
                _stop(proc)
    return Run(
        mode=mode,
        rate=rate,
        seconds=seconds,
        calls=calls,
        successful=int(last.get("SuccessfulCall(C)", 0)),
        refused=refused,
        failed=int(last.get("FailedCall(C)", calls)),
        elapsed=round(elapsed, 2),
        invite_ms=round(_sipp_ms(last.get("ResponseTime1(C)", "0:0:0:0")), 1),
        cpu_seconds=round(cpu, 2),
    )


def run_isolated(mode: str, rate: int, seconds: int) -> Run:
    inner = [sys.executable, str(Path(__file__).resolve()), "--point", mode, str(rate)]
    inner += [str(seconds), "--tree", str(TREE)]
    run = Run(**in_loopback_netns(inner, f"{mode} @ {rate}/s"))  # type: ignore[arg-type]
    print(
        f"  {run.mode:9} {run.rate:5}/s  completed {run.completed_rate:6.1f}/s  "
        f"503 {run.refused:5}  failed {run.failed:5}  INVITE->200 {run.invite_ms:7.1f} ms  "
        f"cpu {100 * run.cpu_seconds / max(run.elapsed, 0.1):3.0f}%",
        flush=True,
    )
    return run


def find_held(seconds: int) -> int:
    """The highest ladder rate at which a baseline run completes every call."""
    held = 0
    for rate in LADDER:
        if not run_isolated("baseline", rate, seconds).clean:
            break
        held = rate
    return held


def _median(runs: list[Run], value: str) -> float:
    return float(statistics.median(getattr(r, value) for r in runs))


def report(
    held: int,
    results: dict[tuple[str, int], list[Run]],
    repeat: int,
    loads: tuple[float, float],
) -> str:
    lines = [
        f"Held rate (1x): **{held} calls/s** (calls held 1 s). Medians of {repeat} run(s) "
        "per row. *completed/s* counts calls answered and hung up normally per second of "
        "offered load (each run's in brackets); *503* calls shed at once; *failed* calls "
        "that broke after being taken in; *INVITE->200* the mean setup time of completed "
        "calls; *cpu* the server's share of one core. *baseline*: the same server with "
        "`max_loop_lag` and `max_load` off. The machine is shared with other jobs (load "
        f"average {loads[0]:.1f} at the start, {loads[1]:.1f} at the end): a server that "
        "gets well under a core holds less, and the numbers are indicative.",
        "",
        "| load | rate | mode | completed/s | % of held | 503 | failed | INVITE->200 ms | cpu |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for factor in FACTORS:
        rate = round(held * factor)
        for mode in MODES:
            runs = results.get((mode, rate))
            if not runs:
                continue
            completed = statistics.median(r.completed_rate for r in runs)
            each = ", ".join(f"{r.completed_rate:.0f}" for r in runs)
            cpu = statistics.median(100 * r.cpu_seconds / max(r.elapsed, 0.1) for r in runs)
            lines.append(
                f"| {factor:g}x | {rate} | {mode} | {completed:.0f} ({each}) | "
                f"{100 * completed / held:.0f}% | {_median(runs, 'refused'):.0f} | "
                f"{_median(runs, 'failed'):.0f} | {_median(runs, 'invite_ms'):.1f} | "
                f"{cpu:.0f}% |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held", type=int, default=None, help="1x rate; found when absent")
    parser.add_argument("--repeat", type=int, default=3, help="runs per point (median)")
    parser.add_argument("--seconds", type=int, default=10, help="seconds of load per run")
    parser.add_argument("--no-write", action="store_true", help="do not write the docs")
    parser.add_argument("--point", nargs=3, metavar=("MODE", "RATE", "S"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--tree", type=Path, default=ROOT,
        help="the source tree the server runs (default: this one; another revision's for A/B)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.point is not None:
        mode, rate, seconds = args.point
        print(json.dumps(asdict(measure(mode, int(rate), int(seconds), args.tree))))
        return 0
    global TREE
    TREE = args.tree.resolve()
    seconds = max(1, min(args.seconds, 30))
    repeat = max(1, min(args.repeat, 5))
    load_start = os.getloadavg()[0]
    held = args.held or find_held(seconds)
    if held <= 0:
        print("not even the lowest rate held", file=sys.stderr)
        return 1
    print(f"held rate: {held} calls/s")
    results: dict[tuple[str, int], list[Run]] = {}
    for _ in range(repeat):
        for factor in FACTORS:
            rate = round(held * factor)
            for mode in MODES:
                results.setdefault((mode, rate), []).append(run_isolated(mode, rate, seconds))
    body = report(held, results, repeat, (load_start, os.getloadavg()[0]))
    print(body)
    if not args.no_write:
        command = "python benchmarks/bench_overload.py " + " ".join(argv or sys.argv[1:])
        write_section("overload", command.strip(), body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
