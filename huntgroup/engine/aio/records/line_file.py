"""An append-only text file of lines, reopened on SIGHUP: what the JSON-lines and queue_log
sinks write to.

Theory of operation
-------------------
The file is opened for appending (``O_APPEND``: several writers never
overwrite each other, and a line is written whole), created with mode 0640
(records name callers: not world-readable, docs/security.md). Each record's
lines are written and flushed at once: they are in the kernel when the call
is over, so a crash of the process loses nothing. They are not fsynced one by
one (a disk write per call would cost more than the call): ``fsync`` runs on
:meth:`LineFile.reopen` and :meth:`LineFile.close`, so a crash of the whole
machine may lose the records of its last seconds (the kernel's writeback
interval, 5 s by default on Linux).

Log rotation: logrotate moves the file, then sends SIGHUP; :meth:`reopen`
closes the moved file (fsynced first) and opens the path again, a new file.
A file that cannot be opened at start stops the server (the operator asked
for it); one that cannot be reopened is reported and the old one kept.
"""

from __future__ import annotations

import os
from typing import TextIO

FILE_MODE = 0o640


def open_append(path: str) -> TextIO:
    """``path`` opened for appending, created with :data:`FILE_MODE` when missing."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    # text from the network may hold lone surrogates (bytes that were not UTF-8, kept by
    # the SIP parser as surrogate escapes): written as backslash escapes, never an error
    return os.fdopen(fd, "a", encoding="utf-8", errors="backslashreplace", newline="\n")


class LineFile:
    """Lines appended to ``path`` (see the module docstring)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file = open_append(path)
        self.written = 0  # lines

    def write(self, text: str, lines: int = 1) -> None:
        """Append ``text`` (whole lines, each ending with a newline) and flush it."""
        self._file.write(text)
        self._file.flush()
        self.written += lines

    def reopen(self) -> None:
        """Open the path again (after a rotation moved the file): the old one is synced
        and closed. On failure the old file stays open and the error is raised."""
        fresh = open_append(self.path)
        old, self._file = self._file, fresh
        _sync_close(old)

    def close(self) -> None:
        _sync_close(self._file)


def _sync_close(file: TextIO) -> None:
    if file.closed:
        return
    file.flush()
    os.fsync(file.fileno())
    file.close()
