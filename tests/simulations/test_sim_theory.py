"""The simulator against exact queueing formulas.

Members who answer at once (probability 1, delay 0) and exponential talk times
turn a group into an M/M/c queue; the queue settings choose the model:
``max_length: 0`` is Erlang B, a huge ``max_length`` with ``max_wait: null``
is Erlang C, a finite one is M/M/c/K, and exponential patience gives Erlang A.

Each test runs independent replications (calls arriving during the first
tenth are a warm-up and not counted), takes the standard error of the
replication means, and asserts the theory is within 4 standard errors, after
checking that the standard error is small enough for the check to mean
something. Results are deterministic for the fixed seeds.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.support.queueing_theory import (
    erlang_a,
    erlang_b,
    erlang_c,
    erlang_c_mean_wait,
    erlang_c_service_level,
    mmck_blocking,
)
from tests.support.sim_helpers import assert_matches, mmc_scenario, per_replication


def test_formulas_against_published_values() -> None:
    # Erlang B table: B(5, 3 E) = 0.1101; B(10, 5 E) = 0.01838.
    assert erlang_b(5, 3.0) == pytest.approx(0.11005, abs=5e-5)
    assert erlang_b(10, 5.0) == pytest.approx(0.018385, abs=5e-6)
    # Erlang C: C(2, 1 E) = 1/3 exactly; C(5, 4 E) = 0.5541.
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(5, 4.0) == pytest.approx(0.55411, abs=5e-5)
    # M/M/1/K with rho = 1: every state equally likely.
    assert mmck_blocking(1, 4, 1.0, 1.0) == pytest.approx(1 / 5)
    # Erlang A with theta -> 0 tends to Erlang C's queue; with theta = mu it is M/M/inf.
    lam, mu = 4.0, 1.0
    assert erlang_a(5, lam, mu, mu)["abandon"] == pytest.approx(
        sum(max(n - 5, 0) * p for n, p in enumerate(_poisson(lam, 200))) / lam, rel=1e-9
    )


def _poisson(mean: float, n: int) -> list[float]:
    probs = [math.exp(-mean)]
    for k in range(1, n):
        probs.append(probs[-1] * mean / k)
    return probs


def test_erlang_b_blocking(tmp_path: Path) -> None:
    # 5 members, 3 Erlangs (60 calls/h of 180 s), no queue.
    sc = mmc_scenario(
        tmp_path,
        servers=5,
        per_hour=60,
        mean_talk=180,
        duration=480_000,
        replications=10,
        max_length=0,
    )
    reps, _ = per_replication(sc)
    assert all(r["abandoned"] == 0 and r["timed_out"] == 0 for r in reps)
    assert_matches([r["block_rate"] for r in reps], erlang_b(5, 3.0), max_rel_se=0.05)


def test_erlang_c_wait(tmp_path: Path) -> None:
    # 5 members, 4 Erlangs (80 calls/h of 180 s): rho = 0.8, unbounded queue.
    lam, mu = 80 / 3600, 1 / 180
    sc = mmc_scenario(
        tmp_path, servers=5, per_hour=80, mean_talk=180, duration=360_000, replications=10
    )
    reps, _ = per_replication(sc)
    assert all(r["offered"] == r["answered"] for r in reps)  # nobody is lost
    assert_matches([r["wait_probability"] for r in reps], erlang_c(5, 4.0), max_rel_se=0.03)
    assert_matches(
        [r["wait"]["mean"] for r in reps], erlang_c_mean_wait(5, lam, mu), max_rel_se=0.08
    )
    assert_matches(
        [r["service_level"]["20"] for r in reps],
        erlang_c_service_level(5, lam, mu, 20),
        max_rel_se=0.03,
    )
    # Little's law on the queue: Lq = lambda * Wq.
    assert_matches(
        [r["mean_queue_length"] for r in reps],
        lam * erlang_c_mean_wait(5, lam, mu),
        max_rel_se=0.08,
    )


def test_mmck_blocking(tmp_path: Path) -> None:
    # 3 members and 3 waiting places, 3 Erlangs offered.
    lam, mu = 60 / 3600, 1 / 180
    sc = mmc_scenario(
        tmp_path,
        servers=3,
        per_hour=60,
        mean_talk=180,
        duration=480_000,
        replications=10,
        max_length=3,
    )
    reps, _ = per_replication(sc)
    assert_matches([r["block_rate"] for r in reps], mmck_blocking(3, 6, lam, mu), max_rel_se=0.05)


def test_erlang_a_abandonment(tmp_path: Path) -> None:
    # 5 members, 5 Erlangs (100 calls/h of 180 s), patience exponential of mean 120 s.
    lam, mu, theta = 100 / 3600, 1 / 180, 1 / 120
    sc = mmc_scenario(
        tmp_path,
        servers=5,
        per_hour=100,
        mean_talk=180,
        duration=300_000,
        replications=10,
        patience={"exponential": {"mean": 120}},
    )
    reps, _ = per_replication(sc)
    expected = erlang_a(5, lam, mu, theta)
    assert_matches([r["abandon_rate"] for r in reps], expected["abandon"], max_rel_se=0.05)
    assert_matches([r["mean_queue_length"] for r in reps], expected["mean_queue"], max_rel_se=0.05)
