"""Exact formulas of classical queues, to check the simulator against.

Rates are per second; ``a = lam / mu`` is the offered load in Erlangs.
"""

from __future__ import annotations

import math


def erlang_b(c: int, a: float) -> float:
    """Blocking probability of M/M/c/c (Erlang B), by the stable recursion."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(c: int, a: float) -> float:
    """Probability that a caller waits in M/M/c with an unbounded queue (Erlang C)."""
    b = erlang_b(c, a)
    return c * b / (c - a * (1 - b))


def erlang_c_mean_wait(c: int, lam: float, mu: float) -> float:
    return erlang_c(c, lam / mu) / (c * mu - lam)


def erlang_c_service_level(c: int, lam: float, mu: float, t: float) -> float:
    """P(wait <= t) in M/M/c."""
    return 1 - erlang_c(c, lam / mu) * math.exp(-(c * mu - lam) * t)


def birth_death(c: int, lam: float, mu: float, theta: float, capacity: int) -> list[float]:
    """Stationary distribution of the number of calls in M/M/c/K+M.

    Births at ``lam`` below ``capacity``; deaths at min(n, c) * mu (service)
    plus max(n - c, 0) * theta (abandonment); theta = 0 gives M/M/c/K.
    """
    weights = [1.0]
    for n in range(1, capacity + 1):
        death = min(n, c) * mu + max(n - c, 0) * theta
        weights.append(weights[-1] * lam / death)
    total = sum(weights)
    return [w / total for w in weights]


def mmck_blocking(c: int, k: int, lam: float, mu: float) -> float:
    """Blocking probability of M/M/c/K (K = servers + waiting places)."""
    return birth_death(c, lam, mu, 0.0, k)[-1]


def erlang_a(c: int, lam: float, mu: float, theta: float, truncate: int = 400) -> dict[str, float]:
    """Erlang A (M/M/c+M): abandonment probability and mean queue length.

    Computed from the birth-death chain truncated at ``truncate`` calls, far
    beyond any state of noticeable probability.
    """
    pi = birth_death(c, lam, mu, theta, truncate)
    queue = sum((n - c) * p for n, p in enumerate(pi) if n > c)
    return {"abandon": theta * queue / lam, "mean_queue": queue}
