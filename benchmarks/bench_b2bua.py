"""Calls per second through the B2BUA, beside SIPp direct and the sippy B2BUA.

What is measured
----------------
A SIPp caller (``sipp/uac_1s.xml``) places calls at a fixed rate for 10 s;
each call is answered at once by a SIPp member (``sipp/uas_answer.xml``),
held 1 s, then hung up by the caller. Three systems sit between them, in the
same position and on the same loopback:

- ``direct``: the caller calls the member itself (the ceiling: SIPp alone);
- ``sippy``: the sippy B2BUA (PyPI ``sippy``, ``b2bua -f -u -A 0 -s
  HOST:PORT``, one UDP worker), the baseline;
- ``huntgroup``: ``python -m huntgroup serve`` with one group whose only
  member is the SIPp member, reached at a fixed URI.

A rate *holds* when a 10 s run ends with every call successful (SIPp counts
no failed call, all ``rate x 10`` calls completed, the run done within
``10 + 1 + 3`` s). For each system the rate is stepped up a ladder until a
run fails, bisected down to 25 calls/s, and the best rate is confirmed by
three runs: it holds when the median run (at least two of three) holds. At
that rate the server's CPU (utime + stime from ``/proc/PID/stat``, all
threads) and its memory per active call ((RSS at steady state - idle RSS) /
SIPp's current calls, medians over the middle of the run) are reported.

Isolation: every run happens in a fresh network namespace holding only
loopback (``unshare -n``, then ``ip link set lo up``): the script runs
itself there with ``--point SYSTEM RATE`` and prints one JSON line. sippy
(and py-spy, for ``--profile``) are installed by this script into a venv
under /tmp, outside the namespace; they are not project dependencies.

``--point huntgroup RATE --operations`` runs huntgroup with what an operator
turns on (:data:`OPERATIONS_CONFIG`): the admin listener with ``/metrics``
scraped every :data:`SCRAPE_INTERVAL` s during the run, and the call records
(JSON lines and queue_log, into the run's temporary directory) when the tree
has them. ``bench_operations.py`` runs it beside the plain point.

Run (as root, with sipp, unshare and ip installed):
    .venv/bin/python benchmarks/bench_b2bua.py [--systems direct,sippy,huntgroup]
        [--profile RATE] [--no-write]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import write_section

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = Path(__file__).resolve().parent / "sipp"
TOOLS_VENV = Path(tempfile.gettempdir()) / "huntgroup-bench-tools"
SIPPY_VERSION = "2.5.0"
PYSPY_VERSION = "0.4.3"

HOST = "127.0.0.1"
UAC_PORT = 5061
SERVER_PORT = 5070
UAS_PORT = 5090
PILOT = "0140000000"
# A member ringing for one call is not free for another (the group contract,
# even with call_waiting), so with one member every overlap of two ringing
# phases would be a 486, and a 150 ms stall of the event loop lets a burst of
# calls through at once. The group has MEMBERS fixed URIs, all reaching the
# same SIPp member (a large call-centre group): with 32 members, bursts after
# GC pauses gave 486s from 250 calls/s; with 100, the engine is the limit.
MEMBERS = 100

RUN_SECONDS = 10
HOLD_SECONDS = 1
SLACK_SECONDS = 3
LADDER = (50, 100, 200, 300, 400, 600, 800, 1000, 1200, 1600)
RESOLUTION = 25
TARGET_RATIO = 3.0
"""Issue 14: huntgroup holds at least three times sippy's rate, in the same run."""
TARGET_CPU_MS = 1.0
"""Issue 14: at most 1 ms of server CPU per call."""
CONFIRM_RUNS = 3
SYSTEMS = ("direct", "sippy", "huntgroup")
LABELS = {
    "direct": "SIPp to SIPp, direct (ceiling)",
    "sippy": f"sippy B2BUA {SIPPY_VERSION} (baseline)",
    "huntgroup": "huntgroup",
}

SIPPY_MAIN = (
    "import sys\n"
    "import sippy.Udp_server\n"
    "sippy.Udp_server.Udp_server_opts.nworkers = 1\n"
    "from sippy.b2bua import main_func\n"
    "sys.argv[0] = 'b2bua'\n"
    "sys.exit(main_func())\n"
)

HUNTGROUP_CONFIG = f"""\
server:
  listen: ["udp:{HOST}:{SERVER_PORT}"]
  media:
    address: {HOST}
    rtp_ports: "20000-29999"  # wide, and inside the open-files budget (docs/security.md)
  shutdown_grace: 0
  limits:
    # SIPp is one source standing for many callers: the per-source flood limits
    # (50 INVITEs/s by default, docs/security.md) would measure the limiter.
    per_source_invite_rate: null
    per_source_register_rate: null
groups:
  - name: Bench
    pilot: "{PILOT}"
    algorithm: linear
    no_answer_timeout: 10
    call_waiting: true
    queue:
      max_length: 0
    members:
"""
HUNTGROUP_CONFIG += "".join(
    f'      - uri: "sip:uas{i}@{HOST}:{UAS_PORT}"\n        position: {i}\n'
    for i in range(1, MEMBERS + 1)
)


ADMIN_PORT = 9090
SCRAPE_INTERVAL = 5.0
"""Seconds between two scrapes of /metrics in an --operations run (Prometheus: 15 s by
default; the benchmark scrapes three times as often)."""


POSTGRES_DSN_ENV = "HUNTGROUP_BENCH_POSTGRES_DSN"
"""Set by bench_operations.py: the --operations run also writes its records to PostgreSQL."""


def operations_config(work: Path, tree: Path) -> tuple[str, str]:
    """What an operator turns on, as YAML for an --operations run: (lines under
    ``server:``, top-level sections). The admin listener (metrics), and the call
    records into ``work`` when ``tree``'s configuration has them."""
    server = f'  admin:\n    listen: "{HOST}:{ADMIN_PORT}"\n'
    top = ""
    if has_records(tree):
        top = f'records:\n  jsonl: "{work / "calls.jsonl"}"\n  queue_log: "{work / "queue_log"}"\n'
        dsn = os.environ.get(POSTGRES_DSN_ENV)
        if dsn:  # bench_operations.py started a private cluster (its socket is a file)
            top += f"  postgres:\n    dsn_env: {POSTGRES_DSN_ENV}\n"
    return server, top


def has_records(tree: Path) -> bool:
    """Whether ``tree``'s configuration knows ``records:`` (the call records)."""
    return "records: RecordsConfig" in (tree / "huntgroup" / "config" / "models.py").read_text()


def _scrape(stop: threading.Event, done: list[int], failures: list[str]) -> None:
    """GET /metrics every SCRAPE_INTERVAL s until ``stop``; count the good answers."""
    while not stop.wait(SCRAPE_INTERVAL):
        try:
            url = f"http://{HOST}:{ADMIN_PORT}/metrics"
            with urllib.request.urlopen(url, timeout=5) as answer:
                if b"huntgroup_calls_active" in answer.read():
                    done.append(1)
                    continue
            failures.append("a scrape without huntgroup_calls_active")
        except OSError as err:
            failures.append(f"scrape failed: {err}")


@dataclass(frozen=True, slots=True)
class Point:
    """One 10 s run of one system at one rate."""

    system: str
    rate: int
    calls: int
    successful: int
    failed: int
    retransmissions: int
    seconds: float
    invite_ms: float  # mean INVITE -> 200 time seen by the caller
    cpu_seconds: float | None
    rss_idle_kib: int | None
    rss_steady_kib: int | None
    active_calls: float | None
    errors: str = ""  # the first lines of SIPp's error logs and the server's stderr
    operations: str = ""  # what an --operations run had on: "metrics", "metrics+records"
    scrapes: int = 0  # good /metrics answers during an --operations run
    record_lines: int = 0  # lines in the JSON-lines call records after the run
    # What the failures were (SIPp's counters): new calls refused with 503 (distinct
    # Call-IDs in the caller's error log), calls that timed out (no answer, UDP
    # retransmissions exhausted), calls broken by another unexpected message.
    shed: int = 0
    timeouts: int = 0
    unexpected: int = 0
    # The steady part of the run (seconds STEADY of SIPp's run, when calls arrive and
    # end at the same rate): the server's CPU, and the time its threads were runnable
    # but waiting for a core (/proc/PID/task/*/schedstat), both in seconds.
    steady_seconds: float | None = None
    steady_cpu_seconds: float | None = None
    steady_wait_seconds: float | None = None
    limits: str = ""  # "off": an --limits-off run (max_loop_lag and max_load null)

    @property
    def held(self) -> bool:
        limit = RUN_SECONDS + HOLD_SECONDS + SLACK_SECONDS
        return self.failed == 0 and self.successful == self.calls and self.seconds <= limit

    @property
    def cpu_percent(self) -> float | None:
        if self.cpu_seconds is None or self.seconds <= 0:
            return None
        return 100.0 * self.cpu_seconds / self.seconds

    @property
    def steady_cpu_percent(self) -> float | None:
        """The server's CPU in the steady part of the run, in % of one core."""
        if self.steady_cpu_seconds is None or not self.steady_seconds:
            return None
        return 100.0 * self.steady_cpu_seconds / self.steady_seconds

    @property
    def steady_wait_percent(self) -> float | None:
        """Time the server was runnable but not running (other processes had the
        cores), in the steady part of the run, in % of the wall clock."""
        if self.steady_wait_seconds is None or not self.steady_seconds:
            return None
        return 100.0 * self.steady_wait_seconds / self.steady_seconds

    @property
    def cpu_per_call_ms(self) -> float | None:
        return None if self.cpu_seconds is None else 1000.0 * self.cpu_seconds / self.calls

    @property
    def failure_kind(self) -> str:
        """``503 x24``, ``timeout x3``..., or ``""`` when no call failed."""
        if self.held:
            return ""
        parts = [f"503 x{self.shed}"] if self.shed else []
        if self.timeouts:
            parts.append(f"timeout x{self.timeouts}")
        other = self.unexpected - self.shed
        if other > 0:
            parts.append(f"other response x{other}")
        if self.retransmissions:
            parts.append(f"{self.retransmissions} retransmissions")
        if not parts:
            parts.append(f"{self.calls - self.successful} not completed in time")
        return ", ".join(parts)

    @property
    def kib_per_call(self) -> float | None:
        if self.rss_idle_kib is None or self.rss_steady_kib is None or not self.active_calls:
            return None
        return (self.rss_steady_kib - self.rss_idle_kib) / self.active_calls


# --------------------------------------------------------------- in the namespace


def _proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def _proc_wait_seconds(pid: int) -> float:
    """Seconds the threads of ``pid`` spent runnable but waiting for a core (the second
    field of ``/proc/PID/task/TID/schedstat``, in ns), summed over its threads."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return total / 1e9


STEADY = (2.0, 9.0)
"""Seconds of the caller's run whose server CPU is the steady state: after the first
calls' hang-ups started (1 s) and before the last calls were placed (10 s)."""


_ABORTED_ON_503 = re.compile(r"Call-Id '([^']+)'[^\n]*received 'SIP/2\.0 503 ")


def _shed_calls(work: Path) -> int:
    """New calls the server refused with 503: distinct Call-IDs of the calls SIPp
    aborted on a 503 (unexpected for ``uac_1s.xml``), from the caller's error log."""
    path = work / "uac.err"
    if not path.exists():
        return 0
    return len(set(_ABORTED_ON_503.findall(path.read_text(errors="replace"))))


def _proc_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _udp_bound(port: int) -> bool:
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local = line.split()[1]
            if int(local.rsplit(":", 1)[1], 16) == port:
                return True
    return False


def _wait_bound(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    for _ in range(300):  # 30 s at most
        if _udp_bound(port):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before listening")
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on UDP port {port} within 30 s")


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop a process we started (SIPp peers are simply killed: their job is done)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _last_stats(path: Path) -> dict[str, str]:
    with path.open(newline="") as f:
        rows = [row for row in csv.reader(f, delimiter=";") if row]
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


def _error_sample(work: Path, lines: int = 12) -> str:
    parts = []
    for name in ("uac.err", "uas.err", "server.err"):
        path = work / name
        if path.exists():
            text = path.read_text(errors="replace").strip().splitlines()[:lines]
            if text:
                parts.append(f"== {name}\n" + "\n".join(text))
    return "\n".join(parts)


def _sipp_ms(value: str) -> float:
    """SIPp's ``HH:MM:SS:uuuuuu`` as milliseconds."""
    h, m, s, us = (int(x) for x in value.split(":"))
    return ((h * 60 + m) * 60 + s) * 1000.0 + us / 1000.0


LIMITS_OFF = "    max_loop_lag: null\n    max_load: null\n"
"""YAML under ``server.limits`` of an ``--limits-off`` run: no overload shedding (what the
engine does without it, a diagnostic)."""


def _server_command(system: str, work: Path, extra: tuple[str, str] = ("", "")) -> list[str] | None:
    """The server's command line; ``extra``: YAML lines to add under ``server:``, and
    top-level sections (huntgroup only, see :func:`operations_config`)."""
    if system == "direct":
        return None
    if system == "huntgroup":
        config = work / "bench.yaml"
        head, _, groups = HUNTGROUP_CONFIG.partition("groups:\n")
        if os.environ.get("HUNTGROUP_BENCH_LIMITS") == "off":
            head = head.replace("  limits:\n", "  limits:\n" + LIMITS_OFF)
        config.write_text(head + extra[0] + "groups:\n" + groups + extra[1])
        return [
            sys.executable,
            "-m",
            "huntgroup",
            "serve",
            "--config",
            str(config),
            "--log-level",
            "WARNING",
        ]
    if system == "sippy":
        return [
            str(TOOLS_VENV / "bin" / "python"),
            "-c",
            SIPPY_MAIN,
            "-f",
            "-u",
            "-A",
            "0",
            "-s",
            f"{HOST}:{UAS_PORT}",
            "-l",
            HOST,
            "-p",
            str(SERVER_PORT),
            "-c",
            str(work / "b2bua.sock"),
            "-L",
            str(work / "b2bua.log"),
        ]
    raise ValueError(f"unknown system {system!r}")


def measure_point(
    system: str,
    rate: int,
    profile: Path | None = None,
    tree: Path = ROOT,
    *,
    operations: bool = False,
) -> Point:
    """One run; must be called inside the network namespace. ``tree``: the source
    tree whose ``huntgroup`` package the server runs (another revision's, say);
    ``operations``: with metrics (scraped) and call records on (huntgroup only)."""
    if operations and system != "huntgroup":
        raise ValueError("--operations applies to huntgroup only")
    calls = rate * RUN_SECONDS
    with tempfile.TemporaryDirectory(prefix="hg-bench-") as tmp:
        work = Path(tmp)
        env = dict(os.environ, PYTHONPATH=str(tree))
        started: list[subprocess.Popen[bytes]] = []
        server: subprocess.Popen[bytes] | None = None
        try:
            uas = subprocess.Popen(
                ["sipp", "-sf", str(SCENARIOS / "uas_answer.xml"), "-i", HOST,
                 "-p", str(UAS_PORT), "-nostdin", "-timeout", "60s",
                 "-trace_err", "-error_file", str(work / "uas.err")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work,
            )  # fmt: skip
            started.append(uas)
            _wait_bound(UAS_PORT, uas, "the SIPp member")
            extra = operations_config(work, tree) if operations else ("", "")
            command = _server_command(system, work, extra)
            if command is not None:
                server = subprocess.Popen(
                    command, cwd=work, env=env,
                    stdout=subprocess.DEVNULL, stderr=(work / "server.err").open("wb"),
                )  # fmt: skip
                started.append(server)
                _wait_bound(SERVER_PORT, server, system)
                time.sleep(0.5)  # let it settle before the idle reading
            target = SERVER_PORT if server is not None else UAS_PORT
            stats = work / "uac.csv"
            cpu0 = _proc_cpu_seconds(server.pid) if server else None
            rss_idle = _proc_rss_kib(server.pid) if server else None
            spy = None
            if profile is not None and server is not None:
                spy = subprocess.Popen(
                    [str(TOOLS_VENV / "bin" / "py-spy"), "record", "--pid", str(server.pid),
                     "--format", "raw", "--output", str(profile), "--rate", "250",
                     "--duration", str(RUN_SECONDS), "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=(work / "spy.err").open("wb"),
                )  # fmt: skip
                started.append(spy)
            t0 = time.monotonic()
            uac = start_uac(target, rate, calls, stats, work)
            started.append(uac)
            stop_scraping = threading.Event()
            scrapes: list[int] = []
            scrape_failures: list[str] = []
            scraper = threading.Thread(
                target=_scrape, args=(stop_scraping, scrapes, scrape_failures), daemon=True
            )
            if operations:
                scraper.start()
            rss: list[int] = []
            active: list[int] = []
            steady: list[tuple[float, float, float]] = []  # (t, cpu, wait) at its ends
            while uac.poll() is None:
                time.sleep(0.25)
                elapsed = time.monotonic() - t0
                due = STEADY[1] if steady else STEADY[0]
                if server is not None and len(steady) < 2 and elapsed >= due:
                    pid = server.pid
                    steady.append((elapsed, _proc_cpu_seconds(pid), _proc_wait_seconds(pid)))
                if server is not None and 3.0 <= elapsed <= RUN_SECONDS - 1.0 and stats.exists():
                    current = _last_stats(stats).get("CurrentCall")
                    if current:
                        rss.append(_proc_rss_kib(server.pid))
                        active.append(int(current))
                if elapsed > 60:
                    uac.kill()
            uac.wait()
            stop_scraping.set()
            if operations:
                scraper.join(timeout=10)
            seconds = time.monotonic() - t0
            cpu = _proc_cpu_seconds(server.pid) - cpu0 if server and cpu0 is not None else None
            if spy is not None:
                spy.wait(timeout=30)
            last = _last_stats(stats) if stats.exists() else {}
            shed = _shed_calls(work)
            errors = "\n".join([_error_sample(work), *scrape_failures[:3]]).strip()
            if server is not None and server.poll() is not None:
                err = (work / "server.err").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{system} died during the run:\n{err}")
        finally:
            for proc in reversed(started):
                _stop(proc, signal.SIGTERM if proc is server else signal.SIGKILL)
        records = work / "calls.jsonl"
        record_lines = len(records.read_bytes().splitlines()) if records.exists() else 0
    on = ""
    if operations:
        on = "metrics+records" if has_records(tree) else "metrics"
        on += "+postgres" if has_records(tree) and os.environ.get(POSTGRES_DSN_ENV) else ""
    return Point(
        system=system,
        rate=rate,
        calls=calls,
        successful=int(last.get("SuccessfulCall(C)", 0)),
        failed=int(last.get("FailedCall(C)", calls)),
        retransmissions=int(last.get("Retransmissions(C)", 0)),
        seconds=round(seconds, 2),
        invite_ms=_sipp_ms(last.get("ResponseTime1(C)", "0:0:0:0")),
        cpu_seconds=None if cpu is None else round(cpu, 3),
        rss_idle_kib=rss_idle,
        rss_steady_kib=int(statistics.median(rss)) if rss else None,
        active_calls=statistics.median(active) if active else None,
        errors=errors,
        operations=on,
        scrapes=len(scrapes),
        record_lines=record_lines,
        shed=shed,
        timeouts=sum(
            int(last.get(f"{name}(C)", 0))
            for name in ("FailedTimeoutOnRecv", "FailedMaxUDPRetrans", "FailedTimeoutOnSend")
        ),
        unexpected=int(last.get("FailedUnexpectedMessage(C)", 0)),
        steady_seconds=round(steady[1][0] - steady[0][0], 3) if len(steady) == 2 else None,
        steady_cpu_seconds=round(steady[1][1] - steady[0][1], 3) if len(steady) == 2 else None,
        steady_wait_seconds=round(steady[1][2] - steady[0][2], 3) if len(steady) == 2 else None,
        limits="off" if os.environ.get("HUNTGROUP_BENCH_LIMITS") == "off" else "",
    )


# --------------------------------------------------------------- outside: driving


def start_uac(
    target: int, rate: int, calls: int, stats: Path, work: Path
) -> subprocess.Popen[bytes]:
    """The SIPp caller of a point run: ``calls`` calls at ``rate`` calls/s to the pilot on
    ``target``, its statistics in ``stats`` and its errors in ``work``."""
    return subprocess.Popen(
        ["sipp", f"{HOST}:{target}", "-sf", str(SCENARIOS / "uac_1s.xml"),
         "-s", PILOT, "-i", HOST, "-p", str(UAC_PORT),
         "-r", str(rate), "-m", str(calls), "-l", str(rate * 3),
         "-nostdin", "-recv_timeout", "5000", "-timeout", "40s",
         "-trace_stat", "-stf", str(stats), "-fd", "1",
         "-trace_err", "-error_file", str(work / "uac.err")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work,
    )  # fmt: skip


def in_loopback_netns(argv: list[str], what: str) -> dict[str, object]:
    """Run ``argv`` in a fresh network namespace holding only loopback (at most 180 s);
    the JSON object of its last output line. ``what`` names the run in errors."""
    script = "ip link set lo up && exec " + " ".join(_quote(a) for a in argv)
    done = subprocess.run(
        ["unshare", "-n", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"measurement {what} failed (status {done.returncode}):\n{done.stderr[-3000:]}"
        )
    data: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return data


def run_isolated(system: str, rate: int, profile: Path | None = None, tree: Path = ROOT) -> Point:
    """Run :func:`measure_point` in a fresh network namespace with only loopback
    (``tree``: the source tree the server runs, see :func:`measure_point`)."""
    inner = [sys.executable, str(Path(__file__).resolve()), "--point", system, str(rate)]
    if profile is not None:
        inner += ["--profile-out", str(profile)]
    if tree != ROOT:
        inner += ["--tree", str(tree)]
    return Point(**in_loopback_netns(inner, f"{system} @ {rate}/s"))  # type: ignore[arg-type]


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\"'\"'") + "'"


def _log(point: Point, file: TextIO = sys.stdout) -> None:
    cpu = _fmt(point.cpu_percent, "{:.0f}%")
    kib = _fmt(point.kib_per_call, "{:.1f}")
    print(
        f"  {point.system:9} {point.rate:5}/s  ok {point.successful:5}/{point.calls:<5} "
        f"failed {point.failed:4}  {point.seconds:5.1f} s  cpu {cpu:>5} "
        f"(steady {_fmt(point.steady_cpu_percent, '{:.0f}%')}, waiting for a core "
        f"{_fmt(point.steady_wait_percent, '{:.0f}%')})  "
        f"{_fmt(point.cpu_per_call_ms, '{:.2f}')} ms/call  KiB/call {kib:>6}  "
        f"retrans {point.retransmissions}  "
        f"{'HELD' if point.held else 'failed: ' + point.failure_kind}"
        f"{'  [limits off]' if point.limits == 'off' else ''}",
        file=file,
        flush=True,
    )


@dataclass(frozen=True, slots=True)
class Result:
    system: str
    best: int  # 0: not even the lowest rate held
    confirm: tuple[Point, ...]
    points: tuple[Point, ...]
    capped: bool = False  # every rate tried held: the true limit is higher


def search(system: str, ceiling: int) -> Result:
    """Ladder up, bisect down to RESOLUTION, confirm with CONFIRM_RUNS runs."""
    points: list[Point] = []

    def run(rate: int) -> Point:
        point = run_isolated(system, rate)
        _log(point)
        points.append(point)
        return point

    good, bad = 0, None
    for rate in LADDER:
        if rate > ceiling:
            break
        if run(rate).held:
            good = rate
        else:
            bad = rate
            break
    while bad is not None and bad - good > RESOLUTION:
        mid = (good + bad) // 2 // RESOLUTION * RESOLUTION or RESOLUTION
        if mid in (good, bad):
            break
        if run(mid).held:
            good = mid
        else:
            bad = mid
    # Confirm: the best rate holds when the median run holds; else step down once.
    for _ in range(2):
        if good == 0:
            break
        runs = [p for p in points if p.rate == good][:1]
        while len(runs) < CONFIRM_RUNS:
            runs.append(run(good))
        if sum(p.held for p in runs) * 2 > len(runs):
            return Result(system, good, tuple(runs), tuple(points), capped=bad is None)
        good = max(good - RESOLUTION, 0) if good > RESOLUTION else 0
    return Result(system, good, (), tuple(points))


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _best(result: Result) -> str:
    if not result.best:
        return "none"
    return f"at least {result.best} (the highest rate tried)" if result.capped else str(result.best)


def _fmt(value: float | None, pattern: str = "{:.0f}") -> str:
    return "-" if value is None else pattern.format(value)


def cpu_per_call_ms(result: Result) -> float | None:
    """Median CPU per call (ms) of ``result``'s confirming runs at its best rate."""
    return _median(
        [
            1000 * p.cpu_seconds / p.calls if p.cpu_seconds is not None else None
            for p in result.confirm
        ]
    )


def first_failure(result: Result) -> Point | None:
    """The failed run at the lowest rate (ties: the one with the least CPU), or None."""
    failed = [p for p in result.points if not p.held]
    if not failed:
        return None
    return min(failed, key=lambda p: (p.rate, p.cpu_percent or 0.0))


def _failure_cell(point: Point) -> str:
    """``250/s at 83 % CPU (steady 90 % + 1 % waiting): 503 x544``."""
    return (
        f"{point.rate}/s at {_fmt(point.cpu_percent, '{:.0f} %')} CPU "
        f"(steady {_fmt(point.steady_cpu_percent, '{:.0f} %')} + "
        f"{_fmt(point.steady_wait_percent, '{:.0f} %')} waiting): {point.failure_kind}"
    )


def _spread(values: list[float]) -> str:
    """``median (min-max)`` of ``values``."""
    if not values:
        return "-"
    med = statistics.median(values)
    fmt = "{:.2f}" if max(values) < 10 else "{:.0f}"
    return f"{fmt.format(med)} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def render_repeats(repeats: list[list[Result]]) -> str:
    """One row per repeat of the whole search (sippy and huntgroup side by side in it),
    then the median and spread (min-max) over the repeats."""
    lines = [
        "| repeat | sippy held | huntgroup held | ratio | sippy CPU/call | huntgroup CPU/call "
        "| sippy first failure | huntgroup first failure |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    cols: dict[str, list[float]] = {"s": [], "h": [], "r": [], "sc": [], "hc": []}
    for i, results in enumerate(repeats, 1):
        by = {r.system: r for r in results}
        sippy, hg = by.get("sippy"), by.get("huntgroup")
        if sippy is None or hg is None:
            continue
        ratio = hg.best / sippy.best if sippy.best else None
        s_cpu, h_cpu = cpu_per_call_ms(sippy), cpu_per_call_ms(hg)
        cells = []
        for r in (sippy, hg):
            f = first_failure(r)
            cells.append("none" if f is None else _failure_cell(f))
        lines.append(
            f"| {i} | {sippy.best} | {hg.best} | {_fmt(ratio, '{:.2f}x')} "
            f"| {_fmt(s_cpu, '{:.2f} ms')} | {_fmt(h_cpu, '{:.2f} ms')} | {cells[0]} | {cells[1]} |"
        )
        cols["s"].append(sippy.best)
        cols["h"].append(hg.best)
        if ratio is not None:
            cols["r"].append(ratio)
        if s_cpu is not None:
            cols["sc"].append(s_cpu)
        if h_cpu is not None:
            cols["hc"].append(h_cpu)
    lines.append(
        f"| median (min-max) | {_spread(cols['s'])} | {_spread(cols['h'])} "
        f"| {_spread(cols['r'])} | {_spread(cols['sc'])} | {_spread(cols['hc'])} | | |"
    )
    ratio = statistics.median(cols["r"]) if cols["r"] else 0.0
    per_call = statistics.median(cols["hc"]) if cols["hc"] else None
    lines += [
        "",
        f"Targets of issue 14: at least {TARGET_RATIO:g}x sippy's rate held, side by side "
        f"(median {ratio:.2f}x: {'met' if ratio >= TARGET_RATIO else '**NOT met**'}); "
        f"CPU per call at most {TARGET_CPU_MS:g} ms (median {_fmt(per_call, '{:.2f} ms')}: "
        f"{'met' if per_call is not None and per_call <= TARGET_CPU_MS else '**NOT met**'}). "
        "The first failure: the failed run at the lowest rate, with the server's CPU over "
        "the run, over its steady part (seconds 2-9, calls arriving and ending at the same "
        "rate) and the share of that time it was runnable but waiting for a core (other "
        "processes held the cores), and what failed: `503 xN` new calls refused by the "
        "overload limits, `timeout`, `other response` (486 when calls piled up on the "
        "members), retransmissions.",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------- tools and profile


def install_tools() -> None:
    """sippy and py-spy in their own venv under /tmp (outside the namespace)."""
    stamp = TOOLS_VENV / f".installed-sippy{SIPPY_VERSION}-pyspy{PYSPY_VERSION}"
    if stamp.exists():
        return
    print(f"installing sippy {SIPPY_VERSION} and py-spy {PYSPY_VERSION} into {TOOLS_VENV}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(TOOLS_VENV)], check=True)
    subprocess.run(
        [str(TOOLS_VENV / "bin" / "python"), "-m", "pip", "install", "-q",
         f"sippy=={SIPPY_VERSION}", f"py-spy=={PYSPY_VERSION}"],
        check=True,
    )  # fmt: skip
    stamp.touch()


def summarize_profile(
    raw: Path, top: int = 12
) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """From py-spy's collapsed stacks: (samples, top self shares, top inclusive shares)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame_name(f) for f in stack.split(";")]
        if frames:
            own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if total == 0:
        return 0, [], []
    share = 100.0 / total
    return (
        total,
        [(n, c * share) for n, c in own.most_common(top)],
        [(n, c * share) for n, c in inclusive.most_common(top * 3)],
    )


def _frame_name(frame: str) -> str:
    """``func (path/to/module.py:123)`` -> ``func (module.py)``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    marker = "huntgroup/"
    if path.startswith(marker) or f"/{marker}" in path:
        path = marker + path.split(marker, 1)[1]
    else:
        path = Path(path).name
    return f"{name} ({path})"


@contextmanager
def _timed(label: str) -> Iterator[None]:
    t0 = time.monotonic()
    yield
    print(f"{label}: {time.monotonic() - t0:.0f} s", flush=True)


# --------------------------------------------------------------- report


def render(results: list[Result], profile: tuple[Point, Path] | None, total_s: float) -> str:
    by = {r.system: r for r in results}
    lines = [
        "Calls per second through one SIP server on loopback: a SIPp caller "
        "(`benchmarks/sipp/uac_1s.xml`) places calls at a fixed rate for 10 s, "
        "a SIPp member (`benchmarks/sipp/uas_answer.xml`) answers each at once, "
        "the caller hangs up after 1 s. huntgroup serves one group (linear, "
        f"call_waiting, no queue) of {MEMBERS} fixed-URI members that all reach that "
        "SIPp member (a member ringing for one call is not offered another). "
        "A rate *holds* when every call of the run "
        f"succeeds (no failed call, all rate x 10 calls done within {RUN_SECONDS + HOLD_SECONDS + SLACK_SECONDS} s). "  # noqa: E501
        f"Rates are stepped up ({', '.join(map(str, LADDER[:8]))}...), bisected to "
        f"{RESOLUTION} calls/s, and the best is confirmed by {CONFIRM_RUNS} runs "
        "(median: it holds in at least 2 of 3). Every run is in its own network "
        "namespace with only loopback (`unshare -n`). CPU: the server's utime + stime "
        "(all threads) over the run, in % of one core. Memory per active call: "
        "(median RSS over seconds 3-9 - idle RSS before the run) / SIPp's current calls; "
        "it includes one-time warm-up allocations, so it is an upper bound.",
        "",
        "| system | highest rate held (calls/s) | server CPU at that rate | CPU per call "
        "| memory per active call | INVITE to 200 (mean) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for system in SYSTEMS:
        r = by.get(system)
        if r is None:
            continue
        runs = list(r.confirm)
        cpu = _median([p.cpu_percent for p in runs])
        per_call = _median(
            [1000 * p.cpu_seconds / p.calls if p.cpu_seconds is not None else None for p in runs]
        )
        kib = _median([p.kib_per_call for p in runs])
        inv = _median([p.invite_ms for p in runs])
        lines.append(
            f"| {LABELS[system]} | {_best(r)} | {_fmt(cpu, '{:.0f} %')} "
            f"| {_fmt(per_call, '{:.2f} ms')} | {_fmt(kib, '{:.1f} KiB')} "
            f"| {_fmt(inv, '{:.1f} ms')} |"
        )
    if "sippy" in by and "huntgroup" in by:
        sippy, hg = by["sippy"].best, by["huntgroup"].best
        target = int(TARGET_RATIO * sippy)
        verdict = "met" if sippy and hg >= target else "**NOT met**"
        ratio = f"{hg / sippy:.2f}x" if sippy else "n/a"
        lines += [
            "",
            f"Target (at least {TARGET_RATIO:g}x sippy's rate, side by side): {target} calls/s. "
            f"huntgroup held {hg} calls/s = {ratio} sippy: target {verdict}.",
        ]
    lines += ["", "Every run (in order):", "", "| system | rate | calls ok | failed | "
              "retransmissions | duration | server CPU | steady CPU + waiting | CPU per call "
              "| KiB/active call | held |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for r in results:
        for p in r.points:
            lines.append(
                f"| {p.system} | {p.rate} | {p.successful}/{p.calls} | {p.failed} "
                f"| {p.retransmissions} | {p.seconds:.1f} s | {_fmt(p.cpu_percent, '{:.0f} %')} "
                f"| {_fmt(p.steady_cpu_percent, '{:.0f} %')} + "
                f"{_fmt(p.steady_wait_percent, '{:.0f} %')} "
                f"| {_fmt(p.cpu_per_call_ms, '{:.2f} ms')} "
                f"| {_fmt(p.kib_per_call, '{:.1f}')} "
                f"| {'yes' if p.held else 'no: ' + p.failure_kind} |"
            )
    if profile is not None:
        point, raw = profile
        total, own, inclusive = summarize_profile(raw)
        lines += [
            "",
            f"Where huntgroup's time goes at {point.rate} calls/s (py-spy {PYSPY_VERSION}, "
            f"{total} samples at 250 Hz over the 10 s run, server CPU {_fmt(point.cpu_percent, '{:.0f} %')}, "  # noqa: E501
            f"{point.failed} failed calls). Self time (the function itself):",
            "",
            "| function | self |",
            "|---|---:|",
        ]
        lines += [f"| `{name}` | {pct:.1f} % |" for name, pct in own]
        lines += ["", "Inclusive time (the function and what it calls), huntgroup frames:", "",
                  "| function | inclusive |", "|---|---:|"]  # fmt: skip
        shown = [(n, p) for n, p in inclusive if "huntgroup/" in n][:15]
        lines += [f"| `{name}` | {pct:.1f} % |" for name, pct in shown]
    lines += ["", f"Whole benchmark: {total_s / 60:.1f} min."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--max-rate", type=int, default=LADDER[-1])
    parser.add_argument(
        "--profile", type=int, default=None, metavar="RATE",
        help="profile huntgroup with py-spy at RATE (default: its best rate)",
    )  # fmt: skip
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--repeat", type=int, default=1, metavar="N",
        help="run the whole search N times; report the median and spread",
    )  # fmt: skip
    parser.add_argument("--point", nargs=2, metavar=("SYSTEM", "RATE"), help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--tree", type=Path, default=ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--operations", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--limits-off", action="store_true",
        help="huntgroup without overload shedding (max_loop_lag, max_load null): a diagnostic",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.limits_off:
        os.environ["HUNTGROUP_BENCH_LIMITS"] = "off"  # read by every run, in the namespace too

    if args.point:  # inside the namespace: one run, one JSON line
        point = measure_point(
            args.point[0],
            int(args.point[1]),
            args.profile_out,
            args.tree,
            operations=args.operations,
        )
        _log(point, sys.stderr)
        print(json.dumps(asdict(point)))
        return 0

    for tool in ("sipp", "unshare", "ip"):
        if shutil.which(tool) is None:
            print(f"bench_b2bua: `{tool}` is not installed (scripts/setup.sh installs it)")
            return 1
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown system(s): {', '.join(sorted(unknown))}")
    install_tools()
    t0 = time.monotonic()
    repeats: list[list[Result]] = []
    for _ in range(max(1, args.repeat)):
        results: list[Result] = []
        for system in systems:
            with _timed(system):
                print(f"{LABELS[system]}:", flush=True)
                results.append(search(system, args.max_rate))
                print(f"  -> highest rate held: {results[-1].best} calls/s", flush=True)
        repeats.append(results)
    results = repeats[0]
    profile = None
    hg = next((r for r in results if r.system == "huntgroup"), None)
    if hg is not None and not args.no_profile:
        rate = args.profile or hg.best or LADDER[0]
        raw = Path(tempfile.gettempdir()) / "huntgroup-bench-profile.txt"
        with _timed("profile"):
            point = run_isolated("huntgroup", rate, profile=raw)
            _log(point)
        profile = (point, raw)
    body = render(results, profile, time.monotonic() - t0)
    if len(repeats) > 1 or "sippy" in systems:
        body = (
            f"{len(repeats)} repeat(s) of the whole search, sippy and huntgroup side by side "
            "in each; other work (other benchmarks and test runs) may share the machine, "
            "so compare within a repeat.\n\n" + render_repeats(repeats) + "\n\n"
            "The first repeat in detail:\n\n" + body
        )
    print(body)
    if not args.no_write:
        command = (
            ".venv/bin/python benchmarks/bench_b2bua.py"
            + (f" --systems {args.systems}" if args.systems != ",".join(SYSTEMS) else "")
            + (f" --repeat {args.repeat}" if args.repeat > 1 else "")
        )
        write_section("b2bua", command, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
