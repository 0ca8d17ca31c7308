"""run_simulation, --compare and the CLI: files, keys and shapes of the outputs."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pytest

from huntgroup.config.models import ALGORITHMS
from huntgroup.simulations.cli import add_parser, main_simulate
from huntgroup.simulations.runner import ProgressBar, run_simulation
from tests.support.sim_helpers import groups_config, member_number, write_scenario

GROUP_KEYS = {
    "offered",
    "answered",
    "abandoned",
    "timed_out",
    "rejected_full",
    "forwarded",
    "no_answer",
    "wait",
    "service_level",
    "mean_queue_length",
    "members",
    "fairness",
}
CALL_KEYS = {"call", "group", "arrival", "offers", "answered_by", "wait", "talk", "outcome"}
OUTCOMES = {"answered", "abandoned", "timed_out", "rejected_full", "forwarded", "no_answer"}


def _scenario(tmp_path: Path, **fields: Any) -> Path:
    fields.setdefault("duration", 3600)
    fields.setdefault("seed", 3)
    return write_scenario(
        tmp_path,
        groups_config(4, algorithm="round_robin", max_length=3, max_wait=60),
        traffic=[
            {
                "group": "G",
                "arrivals": {"poisson": {"per_hour": 90}},
                "talk_time": {"lognormal": {"mean": 150, "sigma": 0.5}},
                "patience": {"exponential": {"mean": 40}},
            }
        ],
        members={
            "default": {"answer_probability": 0.85, "answer_delay": {"exponential": {"mean": 4}}},
            member_number(2): {"joined": [[0, 1800]]},
        },
        **fields,
    )


def _calls(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_outputs_have_the_documented_shape(tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = run_simulation(_scenario(tmp_path), out)
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    g = on_disk["groups"]["G"]
    assert set(g) >= GROUP_KEYS
    assert set(g["wait"]) == {"mean", "p50", "p90", "p95", "max"}
    assert set(g["service_level"]) == {"10", "20", "30"}
    assert set(g["members"]) == {member_number(i) for i in range(1, 5)}
    for m in g["members"].values():
        assert set(m) == {"offers", "answers", "talk_time", "occupancy"}
        assert m["occupancy"] is None or 0 <= m["occupancy"] <= 1
    assert 0 < g["fairness"] <= 1
    assert sum(g[k] for k in OUTCOMES) + g["unfinished"] == g["offered"] > 0
    assert not any(k.endswith("_ci95") for k in g)  # one replication: no interval

    calls = _calls(out / "calls.jsonl")
    assert len(calls) == g["offered"]
    for c in calls:
        assert set(c) >= CALL_KEYS and c["outcome"] in OUTCOMES
        for o in c["offers"]:
            assert set(o) == {"member", "at", "outcome"}
        if c["outcome"] == "answered":
            assert c["answered_by"] and c["wait"] >= 0 and c["talk"] > 0
        else:
            assert c["answered_by"] is None and c["wait"] is None
    assert sum(c["outcome"] == "answered" for c in calls) == g["answered"]

    for png in ("wait_times.png", "queue_length.png", "members.png"):
        assert (out / png).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 3
    assert "http://" not in page and "https://" not in page
    assert "Group G" in page


def test_replications_put_a_ci95_beside_each_number(tmp_path: Path) -> None:
    summary = run_simulation(_scenario(tmp_path, replications=4), tmp_path / "out")
    g = summary["groups"]["G"]
    for key in ("offered", "answered", "abandoned", "mean_queue_length", "fairness"):
        assert isinstance(g[key], float) and g[f"{key}_ci95"] > 0
    assert g["wait"]["mean_ci95"] > 0 and g["service_level"]["20_ci95"] > 0
    member = g["members"][member_number(1)]
    assert member["answers_ci95"] > 0
    replications = {c["replication"] for c in _calls(tmp_path / "out" / "calls.jsonl")}
    assert replications == {0, 1, 2, 3}


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    path = _scenario(tmp_path, replications=2)
    run_simulation(path, tmp_path / "a")
    run_simulation(path, tmp_path / "b")
    for name in ("summary.json", "calls.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    other = _scenario(tmp_path / "other", replications=2, seed=4)
    run_simulation(other, tmp_path / "c")
    assert (tmp_path / "a" / "calls.jsonl").read_bytes() != (
        tmp_path / "c" / "calls.jsonl"
    ).read_bytes()


def test_compare_runs_every_algorithm_on_common_random_numbers(tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = run_simulation(_scenario(tmp_path), out, compare=True)
    table = json.loads((out / "compare.json").read_text())
    assert list(table["algorithms"]) == list(ALGORITHMS) == list(summary["compare"]["algorithms"])
    assert (out / "compare.png").read_bytes().startswith(b"\x89PNG")
    md = (out / "compare.md").read_text()
    assert "| | ring_all | linear | circular | round_robin | least_active |" in md
    assert "Algorithms compared" in (out / "report.html").read_text()
    per_alg = {a: _calls(out / "compare" / a / "calls.jsonl") for a in ALGORITHMS}
    arrivals = {a: [c["arrival"] for c in calls] for a, calls in per_alg.items()}
    assert all(v == arrivals["ring_all"] for v in arrivals.values())  # same callers
    # the talk time of a call does not depend on who answered it
    talks = {a: {c["call"]: c["talk"] for c in calls if c["talk"]} for a, calls in per_alg.items()}
    common = set.intersection(*(set(t) for t in talks.values()))
    assert len(common) > 20
    for call in common:
        assert len({talks[a][call] for a in ALGORITHMS}) == 1
    # ...but the algorithms do route differently
    first_offers = {
        a: tuple(c["offers"][0]["member"] for c in calls if c["offers"])
        for a, calls in per_alg.items()
    }
    assert len(set(first_offers.values())) > 1
    # the configured algorithm's run is the main one
    assert (out / "summary.json").exists()
    main = json.loads((out / "summary.json").read_text())
    assert (
        main["groups"]
        == json.loads((out / "compare" / "round_robin" / "summary.json").read_text())["groups"]
    )


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["simulate", *argv])


def test_cli_success_and_bad_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _scenario(tmp_path)
    args = _args(str(path), "--out", str(tmp_path / "out"))
    assert args.handler is main_simulate
    assert main_simulate(args) == 0
    assert "G: offered" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("config: groups.yaml\nduration: nope\ntraffic: []\n")
    assert main_simulate(_args(str(bad), "--out", str(tmp_path / "o2"))) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2:11: duration:" in err
    assert not (tmp_path / "o2").exists()


def test_cli_reports_an_unwritable_output_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main_simulate(_args(str(_scenario(tmp_path)), "--out", str(blocker / "sub"))) == 1
    assert "cannot write outputs" in capsys.readouterr().err


def test_progress_bar_draws_on_its_stream(tmp_path: Path) -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, width=10)
    bar("simulate", 0.5)
    bar("simulate", 0.5)  # unchanged: not redrawn
    bar("simulate", 1.0)
    bar.close()
    text = stream.getvalue()
    assert text.count("\r") == 2 and "[#####.....]" in text and "[##########] 100%" in text
    assert text.endswith("\n")


def test_cli_progress_flag_draws_a_bar_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _scenario(tmp_path, replications=2)
    assert main_simulate(_args(str(path), "--out", str(tmp_path / "o"), "--progress")) == 0
    err = capsys.readouterr().err
    assert "simulate" in err and "100%" in err
    assert main_simulate(_args(str(path), "--out", str(tmp_path / "o"))) == 0
    assert capsys.readouterr().err == ""  # not a terminal, no --progress: quiet
