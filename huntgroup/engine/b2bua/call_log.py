"""What a log line about a call carries besides its text: call id, group, event, member.

Theory of operation
-------------------
Each step of a call is logged as one line of text (``call k12: ringing 0102030401
(Support)``); the same log call passes :func:`about` as its ``extra=``, so that
``huntgroup serve --log-format json`` (:mod:`huntgroup.engine.aio.json_logs`) writes
the step as fields a machine can filter on, with no parsing of the text:

- ``call_id``: the call's key (``k12``, the one in the text line);
- ``group``: the group whose pilot the call is at now (None: a call to a line, or out
  through the upstream); it changes when a forward takes the call to another pilot;
- ``event``: what happened, one word of :data:`CallEvent` (checked by mypy);
- ``member``: the member the step is about, on member steps only.

A refused INVITE has no call yet: :func:`refused` gives its group (from the number
called) and the event ``refused``. The text format ignores these fields: the text
lines stay as they are. Nothing here reads a clock or touches I/O.
"""

from __future__ import annotations

from typing import Literal, get_args

from huntgroup.engine.b2bua.calls import Call
from huntgroup.engine.b2bua.context import Context

CallEvent = Literal[
    # the call's life
    "arrived",  # taken in, at a pilot or a line
    "rerouted",  # a forward took it to another of our numbers
    "outgoing",  # a line calls out through the upstream
    "greeting",  # the group's greeting plays
    "queued",  # waits in the group's queue (answered, or early media)
    "ringing",  # a member's phone rings (member)
    "unreachable",  # a member has no contact (member)
    "ring_failed",  # a member could not be rung (member)
    "answered",  # a member answered (member)
    "not_taken",  # a member did not take it: no answer, busy, declined (member)
    "bridged",  # caller and member (or forward target) talk (member)
    "forwarded",  # sent on to another number
    "forward_failed",  # the forward (or the outgoing call) failed
    "forward_loop",  # ended: a forward loop
    "released",  # ended by the group: timeout, queue full, no member...
    "cancelled",  # the caller gave up before an answer
    "caller_hangup",
    "member_hangup",  # (member)
    "no_ack",  # the caller never ACKed our 200
    "max_duration",  # server.calls.max_duration reached
    "rtp_timeout",  # no RTP for server.media.rtp_timeout
    "session_expired",  # RFC 4028: no refresh, or the refresh failed
    "ended",  # over, whatever the reason: the last line of every call
    "refused",  # an INVITE refused before it became a call (no call_id)
    # during the call
    "hold",
    "resume",
    "hold_music_failed",
    "media_direct",
    "media_relayed",
    "dialog_gone",
    "reinvite_failed",
    "relay_failed",
    "session_retry",  # a member asked for a longer session interval (422)
    "reliable_provisional",  # a member sent a 100rel provisional unasked
    "transferred",  # (member: the transferor)
    "transfer_refused",
    "transfer_failed",
    "transfer_result",
    "transfer_music_failed",
    "notify_refused",
]
"""Every value of ``event`` (docs/operations.md, "Logs", lists them for operators)."""
EVENTS: frozenset[str] = frozenset(get_args(CallEvent))


def about(ctx: Context, call: Call, event: CallEvent, member: str = "") -> dict[str, object]:
    """The ``extra=`` of a log line about ``call``: ``event``, with ``member`` when the
    line is about one."""
    fields: dict[str, object] = {
        "call_id": call.key,
        "group": ctx.core.group_of_pilot(call.number),
        "event": event,
    }
    if member:
        fields["member"] = member
    return fields


def refused(ctx: Context, number: str) -> dict[str, object]:
    """The ``extra=`` of the log line of an INVITE to ``number`` refused before it
    became a call: its group (if ``number`` is a pilot) and the event ``refused``."""
    return {"call_id": None, "group": ctx.core.group_of_pilot(number), "event": "refused"}
