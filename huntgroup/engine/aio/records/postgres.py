"""The PostgreSQL sink: call records batched into the database by a worker thread.

Theory of operation
-------------------
The event loop only queues: :meth:`PostgresSink.call_ended` gives the record
its ``record_id`` (a UUID, kept for good) and appends it to a bounded deque
under a lock, a few microseconds. Nothing on the loop waits for the database.

One worker thread writes. It wakes when :attr:`batch_size` records wait, or
every ``flush_interval`` seconds, takes up to ``batch_size`` records from the
head of the queue *without removing them*, and writes them in one
transaction (the calls, their offers, the member changes, each ``INSERT ...
ON CONFLICT DO NOTHING``). Only once the commit returned are they removed and
counted as ``written``. When anything fails (the server is down, the
connection broke, the commit's outcome is unknown) the connection is dropped,
the same batch is tried again after a back-off (0.5 s doubling up to
``max_backoff``), on a new connection; a batch that did commit before the
error is not duplicated, every row's key being its ``record_id``. So a
record is written once, or stays queued.

While the database is away records wait in the queue, counted
(:attr:`pending`); the queue holds at most ``max_pending`` records: beyond, a
new record is dropped, counted (:attr:`dropped`) and logged (once a minute),
and the call never waits. At shutdown (:meth:`close`) the worker gets
``close_timeout`` seconds to write what is left; what is still pending then
is logged as lost.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import psycopg

from huntgroup.engine.aio.records.schema import connect
from huntgroup.engine.b2bua.call_records import CallRecord, MemberChange
from huntgroup.engine.b2bua.connections import ReportThrottle

log = logging.getLogger("huntgroup.records")

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 10.0
CLOSE_TIMEOUT = 5.0
REPORT_INTERVAL = 60.0

Item = tuple[uuid.UUID, CallRecord | MemberChange]
Connection = psycopg.Connection[tuple[Any, ...]]

INSERT_CALL = """\
INSERT INTO calls (record_id, call_id, node, kind, group_name, pilot, caller, callee,
    identity, arrival, answer, end_at, wait_seconds, talk_seconds, member, outcome,
    release_code, hangup, queue_position)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, to_timestamp(%s), to_timestamp(%s),
    to_timestamp(%s), %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (record_id) DO NOTHING"""
INSERT_OFFER = """\
INSERT INTO call_offers (record_id, seq, member, start_at, result, end_at)
VALUES (%s, %s, %s, to_timestamp(%s), %s, to_timestamp(%s))
ON CONFLICT (record_id, seq) DO NOTHING"""
INSERT_CHANGE = """\
INSERT INTO member_changes (record_id, at, group_name, member, action, reason, origin)
VALUES (%s, to_timestamp(%s), %s, %s, %s, %s, %s)
ON CONFLICT (record_id) DO NOTHING"""


class PostgresSink:
    """``records.postgres`` (see the module docstring)."""

    def __init__(
        self,
        dsn: str,
        *,
        batch_size: int = 200,
        max_pending: int = 100_000,
        flush_interval: float = 1.0,
        max_backoff: float = MAX_BACKOFF,
        close_timeout: float = CLOSE_TIMEOUT,
        connector: Callable[[str], Connection] = connect,
    ) -> None:
        self._dsn = dsn
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.flush_interval = flush_interval
        self.max_backoff = max_backoff
        self.close_timeout = close_timeout
        self._connector = connector
        self._queue: deque[Item] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self.written = 0  # records committed
        self.dropped = 0  # records refused: the queue was full
        self.failures = 0  # batches that failed (retried)
        self._drop_log = ReportThrottle(REPORT_INTERVAL)
        self._fail_log = ReportThrottle(REPORT_INTERVAL)
        self._thread = threading.Thread(target=self._run, name="records-postgres", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Records queued, not committed yet (the batch being written included)."""
        return len(self._queue)

    def counters(self) -> dict[str, int]:
        """The ``stats:`` line's view of the writer."""
        return {
            "records_pending": len(self._queue),
            "records_written": self.written,
            "records_dropped": self.dropped,
            "records_db_failures": self.failures,
        }

    # ------------------------------------------------------------ event loop
    def call_ended(self, record: CallRecord) -> None:
        self._put(record)

    def member_changed(self, change: MemberChange) -> None:
        self._put(change)

    def _put(self, record: CallRecord | MemberChange) -> None:
        with self._cond:
            if len(self._queue) >= self.max_pending:
                self.dropped += 1
                held = self._drop_log.due(now=time.monotonic())
                if held is not None:
                    log.error(
                        "records.postgres: %d record(s) waiting (max_pending): a record was "
                        "dropped (%d dropped in all)",
                        len(self._queue),
                        self.dropped,
                    )
                return
            self._queue.append((uuid.uuid4(), record))
            if len(self._queue) >= self.batch_size:
                self._cond.notify()

    def close(self) -> None:
        """Stop the worker once it wrote what is pending, or after ``close_timeout``."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(self.close_timeout)
        if self._queue:
            log.error("records.postgres: %d record(s) not written at exit", len(self._queue))

    # ---------------------------------------------------------------- worker
    def _run(self) -> None:
        conn: Connection | None = None
        backoff = FIRST_BACKOFF
        while True:
            with self._cond:
                if not self._stopping and len(self._queue) < self.batch_size:
                    self._cond.wait(self.flush_interval)
                batch = [self._queue[i] for i in range(min(self.batch_size, len(self._queue)))]
                if not batch and self._stopping:
                    break
            if not batch:
                continue
            try:
                if conn is None:
                    conn = self._connector(self._dsn)
                write_batch(conn, batch)
            except Exception as err:  # psycopg.Error, OSError...: try again, never lose it
                self.failures += 1
                _discard(conn)
                conn = None
                held = self._fail_log.due(now=time.monotonic())
                if held is not None:
                    log.warning(
                        "records.postgres: could not write %d record(s), %d pending, retrying: "
                        "%s: %s",
                        len(batch),
                        len(self._queue),
                        type(err).__name__,
                        str(err).strip(),
                    )
                with self._cond:
                    if self._stopping:
                        break
                    self._cond.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            backoff = FIRST_BACKOFF
            with self._cond:
                for _ in batch:
                    self._queue.popleft()
                self.written += len(batch)
        _discard(conn)


def write_batch(conn: Connection, batch: list[Item]) -> None:
    """Insert ``batch`` in one transaction (every row keyed by its record id)."""
    calls: list[tuple[Any, ...]] = []
    offers: list[tuple[Any, ...]] = []
    changes: list[tuple[Any, ...]] = []
    for record_id, record in batch:
        if isinstance(record, CallRecord):
            calls.append(
                (
                    record_id,
                    record.call_id,
                    record.node,
                    record.kind,
                    record.group,
                    record.pilot,
                    record.caller,
                    record.callee,
                    record.identity,
                    record.arrival,
                    record.answer,
                    record.end,
                    record.wait,
                    record.talk,
                    record.member,
                    record.outcome,
                    record.release_code,
                    record.hangup,
                    record.position,
                )
            )
            offers += [
                (record_id, seq, x.member, x.start, x.result, x.end)
                for seq, x in enumerate(record.offers)
            ]
        else:
            changes.append(
                (
                    record_id,
                    record.at,
                    record.group,
                    record.member,
                    record.action,
                    record.reason,
                    record.origin,
                )
            )
    with conn.cursor() as cur:
        if calls:
            cur.executemany(INSERT_CALL, calls)
        if offers:
            cur.executemany(INSERT_OFFER, offers)
        if changes:
            cur.executemany(INSERT_CHANGE, changes)
    conn.commit()


def _discard(conn: Connection | None) -> None:
    if conn is not None:
        try:
            conn.close()
        except Exception as err:
            log.debug("records.postgres: closing a broken connection: %s", err)
