"""Live mode, before any call: options, the calls to place, what cannot be played.

Theory of operation
-------------------
``plan_calls`` draws the calls of a scenario from the virtual driver's own
random streams (arrival times, talk time and patience of the n-th call of a
group, replication 0), so a live run offers exactly the callers the virtual
run offers. ``caller_number`` gives each call a unique caller number, which
is how the simulated members recognise the call they are offered.
``live_problems`` lists every reason a scenario cannot be played live with
the given options (availability schedules of fixed-URI members, members' own
calls, member URIs the run cannot bind, too many calls, a bad speed or bind
address).

Invariants: the plan is a pure function of the scenario; a member address is
accepted only when it is loopback or the ``--bind`` address, over UDP.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import socket
from dataclasses import dataclass

from huntgroup.engine.sip import SipUri, parse_uri
from huntgroup.errors import ProtocolError
from huntgroup.simulations.distributions import Sampler, arrival_times, name_key, stream
from huntgroup.simulations.driver import ARRIVALS, PATIENCE, TALK, CallRecord
from huntgroup.simulations.live_sip import LiveError
from huntgroup.simulations.scenario import Scenario

_MASK = (1 << 64) - 1
MAX_SPEED = 1000.0

log = logging.getLogger("huntgroup.live")


@dataclass(frozen=True, slots=True)
class LiveOptions:
    """How to play a scenario live."""

    target: tuple[str, int]  # the server's UDP address
    speed: float = 1.0
    bind: str = "127.0.0.1"  # where callers and line members listen
    max_calls: int = 1000
    probe_timeout: float = 5.0  # real seconds to wait for the server's answer to OPTIONS


# ------------------------------------------------------------------ planning
def parse_target(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 in brackets) of the server; LiveError when malformed."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise LiveError(f"--target {text!r} is not HOST:PORT (IPv6 in brackets)")
    return host, int(port)


def caller_number(rec: CallRecord) -> str:
    """The caller number of a planned call: ``06`` + 8 digits, unique per call."""
    g, k = rec.keys
    return f"06{(abs(g) * 1_000_003 + k) % 100_000_000:08d}"


def plan_calls(scenario: Scenario) -> list[CallRecord]:
    """The calls of replication 0, drawn from the virtual driver's streams, by arrival."""
    seed, rep = scenario.seed & _MASK, 0
    calls: list[CallRecord] = []
    for gi, traffic in enumerate(scenario.traffic):
        gkey = name_key(traffic.group)
        times = arrival_times(
            traffic.arrivals, scenario.duration, stream(ARRIVALS, seed, rep, gkey)
        )
        n = len(times)
        talks = Sampler(traffic.talk_time).draw_many(stream(TALK, seed, rep, gkey).random(n))
        patience = (
            Sampler(traffic.patience).draw_many(stream(PATIENCE, seed, rep, gkey).random(n))
            if traffic.patience is not None
            else None
        )
        for k in range(n):
            calls.append(
                CallRecord(
                    call=f"{traffic.group}#{k + 1}",
                    group=traffic.group,
                    origin="pilot",
                    arrival=float(times[k]),
                    talk_planned=float(talks[k]),
                    patience=None if patience is None else float(patience[k]),
                    keys=(gi, k),
                )
            )
    calls.sort(key=lambda c: (c.arrival, c.keys))
    return calls


def is_bindable(host: str, bind: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or host == bind


def member_address(uri: str, bind: str) -> tuple[str, int] | str:
    """Where a fixed-URI member must be bound, or why it cannot be."""
    try:
        parsed = parse_uri(uri)
    except ProtocolError as err:
        return f"{uri}: not a SIP URI ({err})"
    if not isinstance(parsed, SipUri) or parsed.secure:
        return f"{uri}: only sip: URIs over UDP can be played live"
    if (parsed.param("transport") or "udp").lower() != "udp":
        return f"{uri}: only UDP members can be played live"
    host = parsed.host.strip("[]")
    if host.lower() == "localhost":
        host = "127.0.0.1"
    if not is_bindable(host, bind):
        return (
            f"{uri}: the live run can only be this member on a loopback address or the "
            f"--bind address ({bind}); point the member at one in the configuration"
        )
    return host, parsed.port or 5060


def live_problems(scenario: Scenario, options: LiveOptions) -> list[str]:
    """Why the scenario cannot be played live with these options (empty when it can)."""
    problems: list[str] = []
    if not (0 < options.speed <= MAX_SPEED) or not math.isfinite(options.speed):
        problems.append(f"--speed must be > 0 and <= {MAX_SPEED:g}, got {options.speed:g}")
    if not is_local_address(options.bind):
        problems.append(f"--bind {options.bind!r} is not an IP address of this host")
    lines = {m.key for g in scenario.config.groups for m in g.members if m.line is not None}
    for key, b in sorted(scenario.behaviours.items()):
        if b.joined is not None and key not in lines:
            problems.append(
                f"member {key}: a 'joined' schedule needs a line member, which logs in and "
                "out by dialling *51 / *52; a fixed-URI member cannot dial (use the "
                "configuration's joined flag, or make the member a line)"
            )
        if b.direct_calls is not None or b.outgoing_calls is not None:
            problems.append(f"member {key}: direct_calls and outgoing_calls are not supported live")
    seen: dict[tuple[str, int], str] = {}
    for g in scenario.config.groups:
        for m in g.members:
            if m.uri is None or m.key in seen.values():
                continue
            where = member_address(m.uri, options.bind)
            if isinstance(where, str):
                problems.append(f"member {where}")
            elif where in seen:
                problems.append(f"members {seen[where]} and {m.uri} share {where[0]}:{where[1]}")
            else:
                seen[where] = m.key
    planned = len(plan_calls(scenario))
    if planned > options.max_calls:
        problems.append(
            f"the scenario places {planned} calls, more than --max-calls {options.max_calls}"
        )
    return problems


def is_local_address(host: str) -> bool:
    """True for an IP address this host can bind (loopback always can)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if address.is_loopback:
        return True
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, 0))
        except OSError:
            return False
    return True
