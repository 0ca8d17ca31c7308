"""``huntgroup serve --log-format json``: one JSON object per log line.

Theory of operation
-------------------
:class:`JsonFormatter` is a :class:`logging.Formatter`: the server logs exactly as it
does for the text format, and only the rendering changes. Each record becomes one
object on one line::

    {"time": "2026-12-07T06:38:51.123Z", "level": "INFO", "logger": "huntgroup.calls",
     "message": "call k12: ringing 0102030401 (Support)", "call_id": "k12",
     "group": "Support", "event": "ringing", "member": "0102030401", ...}

``time`` is RFC 3339 in UTC with milliseconds; ``level``, ``logger`` and ``message``
(the text line's message, arguments merged) are always there. Whatever the log
call passed with ``extra=`` follows, in its order: the lines about a call carry
``call_id``, ``group`` (null for a call to a line), ``event`` and, when about a
member, ``member`` (:mod:`huntgroup.engine.b2bua.call_log` builds them). A
traceback (``exc_info``) goes into the one field ``exception``, a stack
(``stack_info``) into ``stack``: never a line of its own. With the JSON format,
Python's own warnings and the traceback of an uncaught exception are logged too
(:func:`capture_python_output`), and so is the error that stops the server at start.

The object is written by :func:`json.dumps` with ``ensure_ascii``: quotes,
backslashes, newlines, control characters, U+2028/U+2029 (which some readers
take as line ends) and stray surrogates from a hostile SIP message all come out
as escapes, so a line is always one line of ASCII and always parses. A value that
JSON has no type for is written as its ``str()`` (so is a float NaN: no bare
``NaN`` in the output).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from types import TracebackType
from typing import Any

LOG_FORMATS = ("text", "json")
"""The values of ``huntgroup serve --log-format``."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""The text format's line (the default), as it always was."""

# The attributes every LogRecord has, so that what is left is the caller's ``extra``.
_STANDARD = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


def rfc3339(created: float) -> str:
    """``created`` (epoch seconds) as RFC 3339 UTC with milliseconds:
    ``2026-12-07T06:38:51.123Z``."""
    millis = int(created * 1000)
    seconds, ms = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (see the module's docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        try:
            return json.dumps(entry, ensure_ascii=True, allow_nan=False, default=str)
        except (TypeError, ValueError):  # NaN, a key that is no string...: all as text
            text = {str(key): _plain(value) for key, value in entry.items()}
            return json.dumps(text, ensure_ascii=True)


def _message(record: logging.LogRecord) -> str:
    """The record's message, arguments merged; a log call whose arguments do not fit
    its format (a bug) still gives one line, with both, instead of a traceback."""
    try:
        return record.getMessage()
    except Exception as err:  # what logging would print as "--- Logging error ---"
        return f"{record.msg!r} % {record.args!r} (bad log call: {err})"


def _plain(value: object) -> object:
    """``value`` as it is when JSON has it, else its ``str()``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def capture_python_output() -> None:
    """Send what Python itself writes on stderr (warnings, the traceback of an uncaught
    exception) through logging, so that in the JSON format it is an object like every
    other line."""
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught


def _log_uncaught(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    logging.getLogger("huntgroup").critical("uncaught exception", exc_info=(kind, error, trace))


def log_formatter(log_format: str) -> logging.Formatter:
    """The formatter of ``--log-format`` ``log_format`` (one of :data:`LOG_FORMATS`)."""
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError(f"unknown log format {log_format!r}: one of {', '.join(LOG_FORMATS)}")
