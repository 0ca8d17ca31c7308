"""Real-peer harness: huntgroup under test, SIPp callers and members, on 127.0.0.1.

Theory of operation
-------------------
* **Ports.** :class:`~tests.support.ports.PortAllocator` hands out loopback
  ports that are free for UDP *and* TCP at the time of the call, never the
  same port twice in a session, and blocks of consecutive ports for RTP ranges.
* **Config.** :func:`server_config` builds the YAML document of the contract
  (DESIGN.md, "The configuration file"): the server listens on one UDP and
  one TCP port, media on 127.0.0.1 with a private RTP range, state in memory.
  Groups list their members as fixed URIs ``sip:mN@127.0.0.1:PORT`` (SIPp
  UAS instances) or as lines (SIPp/baresip registering).
* **Server.** :class:`HuntgroupServer` runs ``python -m huntgroup serve
  --config FILE`` with its output captured to a log file, waits until it
  answers an ``OPTIONS`` ping with 200 (bounded retries), and stops it with
  SIGTERM, checking that it exits.
* **SIPp.** :class:`Sipp` starts members (UAS scenarios: answer after N ms,
  never answer, busy 486, decline 603, answer then hang up) and callers (UAC
  scenarios, ``-m 1``). Every run is bounded by SIPp's ``-timeout`` and by a
  subprocess timeout; every SIPp writes its messages (``-trace_msg``) and
  errors into the test's ``tmp_path``. :func:`parse_message_log` turns the
  message log into :class:`SipMessage` records with their timestamps, so
  tests assert which member received which INVITE, and in what order.

Invariants: everything binds 127.0.0.1; no process outlives its fixture
(teardown SIGTERMs, then SIGKILLs); a missing ``sipp`` fails the test with a
message that says how to install it, it is never skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from huntgroup.engine.sip import SipParseError
from huntgroup.engine.sip.digest import DigestAuthenticator, DigestSecret, parse_credentials
from tests.support.ports import PortAllocator, tcp_port_listening, udp_port_bound
from tests.support.sip_messages import SipMessage, parse_message
from tests.support.waiting import WaitTimeout, wait_until

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = REPO_ROOT / "tests" / "integration" / "scenarios"
DOMAIN = "voip.test"
CALLER_NUMBER = "0611111111"

SIPP_MISSING = (
    "sipp is not installed (Debian package 'sip-tester'). The integration tests need it: "
    "run scripts/setup.sh (or scripts/test.sh), which installs it with apt-get."
)

Behaviour = Literal["answer", "noanswer", "busy", "decline", "bye", "timer", "dialog_notifier"]
MEMBER_SCENARIOS: dict[str, str] = {
    "answer": "uas_answer.xml",
    "noanswer": "uas_noanswer.xml",
    "busy": "uas_busy.xml",
    "decline": "uas_decline.xml",
    "bye": "uas_bye.xml",
    "timer": "uas_timer.xml",
    "dialog_notifier": "uas_dialog_notifier.xml",
}


class HarnessError(AssertionError):
    """A peer did not behave as the test set-up expects (fails the test)."""


def sipp_binary() -> str:
    """The path of ``sipp``; raises :class:`HarnessError` (a test failure) when missing."""
    path = shutil.which("sipp")
    if path is None:
        raise HarnessError(SIPP_MISSING)
    return path


# --------------------------------------------------------------------------- SIP message log


_SEPARATOR = re.compile(
    r"^-{20,} (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d+)\n"
    r"(?:UDP|TCP|TLS|SCTP) message (sent|received) (?:\[\d+\] bytes :|\(\d+ bytes\):)\n\n?",
    re.MULTILINE,
)


def parse_message_log(path: Path) -> list[SipMessage]:
    """The messages of a SIPp ``-message_file``, in log order (sent and received)."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
    matches = list(_SEPARATOR.finditer(text))
    messages: list[SipMessage] = []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        chunk = text[match.end() : end]
        # SIPp appends notes (e.g. "Unexpected UDP message received") after a dashed line.
        chunk = re.split(r"\n-{20,}\n", chunk, maxsplit=1)[0].lstrip("\n")
        if not chunk.strip():
            continue
        head, _, body = chunk.partition("\n\n")
        wire = (head.rstrip("\n") + "\n\n" + body).replace("\n", "\r\n")
        stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        direction: Literal["sent", "received"] = "sent" if match.group(2) == "sent" else "received"
        try:
            message = parse_message(wire.encode(), time=stamp, direction=direction)
        except SipParseError as exc:
            raise HarnessError(f"{path}: unreadable SIP message ({exc}):\n{chunk}") from None
        messages.append(message)
    return messages


# --------------------------------------------------------------------------- SIPp processes


@dataclass
class SippProcess:
    """One running (or finished) SIPp instance and its log files."""

    name: str
    scenario: str
    port: int
    args: list[str]
    popen: subprocess.Popen[bytes]
    message_file: Path
    error_file: Path
    screen_file: Path
    timeout: float
    returncode: int | None = None
    transport: str = "udp"

    @property
    def uri(self) -> str:
        """``sip:NAME@127.0.0.1:PORT``: the fixed URI of a member in a group
        (with ``;transport=tcp`` for a member on TCP)."""
        uri = member_uri(self.name, self.port)
        return uri if self.transport == "udp" else f"{uri};transport={self.transport}"

    def final_status(self) -> int | None:
        """The final status (>= 200) this caller received for its INVITE, if any."""
        finals = [
            m.status
            for m in self.received_responses()
            if m.cseq_method == "INVITE" and m.status is not None and m.status >= 200
        ]
        return finals[0] if finals else None

    def received_responses(self) -> list[SipMessage]:
        return [m for m in self.messages() if m.direction == "received" and not m.is_request]

    def messages(self) -> list[SipMessage]:
        """The messages of the run. SIPp buffers its log: a running SIPp is stopped first."""
        if self.popen.poll() is None:
            self.stop()
        return parse_message_log(self.message_file)

    def received(self, method_or_status: str | int) -> list[SipMessage]:
        """Messages received: requests of a method, or responses of a status."""
        return [
            m for m in self.messages() if m.direction == "received" and _is(m, method_or_status)
        ]

    def sent(self, method_or_status: str | int) -> list[SipMessage]:
        return [m for m in self.messages() if m.direction == "sent" and _is(m, method_or_status)]

    def errors(self) -> str:
        return self.error_file.read_text(errors="replace") if self.error_file.exists() else ""

    def wait(self, timeout: float | None = None) -> int:
        """Wait for SIPp to exit (bounded) and return its exit status."""
        limit = self.timeout + 10 if timeout is None else timeout
        try:
            self.returncode = self.popen.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            self.kill()
            raise HarnessError(
                f"{self.name}: sipp still running after {limit} s\n{self.describe()}"
            ) from None
        return self.returncode

    def expect_success(self, timeout: float | None = None) -> None:
        """Wait and fail with the SIPp logs unless every call of the scenario succeeded."""
        rc = self.wait(timeout)
        if rc != 0:
            raise HarnessError(f"{self.name}: sipp exited with {rc}\n{self.describe()}")

    def stop(self, *, grace: float = 5) -> int | None:
        """End SIPp so that its logs are flushed.

        SIGUSR1 is SIPp's soft exit (calls in progress finish, no new one
        starts); after ``grace`` s, SIGTERM quits at once; SIGKILL is the last
        resort (it loses the buffered message log, so the waits are generous:
        SIPp usually exits in milliseconds, a loaded machine may take longer).
        """
        self.soft_exit()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=grace)
        self.terminate()
        self.returncode = self.popen.poll()
        return self.returncode

    def soft_exit(self) -> None:
        """SIGUSR1: SIPp starts no new call and exits once its calls are over."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGUSR1)

    def terminate(self) -> None:
        """SIGTERM (SIPp exits at once, its message log written), SIGKILL if it lingers.

        Not a second SIGUSR1: SIPp 3.x then aborts its calls but never exits
        while it counts a "call" that an auto-answered OPTIONS (``-aa``) opened
        in a UAS scenario: it waited out every grace period until SIGKILL.
        """
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=5)
        self.kill()

    def kill(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=5)

    def describe(self) -> str:
        lines = [f"command: sipp {' '.join(self.args)}"]
        errors = self.errors().strip()
        if errors:
            lines.append("errors:\n" + errors[-3000:])
        lines.append("messages:\n" + "\n".join(f"  {m}" for m in self.messages()))
        return "\n".join(lines)


def _is(message: SipMessage, method_or_status: str | int) -> bool:
    if isinstance(method_or_status, int):
        return message.status == method_or_status
    return message.method == method_or_status


@dataclass
class Sipp:
    """Starts SIPp members and callers for one test; :meth:`close` kills them all."""

    tmp_path: Path
    ports: PortAllocator
    binary: str = field(default_factory=sipp_binary)
    processes: list[SippProcess] = field(default_factory=list)

    def _start(
        self,
        name: str,
        scenario: str,
        extra: list[str],
        *,
        port: int | None,
        timeout: float,
        remote: str | None = None,
        transport: str = "udp",
    ) -> SippProcess:
        scenario_path = SCENARIOS / scenario
        if not scenario_path.is_file():
            raise HarnessError(f"no scenario {scenario_path}")
        port = self.ports.port() if port is None else port
        media = self.ports.block(4)
        files = self.tmp_path / "sipp"
        files.mkdir(exist_ok=True)
        message_file = files / f"{name}.messages.log"
        error_file = files / f"{name}.errors.log"
        screen_file = files / f"{name}.screen.log"
        args = [
            "-sf", str(scenario_path),
            "-i", HOST, "-p", str(port),
            "-mi", HOST, "-mp", str(media),
            "-t", "t1" if transport == "tcp" else "u1",
            "-nostdin",
            "-timeout", f"{timeout:g}s",
            "-max_retrans", "4",
            "-trace_msg", "-message_file", str(message_file),
            "-trace_err", "-error_file", str(error_file),
            "-trace_screen", "-screen_file", str(screen_file),
            *extra,
        ]  # fmt: skip
        if remote is not None:
            args.append(remote)
        with open(files / f"{name}.stdout.log", "wb") as out:
            popen = subprocess.Popen(
                [self.binary, *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=files,
            )
        proc = SippProcess(
            name=name,
            scenario=scenario,
            port=port,
            args=args,
            popen=popen,
            message_file=message_file,
            error_file=error_file,
            screen_file=screen_file,
            timeout=timeout,
            transport=transport,
        )
        self.processes.append(proc)
        return proc

    def member(
        self,
        name: str,
        behaviour: Behaviour = "answer",
        *,
        answer_ms: int = 500,
        hangup_ms: int = 1000,
        port: int | None = None,
        timeout: float = 60,
        transport: str = "udp",
        more: Sequence[str] = (),
    ) -> SippProcess:
        """A SIPp UAS at ``sip:NAME@127.0.0.1:PORT`` that answers every call it gets the same way.

        ``transport``: ``udp``, or ``tcp`` (SIPp listens on TCP; its URI says
        ``;transport=tcp``, so the server opens a connection to it).

        ``answer``: 100, 180, 200 after ``answer_ms``, then waits for the BYE;
        ``bye``: the same, then hangs up after ``hangup_ms``; ``noanswer``:
        100, 180, then waits for CANCEL (200, 487); ``busy``: 486;
        ``decline``: 603; ``timer``: like ``answer``, and it wants session timers
        offered (RFC 4028) and takes the refresher role; ``dialog_notifier``: a
        phone that answers the server's dialog SUBSCRIBE and reports a call of
        its own for ``answer_ms`` (RFC 4235). Answering members reply 487 to a
        CANCEL while ringing.
        OPTIONS pings are answered 200 (``-aa``). ``more``: more SIPp arguments.
        """
        extra = ["-aa", "-d", str(answer_ms), *more]
        if behaviour == "bye":
            extra += ["-set", "hangup_ms", str(hangup_ms)]
        if behaviour == "dialog_notifier":  # one subscription, then exit (not at -timeout)
            extra += ["-m", "1"]
        proc = self._start(
            name,
            MEMBER_SCENARIOS[behaviour],
            extra,
            port=port,
            timeout=timeout,
            transport=transport,
        )
        if transport == "tcp":
            _wait_started(proc, tcp_port_listening, f"listen on tcp {HOST}:{proc.port}")
        else:
            _wait_started(proc, udp_port_bound, f"bind udp {HOST}:{proc.port}")
        return proc

    def call(
        self,
        name: str,
        target_port: int,
        dialled: str,
        scenario: str = "uac_call.xml",
        *,
        caller: str = CALLER_NUMBER,
        duration_ms: int = 500,
        timeout: float = 30,
        target_host: str = HOST,
    ) -> SippProcess:
        """One caller (``-m 1``) dialling ``dialled`` at ``target_host:target_port``.

        ``duration_ms`` is the pause of the scenario (-d): talk time before the
        BYE in ``uac_call.xml``, ringing time before the CANCEL in ``uac_cancel.xml``.
        """
        extra = [
            "-s", dialled,
            "-m", "1", "-l", "1", "-r", "1",
            "-d", str(duration_ms),
            "-timeout_error",
        ]  # fmt: skip
        return self._dial(name, scenario, [caller], extra, f"{target_host}:{target_port}", timeout)

    def callers(
        self,
        name: str,
        target_port: int,
        dialled: str,
        numbers: Sequence[str],
        *,
        rate: float,
        scenario: str = "uac_queue.xml",
        recv_timeout: float = 30,
        timeout: float = 120,
        target_host: str = HOST,
    ) -> SippProcess:
        """One SIPp placing ``len(numbers)`` calls at ``rate`` calls/s, the i-th from
        ``numbers[i]`` (its From user), all in one message log. A call that waits
        ``recv_timeout`` s for its next message is aborted; the whole run ends
        after ``timeout`` s at most."""
        extra = [
            "-s", dialled,
            "-m", str(len(numbers)), "-l", str(len(numbers)),
            "-r", f"{rate:g}", "-rp", "1000",
            "-recv_timeout", f"{recv_timeout * 1000:.0f}",
        ]  # fmt: skip
        return self._dial(name, scenario, numbers, extra, f"{target_host}:{target_port}", timeout)

    def _dial(
        self,
        name: str,
        scenario: str,
        numbers: Sequence[str],
        extra: list[str],
        remote: str,
        timeout: float,
    ) -> SippProcess:
        """Start a caller SIPp towards ``remote``; its i-th call is from ``numbers[i]``
        (the From user, read from an injection file)."""
        csv = self.tmp_path / "sipp" / f"{name}.csv"
        csv.parent.mkdir(exist_ok=True)
        csv.write_text("SEQUENTIAL\n" + "".join(f"{number};\n" for number in numbers))
        return self._start(
            name, scenario, ["-inf", str(csv), *extra], port=None, timeout=timeout, remote=remote
        )

    def register(
        self,
        name: str,
        registrar_port: int,
        number: str,
        password: str,
        *,
        contact_port: int,
        contact_host: str = HOST,
        domain: str = DOMAIN,
        scenario: str = "uac_register_auth.xml",
        timeout: float = 15,
    ) -> SippProcess:
        """Register line ``number`` with digest auth; its Contact is
        ``contact_host:contact_port`` (the server refuses a host other than SIPp's own)."""
        csv = self.tmp_path / "sipp" / f"{name}.csv"
        csv.parent.mkdir(exist_ok=True)
        csv.write_text(f"SEQUENTIAL\n{number};{domain};{contact_host};{contact_port};\n")
        extra = [
            "-inf", str(csv),
            "-au", number, "-ap", password, "-auth_uri", domain,
            "-m", "1", "-l", "1",
            "-timeout_error",
        ]  # fmt: skip
        return self._start(
            name, scenario, extra, port=None, timeout=timeout, remote=f"{HOST}:{registrar_port}"
        )

    def watch(
        self,
        name: str,
        server_port: int,
        watcher: str,
        password: str,
        target: str,
        scenario: str,
        *,
        domain: str = DOMAIN,
        timeout: float = 30,
    ) -> SippProcess:
        """A BLF key: line ``watcher`` SUBSCRIBEs (dialog events, digest auth) to
        ``target`` and checks the NOTIFYs ``scenario`` expects (uac_blf_*.xml)."""
        csv = self.tmp_path / "sipp" / f"{name}.csv"
        csv.parent.mkdir(exist_ok=True)
        csv.write_text(f"SEQUENTIAL\n{watcher};{domain};{target};\n")
        extra = [
            "-inf", str(csv),
            "-au", watcher, "-ap", password, "-auth_uri", f"{target}@{domain}",
            "-m", "1", "-l", "1",
            "-timeout_error",
        ]  # fmt: skip
        return self._start(
            name, scenario, extra, port=None, timeout=timeout, remote=f"{HOST}:{server_port}"
        )

    def close(self, *, grace: float = 2) -> None:
        """Soft exit for all at once, one shared ``grace`` for calls in progress to end,
        then SIGTERM for the rest (one by one this cost up to 10 s per process)."""
        for proc in self.processes:
            proc.soft_exit()
        deadline = time.monotonic() + grace
        for proc in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        for proc in self.processes:
            proc.terminate()
            proc.returncode = proc.popen.poll()


# Start-up deadlines: generous, because a loaded 2-core CI machine can take
# seconds to start a process (the server imports pydantic, numpy, ...). They
# only bound a failure; a healthy start returns as soon as it is ready.
STARTUP_DEADLINE = 60.0


def _wait_started(
    proc: SippProcess,
    ready: Callable[[int], bool],
    what: str,
    *,
    deadline: float = STARTUP_DEADLINE,
) -> None:
    """Wait until ``ready(proc.port)``: the SIPp process is up (bounded by ``deadline`` s);
    HarnessError if it exits first or never gets there."""

    def started() -> bool:
        if proc.popen.poll() is not None:
            raise HarnessError(f"{proc.name}: sipp exited at start-up\n{proc.describe()}")
        return ready(proc.port)

    wait_until(
        started,
        timeout=deadline,
        interval=0.05,
        message=f"{proc.name}: sipp did not {what}",
        error=HarnessError,
    )


def invites_in_order(members: dict[str, SippProcess]) -> list[str]:
    """Names of the members, one per INVITE received, sorted by arrival time (stable)."""
    arrivals = [
        (message.time, name)
        for name, proc in members.items()
        for message in proc.received("INVITE")
        if not _is_retransmission(message, proc)
    ]
    return [name for _, name in sorted(arrivals)]


def _is_retransmission(message: SipMessage, proc: SippProcess) -> bool:
    earlier = [
        m
        for m in proc.received("INVITE")
        if m.time < message.time
        and m.call_id == message.call_id
        and m.header("CSeq") == message.header("CSeq")
        and m.header("Via") == message.header("Via")
    ]
    return bool(earlier)


class DigestRegistrar:
    """A stand-in registrar on huntgroup's DigestAuthenticator, for tests without the server.

    One thread answers REGISTERs on UDP: 401 with one challenge per algorithm
    (in the given order, like the server), then 200 or 403. It records the
    algorithm, digest uri and outcome of every answer, and accepted Contacts.
    """

    def __init__(self, port: int, algorithms: Sequence[str], password: str) -> None:
        self.auth = DigestAuthenticator(DOMAIN, b"k" * 32, 60, algorithms=algorithms)
        self.password = password
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.outcomes: list[tuple[str, str, str]] = []  # (algorithm, uri, outcome)
        self.contacts: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            request = parse_message(data)
            common = "\r\n".join(
                [
                    *(f"Via: {via}" for via in request.all("Via")),
                    f"From: {request.header('From')}",
                    f"To: {request.header('To')};tag=reg",
                    f"Call-ID: {request.call_id}",
                    f"CSeq: {request.header('CSeq')}",
                ]
            )
            contact = request.header("Contact")
            authorization = request.header("Authorization")
            if authorization is not None:
                creds = parse_credentials(authorization)
                result = self.auth.verify(
                    creds,
                    method="REGISTER",
                    credentials_lookup=lambda _user: DigestSecret(password=self.password),
                    now=time.time(),
                )
                self.outcomes.append((creds.algorithm, creds.uri, result.outcome.value))
                if result.ok:
                    self.contacts.append(contact or "")
                    reply = f"SIP/2.0 200 OK\r\n{common}\r\nContact: {contact};expires=3600"
                else:
                    reply = f"SIP/2.0 403 Forbidden\r\n{common}"
            else:
                challenges = self.auth.challenge(now=time.time())
                reply = "SIP/2.0 401 Unauthorized\r\n" + common
                reply += "".join(f"\r\nWWW-Authenticate: {c}" for c in challenges)
            self.sock.sendto((reply + "\r\nContent-Length: 0\r\n\r\n").encode(), addr)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


# --------------------------------------------------------------------------- config


def member_uri(name: str, port: int) -> str:
    return f"sip:{name}@{HOST}:{port}"


def group(
    name: str,
    pilot: str,
    algorithm: str,
    members: Sequence[str],
    *,
    no_answer_timeout: float = 2,
    **options: Any,
) -> dict[str, Any]:
    """A group whose members are, in position order, SIP URIs (``sip:...``) or line numbers."""
    entries: list[dict[str, Any]] = []
    for position, target in enumerate(members, start=1):
        key = "uri" if target.startswith(("sip:", "sips:")) else "line"
        entries.append({key: target, "position": position})
    return {
        "name": name,
        "pilot": pilot,
        "algorithm": algorithm,
        "no_answer_timeout": no_answer_timeout,
        **options,
        "members": entries,
    }


def server_config(
    ports: PortAllocator,
    *,
    groups: Sequence[dict[str, Any]] = (),
    lines: Sequence[dict[str, Any]] = (),
    domain: str = DOMAIN,
    shutdown_grace: float = 2,
) -> dict[str, Any]:
    """The YAML document of the contract for a server on fresh loopback ports."""
    sip_port = ports.port()
    rtp = ports.block(40)
    return {
        "server": {
            "listen": [f"udp:{HOST}:{sip_port}", f"tcp:{HOST}:{sip_port}"],
            "domain": domain,
            "media": {"address": HOST, "rtp_ports": f"{rtp}-{rtp + 39}", "mode": "relay"},
            "state": "memory",
            "shutdown_grace": shutdown_grace,
        },
        "lines": list(lines),
        "groups": list(groups),
    }


def sip_port_of(config: dict[str, Any]) -> int:
    """The UDP port the config's server listens on."""
    for item in config["server"]["listen"]:
        transport, _, port = str(item).split(":")
        if transport == "udp":
            return int(port)
    raise HarnessError("the config has no udp listen address")


# --------------------------------------------------------------------------- server


def options_ping(port: int, *, host: str = HOST, wait: float = 0.3) -> int | None:
    """Send one OPTIONS over UDP; the status of the answer, or None if there is none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        local = int(s.getsockname()[1])
        call_id = f"ping-{secrets.token_hex(8)}@{HOST}"
        branch = f"z9hG4bK{secrets.token_hex(8)}"
        request = (
            f"OPTIONS sip:ping@{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{local};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:harness@{HOST}:{local}>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:ping@{host}:{port}>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            f"Contact: <sip:harness@{HOST}:{local};transport=udp>\r\n"
            "Accept: application/sdp\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        s.settimeout(wait)
        try:
            s.sendto(request.encode(), (host, port))
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                reply = parse_message(s.recv(65535))
                if reply.status is not None and reply.status >= 200 and reply.call_id == call_id:
                    return reply.status
        except (TimeoutError, ConnectionRefusedError, SipParseError):
            return None
    return None


def answers_options(
    process: subprocess.Popen[bytes], port: int, *, deadline: float = STARTUP_DEADLINE
) -> bool:
    """Wait until the server ``process`` answers OPTIONS with 200 on UDP ``port``: True;
    False once it exited, or after ``deadline`` s."""
    with contextlib.suppress(WaitTimeout):
        wait_until(
            lambda: process.poll() is not None or options_ping(port) == 200,
            timeout=deadline,
            interval=0.1,
        )
    return process.poll() is None and options_ping(port) == 200


@dataclass
class HuntgroupServer:
    """``huntgroup serve --config FILE`` in a subprocess."""

    config: dict[str, Any]
    workdir: Path
    popen: subprocess.Popen[bytes] | None = None
    returncode: int | None = None
    args: tuple[str, ...] = ()  # more arguments of serve (--log-format json)
    env: dict[str, str] = field(default_factory=dict)  # more environment (NOTIFY_SOCKET)

    @property
    def port(self) -> int:
        return sip_port_of(self.config)

    @property
    def config_file(self) -> Path:
        return self.workdir / "huntgroup.yaml"

    @property
    def log_file(self) -> Path:
        return self.workdir / "huntgroup.log"

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def launch(self) -> subprocess.Popen[bytes]:
        """Start the process, without waiting for it to answer (see :meth:`start`)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(yaml.safe_dump(self.config, sort_keys=False))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.env)
        command = [sys.executable, "-m", "huntgroup", "serve", "--config", str(self.config_file)]
        with open(self.log_file, "wb") as out:
            self.popen = subprocess.Popen(
                [*command, *self.args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
            )
        return self.popen

    def start(self, *, deadline: float = STARTUP_DEADLINE) -> HuntgroupServer:
        popen = self.launch()

        def answers() -> bool:
            if popen.poll() is not None:
                raise HarnessError(
                    f"huntgroup serve exited with {popen.returncode} at start-up:\n"
                    + self.log()[-4000:]
                )
            return options_ping(self.port) == 200

        try:
            wait_until(answers, timeout=deadline, interval=0.1)
        except WaitTimeout:
            self.kill()
            raise HarnessError(
                "huntgroup serve never answered OPTIONS with 200:\n" + self.log()[-4000:]
            ) from None
        return self

    def wait_for_log(self, pattern: str, *, count: int = 1, deadline: float = 30.0) -> None:
        """Wait until the server's log holds ``count`` matches of the regex ``pattern``.

        The server logs each step of a call at INFO level as it takes it (``call
        k1: queued (answered)``): a test that needs one step done before its next
        move waits for that line instead of sleeping. Fails after ``deadline`` s.
        """
        regex = re.compile(pattern)

        def logged() -> bool:
            if len(regex.findall(self.log())) >= count:
                return True
            if self.popen is not None and self.popen.poll() is not None:
                raise HarnessError(f"huntgroup serve exited:\n{self.log()[-4000:]}")
            return False

        wait_until(
            logged,
            timeout=deadline,
            interval=0.02,
            message=lambda: (
                f"no {count} line(s) matching {pattern!r} in the server log:\n" + self.log()[-4000:]
            ),
            error=HarnessError,
        )

    def stop(self, *, grace: float = 15) -> int:
        """SIGTERM, then wait (bounded) for the exit status; SIGKILL and fail if it hangs."""
        assert self.popen is not None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill()
                raise HarnessError(
                    f"huntgroup serve ignored SIGTERM for {grace} s:\n" + self.log()[-4000:]
                ) from None
        self.returncode = self.popen.returncode
        return self.returncode

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=5)


@contextlib.contextmanager
def running_server(config: dict[str, Any], workdir: Path) -> Iterator[HuntgroupServer]:
    server = HuntgroupServer(config=config, workdir=workdir)
    try:
        yield server.start()
    finally:
        server.kill()


# --------------------------------------------------------------------------- baresip

BARESIP_MISSING = (
    "baresip is not installed (Debian package 'baresip-core'). The softphone test needs it: "
    "run scripts/setup.sh, which installs it with apt-get."
)
BARESIP_MODULES = Path("/usr/lib/baresip/modules")


def _netstring_end(buffer: bytes) -> int:
    """The length of the netstring at the start of ``buffer`` (``LEN:DATA,``)."""
    length, _, _ = buffer.partition(b":")
    return len(length) + 1 + int(length) + 1


def baresip_binary() -> str:
    path = shutil.which("baresip")
    if path is None:
        raise HarnessError(BARESIP_MISSING)
    return path


@dataclass
class Baresip:
    """A headless baresip 1.0 softphone with one account that registers and auto-answers.

    Its configuration directory (``-f``) is generated: SIP on 127.0.0.1 only,
    no console UI, PCMU only, audio through the ``aubridge`` module (player
    and source on an in-memory bridge: no sound card). The account line
    registers ``number@domain`` through ``outbound`` = the registrar's
    address, answers calls at once (``answermode=auto``).
    """

    workdir: Path
    number: str
    password: str
    registrar_port: int
    sip_port: int
    domain: str = DOMAIN
    lifetime: float = 60
    popen: subprocess.Popen[bytes] | None = None
    ctrl_port: int | None = None  # baresip's ctrl_tcp module listens there (see command())
    sip_trace: bool = False  # -s: every SIP message in the log
    # what the phone says: "aubridge,huntgroup" echoes what it hears (player and source on
    # one bridge), "ausine,440" a 440 Hz tone from its own thread
    audio_source: str = "aubridge,huntgroup"

    @property
    def log_file(self) -> Path:
        return self.workdir / "baresip.log"

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = f"""\
poll_method\t\tepoll
sip_listen\t\t{HOST}:{self.sip_port}
call_local_timeout\t120
call_max_calls\t\t4
audio_player\t\taubridge,huntgroup
audio_source\t\t{self.audio_source}
audio_alert\t\taubridge,huntgroup
module_path\t\t{BARESIP_MODULES}
module\t\t\tg711.so
module\t\t\taubridge.so
module\t\t\tausine.so
module_tmp\t\taccount.so
module_app\t\tmenu.so
"""
        if self.audio_source.startswith("ausine"):  # it makes 48 kHz stereo only
            config += "ausrc_srate\t\t48000\nausrc_channels\t\t2\n"
        if self.ctrl_port is not None:  # commands over TCP: netstrings of JSON
            config += f"module_app\t\tctrl_tcp.so\nctrl_tcp_listen\t\t{HOST}:{self.ctrl_port}\n"
        account = (
            f"<sip:{self.number}@{self.domain};transport=udp>"
            f";auth_pass={self.password}"
            f";answermode=auto;audio_codecs=pcmu;regint=600"
            f';outbound="sip:{HOST}:{self.registrar_port};transport=udp"\n'
        )
        (self.workdir / "config").write_text(config)
        (self.workdir / "accounts").write_text(account)
        (self.workdir / "contacts").write_text("")

    def start(self) -> Baresip:
        binary = baresip_binary()
        self.write_config()
        command = [binary, "-f", str(self.workdir), "-t", f"{int(self.lifetime)}"]
        if self.sip_trace:
            command.append("-s")
        stdbuf = shutil.which("stdbuf")
        if stdbuf is not None:  # line-buffered log, so that registration shows at once
            command = [stdbuf, "-oL", "-eL", *command]
        with open(self.log_file, "wb") as out:
            self.popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        return self

    def wait_registered(self, *, attempts: int = 300) -> str:
        """Wait (``attempts`` x 0.1 s) for the registrar's 200; the log line that says so."""
        pattern = re.compile(rf"{re.escape(self.number)}@\S+: \{{.*\}} 200 OK .*binding")
        popen = self.popen

        def registered() -> str | None:
            match = pattern.search(self.log())
            if match:
                return match.group(0)
            if popen is not None and popen.poll() is not None:
                raise HarnessError("baresip did not register:\n" + self.log()[-4000:])
            return None

        found: str = wait_until(
            registered,
            timeout=attempts * 0.1,
            interval=0.1,
            message=lambda: "baresip did not register:\n" + self.log()[-4000:],
            error=HarnessError,
        )
        return found

    def command(self, name: str, params: str = "", *, timeout: float = 10.0) -> str:
        """Run a menu command (``hold``, ``resume``, ``dial`` ...) through ctrl_tcp (needs
        ``ctrl_port``); its output. Fails when baresip says the command failed."""
        assert self.ctrl_port is not None, "start baresip with a ctrl_port"
        message = json.dumps({"command": name, "params": params, "token": name}).encode()
        with socket.create_connection((HOST, self.ctrl_port), timeout=timeout) as sock:
            sock.sendall(f"{len(message)}:".encode() + message + b",")
            buffer = b""
            reply: dict[str, Any] = {}
            while not reply.get("response"):  # events may come first: one netstring each
                while b":" not in buffer or len(buffer) < _netstring_end(buffer):
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise HarnessError(f"baresip closed ctrl_tcp:\n{self.log()[-2000:]}")
                    buffer += chunk
                end = _netstring_end(buffer)
                reply = json.loads(buffer[buffer.index(b":") + 1 : end - 1])
                buffer = buffer[end:]
        if not reply.get("ok"):
            raise HarnessError(
                f"baresip {name} {params}: {reply.get('data')}\n{self.log()[-2000:]}"
            )
        return str(reply.get("data", ""))

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        # a first signal unregisters and waits for the answer (none once the server is
        # gone); a second one makes baresip quit at once; SIGKILL is the last resort
        for wait in (2.0, 3.0):
            self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=wait)
                return
        self.popen.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
