"""One node, two nodes behind Kamailio, and the memory store beside Redis, in one run.

What is measured
----------------
The calls of ``bench_b2bua.py`` (SIPp ``sipp/uac_1s.xml``: INVITE, answered
at once by a SIPp member, held 1 s, BYE; 100 member URIs reaching that one
SIPp, ``call_waiting``) go through one of these set-ups:

- ``memory``: one node, ``server.state: memory``, called directly;
- ``redis``: one node, ``server.state: redis://...`` (a local redis-server),
  called directly;
- ``kamailio-1``: Kamailio (``contrib/kamailio/kamailio.cfg``, as shipped,
  addresses given with ``-A``) in front of that one Redis node;
- ``kamailio-2``: Kamailio in front of two Redis nodes (Call-ID hash).

For each: **calls/s held** (the ladder of ``bench_b2bua.py``: a rate holds
when a 10 s run completes every call within 14 s, the best rate confirmed by
the median of three runs), and, at one common rate every set-up holds
(``--rate``), run ``--runs`` times with the set-ups alternating (so a
background load hits all alike): **CPU per call** (utime + stime from
``/proc/PID/stat`` of every huntgroup node, redis-server and every Kamailio
process, divided by the calls completed) and **Redis operations per call**
(``INFO commandstats`` before and after), as median and spread (min-max).

Every run happens in a fresh network namespace with only loopback (``unshare
-n``), as in ``bench_b2bua.py``: the script runs itself there with ``--point
SETUP RATE`` and prints one JSON line.

Run (as root, with sipp, kamailio, redis-server, unshare and ip installed):
    .venv/bin/python benchmarks/bench_cluster.py [--runs 5] [--rate 100]
        [--setups memory,redis,kamailio-1,kamailio-2] [--no-search] [--no-write]
        [--save FILE] [--trace DIR]
    .venv/bin/python benchmarks/bench_cluster.py --merge FILE FILE ...

The defaults take about 30 minutes. To keep each run short (a shared machine),
split it: e.g. ``--setups memory,redis --no-search --save a.json``, then
``--setups kamailio-1,kamailio-2 --no-search --save b.json``, then the calls/s
held with ``--runs 0`` per set-up, and ``--merge a.json b.json ...`` writes
the report (the set-ups compared side by side must be in one invocation: they
alternate). ``--trace DIR`` writes py-spy's profile of every node and Redis's
``MONITOR`` of each run (py-spy from ``bench_b2bua.py``'s tools venv).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis  # a project dependency (server.state: redis://)
from bench_b2bua import (
    CONFIRM_RUNS,
    HOLD_SECONDS,
    HOST,
    HUNTGROUP_CONFIG,
    LADDER,
    RUN_SECONDS,
    SCENARIOS,
    SERVER_PORT,
    SLACK_SECONDS,
    TOOLS_VENV,
    UAS_PORT,
    _last_stats,
    _stop,
    _wait_bound,
    in_loopback_netns,
    start_uac,
)
from report import machine, write_section

ROOT = Path(__file__).resolve().parent.parent
KAMAILIO_CFG = ROOT / "contrib" / "kamailio" / "kamailio.cfg"
SETUPS = ("memory", "redis", "kamailio-1", "kamailio-2", "redis-base")
DEFAULT_SETUPS = SETUPS[:4]
BASE_TREE = Path(tempfile.gettempdir()) / "huntgroup-bench-base"
"""``redis-base``: one node, Redis, running the source tree found here (``--base REV``
extracts a revision there with ``git archive``): the same set-up before a change."""
LABELS = {
    "redis-base": "one node, Redis store, before (`--base`)",
    "memory": "one node, memory store",
    "redis": "one node, Redis store",
    "kamailio-1": "Kamailio + one node (Redis)",
    "kamailio-2": "Kamailio + two nodes (Redis)",
}
REDIS_PORT = 6379
KAMAILIO_PORT = 5060
NODE_PORTS = (SERVER_PORT, SERVER_PORT + 1)
RTP_RANGES = ("20000-24999", "25000-29999")
IDLE_SECONDS = 5.0
SECRET = "bench-cluster-shared-secret"  # the same on every node (docs/state.md)


@dataclass
class Point:
    """One 10 s run of one set-up at one rate."""

    setup: str
    rate: int
    calls: int
    successful: int
    failed: int
    seconds: float
    cpu_nodes: float  # s, every huntgroup node
    cpu_redis: float  # s
    cpu_kamailio: float  # s, every Kamailio process
    idle_cpu_per_s: float  # CPU s per s of every process above, idle, before the calls
    redis_ops: int  # commands Redis ran during the run
    errors: str = ""
    redis_commands: dict[str, int] = field(default_factory=dict)  # the same, by command

    @property
    def held(self) -> bool:
        limit = RUN_SECONDS + HOLD_SECONDS + SLACK_SECONDS
        return self.failed == 0 and self.successful == self.calls and self.seconds <= limit

    @property
    def cpu_ms_per_call(self) -> float | None:
        total = self.cpu_nodes + self.cpu_redis + self.cpu_kamailio
        return 1000.0 * total / self.successful if self.successful else None

    @property
    def marginal_ms_per_call(self) -> float | None:
        """CPU per call without the background the set-up burns when idle."""
        total = self.cpu_nodes + self.cpu_redis + self.cpu_kamailio
        extra = total - self.idle_cpu_per_s * self.seconds
        return 1000.0 * extra / self.successful if self.successful else None

    @property
    def redis_ops_per_call(self) -> float | None:
        return self.redis_ops / self.successful if self.successful else None


# --------------------------------------------------------------- in the namespace


def _cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of ``pids`` and of every live descendant (Kamailio's workers)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    wanted = set(pids)
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in wanted} - wanted
        wanted |= more
        grew = bool(more)
    return sum(ticks.get(pid, 0) for pid in wanted) / os.sysconf("SC_CLK_TCK")


def _redis_commands() -> dict[str, int]:
    """Commands run so far, by command (INFO commandstats: a script's own commands count
    too), not counting the INFO calls."""
    stats = redis.Redis(host=HOST, port=REDIS_PORT).info("commandstats")
    return {
        k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info"
    }


def _by_command(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in sorted(after.items()) if n > before.get(k, 0)}


def _node_config(work: Path, index: int, shared: bool) -> Path:
    head, _, groups = HUNTGROUP_CONFIG.partition("groups:\n")
    head = head.replace(f"udp:{HOST}:{SERVER_PORT}", f"udp:{HOST}:{NODE_PORTS[index]}")
    head = head.replace('"20000-29999"', f'"{RTP_RANGES[index]}"')
    if shared:
        head += f'  state: "redis://{HOST}:{REDIS_PORT}/0"\n'
    config = work / f"node{index}.yaml"
    config.write_text(head + "groups:\n" + groups)
    return config


def measure_point(setup: str, rate: int, trace: Path | None = None) -> Point:
    """One run; must be called inside the network namespace. ``trace``: a directory where
    py-spy's profile of each node (``SETUP-nodeN.txt``, collapsed stacks) and Redis's
    MONITOR of the calls (``SETUP-monitor.txt``) are written."""
    if setup not in SETUPS:
        raise ValueError(f"unknown set-up {setup!r}")
    nodes = 2 if setup == "kamailio-2" else 1
    shared = setup != "memory"
    behind = setup.startswith("kamailio")
    tree = BASE_TREE if setup == "redis-base" else ROOT
    calls = rate * RUN_SECONDS
    with tempfile.TemporaryDirectory(prefix="hg-cluster-") as tmp:
        work = Path(tmp)
        started: list[subprocess.Popen[bytes]] = []
        node_procs: list[subprocess.Popen[bytes]] = []
        redis_proc = kamailio = None
        try:
            uas = subprocess.Popen(
                ["sipp", "-sf", str(SCENARIOS / "uas_answer.xml"), "-i", HOST,
                 "-p", str(UAS_PORT), "-nostdin", "-timeout", "60s"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work,
            )  # fmt: skip
            started.append(uas)
            _wait_bound(UAS_PORT, uas, "the SIPp member")
            if shared:
                redis_proc = subprocess.Popen(
                    ["redis-server", "--port", str(REDIS_PORT), "--bind", HOST, "--save", "",
                     "--appendonly", "no", "--dir", str(work)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                started.append(redis_proc)
                _wait_redis()
            env = dict(
                os.environ, PYTHONPATH=str(tree), HUNTGROUP_SECRET="bench-cluster-shared-secret"
            )
            for index in range(nodes):
                node = subprocess.Popen(
                    [sys.executable, "-m", "huntgroup", "serve", "--config",
                     str(_node_config(work, index, shared)), "--log-level", "WARNING"],
                    cwd=work, env=dict(env, HUNTGROUP_NODE_ID=f"node-{index}"),
                    stdout=subprocess.DEVNULL, stderr=(work / f"node{index}.err").open("wb"),
                )  # fmt: skip
                started.append(node)
                node_procs.append(node)
                _wait_bound(NODE_PORTS[index], node, f"node {index}")
            target = NODE_PORTS[0]
            if behind:
                ds = work / "dispatcher.list"
                ds.write_text("".join(f"1 sip:{HOST}:{NODE_PORTS[i]} 0 0\n" for i in range(nodes)))
                kamailio = subprocess.Popen(
                    ["kamailio", "-f", str(KAMAILIO_CFG), "-DD", "-E", "-m", "256",
                     "-Y", str(work), "-P", str(work / "kamailio.pid"),
                     "-A", f"LISTEN_ADDR={HOST}", "-A", f"SIP_PORT={KAMAILIO_PORT}",
                     "-A", f'DISPATCHER_LIST="{ds}"',
                     "-A", f'CTL_SOCKET="unix:{work / "kamailio_ctl"}"'],
                    stdout=subprocess.DEVNULL, stderr=(work / "kamailio.err").open("wb"),
                    cwd=work, env=dict(os.environ, PATH="/usr/sbin:/usr/bin:/sbin:/bin"),
                )  # fmt: skip
                started.append(kamailio)
                _wait_bound(KAMAILIO_PORT, kamailio, "kamailio")
                target = KAMAILIO_PORT
            time.sleep(1.0)  # let the nodes settle (imports done, first Redis sync)
            everyone = [p.pid for p in started if p is not uas]
            idle0, idle_t0 = _cpu_seconds(everyone), time.monotonic()
            time.sleep(IDLE_SECONDS)  # the background: heartbeats, probes, resyncs
            idle = (_cpu_seconds(everyone) - idle0) / (time.monotonic() - idle_t0)
            cpu0 = _cpu_seconds([p.pid for p in node_procs])
            redis_cpu0 = _cpu_seconds([redis_proc.pid]) if redis_proc else 0.0
            kam_cpu0 = _cpu_seconds([kamailio.pid]) if kamailio else 0.0
            ops0 = _redis_commands() if shared else {}
            stats = work / "uac.csv"
            tracers = _tracers(trace, setup, node_procs, shared) if trace is not None else []
            started.extend(tracers)
            t0 = time.monotonic()
            uac = start_uac(target, rate, calls, stats, work)
            started.append(uac)
            try:
                uac.wait(timeout=60)
            except subprocess.TimeoutExpired:
                uac.kill()
                uac.wait()
            seconds = time.monotonic() - t0
            for spy in [t for t in tracers if "py-spy" in str(t.args)]:  # writes when it ends
                with contextlib.suppress(subprocess.TimeoutExpired):
                    spy.wait(timeout=30)
            cpu = _cpu_seconds([p.pid for p in node_procs]) - cpu0
            redis_cpu = _cpu_seconds([redis_proc.pid]) - redis_cpu0 if redis_proc else 0.0
            kam_cpu = _cpu_seconds([kamailio.pid]) - kam_cpu0 if kamailio else 0.0
            by_command = _by_command(ops0, _redis_commands()) if shared else {}
            last = _last_stats(stats) if stats.exists() else {}
            errors = _errors(work)
            for node in node_procs:
                if node.poll() is not None:
                    raise RuntimeError(f"a node died during the run:\n{errors}")
        finally:
            for proc in reversed(started):
                _stop(proc, signal.SIGKILL if proc in (uas, uac) else signal.SIGTERM)
    return Point(
        setup=setup,
        rate=rate,
        calls=calls,
        successful=int(last.get("SuccessfulCall(C)", 0)),
        failed=int(last.get("FailedCall(C)", calls)),
        seconds=round(seconds, 2),
        cpu_nodes=round(cpu, 3),
        cpu_redis=round(redis_cpu, 3),
        cpu_kamailio=round(kam_cpu, 3),
        redis_ops=sum(by_command.values()),
        idle_cpu_per_s=round(idle, 4),
        errors=errors,
        redis_commands=by_command,
    )


def _tracers(
    trace: Path, setup: str, nodes: Sequence[subprocess.Popen[bytes]], shared: bool
) -> list[subprocess.Popen[bytes]]:
    """py-spy on every node for the calls' duration, and redis-cli MONITOR (``--trace``)."""
    trace.mkdir(parents=True, exist_ok=True)
    spy = TOOLS_VENV / "bin" / "py-spy"
    if not spy.exists() and shutil.which("py-spy"):
        spy = Path(str(shutil.which("py-spy")))
    procs = []
    for i, node in enumerate(nodes if spy.exists() else ()):
        spying = subprocess.Popen(
            [str(spy), "record", "--pid", str(node.pid), "--format", "raw", "--output",
             str(trace / f"{setup}-node{i}.txt"), "--rate", "250",
             "--duration", str(RUN_SECONDS + HOLD_SECONDS), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        procs.append(spying)
    if shared:
        monitor = (trace / f"{setup}-monitor.txt").open("wb")
        watching = subprocess.Popen(
            ["redis-cli", "-h", HOST, "-p", str(REDIS_PORT), "monitor"],
            stdout=monitor, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        procs.append(watching)
    return procs


def _wait_redis() -> None:
    for _ in range(300):  # 30 s at most
        try:
            _redis_commands()
            return
        except redis.exceptions.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("redis-server did not start within 30 s")


def _errors(work: Path, lines: int = 8) -> str:
    parts = []
    for path in sorted(work.glob("*.err")):
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
        if text:
            parts.append(f"== {path.name}\n" + "\n".join(text))
    return "\n".join(parts)


# --------------------------------------------------------------- outside: driving


def run_isolated(setup: str, rate: int, trace: Path | None = None) -> Point:
    inner = [sys.executable, str(Path(__file__).resolve()), "--point", setup, str(rate)]
    if trace is not None:
        inner += ["--trace", str(trace)]
    return Point(**in_loopback_netns(inner, f"{setup} @ {rate}/s"))  # type: ignore[arg-type]


def _log(point: Point) -> None:
    cpu = point.cpu_ms_per_call
    print(
        f"  {point.setup} @ {point.rate}/s: {point.successful}/{point.calls} ok, "
        f"{point.seconds:.1f} s, {'held' if point.held else 'NOT held'}, "
        f"CPU {cpu if cpu is None else round(cpu, 2)} ms/call "
        f"(nodes {point.cpu_nodes} s, redis {point.cpu_redis} s, kamailio "
        f"{point.cpu_kamailio} s), Redis {point.redis_ops_per_call} ops/call",
        flush=True,
    )
    if point.redis_commands and point.successful:
        per_call = ", ".join(
            f"{k} {v / point.successful:.2f}"
            for k, v in sorted(point.redis_commands.items(), key=lambda kv: -kv[1])
        )
        print(f"    Redis commands per call: {per_call}", flush=True)
    if not point.held and point.errors:
        print("    " + point.errors.replace("\n", "\n    ")[:1500], flush=True)


def held_rate(setup: str, ladder: Sequence[int]) -> int:
    """The highest rate of ``ladder`` held, confirmed by the median of three runs."""
    best = 0
    for rate in ladder:
        point = run_isolated(setup, rate)
        _log(point)
        if not point.held:
            break
        best = rate
    while best:
        runs = [run_isolated(setup, best) for _ in range(CONFIRM_RUNS)]
        for point in runs:
            _log(point)
        if sum(p.held for p in runs) * 2 > len(runs):
            return best
        lower = [r for r in ladder if r < best]
        best = lower[-1] if lower else 0
    return 0


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def render(
    setups: Sequence[str], rate: int, points: dict[str, list[Point]], held: dict[str, int]
) -> str:
    rows = [
        "| set-up | calls/s held | CPU ms per call at "
        f"{rate}/s, median (min-max) | of which nodes / Redis / Kamailio | "
        "the same less the idle background | idle CPU % | Redis ops per call |",
        "|---|---|---|---|---|---|---|",
    ]
    medians: dict[str, float] = {}
    margins: dict[str, float] = {}
    for setup in setups:
        runs = [p for p in points.get(setup, []) if p.held]
        cpu = [p.cpu_ms_per_call for p in runs if p.cpu_ms_per_call is not None]
        if cpu:
            medians[setup] = statistics.median(cpu)
        parts = [
            f"{statistics.median(1000 * getattr(p, f) / p.successful for p in runs):.2f}"
            if runs
            else "-"
            for f in ("cpu_nodes", "cpu_redis", "cpu_kamailio")
        ]
        ops = [p.redis_ops_per_call for p in runs if p.redis_ops_per_call is not None]
        marginal = [p.marginal_ms_per_call for p in runs if p.marginal_ms_per_call is not None]
        if marginal:
            margins[setup] = statistics.median(marginal)
        idle = [100 * p.idle_cpu_per_s for p in runs]
        rows.append(
            f"| {LABELS[setup]} | {held.get(setup, '-') or '-'} | {_spread(cpu)} "
            f"({len(runs)}/{len(points.get(setup, []))} runs held) | "
            + " / ".join(parts)
            + f" | {_spread(marginal)} | {_spread(idle)}"
            + f" | {_spread([float(x) for x in ops]) if ops else '-'} |"
        )
    notes = []
    if "memory" in medians and "redis" in medians:
        extra = 100.0 * (medians["redis"] / medians["memory"] - 1)
        verdict = "within" if extra <= 25 else "OVER"
        notes.append(
            f"- Shared state (Redis) costs {extra:+.0f}% CPU per call against the memory "
            f"store, Redis included ({verdict} the 25% the issue allows). Where it goes, and "
            'what is left: `state.md`, "What a call costs Redis and the node".'
        )
        if margins.get("memory") and "redis" in margins:
            marginal_extra = 100.0 * (margins["redis"] / margins["memory"] - 1)
            notes.append(
                f"  Less each set-up's idle background (heartbeats, resyncs, probes): "
                f"{marginal_extra:+.0f}%. The background weighs less as the rate grows."
            )
    if "memory" in medians and "redis-base" in medians:
        base = 100.0 * (medians["redis-base"] / medians["memory"] - 1)
        notes.append(
            f"- The same Redis node before the change (`--base`), in the same runs: "
            f"{base:+.0f}% CPU per call against the memory store."
        )
    one = [p for p in points.get("redis", []) if p.held and p.redis_commands]
    if one:
        names = sorted({k for p in one for k in p.redis_commands})
        per_call = {
            k: statistics.median(p.redis_commands.get(k, 0) / p.successful for p in one)
            for k in names
        }
        top = sorted(per_call.items(), key=lambda kv: -kv[1])
        notes.append(
            "- Redis commands per call, one node (median; a script's own commands count, "
            "`INFO commandstats`): "
            + ", ".join(f"{k} {v:.2f}" for k, v in top if v >= 0.05)
            + ". `evalsha` is the scripts run: the claims, the state's batch and the "
            "claims' writes (under load all in the flusher's one round trip)."
        )
    if "kamailio-1" in medians and "kamailio-2" in medians:
        notes.append(
            f"- A second node behind Kamailio: {medians['kamailio-2']:.2f} ms of CPU per call "
            f"against {medians['kamailio-1']:.2f} ms with one. On this machine both nodes, "
            "Redis, Kamailio and SIPp share the same cores, so the second node adds no "
            "capacity here: the calls/s held measure the machine, not the design."
        )
    two = [p for p in points.get("kamailio-2", []) if p.held]
    if two:
        node_ms = statistics.median(1000 * p.cpu_nodes / p.successful for p in two)
        redis_ms = statistics.median(1000 * p.cpu_redis / p.successful for p in two)
        kam_ms = statistics.median(1000 * p.cpu_kamailio / p.successful for p in two)
        notes.append(
            f"- On separate machines (CPU per call x cores): a call costs its node about "
            f"{node_ms:.2f} ms of CPU, so each node on a core of its own adds about "
            f"{1000 / node_ms if node_ms else 0:.0f} calls/s, until Redis ({redis_ms:.2f} ms "
            f"per call: {1000 / redis_ms if redis_ms else float('inf'):.0f} calls/s on one "
            f"core) or Kamailio ({kam_ms:.2f} ms per call, spread over its workers) is the "
            "limit."
        )
    if any(len(runs) < 3 for runs in points.values()):
        notes.append(
            "- Fewer than three runs per set-up: a smoke test of the benchmark, not a measurement."
        )
    return "\n".join(rows) + ("\n\n" + "\n".join(notes) if notes else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setups", default=",".join(DEFAULT_SETUPS))
    parser.add_argument(
        "--base", default=None, metavar="REV",
        help="extract git revision REV for the set-up redis-base (the Redis node before a change)",
    )  # fmt: skip
    parser.add_argument("--rate", type=int, default=100, help="the common rate (calls/s)")
    parser.add_argument("--runs", type=int, default=5, help="alternating runs at --rate")
    parser.add_argument("--max-rate", type=int, default=LADDER[-1])
    parser.add_argument("--no-search", action="store_true", help="skip the calls/s held")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--trace", type=Path, default=None, metavar="DIR",
        help="write py-spy profiles of the nodes and Redis's MONITOR of each run to DIR",
    )  # fmt: skip
    parser.add_argument(
        "--save",
        type=Path,
        default=None,
        metavar="FILE",
        help="also save this invocation's runs (JSON) for --merge",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        default=None,
        metavar="FILE",
        help="run nothing: report the runs saved by several invocations",
    )
    parser.add_argument("--point", nargs=2, metavar=("SETUP", "RATE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.point:  # inside the namespace: one run, one JSON line
        point = measure_point(args.point[0], int(args.point[1]), args.trace)
        print(json.dumps(asdict(point)))
        return 0

    invocation = "sudo .venv/bin/python benchmarks/bench_cluster.py " + shlex.join(
        argv if argv is not None else sys.argv[1:]
    )
    if args.merge:  # render the runs saved by earlier invocations (--save)
        saved = [json.loads(Path(f).read_text()) for f in args.merge]
        return _report(saved, invocation.strip(), write=not args.no_write)
    for tool in ("sipp", "unshare", "ip", "redis-server"):
        if shutil.which(tool) is None:
            print(f"bench_cluster: `{tool}` is not installed (scripts/setup.sh installs it)")
            return 1
    if not Path("/usr/sbin/kamailio").exists() and shutil.which("kamailio") is None:
        print("bench_cluster: `kamailio` is not installed (scripts/setup.sh installs it)")
        return 1
    setups = [s for s in args.setups.split(",") if s]
    unknown = set(setups) - set(SETUPS)
    if unknown:
        parser.error(f"unknown set-up(s): {', '.join(sorted(unknown))}")
    if "redis-base" in setups:
        if args.base is None:
            parser.error("the set-up redis-base needs --base REV")
        _extract(args.base)
    t0 = time.monotonic()
    points: dict[str, list[Point]] = {s: [] for s in setups}
    print(f"{args.runs} alternating run(s) at {args.rate} calls/s:", flush=True)
    for _ in range(args.runs):
        for setup in setups:
            point = run_isolated(setup, args.rate, args.trace)
            _log(point)
            points[setup].append(point)
    held: dict[str, int] = {}
    if not args.no_search:
        ladder = [r for r in LADDER if r <= args.max_rate]
        for setup in setups:
            print(f"{LABELS[setup]}: calls/s held", flush=True)
            held[setup] = held_rate(setup, ladder)
            print(f"  -> {held[setup]} calls/s", flush=True)
    run = {
        "command": invocation.strip(),
        "rate": args.rate,
        "setups": setups,
        "points": {s: [asdict(p) for p in ps] for s, ps in points.items()},
        "held": held,
        "seconds": round(time.monotonic() - t0),
    }
    if args.save is not None:
        args.save.write_text(json.dumps(run))
    return _report([run], invocation.strip(), write=not args.no_write)


def _extract(rev: str) -> None:
    """The source tree of git revision ``rev`` into :data:`BASE_TREE`."""
    shutil.rmtree(BASE_TREE, ignore_errors=True)
    BASE_TREE.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(BASE_TREE)], input=archive, check=True)


def _report(runs: list[dict[str, Any]], invocation: str, *, write: bool) -> int:
    """Render (and write to docs/benchmarks.md) one or several invocations' runs."""
    rates = {r["rate"] for r in runs if any(r["points"].values())}
    if len(rates) > 1:
        print(f"bench_cluster: the runs to merge were made at different rates: {sorted(rates)}")
        return 1
    setups = [s for s in SETUPS if any(s in r["setups"] for r in runs)]
    points: dict[str, list[Point]] = {s: [] for s in setups}
    held: dict[str, int] = {}
    for r in runs:
        for s, ps in r["points"].items():
            points[s].extend(Point(**p) for p in ps)
        held.update(r["held"])
    rate = rates.pop() if rates else runs[0]["rate"]
    body = render(setups, rate, points, held)
    body += (
        f"\n\nMachine: {machine()}; {os.cpu_count()} cores shared by every process of the "
        f"run (SIPp included) and by other work on the machine; "
        f"{sum(r['seconds'] for r in runs)} s of measurement in all."
    )
    if len(runs) > 1:
        body += "\n\nMerged from:\n" + "\n".join(f"- `{r['command']}`" for r in runs)
    print(body)
    if write:
        write_section("cluster", invocation, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
