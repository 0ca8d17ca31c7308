"""Issue 11: the simulator honours groups[].priority, through the same core."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from huntgroup.simulations.model.scenario import load_scenario
from huntgroup.simulations.virtual.driver import run_replication
from tests.support.sim_helpers import member_number, write_scenario


def shared_members(high: int) -> dict[str, object]:
    """Groups Urgent (priority ``high``) and Normal (0) sharing the same two members."""
    numbers = [member_number(i) for i in (1, 2)]
    members = [{"line": n, "position": i + 1} for i, n in enumerate(numbers)]
    queue = {"max_length": 1000, "max_wait": None}
    return {
        "lines": [{"number": n, "password": "pw"} for n in numbers],
        "groups": [
            {"name": "Normal", "pilot": "0140000000", "queue": queue, "members": members},
            {
                "name": "Urgent",
                "pilot": "0140000001",
                "priority": high,
                "queue": queue,
                "members": members,
            },
        ],
    }


def mean_waits(tmp_path: Path, high: int) -> dict[str | None, float]:
    traffic = [
        {
            "group": group,
            "arrivals": {"poisson": {"per_hour": 24}},
            "talk_time": {"exponential": {"mean": 120}},
        }
        for group in ("Normal", "Urgent")
    ]
    path = write_scenario(
        tmp_path / str(high),
        shared_members(high),
        duration=8 * 3600,
        seed=3,
        traffic=traffic,
        members={"default": {"answer_probability": 1.0, "answer_delay": {"fixed": 0}}},
    )
    result = run_replication(load_scenario(path), 0)
    waits: dict[str | None, list[float]] = {}
    for call in result.calls:
        if call.wait is not None:
            waits.setdefault(call.group, []).append(call.wait)
    return {group: statistics.fmean(w) for group, w in waits.items()}


@pytest.mark.parametrize("high", [5, 0])
def test_the_higher_priority_group_waits_less_for_shared_members(tmp_path: Path, high: int) -> None:
    waits = mean_waits(tmp_path, high)
    if high:
        # served first whenever a shared member frees up: a fraction of Normal's wait
        assert waits["Urgent"] < 0.5 * waits["Normal"], waits
    else:
        # equal priority: earliest arrival first across both groups, the same waits
        assert 0.6 < waits["Urgent"] / waits["Normal"] < 1.6, waits
