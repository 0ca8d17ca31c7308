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


@quick_init
@dataclass(frozen=True, slots=True)
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


@quick_init
@dataclass(frozen=True, slots=True)
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


@quick_init
@dataclass(frozen=True, slots=True)
class OutgoingCallStarted:
    """A line started a call of its own (to another number): it is busy."""

    call_id: str
    line: str


@quick_init
@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The far end of an outgoing call answered: talk time starts."""

    call_id: str


@quick_init
@dataclass(frozen=True, slots=True)
class MemberAnswered:
    """A member (or a line rung directly) answered an offer of a call."""

    call_id: str
    member: str


@quick_init
@dataclass(frozen=True, slots=True)
class MemberFailed:
    """A member's leg ended with a final status other than 2xx (486, 603, 408, 503...).

    ``status`` is the raw SIP status; what it means (busy, declined, unreachable)
    is the core's reading, :func:`huntgroup.queue.refusals.refusal_of`.
    """

    call_id: str
    member: str
    status: int = 486


@quick_init
@dataclass(frozen=True, slots=True)
class ClaimGranted:
    """The shared state granted this node the member of a ``Claim``: ring it."""

    call_id: str
    member: str


@quick_init
@dataclass(frozen=True, slots=True)
class ClaimRefused:
    """Another node holds the member of a ``Claim`` (or, after a Redis outage, took it
    first): the offer ends without penalty, and is cancelled if it was ringing."""

    call_id: str
    member: str


@quick_init
@dataclass(frozen=True, slots=True)
class MemberUnreachable:
    """A member could not be offered the call at all, so no SIP status came back: no
    registered contact, no media port for its leg, its INVITE could not be sent.

    ``ours`` is true when the cause is on our side (no media port left): the member is
    not to blame, so it does not back off (:mod:`huntgroup.queue.availability`)."""

    call_id: str
    member: str
    ours: bool = False


@quick_init
@dataclass(frozen=True, slots=True)
class CallHungUp:
    """The call ended from outside the core: caller CANCEL/BYE, member BYE.

    Valid in every state of a call: waiting, hunting, ringing or connected.
    """

    call_id: str


ChangeOrigin = Literal["api", "phone", "reload"]
"""Where a control change comes from: ``api``, the operators' API (``huntgroup ctl``);
``phone``, a feature code (``*51``/``*52``); ``reload``, a reload changed ``joined``."""


@quick_init
@dataclass(frozen=True, slots=True)
class MemberJoined:
    """A member logged into a group; its talk-time counter restarts at zero."""

    group: str
    member: str
    origin: ChangeOrigin = "phone"
    reason: str = ""


@quick_init
@dataclass(frozen=True, slots=True)
class MemberLeft:
    """A member logged out of a group; its offers for that group end (and its pause)."""

    group: str
    member: str
    origin: ChangeOrigin = "phone"
    reason: str = ""


@quick_init
@dataclass(frozen=True, slots=True)
class MemberPaused:
    """A member joined to a group was paused (``paused``, with ``reason``) or unpaused:
    paused, it stays joined, keeps its join date and talk time, and is offered no call
    of that group; its offers for that group's calls end."""

    group: str
    member: str
    paused: bool
    origin: ChangeOrigin = "api"
    reason: str = ""


@quick_init
@dataclass(frozen=True, slots=True)
class LineActivity:
    """A line's phone reports calls of its own (RFC 4235 dialog events it publishes or
    notifies), calls that may never have gone through the server: ``busy`` while it has
    one early or confirmed dialog, not busy when it has none."""

    member: str
    busy: bool


@quick_init
@dataclass(frozen=True, slots=True)
class MemberReachable:
    """Whether a line can be reached at all: ``reachable`` when it registered its first
    contact, not when it lost its last one (unregistered, expired), and for every line
    at start. A member the core was never told about is reachable."""

    member: str
    reachable: bool


@quick_init
@dataclass(frozen=True, slots=True)
class CallTransferred:
    """Blind transfer (RFC 3515): ``member``, connected to the call, sent it on to
    ``target`` (a pilot, a line or an outside number). The member's part ends (talk time
    credited, wrap-up), and the call is routed to ``target`` like a forward, from now."""

    call_id: str
    member: str
    target: str


@quick_init
@dataclass(frozen=True, slots=True)
class CallsJoined:
    """Attended transfer (RFC 3891): ``member``, connected to ``call_id``, joined that
    call's caller with the member connected to ``joined`` (a call it made itself, to a
    pilot or a line). ``member``'s part of ``call_id`` ends; the joined call goes on
    under the id ``joined``, its member's talk time running on from its own answer."""

    call_id: str
    member: str
    joined: str


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
