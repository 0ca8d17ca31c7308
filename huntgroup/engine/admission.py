"""Admission of new calls: ``server.limits``, so that a flood is refused, not half-served.

Theory of operation
-------------------
A server past its capacity does not fail cleanly on its own: every call gets
slower until retransmissions and timeouts break calls already up. Operators
therefore set limits (FreeSWITCH's ``max-sessions`` and
``sessions-per-second`` are the same idea): beyond ``max_calls`` calls in
progress, or beyond ``max_call_rate`` new calls per second, a new call is
refused at once with ``503 Service Unavailable`` and a ``Retry-After``, and
the calls in progress keep all the capacity.

The rate is a token bucket holding one second of calls: it refills at
``max_call_rate`` tokens per second, each admitted call takes one. Sans-I/O:
the caller passes ``now``.

Invariants: a refused call takes no token; the bucket never holds more than
``max_call_rate`` tokens.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    retry_after: int  # seconds, for the Retry-After header


class CallAdmission:
    def __init__(self, max_calls: int | None, max_call_rate: float | None, *, now: float) -> None:
        self.max_calls = max_calls
        self.max_call_rate = max_call_rate
        self._tokens = float(max_call_rate or 0)
        self._at = now

    def admit(self, active_calls: int, *, now: float) -> Refusal | None:
        """None when a new call may start now (it takes a token); else why not."""
        if self.max_calls is not None and active_calls >= self.max_calls:
            return Refusal(f"{active_calls} calls in progress (server.limits.max_calls)", 5)
        rate = self.max_call_rate
        if rate is not None:
            self._tokens = min(rate, self._tokens + max(0.0, now - self._at) * rate)
            self._at = max(self._at, now)
            if self._tokens < 1.0:
                return Refusal(f"over {rate:g} new calls per second (server.limits)", 1)
            self._tokens -= 1.0
        return None
