"""The Asterisk ``queue_log`` sink: the lines app_queue writes, as the calls go.

Theory of operation
-------------------
Each line is ``epoch|callid|queuename|agent|event|data1|data2|...``
(docs/operations.md, "queue_log"): the queue is the group's name, the agent
the member (its line number or URI), ``NONE`` when there is none; the call
id is the caller's SIP Call-ID. The B2BUA hands the events of a group call as
they happen (:class:`~huntgroup.engine.b2bua.call_records.QueueEvent`: the
call entering the group's queue with its position, each offer a member did
not take with its ring time, the answer, the end or the caller's exit), and
each becomes one line at once: a report tool tailing the file (QueueMetrics'
real-time view, agents' status) sees a caller waiting while it waits. The
lines are in the order things happened, across calls.

Member changes: ``ADDMEMBER`` / ``REMOVEMEMBER`` (login, logout) with the
call id ``NONE``; ``PAUSE|reason`` / ``UNPAUSE|reason``. A call record (at
the end of a call) writes nothing more: its lines are written already.
"""

from __future__ import annotations

import re

from huntgroup.engine.aio.records.line_file import MAX_QUEUED, LineFile
from huntgroup.engine.b2bua.call_records import CallRecord, MemberChange, QueueEvent

UNSAFE = re.compile(r"[|\r\n\x00]")
"""What a field must not contain: the separator and line ends (hostile callers)."""
MEMBER_EVENTS = {
    "login": "ADDMEMBER",
    "logout": "REMOVEMEMBER",
    "pause": "PAUSE",
    "unpause": "UNPAUSE",
}


def field(value: object) -> str:
    """``value`` made safe for a pipe-separated line."""
    return UNSAFE.sub("_", str(value))


def line(at: float, call_id: str, queue: str, agent: str, event: str, *data: object) -> str:
    parts = [str(int(at)), field(call_id), field(queue), field(agent), event]
    parts += [field(x) for x in data]
    return "|".join(parts) + "\n"


def event_line(event: QueueEvent) -> str:
    """The queue_log line of a queue event."""
    return line(event.at, event.call_id, event.queue, event.agent, event.event, *event.data)


def change_line(change: MemberChange) -> str:
    event = MEMBER_EVENTS.get(change.action, change.action.upper())
    data = (change.reason,) if event in ("PAUSE", "UNPAUSE") else ("",)
    return line(change.at, "NONE", change.group, change.member, event, *data)


class QueueLogSink:
    """``records.queue_log``: appends Asterisk queue_log lines, one per event, at once."""

    def __init__(self, path: str, *, max_queued: int = MAX_QUEUED) -> None:
        self.file = LineFile(path, max_queued=max_queued)

    def counters(self) -> dict[str, int]:
        """For the ``stats:`` line: the lines its file could not keep up with."""
        return {"records_file_dropped": self.file.dropped}

    def queue_event(self, event: QueueEvent) -> None:
        self.file.write(event_line(event))

    def call_ended(self, record: CallRecord) -> None:
        """Nothing: the call's lines were written as it went."""

    def member_changed(self, change: MemberChange) -> None:
        self.file.write(change_line(change))

    def reopen(self) -> None:
        self.file.reopen()

    def close(self) -> None:
        self.file.close()
