"""Live mode, before any call: options, the calls to place, what cannot be played.

Theory of operation
-------------------
``plan_calls`` draws the calls of a scenario from the virtual driver's own
random streams (arrival times, talk time and patience of the n-th call of a
group, replication 0), so a live run offers exactly the callers the virtual
run offers. ``plan_direct_calls`` and ``plan_outgoing_calls`` do the same for
the members' own calls (times and talk times of each line's ``direct_calls``
and ``outgoing_calls``). ``caller_number`` gives each call a unique caller
number (``06`` + 8 digits for a call to a pilot, ``07`` + 8 digits for a
direct call), which is how the simulated members recognise the call they are
offered; ``outgoing_number`` is the external number an outgoing call dials
(``09`` + 8 digits), which is how the played upstream recognises it.
``live_problems`` lists every reason a scenario cannot be played live with
the given options (schedules or own calls of fixed-URI members, outgoing
calls without an upstream the run can play, member URIs the run cannot
bind, planned numbers that are numbers of the configuration, too many calls,
a bad speed or bind address).

Invariants: the plan is a pure function of the scenario; a member or upstream
address is accepted only when it is loopback or the ``--bind`` address, over
UDP; planned numbers are unique and none is a line or pilot of the
configuration.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import socket
from dataclasses import dataclass

from huntgroup.config.models import Config
from huntgroup.engine.sip import SipUri, parse_uri
from huntgroup.errors import ProtocolError
from huntgroup.simulations.live.sip import LiveError
from huntgroup.simulations.model.numbers import (
    DIRECT_PREFIX,
    OUTGOING_PREFIX,
    PILOT_PREFIX,
    caller_number_of,
)
from huntgroup.simulations.model.scenario import Scenario
from huntgroup.simulations.virtual.driver import (
    DIRECT,
    OUTGOING,
    CallRecord,
    arrival_records,
    direct_record,
    own_call_draws,
)

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


@dataclass(slots=True)
class OutgoingCall:
    """One planned outgoing call of a line member, and what became of it.

    ``planned`` and ``talk`` come from the driver's streams; the rest is
    filled in by the run (scenario seconds): ``answered_at`` when the
    server's 200 came back, ``ended_at`` when the member sent its BYE (or the
    call ended otherwise), ``reached`` once the played upstream got the INVITE.
    """

    call: str
    member: str
    number: str  # the external number dialled
    planned: float
    talk: float
    skipped: bool = False  # the member was ringing or on a call: not dialled
    status: int | str | None = None  # final status of the INVITE
    reached: bool = False
    from_user: str | None = None  # the caller the upstream saw
    answered_at: float | None = None
    ended_at: float | None = None


# ------------------------------------------------------------------ planning
def parse_target(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 in brackets) of the server; LiveError when malformed."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise LiveError(f"--target {text!r} is not HOST:PORT (IPv6 in brackets)")
    return host, int(port)


def caller_number(rec: CallRecord) -> str:
    """The caller number of a planned call, unique per call.

    ``06`` + 8 digits for a call to a pilot, ``07`` + 8 digits for a direct
    call to a line (the driver keys those calls by member, so the two ranges
    must not share numbers).
    """
    return caller_number_of(*rec.keys, DIRECT_PREFIX if rec.origin == "direct" else PILOT_PREFIX)


def outgoing_number(member_index: int, k: int) -> str:
    """The external number the ``k``-th (from 0) outgoing call of a member dials."""
    return caller_number_of(member_index + 1, k, OUTGOING_PREFIX)


def plan_calls(scenario: Scenario) -> list[CallRecord]:
    """The calls of replication 0, drawn from the virtual driver's streams, by arrival."""
    calls = arrival_records(scenario, scenario.seed & _MASK, 0)
    calls.sort(key=lambda c: (c.arrival, c.keys))
    return calls


def _members(scenario: Scenario) -> list[str]:
    """Every member key, sorted: the driver's member index is a position here."""
    return sorted({m.key for g in scenario.config.groups for m in g.members})


def plan_direct_calls(scenario: Scenario) -> dict[str, list[CallRecord]]:
    """Per line member, its direct calls of replication 0, as the driver plans them."""
    plan: dict[str, list[CallRecord]] = {}
    for mi, member in enumerate(_members(scenario)):
        load = scenario.behaviours[member].direct_calls
        if load is not None:
            draws = own_call_draws(scenario, member, load, DIRECT, 0)
            plan[member] = [direct_record(member, mi, k, t, x) for k, (t, x) in enumerate(draws)]
    return plan


def plan_outgoing_calls(scenario: Scenario) -> list[OutgoingCall]:
    """The outgoing calls of replication 0, by planned time, as the driver plans them."""
    calls: list[OutgoingCall] = []
    for mi, member in enumerate(_members(scenario)):
        load = scenario.behaviours[member].outgoing_calls
        if load is None:
            continue
        for k, (t, talk) in enumerate(own_call_draws(scenario, member, load, OUTGOING, 0)):
            number = outgoing_number(mi, k)
            calls.append(OutgoingCall(f"out:{member}#{k + 1}", member, number, t, talk))
    calls.sort(key=lambda c: (c.planned, c.call))
    return calls


def is_bindable(host: str, bind: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or host == bind


_NOT_SIP, _NOT_UDP, _NOT_HERE = "not sip", "not udp", "not bindable"


def _udp_address(uri: str, bind: str) -> tuple[str, int] | tuple[str, str]:
    """``(host, port)`` of a ``sip:`` URI over UDP on a bindable host, or ``(why, detail)``."""
    try:
        parsed = parse_uri(uri)
    except ProtocolError as err:
        return _NOT_SIP, f"not a SIP URI ({err})"
    if not isinstance(parsed, SipUri) or parsed.secure:
        return _NOT_SIP, "only sip: URIs over UDP can be played live"
    if (parsed.param("transport") or "udp").lower() != "udp":
        return _NOT_UDP, ""
    host = parsed.host.strip("[]")
    if host.lower() == "localhost":
        host = "127.0.0.1"
    if not is_bindable(host, bind):
        return _NOT_HERE, ""
    return host, parsed.port or 5060


def member_address(uri: str, bind: str) -> tuple[str, int] | str:
    """Where a fixed-URI member must be bound, or why it cannot be."""
    match _udp_address(uri, bind):
        case (str() as host, int() as port):
            return host, port
        case (why, detail) if why == _NOT_SIP:
            return f"{uri}: {detail}"
        case (why, _) if why == _NOT_UDP:
            return f"{uri}: only UDP members can be played live"
    return (
        f"{uri}: the live run can only be this member on a loopback address or the "
        f"--bind address ({bind}); point the member at one in the configuration"
    )


def upstream_address(config: Config, bind: str) -> tuple[str, int] | str:
    """Where the played upstream (``server.upstream``) must be bound, or why it cannot be."""
    upstream = config.server.upstream
    if upstream is None:
        return (
            "server.upstream is null: the server has nowhere to send a line's outgoing "
            "call; set it to a loopback address (or the --bind address) for the live run "
            "to play, e.g. sip:127.0.0.1:5070"
        )
    match _udp_address(upstream, bind):
        case (str() as host, int() as port):
            return host, port
        case (why, detail) if why == _NOT_SIP:
            return f"server.upstream {upstream}: {detail}"
        case (why, _) if why == _NOT_UDP:
            return f"server.upstream {upstream}: only an upstream over UDP can be played live"
    return (
        f"server.upstream {upstream}: the live run plays the upstream, so it must be a "
        f"loopback address or the --bind address ({bind})"
    )


def live_problems(scenario: Scenario, options: LiveOptions) -> list[str]:
    """Why the scenario cannot be played live with these options (empty when it can)."""
    problems: list[str] = []
    if not (0 < options.speed <= MAX_SPEED) or not math.isfinite(options.speed):
        problems.append(f"--speed must be > 0 and <= {MAX_SPEED:g}, got {options.speed:g}")
    if not is_local_address(options.bind):
        problems.append(f"--bind {options.bind!r} is not an IP address of this host")
    config = scenario.config
    lines = {m.key for g in config.groups for m in g.members if m.line is not None}
    outgoing: list[str] = []
    for key, b in sorted(scenario.behaviours.items()):
        if b.joined is not None and key not in lines:
            problems.append(
                f"member {key}: a 'joined' schedule needs a line member, which logs in and "
                "out by dialling *51 / *52; a fixed-URI member cannot dial (use the "
                "configuration's joined flag, or make the member a line)"
            )
        own = [
            n
            for n, load in (("direct_calls", b.direct_calls), ("outgoing_calls", b.outgoing_calls))
            if load is not None
        ]
        if own and key not in lines:
            problems.append(
                f"member {key}: {' and '.join(own)} need a line member: a fixed-URI member "
                "has no number of its own to be called on or to call from"
            )
        elif b.outgoing_calls is not None:
            outgoing.append(key)
    seen: dict[tuple[str, int], str] = {}
    for g in config.groups:
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
    if outgoing:
        where = upstream_address(config, options.bind)
        if isinstance(where, str):
            problems.append(f"outgoing_calls of {', '.join(outgoing)}: {where}")
        elif where in seen:
            problems.append(f"server.upstream and member {seen[where]} share {where[0]}:{where[1]}")
    calls = plan_calls(scenario)
    direct = [r for recs in plan_direct_calls(scenario).values() for r in recs]
    out = plan_outgoing_calls(scenario)
    numbers = {line.number for line in config.lines} | {g.pilot for g in config.groups}
    planned = [caller_number(r) for r in (*calls, *direct)] + [c.number for c in out]
    taken = sorted(numbers.intersection(planned))
    if taken:
        problems.append(
            f"numbers the live run would use are numbers of the configuration: {', '.join(taken)}"
        )
    total = len(calls) + len(direct) + len(out)
    if total > options.max_calls:
        problems.append(
            f"the scenario places {total} calls, more than --max-calls {options.max_calls}"
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
