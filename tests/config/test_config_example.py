"""The shipped example loads, uses every option of the format, and its music exists."""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from huntgroup.config import json_schema, load_config, summarize
from huntgroup.config.messages import annotation_at
from huntgroup.config.safe_yaml import parse_yaml
from huntgroup.config.schema import MODELS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "huntgroup.yaml"
MUSIC = ROOT / "examples" / "music" / "hold.wav"


def test_example_loads_and_summarizes() -> None:
    cfg = load_config(EXAMPLE)
    assert summarize(cfg) == (
        "ok: 3 groups, 5 lines, 8 members, listening on "
        "udp:127.0.0.1:5060 tcp:127.0.0.1:5060 udp:[::1]:5060 tls:127.0.0.1:5061"
    )
    assert {g.algorithm for g in cfg.groups} >= {"round_robin", "linear", "ring_all"}
    assert any(m.uri == "sip:agent@127.0.0.1:5080" for g in cfg.groups for m in g.members)
    assert any(not m.joined for g in cfg.groups for m in g.members)


def test_example_music_is_resolved_to_the_shipped_wav() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.group("Support").queue.music == str(MUSIC.resolve())


def test_example_music_is_small_16khz_stereo() -> None:
    assert MUSIC.stat().st_size < 300 * 1024
    with wave.open(str(MUSIC), "rb") as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (2, 16000, 2)
        assert 2.0 <= wav.getnframes() / wav.getframerate() <= 10.0


def _keys_used(data: Any, path: tuple[str | int, ...], used: dict[str, set[str]]) -> None:
    model = annotation_at(path)
    if isinstance(data, dict):
        assert isinstance(model, type) and issubclass(model, BaseModel)
        used.setdefault(model.__name__, set()).update(data)
        for key, value in data.items():
            _keys_used(value, (*path, key), used)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            _keys_used(item, (*path, i), used)


def with_database(text: str) -> str:
    """The example with its commented ``records.postgres`` block in use (it is off, so
    that ``make serve`` needs no database)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  postgres: null"))
    block = [start + 1]
    while block[-1] + 1 < len(lines) and lines[block[-1] + 1].startswith("  #   "):
        block.append(block[-1] + 1)
    uncommented = ["  " + lines[i].removeprefix("  # ") for i in block]
    assert uncommented[0].startswith("  postgres:") and len(uncommented) > 5
    return "\n".join([*lines[:start], *uncommented, *lines[block[-1] + 1 :]]) + "\n"


def test_example_has_no_database_and_its_commented_block_loads(tmp_path: Path) -> None:
    """The example runs without a database (``make serve``); the block shown is valid."""
    assert load_config(EXAMPLE).records.postgres is None
    copy = tmp_path / "huntgroup.yaml"
    copy.write_text(with_database(EXAMPLE.read_text(encoding="utf-8")), encoding="utf-8")
    for shipped in ("music", "tls", "announcements"):
        if (EXAMPLE.parent / shipped).exists():
            (tmp_path / shipped).symlink_to(EXAMPLE.parent / shipped)
    postgres = load_config(copy).records.postgres
    assert postgres is not None and postgres.dsn_env == "HUNTGROUP_RECORDS_DSN"
    assert postgres.spool == str(tmp_path / "records" / "spool.jsonl")  # next to the file


def test_example_uses_every_option() -> None:
    text = with_database(EXAMPLE.read_text(encoding="utf-8"))
    doc = parse_yaml(text, str(EXAMPLE))
    used: dict[str, set[str]] = {}
    _keys_used(doc.data, (), used)
    for model in MODELS:
        missing = set(model.model_fields) - used.get(model.__name__, set())
        assert not missing, f"{model.__name__}: the example does not show {sorted(missing)}"


def test_shipped_schema_file_is_up_to_date() -> None:
    shipped = json.loads((ROOT / "examples" / "huntgroup.schema.json").read_text("utf-8"))
    assert shipped == json_schema(), (
        "regenerate with: huntgroup schema > examples/huntgroup.schema.json"
    )


def test_reference_documents_every_key() -> None:
    reference = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for model in MODELS:
        for field in model.model_fields:
            # top-level keys are section titles, the others rows of a table
            expected = f"## `{field}`" if model is MODELS[0] else f"| `{field}` |"
            assert expected in reference, f"{model.__name__}.{field}"


def test_glossary_maps_every_algorithm() -> None:
    glossary = (ROOT / "docs" / "glossary.md").read_text(encoding="utf-8")
    for label, key in [
        ("Sonner toutes les lignes", "ring_all"),
        ("Linéaire", "linear"),
        ("Circulaire", "circular"),
        ("Uniforme (Round Robin)", "round_robin"),
        ("Uniforme (la moins active)", "least_active"),
    ]:
        assert f"| {label} |" in glossary and f"`algorithm: {key}`" in glossary


def test_the_lag_limit_is_described_with_the_windows_the_code_uses() -> None:
    """Review L1: the schema and the example said "a whole second" (four times the
    limit for a quarter of a second); admission uses 0.5 s, 0.25 s at 2x, 0.125 s at 4x."""
    from huntgroup.engine.b2bua.admission import LAG_WINDOW

    assert LAG_WINDOW == 0.5
    limits = json_schema()["$defs"]["LimitsConfig"]["properties"]
    text = limits["max_loop_lag"]["description"]
    assert "half a second" in text and "125 ms at four times" in text
    assert "whole second" not in text
    example = (ROOT / "examples" / "huntgroup.yaml").read_text("utf-8")
    line = next(x for x in example.splitlines() if "max_loop_lag:" in x)
    assert "half a second" in line
