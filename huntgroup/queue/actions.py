"""Actions: commands the group core returns to its driver.

The driver carries them out (SIP INVITE, CANCEL, 180, 200 with music...) and
reports what happened as events. A ``Release``, a ``Forward`` or a
``RefuseForward`` is the end of the caller's call inside the core; ``reason``
says why, in the vocabulary of simulation reports. A forward to one of our own
numbers is no end: the core routes the call there itself and says so with
``Reroute`` (see :mod:`huntgroup.queue.forwards`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from huntgroup.quick_init import quick_init

ReleaseReason = Literal[
    "queue_full", "max_wait", "no_answer", "busy", "group_removed", "not_found", "empty"
]
ForwardReason = Literal[
    "queue_full", "max_wait", "no_answer", "no_answer_after", "busy", "empty", "transfer"
]
"""``empty``: no member of the group was available (``queue.when_empty: overflow``)."""


@dataclass(frozen=True, slots=True, init=False)
class Identity:
    """The caller identity presented to a member's phone (From / P-Asserted-Identity)."""

    number: str
    display_name: str = ""

    def __init__(self, number: str, display_name: str = "") -> None:
        object.__setattr__(self, "number", number)
        object.__setattr__(self, "display_name", display_name)


@dataclass(frozen=True, slots=True, init=False)
class Ring:
    """Offer the call to a member: ring it for at most ``timeout`` seconds.

    ``group`` is None for a call to the line's own number.
    """

    call_id: str
    member: str
    caller_id: Identity
    group: str | None
    timeout: float

    def __init__(
        self,
        call_id: str,
        member: str,
        caller_id: Identity,
        group: str | None,
        timeout: float,
    ) -> None:
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "member", member)
        object.__setattr__(self, "caller_id", caller_id)
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "timeout", timeout)


@dataclass(frozen=True, slots=True, init=False)
class RingAll:
    """Offer the call to several members at once (ring all): the same as one ``Ring``
    per member of ``members``, in that order, made in one action.

    The core makes it for an offer of more than one member on one node (with
    claims every member is claimed, then rung, on its own): the driver rings each
    member (:meth:`rings`), and reports each member's outcome as for a ``Ring``.
    """

    call_id: str
    members: tuple[str, ...]
    caller_id: Identity
    group: str | None
    timeout: float

    def __init__(
        self,
        call_id: str,
        members: tuple[str, ...],
        caller_id: Identity,
        group: str | None,
        timeout: float,
    ) -> None:
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "members", members)
        object.__setattr__(self, "caller_id", caller_id)
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "timeout", timeout)

    def rings(self) -> list[Ring]:
        """The offer to each member, as the ``Ring`` it stands for."""
        call_id, caller_id, group, timeout = self.call_id, self.caller_id, self.group, self.timeout
        return [Ring(call_id, m, caller_id, group, timeout) for m in self.members]


@dataclass(frozen=True, slots=True, init=False)
class Claim:
    """Claim the member in the shared state before ringing it (several nodes only).

    The driver answers with ``ClaimGranted`` (the core then rings it) or
    ``ClaimRefused`` (another node holds it, or, for a group call, an older caller
    of the group waits on another node). ``call_waiting``: the member may be on
    calls elsewhere, as long as nobody else rings it or waits for its wrap-up.
    ``arrival``: the call's place in its queue (the core's time of its arrival, or
    of its transfer), to compare with the callers of other nodes.
    """

    call_id: str
    member: str
    group: str | None
    call_waiting: bool
    arrival: float

    def __init__(
        self,
        call_id: str,
        member: str,
        group: str | None,
        call_waiting: bool,
        arrival: float,
    ) -> None:
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "member", member)
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "call_waiting", call_waiting)
        object.__setattr__(self, "arrival", arrival)


@dataclass(frozen=True, slots=True, init=False)
class Cancel:
    """Stop offering the call to a member (CANCEL, or ACK+BYE if it had answered)."""

    call_id: str
    member: str

    def __init__(self, call_id: str, member: str) -> None:
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "member", member)


@dataclass(frozen=True, slots=True, init=False)
class Ringback:
    """Tell the caller that members are being rung (180 Ringing)."""

    call_id: str

    def __init__(self, call_id: str) -> None:
        object.__setattr__(self, "call_id", call_id)


@dataclass(frozen=True, slots=True, init=False)
class Hold:
    """The caller enters the queue: answer with hold music, or 183 early media.

    ``music`` is the file to play (the group's ``queue.music``), None for the
    built-in music.
    """

    call_id: str
    answer: bool
    music: str | None = None

    def __init__(self, call_id: str, answer: bool, music: str | None = None) -> None:
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "answer", answer)
        object.__setattr__(self, "music", music)


@dataclass(frozen=True, slots=True, init=False)
class Bridge:
    """Connect the caller to the member who answered."""

    call_id: str
    member: str

    def __init__(self, call_id: str, member: str) -> None:
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "member", member)


@dataclass(frozen=True, slots=True, init=False)
class Release:
    """End the caller's call: final ``status`` if not answered yet, BYE otherwise."""

    call_id: str
    status: int
    reason: ReleaseReason

    def __init__(self, call_id: str, status: int, reason: ReleaseReason) -> None:
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "reason", reason)


@dataclass(frozen=True, slots=True, init=False)
class Forward:
    """Send the caller's call to ``target``, outside the server (a number or a SIP URI)."""

    call_id: str
    target: str
    reason: ForwardReason

    def __init__(self, call_id: str, target: str, reason: ForwardReason) -> None:
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "reason", reason)


@dataclass(frozen=True, slots=True, init=False)
class Reroute:
    """The call goes on at ``target``, one of our own numbers: note it, send nothing.

    The core routes the call there itself, under the same call id: to the group
    ``group`` when ``target`` is its pilot, to the line ``target`` when
    ``group`` is None. ``route`` is our numbers the call went to before
    ``target`` (the number first dialled, then each forward).
    """

    call_id: str
    target: str
    reason: ForwardReason
    group: str | None
    route: tuple[str, ...]

    def __init__(
        self,
        call_id: str,
        target: str,
        reason: ForwardReason,
        group: str | None,
        route: tuple[str, ...],
    ) -> None:
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "route", route)


@dataclass(frozen=True, slots=True, init=False)
class RefuseForward:
    """End the caller's call instead of forwarding it to ``target``, one of our numbers.

    ``status`` is 482 (Loop Detected: ``target`` is on the call's ``route``
    already) or 483 (Too Many Hops: the call followed
    ``server.limits.max_internal_forwards`` forwards); a BYE once the caller
    was answered. ``route`` is as in :class:`Reroute`.
    """

    call_id: str
    target: str
    reason: ForwardReason
    status: int
    route: tuple[str, ...]

    def __init__(
        self,
        call_id: str,
        target: str,
        reason: ForwardReason,
        status: int,
        route: tuple[str, ...],
    ) -> None:
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "route", route)


Action = (
    Ring
    | RingAll
    | Claim
    | Cancel
    | Ringback
    | Hold
    | Bridge
    | Release
    | Forward
    | Reroute
    | RefuseForward
)

# quick_init is applied after the classes, not as their decorator: mypyc makes a class
# with a decorator other than dataclass an ordinary Python class (no native attributes,
# a Python-level __init__; docs/native.md). Compiled, each keeps its own __init__.
quick_init(Identity)
quick_init(Ring)
quick_init(RingAll)
quick_init(Claim)
quick_init(Cancel)
quick_init(Ringback)
quick_init(Hold)
quick_init(Bridge)
quick_init(Release)
quick_init(Forward)
quick_init(Reroute)
quick_init(RefuseForward)
