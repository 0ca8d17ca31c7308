"""``config_changes`` and ``huntgroup diff``: what a reload would change, secrets hidden."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from huntgroup.cli import main
from huntgroup.config.diff import config_changes
from huntgroup.config.models import Config

BASE: dict[str, Any] = {
    "server": {"listen": ["udp:127.0.0.1:5060"]},
    "lines": [
        {"number": "0102030401", "name": "Alice", "password": "a-secret-1"},
        {"number": "0102030402", "name": "Bruno", "password": "b-secret-2"},
    ],
    "groups": [
        {
            "name": "Support",
            "pilot": "0140000001",
            "algorithm": "linear",
            "members": [
                {"line": "0102030401", "position": 1},
                {"line": "0102030402", "position": 2},
                {"uri": "sip:agent@192.0.2.7", "position": 3, "joined": False},
            ],
        },
        {"name": "Sales", "pilot": "0140000002"},
    ],
}


def cfg(**changes: object) -> Config:
    data = {**BASE, **changes}
    return Config.model_validate(data)


def test_the_same_configuration_changes_nothing_even_reordered() -> None:
    reordered = {**BASE, "lines": list(reversed(BASE["lines"]))}
    assert config_changes(cfg(), Config.model_validate(reordered)) == []


def test_groups_settings_and_members_are_described() -> None:
    support = dict(BASE["groups"][0])
    support.update(
        algorithm="ring_all",
        queue={"max_length": 3},
        members=[
            {"line": "0102030402", "position": 1},
            {"uri": "sip:agent@192.0.2.7", "position": 3, "joined": True},
            {"uri": "sip:new@192.0.2.8", "position": 4},
        ],
    )
    marketing = {"name": "Marketing", "pilot": "0140000003"}
    assert config_changes(cfg(), cfg(groups=[support, marketing])) == [
        "group Sales: removed (its waiting calls are released)",
        "group Support: algorithm linear -> ring_all",
        "group Support: queue.max_length 10 -> 3",
        "group Support: member 0102030401 removed",
        "group Support: member 0102030402 position 2 -> 1",
        "group Support: member sip:agent@192.0.2.7 joined false -> true",
        "group Support: member sip:new@192.0.2.8 added at position 4",
        "group Marketing: added (pilot 0140000003)",
    ]


def test_lines_and_server_changes_never_show_secrets() -> None:
    lines = [
        {"number": "0102030401", "name": "Alice M.", "password": "a-NEW-secret"},
        {"number": "0102030403", "name": "Chloé", "password": "c-secret-3"},
    ]
    server = {"listen": ["udp:127.0.0.1:5070"], "shutdown_grace": 5}
    changes = config_changes(cfg(), cfg(lines=lines, server=server, groups=[]))
    assert changes[:2] == [
        "server: listen [udp:127.0.0.1:5060] -> [udp:127.0.0.1:5070] (takes effect at the "
        "next restart)",
        "server: shutdown_grace 30.0 -> 5.0 (takes effect at the next restart)",
    ]
    assert "line 0102030402: removed" in changes
    assert "line 0102030401: name Alice -> Alice M." in changes
    assert "line 0102030401: password: secret changed" in changes
    assert "line 0102030403: added" in changes
    assert not [c for c in changes if "secret-" in c or "NEW" in c], changes


def test_huntgroup_diff_prints_the_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    text = 'groups:\n  - name: Support\n    pilot: "0140000001"\n    algorithm: linear\n'
    old.write_text(text)
    new.write_text(text.replace("linear", "circular"))
    assert main(["diff", str(old), str(old)]) == 0
    assert capsys.readouterr().out == "no change\n"
    assert main(["diff", str(old), str(new)]) == 0
    assert capsys.readouterr().out == "group Support: algorithm linear -> circular\n"
    new.write_text(text.replace("linear", "spiral"))
    assert main(["diff", str(old), str(new)]) == 1
    assert "groups.0.algorithm" in capsys.readouterr().err
