"""An append-only text file of lines, written by its own thread and reopened on SIGHUP: what
the JSON-lines and queue_log sinks write to.

Theory of operation
-------------------
The event loop never touches the file: :meth:`LineFile.write` appends the
text to a bounded queue under a lock (a few microseconds) and wakes the
file's writer thread, one per file. The thread takes everything queued, in
order, writes it and flushes once: the lines are in the kernel a moment after
the call is over, so a crash of the process loses at most what was still
queued. The queue holds at most ``max_queued`` lines: a file that cannot keep
up (a slow or full disk, a FIFO nobody reads) costs lines, never the loop:
beyond the bound a new record's lines are dropped, counted (:attr:`dropped`)
and logged once a minute.

The file is opened for appending (``O_APPEND``: several writers never
overwrite each other, and a line is written whole), created with mode 0640
(records name callers: not world-readable, docs/security.md). Lines are not
fsynced one by one (a disk write per call would cost more than the call):
``fsync`` runs on reopen and close, in the thread, so a crash of the whole
machine may lose the records of its last seconds (the kernel's writeback
interval, 5 s by default on Linux).

Log rotation: logrotate moves the file, then sends SIGHUP; :meth:`reopen`
queues a reopen behind the lines already queued (they go to the moved file,
order kept): the thread opens the path again, a new file, then syncs and
closes the old one. The first open happens in the caller, so a file that
cannot be opened at start stops the server (the operator asked for it); one
that cannot be reopened is logged and the old one kept. :meth:`close` queues
the end and waits for the thread to write what is queued (at most
``close_timeout`` seconds: a file that never drains is logged and left).
Text from the network may hold lone surrogates (bytes that were not UTF-8,
kept by the SIP parser as surrogate escapes): they are written as backslash
escapes, never an error.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from typing import TextIO

from huntgroup.engine.b2bua.connections import ReportThrottle

log = logging.getLogger("huntgroup.records")

FILE_MODE = 0o640
MAX_QUEUED = 10_000
"""Lines waiting for a file's writer thread, at most (``records.max_queued_lines``)."""
CLOSE_TIMEOUT = 10.0
REPORT_INTERVAL = 60.0

REOPEN = object()  # a job: open the path again
STOP = object()  # a job: write what is before it, then end


def open_append(path: str) -> TextIO:
    """``path`` opened for appending, created with :data:`FILE_MODE` when missing."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    return os.fdopen(fd, "a", encoding="utf-8", errors="backslashreplace", newline="\n")


class LineFile:
    """Lines appended to ``path`` (see the module docstring)."""

    def __init__(
        self, path: str, *, max_queued: int = MAX_QUEUED, close_timeout: float = CLOSE_TIMEOUT
    ) -> None:
        self.path = path
        self.max_queued = max_queued
        self.close_timeout = close_timeout
        self._file = open_append(path)
        self._jobs: deque[tuple[object, int]] = deque()  # (text or REOPEN/STOP, lines)
        self._queued = 0  # lines in _jobs
        self._cond = threading.Condition()
        self._closed = False
        self.written = 0  # lines written
        self.dropped = 0  # lines dropped: max_queued were waiting
        self._drop_log = ReportThrottle(REPORT_INTERVAL)
        name = f"records-file-{os.path.basename(path)}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def write(self, text: str, lines: int = 1) -> None:
        """Queue ``text`` (whole lines, each ending with a newline) for the writer thread;
        dropped and counted when ``max_queued`` lines wait."""
        with self._cond:
            if self._closed:
                return
            if self._queued + lines > self.max_queued:
                self.dropped += lines
                held = self._drop_log.due(now=time.monotonic())
                if held is not None:
                    log.error(
                        "records file %s: %d line(s) waiting to be written (max_queued_lines): "
                        "lines dropped (%d in all)",
                        self.path,
                        self._queued,
                        self.dropped,
                    )
                return
            self._jobs.append((text, lines))
            self._queued += lines
            self._cond.notify()

    def reopen(self) -> None:
        """Open the path again (after a rotation moved the file), once the lines queued
        before are written: in the writer thread (a failure is logged, the old file kept)."""
        with self._cond:
            if not self._closed:
                self._jobs.append((REOPEN, 0))
                self._cond.notify()

    def close(self) -> None:
        """Write what is queued, sync and close the file, end the thread."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._jobs.append((STOP, 0))
            self._cond.notify()
        self._thread.join(self.close_timeout)
        if self._thread.is_alive():
            log.error(
                "records file %s: %d line(s) not written at exit (the file does not drain)",
                self.path,
                self._queued,
            )

    # ---------------------------------------------------------------- thread
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs:
                    self._cond.wait()
                jobs = list(self._jobs)
                self._jobs.clear()
            for job, lines in jobs:
                if job is STOP:
                    self._flush()
                    try:
                        _sync_close(self._file)
                    except OSError as err:
                        log.error("records file %s: closing: %s", self.path, err)
                    return
                if job is REOPEN:
                    self._flush()
                    self._reopen()
                    continue
                assert isinstance(job, str)
                try:
                    self._file.write(job)
                except (OSError, ValueError) as err:
                    log.error("records file %s: could not write: %s", self.path, err)
                else:
                    self.written += lines
                with self._cond:
                    self._queued -= lines
            self._flush()

    def _flush(self) -> None:
        try:
            self._file.flush()
        except (OSError, ValueError) as err:
            log.error("records file %s: could not write: %s", self.path, err)

    def _reopen(self) -> None:
        try:
            fresh = open_append(self.path)
        except OSError as err:
            log.error("records file %s: could not reopen, the old file kept: %s", self.path, err)
            return
        old, self._file = self._file, fresh
        try:
            _sync_close(old)
        except OSError as err:
            log.error("records file %s: closing the old file: %s", self.path, err)


def _sync_close(file: TextIO) -> None:
    if file.closed:
        return
    file.flush()
    os.fsync(file.fileno())
    file.close()
