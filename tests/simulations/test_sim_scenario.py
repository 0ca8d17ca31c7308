"""Scenario files: validation with file:line problems, resolution of files and defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from huntgroup.errors import ConfigError
from huntgroup.simulations.model.scenario import (
    Exponential,
    Fixed,
    Lognormal,
    Poisson,
    Samples,
    load_scenario,
    read_numbers,
)
from tests.support.sim_helpers import groups_config, member_number, write_scenario

GROUPS = groups_config(3)


def _write(tmp_path: Path, text: str, groups: dict[str, object] | None = None) -> Path:
    (tmp_path / "groups.yaml").write_text(yaml.safe_dump(groups or GROUPS, sort_keys=False))
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    return [str(p) for p in info.value.problems]


GOOD = """\
config: groups.yaml
duration: 3600
seed: 7
replications: 2
traffic:
  - group: G
    arrivals: {poisson: {per_hour: 120}}
    talk_time: {exponential: {mean: 180}}
    patience: null
members:
  default: {answer_probability: 0.9, answer_delay: {fixed: 2}}
  0102000002:
    answer_probability: 0.8
    answer_delay: {lognormal: {mean: 6, sigma: 0.5}}
    joined: [[0, 1800]]
"""


def test_a_good_scenario_resolves_defaults_and_overrides(tmp_path: Path) -> None:
    sc = load_scenario(_write(tmp_path, GOOD))
    assert (sc.duration, sc.seed, sc.replications, sc.warmup) == (3600, 7, 2, 0)
    assert sc.config.groups[0].name == "G"
    (t,) = sc.traffic
    assert isinstance(t.arrivals, Poisson) and t.arrivals.poisson.per_hour == 120
    assert isinstance(t.talk_time, Exponential) and t.patience is None
    # an unquoted number key is kept as written, not read as an octal integer
    special = sc.behaviours[member_number(2)]
    assert special.answer_probability == 0.8
    assert isinstance(special.answer_delay, Lognormal)
    assert special.joined == ((0, 1800),)
    # others take the default, field by field
    plain = sc.behaviours[member_number(1)]
    assert plain.answer_probability == 0.9 and plain.answer_delay == Fixed(fixed=2)
    assert plain.joined is None


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    text = """\
config: groups.yaml
duration: -5
traffic:
  - group: G
    arrivals: {poisson: {per_hours: 120}}
    talk_time: {exponential: {mean: -180}}
    patience: {weird: 3}
  - group: G
    arrivals: {profile: {per_hour: [1, 2]}}
    talk_time: 5
members:
  default: {answer_probability: 1.5}
  "0102000001": {joined: [[10, 5]]}
"""
    problems = _problems(_write(tmp_path, text))
    f = str(tmp_path / "scenario.yaml")
    expected = [
        (2, "duration", "greater than 0"),
        (5, "traffic.0.arrivals.poisson.per_hours", "Extra inputs"),
        (5, "traffic.0.arrivals.poisson.per_hour", "Field required"),
        (6, "traffic.0.talk_time.exponential.mean", "greater than 0"),
        (7, "traffic.0.patience", "expected a distribution"),
        (9, "traffic.1.arrivals.profile.per_hour", "24 hourly rates"),
        (12, "members.default.answer_probability", "less than or equal to 1"),
        (13, "members.0102000001.joined", "must end after it starts"),
    ]
    for line, path, message in expected:
        assert any(
            p.startswith(f"{f}:{line}:") and f": {path}: " in p and message in p for p in problems
        ), (line, path, problems)
    assert len(problems) == len(expected)


def test_semantic_problems_point_at_the_scenario(tmp_path: Path) -> None:
    text = """\
config: groups.yaml
duration: 600
warmup: 600
traffic:
  - group: Nope
    arrivals: {poisson: {per_hour: 1}}
    talk_time: 10
  - group: G
    arrivals: {trace: missing.csv}
    talk_time: {empirical: talk.csv}
  - group: G
    arrivals: {poisson: {per_hour: 1}}
    talk_time: 10
members:
  "0999999999": {answer_probability: 1}
"""
    (tmp_path / "talk.csv").write_text("seconds\n10\nabc\n-4\n")
    problems = _problems(_write(tmp_path, text))
    f = str(tmp_path / "scenario.yaml")
    talk = str(tmp_path / "talk.csv")
    assert any(p.startswith(f"{f}:5:") and "no group 'Nope'" in p for p in problems)
    assert any(p.startswith(f"{f}:9:") and "no such file" in p for p in problems)
    assert any(p.startswith(f"{talk}:3:") and "'abc' is not a number" in p for p in problems)
    assert any(p.startswith(f"{talk}:4:") and ">= 0" in p for p in problems)
    assert any(p.startswith(f"{f}:11:") and "listed twice" in p for p in problems)
    assert any(p.startswith(f"{f}:15:") and "not a member of any group" in p for p in problems)
    assert any(p.startswith(f"{f}:3:") and "warmup" in p for p in problems)


def test_yaml_syntax_error_and_duplicate_key(tmp_path: Path) -> None:
    problems = _problems(_write(tmp_path, "config: groups.yaml\nduration: [1, 2\n"))
    assert problems and "invalid YAML" in problems[0]
    assert problems[0].startswith(str(tmp_path / "scenario.yaml") + ":")
    dup = "config: groups.yaml\nduration: 10\nduration: 20\ntraffic: []\n"
    problems = _problems(_write(tmp_path, dup))
    assert problems == [f"{tmp_path / 'scenario.yaml'}:3:1: duration: duplicate key 'duration'"]


def test_not_a_mapping_and_missing_keys(tmp_path: Path) -> None:
    assert "a scenario is a mapping" in _problems(_write(tmp_path, "- 1\n- 2\n"))[0]
    problems = _problems(_write(tmp_path, "seed: 1\n"))
    assert any(": config: Field required" in p for p in problems)
    assert any(": duration: Field required" in p for p in problems)
    assert any(": traffic: Field required" in p for p in problems)


def test_problems_of_the_groups_file_point_at_the_groups_file(tmp_path: Path) -> None:
    bad = groups_config(2)
    bad["groups"][0]["algorithm"] = "random"  # type: ignore[index]
    bad["groups"][0]["members"][1]["position"] = 1  # type: ignore[index]
    path = _write(tmp_path, GOOD.replace("0102000002", "0102000001"), groups=bad)
    problems = _problems(path)
    g = str(tmp_path / "groups.yaml")
    # the project's loader reports every problem of the groups file at once
    assert len(problems) == 2 and all(p.startswith(g + ":") for p in problems)
    assert "groups.0.algorithm" in problems[0]
    assert "duplicate position" in problems[1]
    bad["groups"][0]["algorithm"] = "linear"  # type: ignore[index]
    (tmp_path / "groups.yaml").write_text(yaml.safe_dump(bad, sort_keys=False))
    problems = _problems(path)
    assert len(problems) == 1 and "duplicate position" in problems[0]
    assert problems[0].startswith(g + ":")


def test_missing_groups_file(tmp_path: Path) -> None:
    problems = _problems(_write(tmp_path, GOOD.replace("groups.yaml", "nothere.yaml")))
    assert problems[0].startswith(f"{tmp_path / 'scenario.yaml'}:1:")
    assert "no such file" in problems[0]


def test_inline_config_and_its_problems_point_at_the_scenario(tmp_path: Path) -> None:
    path = write_scenario(
        tmp_path,
        groups_config(2),
        inline=True,
        duration=100,
        traffic=[{"group": "G", "arrivals": {"poisson": {"per_hour": 10}}, "talk_time": 30}],
    )
    sc = load_scenario(path)
    assert [m.key for m in sc.config.groups[0].members] == [member_number(1), member_number(2)]
    assert sc.traffic[0].talk_time == Fixed(fixed=30)
    bad = groups_config(2, max_length=-1)
    path = write_scenario(
        tmp_path,
        bad,
        inline=True,
        duration=100,
        traffic=[{"group": "G", "arrivals": {"poisson": {"per_hour": 10}}, "talk_time": 30}],
    )
    problems = _problems(path)
    assert len(problems) == 1
    assert problems[0].startswith(str(path) + ":")
    assert "config.groups.0.queue.max_length" in problems[0]


def test_csv_inputs_are_loaded(tmp_path: Path) -> None:
    (tmp_path / "arrivals.csv").write_text(
        "# recorded\ntime,caller\n5.5,0611\n1,0612\n\n900,0613\n"
    )
    (tmp_path / "talk.csv").write_text("30\n60\n90\n")
    text = GOOD.replace("{poisson: {per_hour: 120}}", "{trace: arrivals.csv}").replace(
        "{exponential: {mean: 180}}", "{empirical: talk.csv}"
    )
    sc = load_scenario(_write(tmp_path, text))
    t = sc.traffic[0]
    assert isinstance(t.arrivals, Samples) and t.arrivals.values == (5.5, 1.0, 900.0)
    assert isinstance(t.talk_time, Samples) and t.talk_time.values == (30.0, 60.0, 90.0)


def test_read_numbers_rejects_empty_and_unreadable_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("header only\n")
    with pytest.raises(ConfigError, match="no samples"):
        read_numbers(empty, what="samples")
    with pytest.raises(ConfigError, match="cannot read"):
        read_numbers(tmp_path / "absent.csv", what="samples")
    nan = tmp_path / "nan.csv"
    nan.write_text("1\nnan\n")
    with pytest.raises(ConfigError) as info:
        read_numbers(nan, what="samples")
    assert info.value.problems[0].line == 2
