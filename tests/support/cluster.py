"""Cluster harness: Kamailio in front of several ``huntgroup serve`` nodes on one Redis.

Theory of operation
-------------------
* **Kamailio** runs the shipped ``contrib/kamailio/kamailio.cfg`` unchanged:
  only its ``#!define`` parameters are given on the command line (``-A``):
  the listen address and port, the dispatcher list file (written here, one
  line per node) and the control socket, all under the test's directory.
  :meth:`Kamailio.destinations` reads the dispatcher's view of the nodes
  through that socket (``kamcmd dispatcher.list``), so a test waits for a
  node to be taken out or put back instead of sleeping.
* **Nodes** are :class:`~tests.support.sip_harness.HuntgroupServer` processes
  sharing one :class:`~tests.support.state_harness.RedisServer`
  (``server.state``), one ``HUNTGROUP_SECRET`` and the same groups, each with
  its own ``HUNTGROUP_NODE_ID``, SIP port and RTP range. A node restarted
  keeps its name and port (the dispatcher list names it).
* **Reading the peers' logs.** :func:`member_calls` and :func:`caller_calls`
  turn SIPp message logs into one record per call with the times that matter
  (offered, answered, hung up); :func:`overlapping_calls` and
  :func:`fifo_inversions` are the checks of the issue: no member with two
  calls at once, queued callers served in arrival order.

Invariants: everything on 127.0.0.1 and free ports; every process is killed
at :meth:`Cluster.close`; a missing ``kamailio`` fails the test (never skips).
"""

from __future__ import annotations

import contextlib
import itertools
import re
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.ports import PortAllocator, udp_port_bound
from tests.support.sip_harness import (
    REPO_ROOT,
    HarnessError,
    HuntgroupServer,
    SippProcess,
    server_config,
)
from tests.support.sip_messages import SipMessage
from tests.support.state_harness import RedisServer
from tests.support.waiting import wait_until

KAMAILIO_CFG = REPO_ROOT / "contrib" / "kamailio" / "kamailio.cfg"
KAMAILIO_MISSING = (
    "kamailio is not installed (Debian package 'kamailio', which has the dispatcher, "
    "path and rr modules): run scripts/setup.sh, which installs it with apt-get."
)
STARTUP_DEADLINE = 60.0


def kamailio_binaries() -> tuple[str, str]:
    """``kamailio`` and ``kamcmd``; raises :class:`HarnessError` (a failure) when missing."""
    found = [shutil.which(name, path="/usr/sbin:/usr/bin:/sbin") for name in ("kamailio", "kamcmd")]
    if found[0] is None or found[1] is None:
        raise HarnessError(KAMAILIO_MISSING)
    return found[0], found[1]


def check_config(cfg: Path = KAMAILIO_CFG, *defines: str) -> subprocess.CompletedProcess[str]:
    """``kamailio -c -f cfg`` (syntax and module check), with ``-A`` defines."""
    binary, _ = kamailio_binaries()
    args = [binary, "-c", "-f", str(cfg)]
    for define in defines:
        args += ["-A", define]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


_DESTINATION = re.compile(r"URI: (\S+)\s+FLAGS: (\S+)")
# A node logs each step of a call: "call k1: 0600000001 -> group Support (...)" when
# it takes the call in, "call k1: ended" at its end.
_ARRIVAL = re.compile(r"call \S+: (\S+) -> group ")
_TAKEN_IN = re.compile(r"call (\S+): \S+ -> group ")
_ENDED = re.compile(r"call (\S+): ended")


@dataclass
class Kamailio:
    """The shipped kamailio.cfg, listening on 127.0.0.1:``port``, dispatching to ``nodes``
    (node name -> its SIP port on 127.0.0.1)."""

    workdir: Path
    port: int
    nodes: dict[str, int]
    popen: subprocess.Popen[bytes] | None = None

    @property
    def list_file(self) -> Path:
        return self.workdir / "dispatcher.list"

    @property
    def ctl_socket(self) -> Path:
        return self.workdir / "kamailio_ctl"

    @property
    def log_file(self) -> Path:
        return self.workdir / "kamailio.log"

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def node_uri(self, name: str) -> str:
        return f"sip:127.0.0.1:{self.nodes[name]}"

    def command(self) -> list[str]:
        binary, _ = kamailio_binaries()
        defines = {
            "LISTEN_ADDR": "127.0.0.1",
            "SIP_PORT": str(self.port),
            "DISPATCHER_LIST": f'"{self.list_file}"',
            "CTL_SOCKET": f'"unix:{self.ctl_socket}"',
            "WORKERS": "2",
        }
        args = [binary, "-f", str(KAMAILIO_CFG), "-DD", "-E", "-m", "64", "-M", "8"]
        args += ["-Y", str(self.workdir), "-P", str(self.workdir / "kamailio.pid")]
        for name, value in defines.items():
            args += ["-A", f"{name}={value}"]
        return args

    def start(self) -> Kamailio:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.list_file.write_text(
            "".join(f"1 {self.node_uri(name)} 0 0 duid={name}\n" for name in self.nodes)
        )
        with open(self.log_file, "wb") as out:
            self.popen = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        popen = self.popen

        def ready() -> bool:
            if popen.poll() is not None:
                raise HarnessError(
                    f"kamailio exited with {popen.returncode}:\n{self.log()[-4000:]}"
                )
            return udp_port_bound(self.port) and len(self.destinations()) == len(self.nodes)

        wait_until(
            ready,
            timeout=STARTUP_DEADLINE,
            interval=0.1,
            message=lambda: "kamailio did not start:\n" + self.log()[-4000:],
            error=HarnessError,
        )
        return self

    def destinations(self) -> dict[str, str]:
        """The dispatcher's nodes: URI -> flags (``AP`` active, ``IP`` inactive, ``TP``
        trying; P: probed). Empty while the control socket is not up."""
        if not self.ctl_socket.exists():
            return {}
        _, kamcmd = kamailio_binaries()
        result = subprocess.run(
            [kamcmd, "-s", f"unixs:{self.ctl_socket}", "dispatcher.list"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return dict(_DESTINATION.findall(result.stdout))

    def wait_node(self, name: str, *, active: bool, deadline: float = 30.0) -> None:
        """Wait until the dispatcher has node ``name`` in (``active``) or out."""
        uri = self.node_uri(name)

        def reached() -> bool:
            flags = self.destinations().get(uri, "")
            return flags.startswith("A") == active and bool(flags)

        wait_until(
            reached,
            timeout=deadline,
            interval=0.1,
            message=lambda: (
                f"kamailio never had {name} {'in' if active else 'out'}: "
                f"{self.destinations()}\n{self.log()[-3000:]}"
            ),
            error=HarnessError,
        )

    def failed_over(self) -> set[str]:
        """Call-IDs of the requests that a node failed (503, no answer) and were retried."""
        found = re.findall(r"\{\S+ \d+ \S+ (\S+)\} .*node \S+ failed", self.log())
        return set(found)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)


@dataclass
class Cluster:
    """Redis, named nodes with the same groups, and Kamailio in front of them."""

    workdir: Path
    ports: PortAllocator
    groups: Sequence[dict[str, Any]]
    names: Sequence[str] = ("node-a", "node-b")
    lines: Sequence[dict[str, Any]] = ()  # the lines every node knows
    shutdown_grace: float = 20
    server: dict[str, Any] = field(default_factory=dict)  # more `server:` settings
    rtp_pairs: int = 100  # per node: one per caller waiting or talking on it
    secret: str = field(default_factory=lambda: secrets.token_hex(16))
    redis: RedisServer | None = None
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    nodes: dict[str, HuntgroupServer] = field(default_factory=dict)
    runs: list[HuntgroupServer] = field(default_factory=list)
    kamailio: Kamailio | None = None

    def start(self) -> Cluster:
        kamailio_binaries()  # fail first, before starting anything
        self.redis = RedisServer(self.workdir / "redis")
        self.redis.workdir.mkdir(parents=True, exist_ok=True)
        self.redis.start()
        for name in self.names:
            config = server_config(
                self.ports, groups=self.groups, lines=self.lines, shutdown_grace=self.shutdown_grace
            )
            config["server"].update(self.server, state=self.redis.url)
            rtp = self.ports.block(2 * self.rtp_pairs)
            config["server"]["media"]["rtp_ports"] = f"{rtp}-{rtp + 2 * self.rtp_pairs - 1}"
            self.configs[name] = config
            self.start_node(name)
        self.kamailio = Kamailio(
            workdir=self.workdir / "kamailio",
            port=self.ports.port(),
            nodes={name: self.nodes[name].port for name in self.names},
        ).start()
        for name in self.names:
            self.kamailio.wait_node(name, active=True)
        return self

    @property
    def port(self) -> int:
        """Where callers send their calls: Kamailio's port."""
        assert self.kamailio is not None
        return self.kamailio.port

    def start_node(self, name: str) -> HuntgroupServer:
        """Start node ``name`` (again: same id, same port, a new log)."""
        server = HuntgroupServer(
            config=self.configs[name],
            workdir=self.workdir / f"{name}.{len(self.runs)}",
            env={"HUNTGROUP_NODE_ID": name, "HUNTGROUP_SECRET": self.secret},
        )
        self.runs.append(server)
        self.nodes[name] = server.start()
        return server

    def node_port(self, name: str) -> int:
        return int(self.configs[name]["server"]["listen"][0].rsplit(":", 1)[1])

    def arrivals(self) -> dict[str, set[str]]:
        """Per run of a node (its log directory): the callers' numbers it took in."""
        return {s.workdir.name: set(_ARRIVAL.findall(s.log())) for s in self.runs}

    def in_progress(self, run: HuntgroupServer) -> int:
        """Calls a node's run took in and has not ended yet, from its log."""
        log = run.log()
        return len(set(_TAKEN_IN.findall(log)) - set(_ENDED.findall(log)))

    def logs(self) -> str:
        return "\n".join(f"=== {s.workdir.name}\n{s.log()[-3000:]}" for s in self.runs)

    def close(self) -> None:
        for server in self.runs:
            server.kill()
        if self.kamailio is not None:
            self.kamailio.stop()
        if self.redis is not None:
            self.redis.stop()


# --------------------------------------------------------------------------- reading the logs


def _user(header: str | None) -> str:
    match = re.search(r"sips?:([^@;>]+)@", header or "")
    return match.group(1) if match else ""


def _via_port(message: SipMessage) -> int:
    match = re.search(r"SIP/2\.0/\w+ [^:;]+:(\d+)", message.header("Via") or "")
    return int(match.group(1)) if match else 0


@dataclass(frozen=True)
class MemberCall:
    """One INVITE a member received, as its own log shows it."""

    member: str
    call_id: str
    caller: str  # the From user: the caller's number
    node_port: int  # who offered it (the top Via)
    offered: float
    answered: float | None  # the member's 200 to the INVITE
    hung_up: float | None  # the member's BYE
    bye_received: float | None  # the other side's BYE
    last: float  # its last message: where a call cut short (a node killed) ended
    ended: bool  # its BYE was answered 200 (or it answered the other side's BYE)


def member_calls(member: str, messages: Iterable[SipMessage]) -> list[MemberCall]:
    by_call: dict[str, list[SipMessage]] = {}
    for message in messages:
        by_call.setdefault(message.call_id, []).append(message)
    calls: list[MemberCall] = []
    for call_id, items in by_call.items():
        invites = [m for m in items if m.direction == "received" and m.method == "INVITE"]
        if not invites:
            continue
        first = invites[0]

        def sent(status: int, method: str, items: list[SipMessage] = items) -> float | None:
            times = [
                m.time
                for m in items
                if m.direction == "sent" and m.status == status and m.cseq_method == method
            ]
            return min(times) if times else None

        byes = [m.time for m in items if m.direction == "sent" and m.method == "BYE"]
        their_byes = [m.time for m in items if m.direction == "received" and m.method == "BYE"]
        bye_ok = any(
            m.direction == "received" and m.status == 200 and m.cseq_method == "BYE" for m in items
        )
        calls.append(
            MemberCall(
                member=member,
                call_id=call_id,
                caller=_user(first.header("From")),
                node_port=_via_port(first),
                offered=first.time,
                answered=sent(200, "INVITE"),
                hung_up=min(byes) if byes else None,
                bye_received=min(their_byes) if their_byes else None,
                last=max(m.time for m in items),
                ended=bye_ok or sent(200, "BYE") is not None,
            )
        )
    return sorted(calls, key=lambda c: c.offered)


def members_calls(members: dict[str, SippProcess]) -> list[MemberCall]:
    """Every member's calls (stops the members' SIPp to flush their logs)."""
    return [call for name, proc in members.items() for call in member_calls(name, proc.messages())]


@dataclass(frozen=True)
class CallerCall:
    """One call a caller placed, as its log shows it."""

    call_id: str
    caller: str
    invited: float  # its first INVITE
    status: int | None  # the final status of its INVITE
    bye_received: float | None  # the end of the call, from the other side


def caller_calls(messages: Iterable[SipMessage]) -> list[CallerCall]:
    by_call: dict[str, list[SipMessage]] = {}
    for message in messages:
        by_call.setdefault(message.call_id, []).append(message)
    calls: list[CallerCall] = []
    for call_id, items in by_call.items():
        invites = [m for m in items if m.direction == "sent" and m.method == "INVITE"]
        if not invites:
            continue
        finals = [
            m.status
            for m in items
            if m.direction == "received"
            and m.cseq_method == "INVITE"
            and m.status is not None
            and m.status >= 200
        ]
        byes = [m.time for m in items if m.direction == "received" and m.method == "BYE"]
        calls.append(
            CallerCall(
                call_id=call_id,
                caller=_user(invites[0].header("From")),
                invited=invites[0].time,
                status=finals[0] if finals else None,
                bye_received=min(byes) if byes else None,
            )
        )
    return sorted(calls, key=lambda c: c.invited)


def overlapping_calls(calls: Iterable[MemberCall]) -> list[tuple[MemberCall, MemberCall]]:
    """Pairs of answered calls of one member whose intervals overlap: from the member's
    200 to the first BYE (its own or the other side's), or to the call's last message
    when it was cut short (its node killed before the ACK or the BYE's answer)."""
    found: list[tuple[MemberCall, MemberCall]] = []
    by_member: dict[str, list[MemberCall]] = {}
    for call in calls:
        if call.answered is not None:
            by_member.setdefault(call.member, []).append(call)
    for answered in by_member.values():
        answered.sort(key=lambda c: c.answered or 0.0)
        for earlier, later in itertools.pairwise(answered):
            ends = [t for t in (earlier.hung_up, earlier.bye_received) if t is not None]
            end = min(ends) if ends else earlier.last
            if (later.answered or 0.0) < end:
                found.append((earlier, later))
    return found


def fifo_inversions(
    arrivals: dict[str, float], served: dict[str, float], *, tolerance: float
) -> list[tuple[str, str]]:
    """Pairs (a, b) of callers where a arrived more than ``tolerance`` s before b but was
    served (offered to its member) more than ``tolerance`` s after b. Callers never
    served are left out."""
    order = sorted((t, caller) for caller, t in arrivals.items() if caller in served)
    found: list[tuple[str, str]] = []
    for i, (t_a, a) in enumerate(order):
        for t_b, b in order[i + 1 :]:
            if t_b - t_a > tolerance and served[a] - served[b] > tolerance:
                found.append((a, b))
    return found


@contextlib.contextmanager
def running_cluster(
    workdir: Path, ports: PortAllocator, groups: Sequence[dict[str, Any]], **options: Any
) -> Any:
    cluster = Cluster(workdir=workdir, ports=ports, groups=groups, **options)
    try:
        yield cluster.start()
    finally:
        cluster.close()
