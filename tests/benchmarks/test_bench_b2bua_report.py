"""The summary of bench_b2bua.py's repeats: ratio, CPU per call, first failure, spread."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_b2bua import Point, Result, first_failure, render_repeats


def _point(system: str, rate: int, failed: int, cpu: float) -> Point:
    calls = rate * 10
    return Point(
        system=system, rate=rate, calls=calls, successful=calls - failed, failed=failed,
        retransmissions=0, seconds=10.0, invite_ms=5.0, cpu_seconds=cpu,
        rss_idle_kib=None, rss_steady_kib=None, active_calls=None,
    )  # fmt: skip


def _result(system: str, best: int, cpu_at_best: float, fail: tuple[int, float]) -> Result:
    held = _point(system, best, 0, cpu_at_best)
    failed = _point(system, fail[0], 5, fail[1])
    higher = _point(system, fail[0] * 2, 50, 9.9)
    return Result(system, best, (held, held, held), (held, higher, failed))


def test_the_first_failure_is_the_failed_run_at_the_lowest_rate() -> None:
    result = _result("huntgroup", 300, 6.0, (400, 8.5))
    failure = first_failure(result)
    assert failure is not None and failure.rate == 400 and failure.cpu_percent == 85.0
    assert first_failure(Result("sippy", 50, (), ())) is None


def test_repeats_give_ratio_cpu_per_call_and_median_with_spread() -> None:
    repeats = [
        [_result("sippy", 100, 5.0, (150, 9.0)), _result("huntgroup", 300, 3.0, (400, 8.5))],
        [_result("sippy", 150, 7.5, (200, 9.5)), _result("huntgroup", 300, 3.0, (350, 7.0))],
    ]
    text = render_repeats(repeats)
    assert (
        "| 1 | 100 | 300 | 3.00x | 5.00 ms | 1.00 ms | 150/s at 90 % CPU (steady - + - waiting): "
        "5 not completed in time | 400/s at 85 % CPU (steady - + - waiting): 5 not completed "
        "in time |" in text
    )
    assert "| median (min-max) | 125 (100-150) | 300 (300-300) | 2.50 (2.00-3.00) |" in text
    assert "**NOT met**" in text  # median ratio 2.5x < 3x
