"""The simulate benchmark's points: the month's centre and the SimPy baseline it is set
against (benchmarks/bench_simulate.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from huntgroup.simulations.model.scenario import Profile

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_simulate as bench  # type: ignore[import-not-found]


def test_the_month_is_ten_groups_of_a_hundred_busy_in_office_hours(tmp_path: Path) -> None:
    month = bench.build_month(tmp_path)
    assert month.duration == 30 * 86_400
    assert [len(g.members) for g in month.config.groups] == [100] * 10
    assert len({m.key for g in month.config.groups for m in g.members}) == 1_000
    rates = set()
    for traffic in month.traffic:
        assert isinstance(traffic.arrivals, Profile)
        rates.add(traffic.arrivals.profile.per_hour)
    assert rates == {tuple(750.0 if 9 <= h < 17 else 0.0 for h in range(24))}


def test_the_simpy_baseline_follows_the_hourly_rates() -> None:
    night = bench.simpy_model(1, 2, 9 * 3600.0, bench.MONTH_PROFILE)[1]
    assert night == 0  # no office hour in 0:00-9:00
    calls = bench.simpy_model(1, 2, 10 * 3600.0, bench.MONTH_PROFILE)[1]
    assert 2 * 750 * 0.85 < calls < 2 * 750 * 1.15  # one office hour, two groups


def test_the_day_baseline_is_the_model_it_was() -> None:
    assert bench.simpy_day(1)[1] == 19_983  # the same draws as before the month was added


def test_a_table_sets_each_model_against_the_baseline() -> None:
    points = [bench.Point("a", [2.0, 4.0, 3.0], 300), bench.Point("base", [1.0, 1.5, 1.2], 290)]
    rows = bench.table(points, points[1], 3)
    assert rows[2] == "| a | 300 | 3.00 | 2.00-4.00 | 100 | 0.40x |"
    assert bench.round_ratios(points[0], points[1]) == "0.38, 0.40, 0.50"
    assert bench.verdict(2.0) == "met" and bench.verdict(1.99) == "not met"
