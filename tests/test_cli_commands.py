"""The subcommands wired in huntgroup.cli: simulate, moh convert, serve's error path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from huntgroup.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_simulate_runs_the_example_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert (
        main(["simulate", str(ROOT / "examples/scenarios/support-day.yaml"), "--out", str(out)])
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert {"Support", "Sales"} <= set(summary["groups"])
    assert summary["groups"]["Support"]["offered"] > 0
    assert (out / "report.html").stat().st_size > 1000


def test_simulate_reports_scenario_errors_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("duration: -5\n")
    assert main(["simulate", str(bad), "--out", str(tmp_path / "o")]) == 1
    assert f"{bad}:1:" in capsys.readouterr().err


def test_moh_convert_writes_8khz_mono_16bit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.flac"
    t = np.arange(44100) / 44100
    soundfile.write(src, np.stack([np.sin(2 * np.pi * 440 * t)] * 2, axis=1) * 0.5, 44100)
    dst = tmp_path / "out.wav"
    assert main(["moh", "convert", str(src), str(dst)]) == 0
    info = soundfile.info(dst)
    assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16")
    assert "8 kHz, mono, 16-bit PCM" in capsys.readouterr().out


def test_moh_convert_of_a_non_audio_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "notes.txt"
    src.write_text("not audio")
    assert main(["moh", "convert", str(src), str(tmp_path / "o.wav")]) == 1
    assert "notes.txt" in capsys.readouterr().err


def test_serve_refuses_an_invalid_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("groups:\n  - name: G\n    pilot: '0140000000'\n    algorithm: random\n")
    assert main(["serve", "--config", str(cfg)]) == 1
    assert f"{cfg}:4:16: groups.0.algorithm:" in capsys.readouterr().err
