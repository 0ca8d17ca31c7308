"""Events: facts that drivers (the SIP engine, the simulator) feed the group core.

Each event is a frozen, slotted dataclass named as a fact, made by the quicker
``__init__`` of :func:`~huntgroup.quick_init.quick_init` (the simulator and the
B2BUA make several per call). Time is never part of an event: it is given to
``RoutingCore.handle(event, now=...)``. A *member*
is named by its key: the line number for a line, the SIP URI for a fixed URI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from huntgroup.quick_init import quick_init


@dataclass(frozen=True, slots=True, init=False)
class CallArrived:
    """A caller dialled a group's pilot number.

    ``caller_internal`` is true when the caller is one of the configured lines
    (authenticated): should the group forward the call to a line of ours, it is
    an internal call there (see :class:`DirectCallArrived`).
    """

    call_id: str
    group: str
    caller: str
    caller_name: str = ""
    caller_internal: bool = False

    def __init__(
        self,
        call_id: str,
        group: str,
        caller: str,
        caller_name: str = "",
        caller_internal: bool = False,
    ) -> None:
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "caller", caller)
        object.__setattr__(self, "caller_name", caller_name)
        object.__setattr__(self, "caller_internal", caller_internal)


@dataclass(frozen=True, slots=True, init=False)
class DirectCallArrived:
    """A caller dialled a line's own number.

    ``caller_internal`` is true when the caller is one of the configured lines
    (inside the company); ``hunt_direct_calls`` only applies to outside callers.
    """

    call_id: str
    line: str
    caller: str
    caller_name: str = ""
    caller_internal: bool = False

    def __init__(
        self,
        call_id: str,
        line: str,
        caller: str,
        caller_name: str = "",
        caller_internal: bool = False,
    ) -> None:
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "line", line)
        object.__setattr__(self, "caller", caller)
        object.__setattr__(self, "caller_name", caller_name)
        object.__setattr__(self, "caller_internal", caller_internal)


@dataclass(frozen=True, slots=True, init=False)
class OutgoingCallStarted:
    """A line started a call of its own (to another number): it is busy."""

    call_id: str
    line: str

    def __init__(self, call_id: str, line: str) -> None:
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "line", line)


@dataclass(frozen=True, slots=True, init=False)
class CallAnswered:
    """The far end of an outgoing call answered: talk time starts."""

    call_id: str

    def __init__(self, call_id: str) -> None:
        object.__setattr__(self, "call_id", call_id)


@dataclass(frozen=True, slots=True, init=False)
class MemberAnswered:
    """A member (or a line rung directly) answered an offer of a call."""

    call_id: str
    member: str

    def __init__(self, call_id: str, member: str) -> None:
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "member", member)


@dataclass(frozen=True, slots=True, init=False)
class MemberFailed:
    """A member's leg ended with a final status other than 2xx (486, 603, 408, 503...).

    ``status`` is the raw SIP status; what it means (busy, declined, unreachable)
    is the core's reading, :func:`huntgroup.queue.refusals.refusal_of`.
    """

    call_id: str
    member: str
    status: int = 486

    def __init__(self, call_id: str, member: str, status: int = 486) -> None:
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "member", member)
        object.__setattr__(self, "status", status)


@dataclass(frozen=True, slots=True, init=False)
class ClaimGranted:
    """The shared state granted this node the member of a ``Claim``: ring it."""

    call_id: str
    member: str

    def __init__(self, call_id: str, member: str) -> None:
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "member", member)


@dataclass(frozen=True, slots=True, init=False)
class ClaimRefused:
    """Another node holds the member of a ``Claim`` (or, after a Redis outage, took it
    first): the offer ends without penalty, and is cancelled if it was ringing."""

    call_id: str
    member: str

    def __init__(self, call_id: str, member: str) -> None:
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "member", member)


@dataclass(frozen=True, slots=True, init=False)
class MemberUnreachable:
    """A member could not be offered the call at all, so no SIP status came back: no
    registered contact, no media port for its leg, its INVITE could not be sent.

    ``ours`` is true when the cause is on our side (no media port left): the member is
    not to blame, so it does not back off (:mod:`huntgroup.queue.availability`)."""

    call_id: str
    member: str
    ours: bool = False

    def __init__(self, call_id: str, member: str, ours: bool = False) -> None:
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "member", member)
        object.__setattr__(self, "ours", ours)


@dataclass(frozen=True, slots=True, init=False)
class CallHungUp:
    """The call ended from outside the core: caller CANCEL/BYE, member BYE.

    Valid in every state of a call: waiting, hunting, ringing or connected.
    """

    call_id: str

    def __init__(self, call_id: str) -> None:
        object.__setattr__(self, "call_id", call_id)


ChangeOrigin = Literal["api", "phone", "reload"]
"""Where a control change comes from: ``api``, the operators' API (``huntgroup ctl``);
``phone``, a feature code (``*51``/``*52``); ``reload``, a reload changed ``joined``."""


@dataclass(frozen=True, slots=True, init=False)
class MemberJoined:
    """A member logged into a group; its talk-time counter restarts at zero."""

    group: str
    member: str
    origin: ChangeOrigin = "phone"
    reason: str = ""

    def __init__(
        self,
        group: str,
        member: str,
        origin: ChangeOrigin = "phone",
        reason: str = "",
    ) -> None:
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "member", member)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "reason", reason)


@dataclass(frozen=True, slots=True, init=False)
class MemberLeft:
    """A member logged out of a group; its offers for that group end (and its pause)."""

    group: str
    member: str
    origin: ChangeOrigin = "phone"
    reason: str = ""

    def __init__(
        self,
        group: str,
        member: str,
        origin: ChangeOrigin = "phone",
        reason: str = "",
    ) -> None:
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "member", member)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "reason", reason)


@dataclass(frozen=True, slots=True, init=False)
class MemberPaused:
    """A member joined to a group was paused (``paused``, with ``reason``) or unpaused:
    paused, it stays joined, keeps its join date and talk time, and is offered no call
    of that group; its offers for that group's calls end."""

    group: str
    member: str
    paused: bool
    origin: ChangeOrigin = "api"
    reason: str = ""

    def __init__(
        self,
        group: str,
        member: str,
        paused: bool,
        origin: ChangeOrigin = "api",
        reason: str = "",
    ) -> None:
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "member", member)
        object.__setattr__(self, "paused", paused)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "reason", reason)


@dataclass(frozen=True, slots=True, init=False)
class LineActivity:
    """A line's phone reports calls of its own (RFC 4235 dialog events it publishes or
    notifies), calls that may never have gone through the server: ``busy`` while it has
    one early or confirmed dialog, not busy when it has none."""

    member: str
    busy: bool

    def __init__(self, member: str, busy: bool) -> None:
        object.__setattr__(self, "member", member)
        object.__setattr__(self, "busy", busy)


@dataclass(frozen=True, slots=True, init=False)
class MemberReachable:
    """Whether a line can be reached at all: ``reachable`` when it registered its first
    contact, not when it lost its last one (unregistered, expired), and for every line
    at start. A member the core was never told about is reachable."""

    member: str
    reachable: bool

    def __init__(self, member: str, reachable: bool) -> None:
        object.__setattr__(self, "member", member)
        object.__setattr__(self, "reachable", reachable)


@dataclass(frozen=True, slots=True, init=False)
class CallTransferred:
    """Blind transfer (RFC 3515): ``member``, connected to the call, sent it on to
    ``target`` (a pilot, a line or an outside number). The member's part ends (talk time
    credited, wrap-up), and the call is routed to ``target`` like a forward, from now."""

    call_id: str
    member: str
    target: str

    def __init__(self, call_id: str, member: str, target: str) -> None:
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "member", member)
        object.__setattr__(self, "target", target)


@dataclass(frozen=True, slots=True, init=False)
class CallsJoined:
    """Attended transfer (RFC 3891): ``member``, connected to ``call_id``, joined that
    call's caller with the member connected to ``joined`` (a call it made itself, to a
    pilot or a line). ``member``'s part of ``call_id`` ends; the joined call goes on
    under the id ``joined``, its member's talk time running on from its own answer."""

    call_id: str
    member: str
    joined: str

    def __init__(self, call_id: str, member: str, joined: str) -> None:
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "member", member)
        object.__setattr__(self, "joined", joined)


Event = (
    CallArrived
    | DirectCallArrived
    | OutgoingCallStarted
    | CallAnswered
    | MemberAnswered
    | MemberFailed
    | MemberUnreachable
    | ClaimGranted
    | ClaimRefused
    | CallHungUp
    | MemberJoined
    | MemberLeft
    | MemberPaused
    | LineActivity
    | MemberReachable
    | CallTransferred
    | CallsJoined
)

# quick_init is applied after the classes, not as their decorator: mypyc makes a class
# with a decorator other than dataclass an ordinary Python class (no native attributes,
# a Python-level __init__; docs/native.md). Compiled, each keeps its own __init__.
quick_init(CallArrived)
quick_init(DirectCallArrived)
quick_init(OutgoingCallStarted)
quick_init(CallAnswered)
quick_init(MemberAnswered)
quick_init(MemberFailed)
quick_init(ClaimGranted)
quick_init(ClaimRefused)
quick_init(MemberUnreachable)
quick_init(CallHungUp)
quick_init(MemberJoined)
quick_init(MemberLeft)
quick_init(MemberPaused)
quick_init(LineActivity)
quick_init(MemberReachable)
quick_init(CallTransferred)
quick_init(CallsJoined)
