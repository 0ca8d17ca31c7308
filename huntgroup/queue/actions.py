"""Actions: commands the group core returns to its driver.

The driver carries them out (SIP INVITE, CANCEL, 180, 200 with music...) and
reports what happened as events. A ``Release`` or a ``Forward`` is the end of
the caller's call inside the core; ``reason`` says why, in the vocabulary of
simulation reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ReleaseReason = Literal["queue_full", "max_wait", "no_answer", "busy", "group_removed", "not_found"]
ForwardReason = Literal["queue_full", "max_wait", "no_answer", "no_answer_after", "busy"]


@dataclass(frozen=True, slots=True)
class Identity:
    """The caller identity presented to a member's phone (From / P-Asserted-Identity)."""

    number: str
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class Ring:
    """Offer the call to a member: ring it for at most ``timeout`` seconds.

    ``group`` is None for a call to the line's own number.
    """

    call_id: str
    member: str
    caller_id: Identity
    group: str | None
    timeout: float


@dataclass(frozen=True, slots=True)
class Cancel:
    """Stop offering the call to a member (CANCEL, or ACK+BYE if it had answered)."""

    call_id: str
    member: str


@dataclass(frozen=True, slots=True)
class Ringback:
    """Tell the caller that members are being rung (180 Ringing)."""

    call_id: str


@dataclass(frozen=True, slots=True)
class Hold:
    """The caller enters the queue: answer with hold music, or 183 early media."""

    call_id: str
    answer: bool


@dataclass(frozen=True, slots=True)
class Bridge:
    """Connect the caller to the member who answered."""

    call_id: str
    member: str


@dataclass(frozen=True, slots=True)
class Release:
    """End the caller's call: final ``status`` if not answered yet, BYE otherwise."""

    call_id: str
    status: int
    reason: ReleaseReason


@dataclass(frozen=True, slots=True)
class Forward:
    """Send the caller's call to ``target`` (a number or a SIP URI)."""

    call_id: str
    target: str
    reason: ForwardReason


Action = Ring | Cancel | Ringback | Hold | Bridge | Release | Forward
