"""Replications in worker processes (``--jobs``): the same runs, summaries, reports
and comparison as one after the other, in the same order; errors and bad values of
``--jobs`` reported, not swallowed."""

from __future__ import annotations

import argparse
import gc
import json
import os
from pathlib import Path

import pytest

from huntgroup.simulations import cli
from huntgroup.simulations.model.scenario import Scenario
from huntgroup.simulations.virtual import parallel
from huntgroup.simulations.virtual.parallel import Outcome, Task, resolve_jobs, run_many
from huntgroup.simulations.virtual.replications import simulate, simulate_variants
from tests.support.sim_helpers import groups_config, mmc_scenario, write_scenario


def _scenario(tmp_path: Path, replications: int = 3) -> Scenario:
    return mmc_scenario(
        tmp_path,
        servers=3,
        per_hour=120.0,
        mean_talk=60.0,
        duration=1800.0,
        replications=replications,
        max_length=5,
        patience={"exponential": {"mean": 60}},
    )


def test_replications_in_workers_give_the_same_runs_and_summary(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path)
    seen: list[tuple[str, float]] = []
    alone, alone_runs = simulate(scenario)
    side, side_runs = simulate(scenario, jobs=2, progress=lambda *a: seen.append(a))
    assert side == alone
    assert [r.replication for r in side_runs] == [0, 1, 2]
    assert side_runs == alone_runs  # every call record, queue length and interval
    assert len({len(r.calls) for r in alone_runs}) > 1  # the replications differ
    assert [fraction for _, fraction in seen] == [1 / 3, 2 / 3, 1.0]


def test_variants_come_back_in_their_order(tmp_path: Path) -> None:
    one = _scenario(tmp_path / "one", replications=2)
    two = one.with_config(one.config.model_copy())  # same traffic, another object
    three = _scenario(tmp_path / "three", replications=1)
    variants = [(one, "one"), (three, "three"), (two, "two")]
    alone = simulate_variants(variants)
    side = simulate_variants(variants, jobs=3)
    assert [len(runs) for _, runs in side] == [2, 1, 2]
    assert side == alone


def test_a_single_replication_runs_here_whatever_jobs_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = _scenario(tmp_path, replications=1)

    def refuse(*_args: object, **_kwargs: object) -> list[Outcome]:
        raise AssertionError("no pool for one replication")

    monkeypatch.setattr("huntgroup.simulations.virtual.replications.run_many", refuse)
    summary, runs = simulate(scenario, jobs=4)
    assert len(runs) == 1 and summary["scenario"]["replications"] == 1


def fail_on_one(task: Task) -> Outcome:
    """A worker's work that fails for replication 1 (module level: sent by name)."""
    replication = task[1]
    if replication == 1:
        raise RuntimeError(f"replication {replication} failed")
    return parallel.replicate(task)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_workers_error_is_raised_here(tmp_path: Path, method: str) -> None:
    scenario = _scenario(tmp_path)
    tasks = [(scenario, r) for r in range(3)]
    with pytest.raises(RuntimeError, match="replication 1 failed"):
        run_many(tasks, 2, work=fail_on_one, start_method=method)


def test_fresh_interpreters_give_the_same_outcomes(tmp_path: Path) -> None:
    """The fallback where a system cannot fork: workers that import everything again."""
    scenario = _scenario(tmp_path, replications=2)
    tasks = [(scenario, r) for r in range(2)]
    assert run_many(tasks, 2, start_method="spawn") == [parallel.replicate(t) for t in tasks]


def test_the_collector_is_back_as_it_was(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, replications=2)
    tasks = [(scenario, r) for r in range(2)]
    run_many(tasks, 2)
    assert gc.isenabled()
    gc.disable()
    try:
        run_many(tasks, 2)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_jobs_zero_is_one_per_cpu_and_bad_values_are_refused() -> None:
    assert resolve_jobs(0) == parallel.cpu_count() >= 1
    assert parallel.cpu_count() <= (os.cpu_count() or 1)
    assert resolve_jobs(3) == 3
    for bad in (-1, parallel.MAX_JOBS + 1):
        with pytest.raises(ValueError, match="jobs"):
            resolve_jobs(bad)
    assert cli.MAX_JOBS == parallel.MAX_JOBS  # the command checks what the pool takes


def _args(scenario: Path, out: Path, **extra: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    argv = [str(scenario), "--out", str(out)]
    for name, value in extra.items():
        argv += [f"--{name}"] if value is True else [f"--{name}", str(value)]
    return parser.parse_args(argv)


def test_the_command_writes_the_same_outputs_with_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scenario(
        tmp_path,
        groups_config(3, max_length=5),
        duration=900,
        seed=7,
        replications=2,
        traffic=[
            {
                "group": "G",
                "arrivals": {"poisson": {"per_hour": 90}},
                "talk_time": {"exponential": {"mean": 60}},
            }
        ],
    )
    assert cli.main_simulate(_args(path, tmp_path / "one", compare=True)) == 0
    assert cli.main_simulate(_args(path, tmp_path / "two", jobs=2, compare=True)) == 0
    for name in ("summary.json", "calls.jsonl", "compare.json", "compare/linear/calls.jsonl"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    table = json.loads((tmp_path / "two" / "compare.json").read_text())
    assert len(table["algorithms"]) == 5
    assert "results in" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"jobs": -1}, "--jobs takes 0 (one per CPU) to 256, not -1"),
        ({"jobs": 2, "live": True, "target": "127.0.0.1:5060"}, "--jobs cannot be combined"),
    ],
)
def test_bad_jobs_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: dict[str, object], message: str
) -> None:
    assert cli.main_simulate(_args(tmp_path / "none.yaml", tmp_path / "out", **extra)) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
