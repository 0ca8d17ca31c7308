"""Seeded streams and distributions: determinism, ranges and moments."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from huntgroup.simulations.model.distributions import (
    Sampler,
    arrival_times,
    name_key,
    poisson_times,
    prefix,
    prefixes,
    stream,
    uniform,
    uniform_after,
)
from huntgroup.simulations.model.scenario import (
    Exponential,
    Fixed,
    Lognormal,
    Poisson,
    Samples,
    _LognormalParams,
    _Mean,
    _PerHour,
)


def test_uniform_is_a_pure_function_in_the_open_interval() -> None:
    draws = [uniform(1, 2, k) for k in range(20_000)]
    assert draws == [uniform(1, 2, k) for k in range(20_000)]
    assert all(0.0 < u < 1.0 for u in draws)
    assert statistics_ok(draws, 0.5, 1 / 12)
    assert uniform(1, 2, 3) != uniform(1, 3, 2) != uniform(2, 1, 3)


@given(
    st.lists(st.integers(-(2**70), 2**70), max_size=6),
    st.integers(-(2**70), 2**70),
    st.integers(-(2**70), 2**70),
)
def test_a_prefix_finished_later_is_the_same_uniform(head: list[int], a: int, b: int) -> None:
    assert uniform_after(prefix(*head), a, b) == uniform(*head, a, b)
    if head:
        inner = prefix(head[0])
        assert uniform_after(prefix(*head[1:], state=inner), a, b) == uniform(*head, a, b)


@given(
    st.integers(-(2**63), 2**64 - 1),
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=50),
    st.integers(0, 2**64 - 1),
)
@settings(deadline=None)  # no wall-clock limit (numpy's first call is slow on a busy machine)
def test_prefixes_in_bulk_are_the_prefixes_one_by_one(
    head: int, last: list[int], state: int
) -> None:
    found = prefixes(head, np.asarray(last, dtype=np.int64), state=state)
    assert found == [prefix(head, k, state=state) for k in last]
    assert all(type(h) is int for h in found)  # Python integers, as uniform_after takes


@pytest.mark.parametrize(
    "dist",
    [
        Fixed(fixed=3.5),
        Exponential(exponential=_Mean(mean=7.25)),
        Lognormal(lognormal=_LognormalParams(mean=180, sigma=0.6)),
        Samples("talk.csv", (3.0, 1.0, 4.0, 1.5)),
    ],
)
def test_a_drawer_draws_what_draw_draws_bit_for_bit(dist: object) -> None:
    sampler = Sampler(dist)  # type: ignore[arg-type]
    draw = sampler.drawer()
    for k in range(2_000):
        u = uniform(9, k)
        assert draw(u) == sampler.draw(u)


def statistics_ok(values: list[float], mean: float, variance: float) -> bool:
    n = len(values)
    m = sum(values) / n
    return abs(m - mean) < 4 * math.sqrt(variance / n)


def test_streams_depend_on_their_keys_only() -> None:
    a = stream(1, 2, 3).random(5)
    assert np.array_equal(a, stream(1, 2, 3).random(5))
    assert not np.array_equal(a, stream(1, 2, 4).random(5))
    assert name_key("Support") == name_key("Support") != name_key("Sales")


@pytest.mark.parametrize(
    ("dist", "mean"),
    [
        (Fixed(fixed=7.0), 7.0),
        (Exponential(exponential=_Mean(mean=180)), 180.0),
        (Lognormal(lognormal=_LognormalParams(mean=180, sigma=0.6)), 180.0),
        (Samples("x.csv", (10.0, 20.0, 60.0)), 30.0),
    ],
)
def test_samplers_have_the_right_mean_in_bulk_and_one_by_one(dist: object, mean: float) -> None:
    sampler = Sampler(dist)  # type: ignore[arg-type]
    assert sampler.mean == pytest.approx(mean)
    u = stream(9).random(40_000)
    bulk = sampler.draw_many(u)
    single = np.array([sampler.draw(float(x)) for x in u[:2000]])
    assert np.allclose(bulk[:2000], single)
    assert np.all(bulk >= 0)
    se = float(bulk.std()) / math.sqrt(len(bulk))
    assert abs(float(bulk.mean()) - mean) <= max(4 * se, 1e-9)


def test_empirical_only_draws_its_samples() -> None:
    sampler = Sampler(Samples("x.csv", (1.0, 2.0, 3.0)))
    draws = sampler.draw_many(stream(4).random(3000))
    assert set(draws.tolist()) == {1.0, 2.0, 3.0}
    assert sampler.draw(1 - 1e-17) == 3.0


def test_poisson_arrivals_count_and_range() -> None:
    counts = [len(poisson_times(360, 0, 3600, stream(5, r))) for r in range(200)]
    mean = sum(counts) / len(counts)
    assert abs(mean - 360) < 4 * math.sqrt(360 / len(counts))
    times = poisson_times(360, 100, 200, stream(6))
    assert np.all((times >= 100) & (times < 200)) and np.all(np.diff(times) > 0)
    assert len(poisson_times(0, 0, 100, stream(7))) == 0
    spec = Poisson(poisson=_PerHour(per_hour=3600))
    assert np.array_equal(arrival_times(spec, 50, stream(8)), arrival_times(spec, 50, stream(8)))
