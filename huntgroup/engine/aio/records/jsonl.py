"""The JSON-lines sink: one JSON object per call record or member change, one per line.

A call record is ``{"type": "call", ...}`` with the fields of
:class:`~huntgroup.engine.b2bua.call_records.CallRecord` (``offers`` a list of
``{"member", "start", "end", "result"}``), a member change ``{"type": "member", ...}``
with those of :class:`~huntgroup.engine.b2bua.call_records.MemberChange`;
times are epoch seconds (floats, millisecond precision). The file is a
:class:`~huntgroup.engine.aio.records.line_file.LineFile`: appended and flushed
by its writer thread, fsynced on reopen (SIGHUP) and close.
"""

from __future__ import annotations

import json
from typing import Any

from huntgroup.engine.aio.records.line_file import MAX_QUEUED, LineFile
from huntgroup.engine.b2bua.call_records import CallRecord, MemberChange


def call_dict(record: CallRecord) -> dict[str, Any]:
    """A call record as plain JSON values (the JSON-lines object, without ``type``)."""
    return {
        "call_id": record.call_id,
        "node": record.node,
        "kind": record.kind,
        "group": record.group,
        "pilot": record.pilot,
        "caller": record.caller,
        "callee": record.callee,
        "identity": record.identity,
        "arrival": round(record.arrival, 3),
        "answer": None if record.answer is None else round(record.answer, 3),
        "end": round(record.end, 3),
        "wait": round(record.wait, 3),
        "talk": round(record.talk, 3),
        "member": record.member,
        "outcome": record.outcome,
        "release_code": record.release_code,
        "position": record.position,
        "offers": [
            {
                "member": x.member,
                "start": round(x.start, 3),
                "end": None if x.end is None else round(x.end, 3),
                "result": x.result,
            }
            for x in record.offers
        ],
    }


def change_dict(change: MemberChange) -> dict[str, Any]:
    return {
        "at": round(change.at, 3),
        "group": change.group,
        "member": change.member,
        "action": change.action,
        "reason": change.reason,
        "origin": change.origin,
    }


class JsonLinesSink:
    """``records.jsonl``: appends one JSON object per record."""

    def __init__(self, path: str, *, max_queued: int = MAX_QUEUED) -> None:
        self.file = LineFile(path, max_queued=max_queued)

    def counters(self) -> dict[str, int]:
        """For the ``stats:`` line: the lines its file could not keep up with."""
        return {"records_file_dropped": self.file.dropped}

    def call_ended(self, record: CallRecord) -> None:
        self._write({"type": "call", **call_dict(record)})

    def member_changed(self, change: MemberChange) -> None:
        self._write({"type": "member", **change_dict(change)})

    def _write(self, obj: dict[str, Any]) -> None:
        self.file.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")

    def reopen(self) -> None:
        self.file.reopen()

    def close(self) -> None:
        self.file.close()
