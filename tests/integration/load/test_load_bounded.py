"""A short, bounded load run through the live server, isolated from the network.

The test runs this very file as a script inside a new network namespace that
holds only loopback (``unshare -n``, then ``ip link set lo up``), so no packet
can leave the machine. In there the script starts ``huntgroup serve``, a SIPp
member that answers every call at once, and a SIPp caller placing
``RATE`` calls/s for ``SECONDS`` s (calls held 1 s, the scenarios of
``benchmarks/sipp``); then it checks with an OPTIONS request that the server
still answers, and prints one JSON line that the test asserts on.

Bounds: the caller places exactly ``RATE * SECONDS`` calls, SIPp stops itself
after 30 s whatever happens, and every wait below has a count limit.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCENARIOS = ROOT / "benchmarks" / "sipp"
HOST = "127.0.0.1"
SERVER_PORT = 5070
UAS_PORT = 5090
UAC_PORT = 5061
PILOT = "0140000000"
RATE = 30
SECONDS = 5
# Several fixed-URI members reaching the same SIPp member: a member ringing for
# one call is not offered another, so with a single member two calls whose
# ringing phases overlap would get 486 by the group contract. One member per
# call of a second: on a loaded machine SIPp falls behind and then sends its
# late calls in a burst, and ten members ringing at once was seen to be too few
# (2 calls of 150 got 486 while the CPU was busy).
MEMBERS = RATE


def _config() -> str:
    members = "".join(
        f'      - uri: "sip:load{i}@{HOST}:{UAS_PORT}"\n        position: {i}\n'
        for i in range(1, MEMBERS + 1)
    )
    return (
        "server:\n"
        f'  listen: ["udp:{HOST}:{SERVER_PORT}"]\n'
        "  media:\n"
        f"    address: {HOST}\n"
        '    rtp_ports: "20000-29999"\n'
        "  shutdown_grace: 0\n"
        "groups:\n"
        "  - name: Load\n"
        f'    pilot: "{PILOT}"\n'
        "    algorithm: linear\n"
        "    no_answer_timeout: 10\n"
        "    call_waiting: true\n"
        "    queue:\n"
        "      max_length: 0\n"
        "    members:\n" + members
    )


def _options_status(tag: str) -> int | None:
    """Send one OPTIONS to the server; the status of its answer, or None."""
    branch = "z9hG4bK" + secrets.token_hex(8)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(0.5)
        port = sock.getsockname()[1]
        request = (
            f"OPTIONS sip:{PILOT}@{HOST}:{SERVER_PORT} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{port};branch={branch}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:probe@{HOST}>;tag={tag}\r\n"
            f"To: <sip:{PILOT}@{HOST}>\r\n"
            f"Call-ID: {secrets.token_hex(8)}@{HOST}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        sock.sendto(request.encode(), (HOST, SERVER_PORT))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return None
    first = data.split(b"\r\n", 1)[0].split()
    return int(first[1]) if len(first) >= 2 and first[1].isdigit() else None


def _wait_options(server: subprocess.Popen[bytes]) -> int | None:
    status = None
    for attempt in range(120):  # 120 tries of at most 0.5 s: a loaded machine starts slowly
        if server.poll() is not None:
            return None
        status = _options_status(f"probe{attempt}")
        if status is not None:
            return status
    return status


def _wait_udp_bound(proc: subprocess.Popen[bytes], port: int) -> None:
    """Wait (at most 60 s) until ``proc`` has bound UDP ``port``; fail if it exits first."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sipp exited at start-up with {proc.returncode}")
        # Read the namespace's socket table: binding the port to probe it could
        # make SIPp's own bind fail.
        table = Path("/proc/net/udp").read_text().splitlines()[1:]
        if any(line.split()[1].endswith(f":{port:04X}") for line in table if line.strip()):
            return
        time.sleep(0.05)
    raise RuntimeError(f"sipp did not bind udp {HOST}:{port}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _inside(work: Path) -> dict[str, object]:
    """Run in the namespace: serve, load, probe; the results as a dict."""
    config = work / "load.yaml"
    config.write_text(_config())
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    started: list[subprocess.Popen[bytes]] = []
    result: dict[str, object] = {}
    try:
        server = subprocess.Popen(
            [sys.executable, "-m", "huntgroup", "serve", "--config", str(config),
             "--log-level", "WARNING"],
            cwd=work, env=env, stdout=subprocess.DEVNULL,
            stderr=(work / "server.err").open("wb"),
        )  # fmt: skip
        started.append(server)
        result["ready_status"] = _wait_options(server)
        uas = subprocess.Popen(
            ["sipp", "-sf", str(SCENARIOS / "uas_answer.xml"), "-i", HOST, "-p", str(UAS_PORT),
             "-nostdin", "-timeout", "30s"],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        started.append(uas)
        _wait_udp_bound(uas, UAS_PORT)  # no call before the member listens
        stats = work / "uac.csv"
        uac = subprocess.run(
            ["sipp", f"{HOST}:{SERVER_PORT}", "-sf", str(SCENARIOS / "uac_1s.xml"),
             "-s", PILOT, "-i", HOST, "-p", str(UAC_PORT),
             "-r", str(RATE), "-m", str(RATE * SECONDS), "-l", str(RATE * 3),
             "-nostdin", "-recv_timeout", "5000", "-timeout", "30s",
             "-trace_stat", "-stf", str(stats), "-fd", "1",
             "-trace_err", "-error_file", str(work / "uac.err")],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            timeout=60, check=False,
        )  # fmt: skip
        result["uac_status"] = uac.returncode
        with stats.open(newline="") as f:
            rows = [row for row in csv.reader(f, delimiter=";") if row]
        last = dict(zip(rows[0], rows[-1], strict=False)) if len(rows) > 1 else {}
        result["successful"] = int(last.get("SuccessfulCall(C)", -1))
        result["failed"] = int(last.get("FailedCall(C)", -1))
        result["server_running"] = server.poll() is None
        result["after_status"] = _options_status("after")
        errors = work / "uac.err"
        result["uac_errors"] = errors.read_text(errors="replace")[:3000] if errors.exists() else ""
    finally:
        for proc in reversed(started):
            _stop(proc)
        result["server_stderr"] = (work / "server.err").read_text(errors="replace")[-3000:]
    return result


@pytest.mark.integration
def test_bounded_load_has_no_failed_call_and_leaves_the_server_healthy() -> None:
    missing = [tool for tool in ("sipp", "unshare", "ip") if shutil.which(tool) is None]
    assert not missing, f"{', '.join(missing)} not installed: run scripts/setup.sh"
    probe = subprocess.run(
        ["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, text=True
    )
    assert probe.returncode == 0, (
        "cannot create a network namespace (`unshare -n` needs root or CAP_SYS_ADMIN): "
        + probe.stderr.strip()
    )
    with tempfile.TemporaryDirectory(prefix="hg-load-") as tmp:
        script = "ip link set lo up && exec " + shlex.join(
            [sys.executable, str(Path(__file__).resolve()), "--inside", tmp]
        )
        done = subprocess.run(
            ["unshare", "-n", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, f"load driver failed:\n{done.stdout}\n{done.stderr}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    context = json.dumps(result, indent=1)
    assert result["ready_status"] == 200, context
    assert result["failed"] == 0, context
    assert result["successful"] == RATE * SECONDS, context
    assert result["uac_status"] == 0, context
    assert result["server_running"], context
    assert result["after_status"] == 200, context


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--inside":
        print(json.dumps(_inside(Path(sys.argv[2]))))
        sys.exit(0)
    sys.exit("usage: test_load_bounded.py --inside WORKDIR (run by the test, in a namespace)")
