"""What a member's answer means: the one reading of a member leg's final status.

Theory of operation
-------------------
A driver reports what came back from a member as a fact: ``MemberFailed`` with
the raw SIP status of the leg's final response, or ``MemberUnreachable`` when
no status could come back at all (no registered contact, no media port, an
INVITE that could not be sent). The core reads them here, and only here:

- ``BUSY``: 486 Busy Here, 600 Busy Everywhere. The phone is on another call;
  a call to the line's own number follows its ``forward_busy``.
- ``UNREACHABLE``: 408 (no final response in time: the phone is gone) and
  503 (no way to it: a transport error, an ICMP error, a refusal on the way),
  and ``MemberUnreachable``.
- ``DECLINED``: any other final status: 603 Decline, 480, 404, 488 (an answer
  whose media cannot be relayed)...
- ``NO_ANSWER``: the core's own ``no_answer_timeout`` ran out on the offer.

In a group every refusal ends the offer at once and the hunt goes on; a call
to a line's own number follows ``forward_busy`` when the line is busy and
``forward_no_answer`` otherwise. An ``UNREACHABLE`` member also backs off
(not offered calls for a while, :mod:`huntgroup.queue.availability`), unless
the cause was ours (``MemberUnreachable.ours``: no media port left); any other
answer shows the phone is there and ends its back-off series.
"""

from __future__ import annotations

from enum import Enum


class Refusal(Enum):
    """Why a member did not take an offer."""

    BUSY = "busy"
    DECLINED = "declined"
    UNREACHABLE = "unreachable"
    NO_ANSWER = "no_answer"


BUSY_STATUSES = frozenset({486, 600})
UNREACHABLE_STATUSES = frozenset({408, 503})


def refusal_of(status: int) -> Refusal:
    """The meaning of a member leg's final (non-2xx) SIP ``status``."""
    if status in BUSY_STATUSES:
        return Refusal.BUSY
    if status in UNREACHABLE_STATUSES:
        return Refusal.UNREACHABLE
    return Refusal.DECLINED
