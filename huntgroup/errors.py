"""The exception tree of huntgroup.

One root, ``HuntgroupError``. Configuration problems are ``ConfigError`` and
carry every problem found (file, line, column, field path, message), so that
``huntgroup check`` can print them all at once. Protocol errors carry the SIP
status to answer. Busy, no-answer and timeouts are *outcomes*, never
exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass


class HuntgroupError(Exception):
    """Root of every error raised on purpose by huntgroup."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in a configuration or scenario file."""

    file: str
    line: int  # 1-based; 0 when unknown
    column: int  # 1-based; 0 when unknown
    path: str  # dotted field path, e.g. "groups.0.queue.max_length"
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(HuntgroupError):
    """A configuration file is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ProtocolError(HuntgroupError):
    """A protocol violation. ``status`` is the SIP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class LocalProtocolError(ProtocolError):
    """We were asked to send something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """A peer sent something malformed or not allowed."""


class MediaError(HuntgroupError):
    """Audio that cannot be read, decoded or encoded."""


class StateError(HuntgroupError):
    """The shared state store is unreachable or inconsistent."""
