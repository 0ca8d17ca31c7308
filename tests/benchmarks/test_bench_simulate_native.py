"""bench_simulate's compiled-build plumbing: refusals and the sentence it writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_simulate as bs  # noqa: E402


def test_the_worker_refuses_an_interpreted_build() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_simulate.py"), "--worker", "day"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "not compiled in this build: huntgroup.queue.core" in done.stderr


def test_a_missing_build_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"no build in .*scripts/build_native\.sh --out"):
        bs.check_native(tmp_path / "none")


def test_builds_that_simulated_different_runs_are_refused() -> None:
    same = [bs.Point("huntgroup a", [1.0], 20_001), bs.Point(bs.COMPILED, [0.5], 20_001)]
    bs.same_calls([*same, bs.Point("baseline: plain SimPy model", [1.0], 19_983)])
    with pytest.raises(SystemExit, match="different runs"):
        bs.same_calls([same[0], bs.Point(bs.COMPILED, [0.5], 20_000)])


def test_the_compiled_sentence_reads_the_compiled_point() -> None:
    base = bs.Point("baseline: plain SimPy model", [1.0, 0.9], 19_983)
    compiled = bs.Point(bs.COMPILED, [0.4, 0.5], 20_001)
    line = bs.compiled_line([bs.Point("huntgroup x", [2.0, 2.0]), compiled, base], base)
    assert "0.45 s" in line and "2.11x" in line and ": met." in line
    assert bs.compiled_line([bs.Point("huntgroup x", [2.0, 2.0]), base], base) == ""
