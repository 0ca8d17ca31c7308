"""The records the B2BUA hands its driver: member changes (and, from the records work, calls).

Theory of operation
-------------------
A record is a frozen value wrapped in a :class:`RecordOutput`, an output of
the B2BUA like ``Transmit``; the driver hands each one to its report sinks.
This file holds only what the control work needs: :class:`MemberChange`, one
control change of a member (login, logout, pause, unpause), whatever its
origin. The call records (``CallRecord``, ``OfferRecord``) and their builder
are the records work's, merged into this module.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MemberChange:
    """A member logged in or out, paused or unpaused (emitted by the control API)."""

    at: float  # wall-clock epoch seconds
    group: str
    member: str
    action: str  # login | logout | pause | unpause
    reason: str
    origin: str  # api | phone (*51/*52) | reload


@dataclass(frozen=True, slots=True)
class RecordOutput:
    """Output: a call record or a member change, for the driver's report sinks."""

    record: object  # CallRecord | MemberChange once the records work defines CallRecord
