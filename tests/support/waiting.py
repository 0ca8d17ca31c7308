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


def _failure(
    message: str | Callable[[], str], timeout: float, error: Callable[[str], BaseException]
) -> BaseException:
    text = message() if callable(message) else message
    return error(f"{text} (waited {timeout:g} s)")


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.01,
    message: str | Callable[[], str] = "the condition never held",
    error: Callable[[str], BaseException] = WaitTimeout,
) -> T:
    """``condition()``'s first truthy value, polled every ``interval`` s for ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _failure(message, timeout, error)
        time.sleep(interval)  # the polling period, not a synchronisation


async def async_wait_until(
    condition: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.001,
    message: str | Callable[[], str] = "the condition never held",
    error: Callable[[str], BaseException] = WaitTimeout,
) -> T:
    """:func:`wait_until` on the running loop: the loop's other tasks run between polls."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _failure(message, timeout, error)
        await asyncio.sleep(interval)  # the polling period, not a synchronisation
