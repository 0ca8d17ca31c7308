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
counted as ``written``.

Two kinds of failure. The database is away (the server is down, the
connection broke, the commit's outcome is unknown: ``OperationalError``,
``InterfaceError``, ``OSError``, anything on a broken connection): the
connection is dropped and the same batch is tried again after a back-off
(0.5 s doubling up to ``max_backoff``), on a new connection, for as long as
it takes; a batch that did commit before the error is not duplicated, every
row's key being its ``record_id``. So a record is written once, or stays
queued. A record is bad (:data:`REJECTED_ERRORS`: a value out of range, a
schema that does not match): the batch is written again one record at a
time, and a record that still fails is *rejected*: logged once at ERROR as a
dead-letter JSON line (the record itself, with its ``record_id``: nothing is
lost from the logs), counted (:attr:`rejected`), and the writer moves on, so
one bad record never blocks the ones after it.

While the database is away records wait in the queue, counted
(:attr:`pending`); the queue holds at most ``max_pending`` records and
``max_pending_bytes`` of estimated memory (:func:`estimated_size`: a base per
record and a share per offer, a ring_all call holding one offer per member):
beyond either, a new record is dropped, counted (:attr:`dropped`) and logged
(once a minute), and the call never waits.

At shutdown (:meth:`close`) the worker gets ``close_timeout`` seconds to
write what is left. Without a ``spool`` what is still pending then is logged
as lost. With one, it goes to the spool file (JSON lines, one record with its
``record_id`` each, mode 0600, fsynced, replaced atomically), and the next
writer started with that spool queues those records first, with the same
``record_id`` (so ``ON CONFLICT DO NOTHING`` keeps them written once), and
empties the spool only once every one of them is committed (or rejected).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import psycopg

from huntgroup.engine.aio.records.schema import connect
from huntgroup.engine.b2bua.call_records import CallRecord, MemberChange, OfferRecord
from huntgroup.engine.b2bua.connections import ReportThrottle

log = logging.getLogger("huntgroup.records")

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 10.0
MAX_PENDING_BYTES = 64 * 1024 * 1024
RECORD_BYTES = 1024
"""The estimated memory of a queued record, its offers aside (measured: ~0.7 KiB)."""
OFFER_BYTES = 256
"""The estimated memory of one offer of a call record (measured: ~0.15 KiB)."""
REJECTED_ERRORS: tuple[type[Exception], ...] = (
    psycopg.DataError,
    psycopg.IntegrityError,
    psycopg.ProgrammingError,
    psycopg.NotSupportedError,
    UnicodeError,
    ValueError,
    TypeError,
)
"""What a bad record (not an absent database) raises: rejected, not retried."""
SPOOL_MODE = 0o600
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
        max_pending_bytes: int = MAX_PENDING_BYTES,
        flush_interval: float = 1.0,
        max_backoff: float = MAX_BACKOFF,
        close_timeout: float = CLOSE_TIMEOUT,
        spool: str | None = None,
        connector: Callable[[str], Connection] = connect,
    ) -> None:
        self._dsn = dsn
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.flush_interval = flush_interval
        self.max_backoff = max_backoff
        self.close_timeout = close_timeout
        self._connector = connector
        self._queue: deque[Item] = deque()
        self._bytes = 0  # estimated_size of the records queued
        self._cond = threading.Condition()
        self._stopping = False
        self._closed = False
        self.written = 0  # records committed
        self.dropped = 0  # records refused: the queue was full
        self.rejected = 0  # records the database refused (bad data): logged, not retried
        self.failures = 0  # batches that failed (retried)
        self._drop_log = ReportThrottle(REPORT_INTERVAL)
        self._fail_log = ReportThrottle(REPORT_INTERVAL)
        self._spool = spool
        self._spooled = 0  # records at the head of the queue that came from the spool
        if spool is not None:
            for item in read_spool(spool):
                self._queue.append(item)
                self._bytes += estimated_size(item[1])
            self._spooled = len(self._queue)
            if self._spooled:
                log.warning(
                    "records.postgres: %d record(s) from the spool %s, written first",
                    self._spooled,
                    spool,
                )
        self._thread = threading.Thread(target=self._run, name="records-postgres", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Records queued, not committed yet (the batch being written included)."""
        return len(self._queue)

    @property
    def pending_bytes(self) -> int:
        """The estimated memory of the records queued (:func:`estimated_size`)."""
        return self._bytes

    def counters(self) -> dict[str, int]:
        """The ``stats:`` line's view of the writer."""
        return {
            "records_pending": len(self._queue),
            "records_written": self.written,
            "records_dropped": self.dropped,
            "records_rejected": self.rejected,
            "records_db_failures": self.failures,
        }

    # ------------------------------------------------------------ event loop
    def call_ended(self, record: CallRecord) -> None:
        self._put(record)

    def member_changed(self, change: MemberChange) -> None:
        self._put(change)

    def _put(self, record: CallRecord | MemberChange) -> None:
        size = estimated_size(record)
        with self._cond:
            if len(self._queue) >= self.max_pending or self._bytes + size > self.max_pending_bytes:
                self.dropped += 1
                held = self._drop_log.due(now=time.monotonic())
                if held is not None:
                    log.error(
                        "records.postgres: %d record(s) waiting (%d bytes estimated; "
                        "max_pending, max_pending_bytes): a record was dropped (%d dropped "
                        "in all)",
                        len(self._queue),
                        self._bytes,
                        self.dropped,
                    )
                return
            self._queue.append((uuid.uuid4(), record))
            self._bytes += size
            if len(self._queue) >= self.batch_size:
                self._cond.notify()

    def close(self) -> None:
        """Stop the worker once it wrote what is pending, or after ``close_timeout``; what
        is left goes to the spool, or is logged as lost without one."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(self.close_timeout)
        with self._cond:
            self._closed = True
            left = list(self._queue)
            if self._spool is None:
                if left:
                    log.error("records.postgres: %d record(s) not written at exit", len(left))
                return
            try:
                write_spool(self._spool, left)
            except OSError as err:
                log.error(
                    "records.postgres: %d record(s) not written at exit, and not spooled: %s",
                    len(left),
                    err,
                )
                return
            if left:
                log.warning(
                    "records.postgres: %d record(s) not written at exit, kept in the spool %s",
                    len(left),
                    self._spool,
                )

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
                self._write(conn, batch)
            except Exception as err:  # the database is away: try again, never lose it
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
        _discard(conn)

    def _write(self, conn: Connection, batch: list[Item]) -> None:
        """Write ``batch``; on a bad record, one at a time, rejecting those that fail.
        Raises when the database is away (the caller retries)."""
        try:
            write_batch(conn, batch)
        except REJECTED_ERRORS:
            if conn.broken:
                raise
            conn.rollback()
        else:
            self._done(len(batch), written=True)
            return
        for item in batch:
            try:
                write_batch(conn, [item])
            except REJECTED_ERRORS as err:
                if conn.broken:
                    raise
                conn.rollback()
                log.error(
                    "records.postgres: record rejected by the database (%s: %s), not written: %s",
                    type(err).__name__,
                    str(err).strip(),
                    spool_line(item).rstrip("\n"),
                )
                self._done(1, written=False)
            else:
                self._done(1, written=True)

    def _done(self, count: int, *, written: bool) -> None:
        """The ``count`` records at the head of the queue are committed (or rejected)."""
        with self._cond:
            for _ in range(count):
                _, record = self._queue.popleft()
                self._bytes -= estimated_size(record)
            if written:
                self.written += count
            else:
                self.rejected += count
            if self._spooled:
                self._spooled = max(0, self._spooled - count)
                if not self._spooled and not self._closed and self._spool is not None:
                    try:
                        write_spool(self._spool, [])
                    except OSError as err:
                        log.error("records.postgres: could not empty the spool: %s", err)


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
                    db_text(record.call_id),
                    record.node,
                    record.kind,
                    record.group,
                    record.pilot,
                    db_text(record.caller),
                    db_text(record.callee),
                    db_text(record.identity),
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
                    db_text(record.reason),
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


def db_text(value: str | None) -> str | None:
    """``value`` as PostgreSQL can store it: text from the network may hold lone surrogates
    (bytes that were not UTF-8, kept by the SIP parser as surrogate escapes) and NUL
    characters, which a ``text`` column refuses: both written as backslash escapes."""
    if value is None or (value.isascii() and "\x00" not in value):
        return value
    safe = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return safe.replace("\x00", "\\x00")


def _discard(conn: Connection | None) -> None:
    if conn is not None:
        try:
            conn.close()
        except Exception as err:
            log.debug("records.postgres: closing a broken connection: %s", err)


def estimated_size(record: CallRecord | MemberChange) -> int:
    """The memory a queued record holds, roughly (no serialisation: run on the loop)."""
    if isinstance(record, CallRecord):
        return RECORD_BYTES + OFFER_BYTES * len(record.offers)
    return RECORD_BYTES


def spool_line(item: Item) -> str:
    """``item`` as one JSON line (the spool's, the dead-letter log's): its ``record_id``,
    ``type`` (``call`` or ``member``) and every field of the record. ASCII only: text
    holding lone surrogates (bytes from the network that were not UTF-8) survives."""
    record_id, record = item
    kind = "call" if isinstance(record, CallRecord) else "member"
    fields = {"record_id": str(record_id), "type": kind, **dataclasses.asdict(record)}
    return json.dumps(fields, separators=(",", ":")) + "\n"


def parse_spool_line(line: str) -> Item:
    """The record of a :func:`spool_line`; ValueError, KeyError or TypeError when it is not."""
    fields = json.loads(line)
    record_id = uuid.UUID(fields.pop("record_id"))
    kind = fields.pop("type")
    if kind == "member":
        return record_id, MemberChange(**fields)
    if kind != "call":
        raise ValueError(f"unknown record type {kind!r}")
    offers = tuple(OfferRecord(**offer) for offer in fields.pop("offers"))
    return record_id, CallRecord(**fields, offers=offers)


def read_spool(path: str) -> list[Item]:
    """The records of the spool at ``path`` (none when it is missing); the file is created
    (mode 0600) when missing, so that a path that cannot be written stops the start. A
    line that is not a record (a write cut short) is logged and skipped."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, SPOOL_MODE))
    items: list[Item] = []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                items.append(parse_spool_line(line))
            except (ValueError, KeyError, TypeError) as err:
                log.error("records.postgres: spool %s line %d skipped: %s", path, number, err)
    return items


def write_spool(path: str, items: list[Item]) -> None:
    """Replace the spool at ``path`` with ``items``: written to a new file (mode 0600),
    fsynced, renamed over the old one, the directory fsynced."""
    temporary = f"{path}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, SPOOL_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.writelines(spool_line(item) for item in items)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    directory = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
