"""The Asterisk ``queue_log`` sink: the lines app_queue would have written for a group call.

Theory of operation
-------------------
Each line is ``epoch|callid|queuename|agent|event|data1|data2|...``
(docs/operations.md, "queue_log"): the queue is the group's name, the agent
the member (its line number or URI), ``NONE`` when there is none; the call
id is the caller's SIP Call-ID. A call record of a group call becomes, in
time order:

- ``ENTERQUEUE|url|callerid|position`` at its arrival (url empty; huntgroup
  keeps no queue position in a record: positions are written ``1``);
- ``RINGNOANSWER|ringtime`` (milliseconds) for each offer the member did not
  take (no answer, busy, declined, unreachable); an offer cancelled because
  another member answered writes nothing, as in Asterisk. A record keeps when
  an offer started, not when it ended: the line is dated, and a no-answer's
  ring time measured, up to the start of the call's next offer (else its
  answer, else its end); a refusal's ring time is 0;
- ``CONNECT|holdtime|bridgedchanneluniqueid|ringtime`` when answered (the
  call id stands for the member's channel);
- then, for an answered call, ``COMPLETECALLER`` or ``COMPLETEAGENT``
  (``holdtime|calltime|origposition``) by who hung up; else one exit with
  ``position|origposition|waittime``: ``ABANDON`` (the caller hung up first),
  ``EXITWITHTIMEOUT`` (the queue's ``max_wait``; also a call forwarded out of
  the group, and one every offered member failed: Asterisk's queue timeout
  sends the caller on alike), ``EXITEMPTY`` (nobody could be offered the
  call, or the server refused it); ``FULL`` alone (no ``ENTERQUEUE``: the
  caller never entered) when the queue was full. ``EXITWITHKEY`` never
  occurs: huntgroup has no DTMF exit from a queue.

Member changes: ``ADDMEMBER`` / ``REMOVEMEMBER`` (login, logout) with the
call id ``NONE``; ``PAUSE|reason`` / ``UNPAUSE|reason``.

The lines are written when the call ends, with their true timestamps: one
call's lines are in order and together, but the file is not sorted across
calls (a call that lasted an hour writes its ENTERQUEUE after shorter calls
that came later). Report tools that load the whole file (or sort by the
timestamp, as a database import does) read it right; a tool tailing the file
for a live view sees each call once it is over. The records come from the
B2BUA at the end of a call only, so that no output is added per message on
the hot path; a live wallboard is the admin listener's job.
"""

from __future__ import annotations

import re

from huntgroup.engine.aio.records.line_file import LineFile
from huntgroup.engine.b2bua.call_records import CallRecord, MemberChange

UNSAFE = re.compile(r"[|\r\n\x00]")
"""What a field must not contain: the separator and line ends (hostile callers)."""
MEMBER_EVENTS = {
    "login": "ADDMEMBER",
    "logout": "REMOVEMEMBER",
    "pause": "PAUSE",
    "unpause": "UNPAUSE",
}
EXITS = {
    "abandoned": "ABANDON",
    "timeout": "EXITWITHTIMEOUT",
    "forwarded": "EXITWITHTIMEOUT",
    "no_answer": "EXITEMPTY",
    "refused": "EXITEMPTY",
}
POSITION = "1"


def field(value: object) -> str:
    """``value`` made safe for a pipe-separated line."""
    return UNSAFE.sub("_", str(value))


def line(at: float, call_id: str, queue: str, agent: str, event: str, *data: object) -> str:
    parts = [str(int(at)), field(call_id), field(queue), field(agent), event]
    parts += [field(x) for x in data]
    return "|".join(parts) + "\n"


def call_lines(record: CallRecord) -> list[str]:
    """The queue_log lines of a call record, in time order (none but for a group call)."""
    if record.kind != "group" or record.group is None:
        return []
    cid, queue = record.call_id, record.group
    if record.outcome == "queue_full":
        return [line(record.arrival, cid, queue, "NONE", "FULL")]
    out = [line(record.arrival, cid, queue, "NONE", "ENTERQUEUE", "", record.caller, POSITION)]
    starts = sorted({x.start for x in record.offers})
    for offer in record.offers:
        if offer.result in ("answered", "cancelled"):
            continue
        later = [s for s in starts if s > offer.start]
        until = later[0] if later else (record.answer if record.answer else record.end)
        ringtime = round(max(0.0, until - offer.start) * 1000) if offer.result == "no_answer" else 0
        out.append(line(until, cid, queue, offer.member, "RINGNOANSWER", ringtime))
    wait = round(record.wait)
    if record.outcome == "answered" and record.answer is not None:
        member = record.member or "NONE"
        answered = [x for x in record.offers if x.result == "answered"]
        ring = round(record.answer - answered[0].start) if answered else 0
        out.append(line(record.answer, cid, queue, member, "CONNECT", wait, cid, ring))
        event = "COMPLETEAGENT" if record.hangup == "member" else "COMPLETECALLER"
        out.append(line(record.end, cid, queue, member, event, wait, round(record.talk), POSITION))
    else:
        event = EXITS.get(record.outcome, "EXITEMPTY")
        if event == "EXITEMPTY" and record.offers and record.outcome == "no_answer":
            event = "EXITWITHTIMEOUT"  # members were offered it and none took it
        out.append(line(record.end, cid, queue, "NONE", event, POSITION, POSITION, wait))
    out.sort(key=lambda text: int(text.split("|", 1)[0]))  # stable: same second keeps order
    return out


def change_line(change: MemberChange) -> str:
    event = MEMBER_EVENTS.get(change.action, change.action.upper())
    data = (change.reason,) if event in ("PAUSE", "UNPAUSE") else ("",)
    return line(change.at, "NONE", change.group, change.member, event, *data)


class QueueLogSink:
    """``records.queue_log``: appends Asterisk queue_log lines."""

    def __init__(self, path: str) -> None:
        self.file = LineFile(path)

    def call_ended(self, record: CallRecord) -> None:
        lines = call_lines(record)
        if lines:
            self.file.write("".join(lines), len(lines))

    def member_changed(self, change: MemberChange) -> None:
        self.file.write(change_line(change))

    def reopen(self) -> None:
        self.file.reopen()

    def close(self) -> None:
        self.file.close()
