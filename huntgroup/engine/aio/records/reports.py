"""``Server.reports``: every call record, member change and queue event, to the report sinks.

Theory of operation
-------------------
The B2BUA hands its records to the driver as outputs (``RecordOutput``); the
server passes each to :meth:`Reports.deliver`, which calls every sink in the
order they were added: ``call_ended(record)`` for a :class:`CallRecord`,
``member_changed(change)`` for a :class:`MemberChange`, and
``queue_event(event)`` for a :class:`QueueEvent` (a group call's queue_log
event, as it happens) to the sinks that have that method (optional: the
queue_log sink has it). The call records'
own sinks (JSON lines, queue_log, PostgreSQL) are added at start from
``records:``; the metrics and the wallboard add theirs (:meth:`Reports.add`).

A sink that raises costs its own work only: the others still get the record,
the call never notices, and the failure is logged once per
:data:`REPORT_INTERVAL` per sink (the failures held back are counted in the
next line, and in :attr:`Reports.failures`). Sinks that hold files or
connections may have ``reopen()`` (SIGHUP: logrotate moved the files) and
``close()`` (shutdown): both are optional.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from huntgroup.engine.b2bua.call_records import CallRecord, MemberChange, QueueEvent
from huntgroup.engine.b2bua.connections import ReportThrottle

log = logging.getLogger("huntgroup.records")

REPORT_INTERVAL = 60.0
"""Seconds between two log lines about the same failing sink."""


class ReportSink(Protocol):
    """What a report sink does with each record."""

    def call_ended(self, record: CallRecord) -> None: ...

    def member_changed(self, change: MemberChange) -> None: ...


class Reports:
    """The report sinks of one server (see the module docstring)."""

    def __init__(self) -> None:
        self.sinks: list[ReportSink] = []
        self._throttles: list[ReportThrottle] = []
        # the sinks that take queue events: each with its queue_event method and throttle
        self._queue: list[tuple[ReportSink, Callable[[QueueEvent], None], ReportThrottle]] = []
        self.failures = 0  # calls of a sink that raised

    def add(self, sink: ReportSink) -> None:
        throttle = ReportThrottle(REPORT_INTERVAL)
        self.sinks.append(sink)
        self._throttles.append(throttle)
        queue_event = getattr(sink, "queue_event", None)
        if queue_event is not None:
            self._queue.append((sink, queue_event, throttle))

    def deliver(self, record: CallRecord | MemberChange | QueueEvent) -> None:
        """Hand ``record`` to every sink (a queue event: to the sinks that take them)."""
        if isinstance(record, QueueEvent):
            for sink, queue_event, throttle in self._queue:
                try:
                    queue_event(record)
                except Exception as err:
                    self._failed(sink, throttle, err)
            return
        ended = isinstance(record, CallRecord)
        for sink, throttle in zip(self.sinks, self._throttles, strict=True):
            try:
                if ended:
                    sink.call_ended(record)  # type: ignore[arg-type]
                else:
                    sink.member_changed(record)  # type: ignore[arg-type]
            except Exception as err:
                self._failed(sink, throttle, err)

    def _failed(self, sink: object, throttle: ReportThrottle, err: Exception) -> None:
        """A sink raised: counted, and logged once per :data:`REPORT_INTERVAL`."""
        self.failures += 1
        held = throttle.due(now=time.monotonic())
        if held is not None:
            log.warning(
                "report sink %s failed: %s: %s%s",
                type(sink).__name__,
                type(err).__name__,
                err,
                f" ({held} more failure(s) since the last report)" if held else "",
            )

    def call_ended(self, record: CallRecord) -> None:
        self.deliver(record)

    def member_changed(self, change: MemberChange) -> None:
        self.deliver(change)

    def counters(self) -> dict[str, int]:
        """For the ``stats:`` line: sink failures, and the counts of the sinks that keep
        some (``counters()``: the PostgreSQL writer's pending, written, dropped)."""
        found = {"records_sink_errors": self.failures}
        for sink in self.sinks:
            counters = getattr(sink, "counters", None)
            if counters is not None:
                for key, value in counters().items():  # two files: their drops summed
                    found[key] = found.get(key, 0) + value
        return found

    def reopen(self) -> None:
        """SIGHUP: the sinks that write files open them again (after a log rotation)."""
        self._each("reopen")

    def close(self) -> None:
        """Shutdown: every sink that has a ``close()`` is closed (pending records flushed)."""
        self._each("close")

    def _each(self, method: str) -> None:
        """Call ``method()`` on every sink that has it; a failure is logged, the others
        still run."""
        for sink in self.sinks:
            action = getattr(sink, method, None)
            if action is not None:
                try:
                    action()
                except Exception as err:
                    log.error("report sink %s: could not %s: %s", type(sink).__name__, method, err)
