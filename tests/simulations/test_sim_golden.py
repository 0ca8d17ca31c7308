"""Fixed seeds give the results the simulator gave before its fast paths (issue 14).

The goldens (``golden/*.json``) were written by the code before the driver's
optimisations, from the cases of :mod:`tests.simulations.golden_cases`: summary,
calls.jsonl, queue series, schedules and own calls must all come out the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.simulations.golden_cases import CASES, fingerprint, golden_path


@pytest.mark.parametrize("case", list(CASES))
def test_a_fixed_seed_gives_the_golden_results(case: str, tmp_path: Path) -> None:
    expected = json.loads(golden_path(case).read_text())
    found = fingerprint(CASES[case](tmp_path), tmp_path)
    assert found["runs"] == expected["runs"]
    assert found["summary"] == expected["summary"]
    assert found["calls_sha256"] == expected["calls_sha256"]
