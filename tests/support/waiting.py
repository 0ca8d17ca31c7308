"""Waiting for something to happen, by polling on the condition, never by sleeping blind.

``wait_until(condition, timeout=...)`` calls ``condition()`` until it returns a
truthy value and returns that value; ``async_wait_until`` does the same on an
event loop, letting the loop run between two polls. The timeout only bounds a
failure (a healthy test returns as soon as the condition holds): it is
generous, for a loaded machine, and ends in ``error(message)``, an
:class:`AssertionError` (a test failure) unless the caller names another type.
``condition`` may raise to give up early (a process that exited).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The condition did not hold within the timeout."""


def _attempt(
    condition: Callable[[], T | None],
    deadline: float,
    timeout: float,
    message: str | Callable[[], str],
    error: Callable[[str], BaseException],
) -> tuple[T] | None:
    """``(value,)`` once ``condition()`` is truthy; None to poll again; raises after
    ``deadline`` (a ``time.monotonic()``)."""
    value = condition()
    if value:
        return (value,)
    if time.monotonic() >= deadline:
        text = message() if callable(message) else message
        raise error(f"{text} (waited {timeout:g} s)")
    return None


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.01,
    message: str | Callable[[], str] = "the condition never held",
    error: Callable[[str], BaseException] = WaitTimeout,
) -> T:
    """``condition()``'s first truthy value, polled every ``interval`` s for ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while (found := _attempt(condition, deadline, timeout, message, error)) is None:
        time.sleep(interval)  # the polling period, not a synchronisation
    return found[0]


async def async_wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.001,
    message: str | Callable[[], str] = "the condition never held",
    error: Callable[[str], BaseException] = WaitTimeout,
) -> T:
    """:func:`wait_until` on the running loop: the loop's other tasks run between polls."""
    deadline = time.monotonic() + timeout
    while (found := _attempt(condition, deadline, timeout, message, error)) is None:
        await asyncio.sleep(interval)  # the polling period, not a synchronisation
    return found[0]
