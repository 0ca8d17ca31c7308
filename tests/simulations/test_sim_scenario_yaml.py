"""Scenarios are read by the configuration's safe YAML reader, with its limits.

An inline ``config`` goes through the configuration loader (reworded
messages, music and TLS checks), reported at its line in the scenario.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from huntgroup.config.loader import load_config
from huntgroup.config.safe_yaml import MAX_DEPTH, MAX_NODES
from huntgroup.errors import ConfigError
from huntgroup.simulations.model.scenario import load_scenario
from tests.support.sim_helpers import groups_config, write_scenario

TRAFFIC = [{"group": "G", "arrivals": {"poisson": {"per_hour": 10}}, "talk_time": 30}]


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    return [str(p) for p in info.value.problems]


def test_alias_fan_out_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for n in range(1, 9):
        prev, name = chr(ord("a") + n - 1), chr(ord("a") + n)
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]")
    path.write_text("\n".join(lines) + "\n")
    problems = _problems(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:")
    assert f"more than {MAX_NODES} nodes once aliases are expanded" in problems[0]


def test_deep_nesting_is_refused_without_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text("[" * 5000)
    problems = _problems(path)  # a ConfigError, not a RecursionError
    assert problems == [f"{path}:1:{MAX_DEPTH + 1}: nesting deeper than {MAX_DEPTH} levels"]


def test_object_tags_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text("config: !!python/object/apply:os.system [echo]\nduration: 1\ntraffic: []\n")
    problems = _problems(path)
    assert len(problems) == 1 and problems[0].startswith(f"{path}:1:9: config: ")
    assert "is not allowed" in problems[0]


def test_empty_scenario(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text("")
    assert _problems(path) == [
        f"{path}:1:1: empty scenario: a scenario is a mapping (config, duration, traffic...)"
    ]


def test_inline_config_is_checked_like_a_config_file(tmp_path: Path) -> None:
    config = groups_config(2)
    config["groups"][0]["queue"]["music"] = "sounds/hold.wav"
    (tmp_path / "groups.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "groups.yaml")
    (from_file,) = info.value.problems
    assert from_file.path == "groups.0.queue.music"
    assert "music file not found" in from_file.message

    path = write_scenario(tmp_path, config, inline=True, duration=100, traffic=TRAFFIC)
    text = path.read_text()
    before = text[: text.index("sounds/hold.wav")]
    line, column = before.count("\n") + 1, len(before) - before.rfind("\n")
    problems = _problems(path)
    expected = f"{path}:{line}:{column}: config.groups.0.queue.music: {from_file.message}"
    assert problems == [expected]


def test_inline_config_messages_are_the_loaders(tmp_path: Path) -> None:
    config = groups_config(2)
    config["groups"][0]["algorithm"] = "random"
    (tmp_path / "groups.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "groups.yaml")
    (from_file,) = info.value.problems
    path = write_scenario(tmp_path, config, inline=True, duration=100, traffic=TRAFFIC)
    (problem,) = _problems(path)
    assert problem.startswith(f"{path}:")
    assert problem.endswith(f": config.groups.0.algorithm: {from_file.message}")


def test_inline_music_is_relative_to_the_scenario(tmp_path: Path) -> None:
    config = groups_config(2)
    config["groups"][0]["queue"]["music"] = "hold.wav"
    write_scenario(tmp_path, config, duration=100, traffic=TRAFFIC)
    (tmp_path / "hold.wav").write_bytes(b"not a wav file")
    path = write_scenario(tmp_path, config, inline=True, duration=100, traffic=TRAFFIC)
    (problem,) = _problems(path)
    assert ": config.groups.0.queue.music: music file cannot be played" in problem
