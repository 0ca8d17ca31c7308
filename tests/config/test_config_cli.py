"""huntgroup check / schema through main() and through python -m huntgroup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from huntgroup.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "huntgroup.yaml"


def test_check_valid_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(EXAMPLE)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("ok: 3 groups, 5 lines, 8 members, listening on udp:")
    assert captured.out.count("\n") == 1
    assert captured.err == ""


def test_check_invalid_file_lists_every_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "server:\n  colour: red\ngroups:\n  - name: A\n    pilot: '0140000001'\n"
        "    algorithm: random\n    queue: {max_length: -1}\n"
    )
    assert main(["check", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"{path}:2:3: server.colour: unknown key 'colour'; allowed keys: listen, domain, "
        "upstream, trusted_peers, media, state, state_auth, state_tls, timers, shutdown_grace, "
        "digest_algorithms, "
        "tls, connections, limits, auth, calls, subscriptions, admin",
        f"{path}:6:16: groups.0.algorithm: unknown algorithm 'random'; valid algorithms: "
        "ring_all, linear, circular, round_robin, least_active",
        f"{path}:7:25: groups.0.queue.max_length: must be at least 0, got -1",
    ]


def test_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "absent.yaml"
    assert main(["check", str(path)]) == 1
    assert capsys.readouterr().err == f"{path}: cannot read the file: no such file\n"


def test_check_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"{tmp_path}: cannot read the file: it is a directory\n"


def test_check_unreadable_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests run as root in CI, where chmod 0 does not stop reads: simulate the refusal.
    path = tmp_path / "secret.yaml"
    path.write_text("lines: []\n")

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)
    assert main(["check", str(path)]) == 1
    assert capsys.readouterr().err == f"{path}: cannot read the file: permission denied\n"


def test_schema_command_prints_indented_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    out = capsys.readouterr().out
    schema = json.loads(out)
    assert "GroupConfig" in schema["$defs"]
    assert out.startswith('{\n  "$schema"')


def test_usage_errors_return_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "check" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main(["check"]) == 2
    assert "FILE" in capsys.readouterr().err


def test_help_and_version_return_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "schema" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("huntgroup 0.")


def test_commands_table_names_are_unique() -> None:
    names = [c.name for c in COMMANDS]
    assert names == sorted(set(names), key=names.index)
    assert {"check", "schema"} <= set(names)


def _run_module(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "huntgroup", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )


def test_python_m_huntgroup_check_valid() -> None:
    result = _run_module("check", "examples/huntgroup.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: 3 groups")
    assert result.stderr == ""


def test_python_m_huntgroup_check_invalid_has_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"\xff\xfe garbage \x00")
    result = _run_module("check", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"{path}:1:1: not valid UTF-8 (byte 0xff); save the file as UTF-8\n"


def test_check_warns_about_lines_with_a_single_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A line with only ha1_md5 (or only ha1_sha256) is valid, but check says why a
    password or both hashes is better (issue 9 review, finding 4)."""
    path = tmp_path / "single.yaml"
    path.write_text(
        "lines:\n"
        '  - {number: "0102030403", password: "chloe-Pass-3"}\n'
        '  - {number: "0102030404", ha1_md5: "b2cabf214b749b215df4d58eb9b322fa"}\n'
        '  - {number: "0102030405", ha1_sha256: "'
        + "4377774278082827391a9b26cdc294d39ecd73e2760ab52a77f11198f1e35c43"
        + '"}\n'
        '  - number: "0102030406"\n'
        '    ha1_md5: "a85aaceefd7c1eb069ca18f73a7237f2"\n'
        '    ha1_sha256: "4377774278082827391a9b26cdc294d39ecd73e2760ab52a77f11198f1e35c43"\n',
        encoding="utf-8",
    )
    assert main(["check", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("ok: ")
    lines = captured.err.splitlines()
    assert len(lines) == 2, captured.err
    assert lines[0].startswith(f"{path}: lines.1 (0102030404): warning: only ha1_md5 is set")
    assert lines[1].startswith(f"{path}: lines.2 (0102030405): warning: only ha1_sha256 is set")
    assert all("give it a password" in line for line in lines)
