"""One ``loop.call_at`` kept in step with a sans-I/O object's ``get_timer()``.

The asyncio drivers (the SIP server, the media layer) re-arm it after every
input: it only touches the event loop when the due time actually changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class LoopTimer:
    __slots__ = ("_at", "_callback", "_handle", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None
        self._at: float | None = None

    def arm(self, due: float | None) -> None:
        """Fire ``callback`` at loop time ``due`` (None: not at all)."""
        if due == self._at and (due is None or self._handle is not None):
            return
        self.cancel()
        self._at = due
        if due is not None:
            self._handle = self._loop.call_at(due, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._at = None

    def _fire(self) -> None:
        self._handle = None
        self._at = None
        self._callback()
