"""bench_b2bua_native's refusals and figures."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_b2bua_native as bn


@dataclass
class _Run:
    cpu_per_call_ms: float | None
    steady_cpu_percent: float | None = 80.0
    held: bool = True


def test_a_missing_build_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"no build in .*--set all"):
        bn.check_build(tmp_path / "none")


def test_the_ratio_and_the_cell_read_the_medians() -> None:
    interp: list[Any] = [_Run(2.6), _Run(2.4), _Run(3.0)]
    native: list[Any] = [_Run(1.3), _Run(1.2, held=False), _Run(None)]
    assert bn.ratio(interp, native) == "2.08x"  # 2.6 / 1.25
    assert bn.cell(native) == "1.25 ms (1.20-1.30), steady CPU 80 %, held 2/3"
    assert bn.ratio(interp, [_Run(None)]) == "-"
    assert bn.cell([_Run(None)]) == "no figure"
