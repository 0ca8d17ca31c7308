"""Scenario files written by tests, and statistics over replications."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import yaml

from huntgroup.simulations.model.scenario import Scenario, load_scenario
from huntgroup.simulations.virtual.driver import RunResult
from huntgroup.simulations.virtual.metrics import summarize_run
from huntgroup.simulations.virtual.replications import simulate


def member_number(i: int) -> str:
    return f"0102{i:06d}"


def groups_config(
    members: int,
    *,
    algorithm: str = "circular",
    max_length: int = 10,
    max_wait: float | None = 120,
    name: str = "G",
    **group: Any,
) -> dict[str, Any]:
    numbers = [member_number(i) for i in range(1, members + 1)]
    return {
        "lines": [{"number": n, "password": "pw"} for n in numbers],
        "groups": [
            {
                "name": name,
                "pilot": "0140000000",
                "algorithm": algorithm,
                "queue": {"max_length": max_length, "max_wait": max_wait},
                "members": [{"line": n, "position": i + 1} for i, n in enumerate(numbers)],
                **group,
            }
        ],
    }


def write_scenario(
    directory: Path,
    config: dict[str, Any],
    *,
    name: str = "scenario.yaml",
    inline: bool = False,
    **fields: Any,
) -> Path:
    """Write the groups file (or inline it) and a scenario; return the scenario path."""
    directory.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {}
    if inline:
        doc["config"] = config
    else:
        (directory / "groups.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        doc["config"] = "groups.yaml"
    doc.update(fields)
    path = directory / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def mmc_scenario(
    directory: Path,
    *,
    servers: int,
    per_hour: float,
    mean_talk: float,
    duration: float,
    replications: int,
    max_length: int = 1_000_000,
    patience: dict[str, Any] | None = None,
    seed: int = 1,
) -> Scenario:
    """Members who always answer at once and exponential talk: an M/M/c queue."""
    path = write_scenario(
        directory,
        groups_config(servers, max_length=max_length, max_wait=None),
        duration=duration,
        warmup=duration / 10,
        seed=seed,
        replications=replications,
        traffic=[
            {
                "group": "G",
                "arrivals": {"poisson": {"per_hour": per_hour}},
                "talk_time": {"exponential": {"mean": mean_talk}},
                "patience": patience,
            }
        ],
        members={"default": {"answer_probability": 1.0, "answer_delay": {"fixed": 0}}},
    )
    return load_scenario(path)


def per_replication(scenario: Scenario) -> tuple[list[dict[str, Any]], list[RunResult]]:
    """The group 'G' summary of each replication, and the runs."""
    _, runs = simulate(scenario)
    return [summarize_run(r, scenario)["groups"]["G"] for r in runs], runs


def mean_and_se(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))


def assert_matches(values: list[float], expected: float, *, max_rel_se: float) -> None:
    """The replication mean is within 4 standard errors of ``expected``.

    The standard error comes from independent replications. ``max_rel_se``
    makes sure the check has power: a run too short to tell would fail.
    """
    mean, se = mean_and_se(values)
    assert se <= max_rel_se * expected, f"too noisy: se {se:.4g} for expected {expected:.4g}"
    assert abs(mean - expected) <= 4 * se, (
        f"simulated {mean:.5g} ± {se:.2g} (1 SE) vs theory {expected:.5g}"
    )
