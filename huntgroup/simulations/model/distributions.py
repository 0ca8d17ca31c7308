"""Seeded random streams and the distributions of a scenario.

Theory of operation
-------------------
Every random number of a simulation is a pure function of the scenario seed,
the replication and *what it is for*, never of the order in which the driver
happens to ask. That is what gives ``--compare`` common random numbers: two
runs of the same scenario with different algorithms see the same arrivals,
the same talk and patience for each call, and the same answer decision and
delay whenever the same member is offered the same call.

Two kinds of source:

- ``stream(seed, replication, *keys)``: a numpy ``Generator`` for things drawn
  in bulk before the run (arrival times, the talk time and patience of the
  n-th call of a group, a member's own calls);
- ``uniform(seed, replication, *keys)``: one uniform number in (0, 1) from a
  counter-based hash (SplitMix64), for decisions taken during the run (does
  member m answer offer k of call c, and after how long). The hash absorbs
  the keys one after the other, so the keys several draws share (purpose,
  seed, replication, call) can be absorbed once (``prefix``) and the last two
  finished per draw (``uniform_after``): the same number, fewer steps. The
  driver absorbs the keys of every call of a group before the run, in bulk
  (``prefixes``, numpy's wrapping uint64 arithmetic: the same integers).

Distributions draw by inverse transform from a uniform, so both sources feed
the same code: ``Sampler.draw(u)`` for one value, ``draw_many(u)`` for arrays,
``drawer()`` for a function that draws one value without looking at the kind
of distribution again.

Invariants: draws are finite and >= 0; the same keys give the same numbers on
every platform (integer hashing, numpy's PCG64 with explicit seed sequences).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
from scipy.special import ndtri

from huntgroup.simulations.model.scenario import (
    Exponential,
    Fixed,
    Lognormal,
    Poisson,
    Profile,
    ResolvedDist,
    Samples,
)

FloatArray = npt.NDArray[np.float64]
UintArray = npt.NDArray[np.uint64]

_MASK = (1 << 64) - 1
_NORMAL = NormalDist()


def _mix(x: int) -> int:
    """SplitMix64's finaliser: a bijection of 64-bit integers with good avalanche."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


_START = 0x2545F4914F6CDD1D


def uniform(*keys: int) -> float:
    """A uniform number in the open interval (0, 1), a pure function of ``keys``."""
    h = _START
    for k in keys:
        h = _mix(h ^ (k & _MASK))
    return ((h >> 11) + 0.5) * (1.0 / 9007199254740992.0)


def prefix(*keys: int, state: int = _START) -> int:
    """The hash state after ``keys`` (from ``state``): ``uniform_after(prefix(*a), *b)`` is
    ``uniform(*a, *b)``, so a driver hashes the keys its draws share once, not per draw."""
    h = state
    for k in keys:
        h = _mix(h ^ (k & _MASK))
    return h


def _mix_many(x: UintArray) -> UintArray:
    """``_mix`` of every element (numpy's uint64 arithmetic wraps modulo 2**64, as the
    masks of ``_mix`` do): the same integers, bit for bit."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    mixed: UintArray = x ^ (x >> np.uint64(31))
    return mixed


def prefixes(
    head: int, last: npt.NDArray[np.int64], *, state: int = _START, signed: bool = False
) -> list[int]:
    """``prefix(head, k, state=state)`` for every ``k`` of ``last`` at once: the hash
    states of the draws of many calls (``head`` the group, ``last`` the calls' numbers),
    computed in bulk before a run rather than one by one during it. ``signed``: each
    as the signed integer of its 64 bits (:func:`~huntgroup.simulations.model.splitmix.signed`,
    what the compiled draws take)."""
    first = np.uint64(prefix(head, state=state))
    keys = np.asarray(last, dtype=np.int64).astype(np.uint64)  # two's complement: k & _MASK
    mixed = _mix_many(first ^ keys)
    states: list[int] = (mixed.view(np.int64) if signed else mixed).tolist()
    return states


def uniform_after(state: int, a: int, b: int) -> float:
    """``uniform`` of the keys of ``state`` (:func:`prefix`) followed by ``a`` and ``b``:
    the last two keys of a draw (which member, which attempt), SplitMix64 written out.

    The keys are not masked to 64 bits before they are mixed in (``uniform`` masks
    them): the sum is masked right after, and the low 64 bits of ``state ^ a`` (then
    of their sum with the constant) do not depend on the bits of ``a`` above them, so
    the result is the same for every integer; two operations fewer per draw (issue 14).
    """
    x = ((state ^ a) + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 31) ^ b) + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (((x ^ (x >> 31)) >> 11) + 0.5) * (1.0 / 9007199254740992.0)


def stream(*keys: int) -> np.random.Generator:
    """A numpy generator seeded by ``keys`` only (non-negative integers)."""
    return np.random.default_rng(np.random.SeedSequence([k & _MASK for k in keys]))


def name_key(name: str) -> int:
    """A stable integer for a name (group, member), for use as a stream key."""
    h = 0xCBF29CE484222325
    for byte in name.encode("utf-8"):
        h = ((h ^ byte) * 0x100000001B3) & _MASK
    return h


@dataclass(frozen=True, slots=True)
class Sampler:
    """Draws from one resolved distribution by inverse transform."""

    dist: ResolvedDist

    @property
    def mean(self) -> float:
        d = self.dist
        if isinstance(d, Fixed):
            return d.fixed
        if isinstance(d, Exponential):
            return d.exponential.mean
        if isinstance(d, Lognormal):
            return d.lognormal.mean
        return float(np.mean(d.values))

    def draw(self, u: float) -> float:
        d = self.dist
        if isinstance(d, Fixed):
            return d.fixed
        if isinstance(d, Exponential):
            return -d.exponential.mean * math.log1p(-u)
        if isinstance(d, Lognormal):
            p = d.lognormal
            mu = math.log(p.mean) - p.sigma * p.sigma / 2
            return math.exp(mu + p.sigma * _NORMAL.inv_cdf(u))
        values = d.values
        return values[min(int(u * len(values)), len(values) - 1)]

    def drawer(self) -> Callable[[float], float]:
        """``draw`` with the distribution looked at once: the same numbers, bit for bit,
        for a driver that draws from one distribution many times."""
        d = self.dist
        if isinstance(d, Fixed):
            fixed = d.fixed
            return lambda u: fixed
        if isinstance(d, Exponential):
            negated = -d.exponential.mean  # -mean * log1p(-u), as ``draw`` computes it
            log1p = math.log1p
            return lambda u: negated * log1p(-u)
        if isinstance(d, Lognormal):
            p = d.lognormal
            mu, sigma = math.log(p.mean) - p.sigma * p.sigma / 2, p.sigma
            exp, inv_cdf = math.exp, _NORMAL.inv_cdf
            return lambda u: exp(mu + sigma * inv_cdf(u))
        return self.draw

    def draw_many(self, u: FloatArray) -> FloatArray:
        d = self.dist
        if isinstance(d, Fixed):
            return np.full(u.shape, d.fixed)
        if isinstance(d, Exponential):
            return -d.exponential.mean * np.log1p(-u)
        if isinstance(d, Lognormal):
            p = d.lognormal
            mu = math.log(p.mean) - p.sigma * p.sigma / 2
            out: FloatArray = np.exp(mu + p.sigma * ndtri(u))
            return out
        values = np.asarray(d.values, dtype=np.float64)
        index = np.minimum((u * len(values)).astype(np.int64), len(values) - 1)
        picked: FloatArray = values[index]
        return picked


def poisson_times(
    per_hour: float, start: float, end: float, rng: np.random.Generator
) -> FloatArray:
    """Arrival times of a Poisson process of ``per_hour`` on [start, end)."""
    if per_hour <= 0 or end <= start:
        return np.empty(0)
    rate = per_hour / 3600.0
    expected = rate * (end - start)
    chunks: list[FloatArray] = []
    t = start
    while True:
        n = int(expected + 6 * math.sqrt(expected) + 16)
        gaps = rng.exponential(1.0 / rate, n)
        times = t + np.cumsum(gaps)
        chunks.append(times[times < end])
        if times[-1] >= end:
            break
        t = float(times[-1])
    return np.concatenate(chunks)


def profile_times(per_hour: tuple[float, ...], end: float, rng: np.random.Generator) -> FloatArray:
    """A Poisson process whose rate follows the hour of the day (repeating every 24 h).

    Thinning: candidates at the peak rate, each kept with probability
    rate(t) / peak.
    """
    peak = max(per_hour)
    if peak <= 0:
        return np.empty(0)
    candidates = poisson_times(peak, 0.0, end, rng)
    hours = (candidates // 3600.0).astype(np.int64) % 24
    keep = rng.random(candidates.shape) * peak < np.asarray(per_hour)[hours]
    kept: FloatArray = candidates[keep]
    return kept


def arrival_times(
    spec: Poisson | Profile | Samples, duration: float, rng: np.random.Generator
) -> FloatArray:
    """The arrival times of one group's callers on [0, duration), sorted."""
    if isinstance(spec, Poisson):
        return poisson_times(spec.poisson.per_hour, 0.0, duration, rng)
    if isinstance(spec, Profile):
        return profile_times(spec.profile.per_hour, duration, rng)
    times = np.sort(np.asarray(spec.values, dtype=np.float64))
    kept: FloatArray = times[times < duration]
    return kept
