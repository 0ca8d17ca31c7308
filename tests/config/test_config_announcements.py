"""queue.announcements in the configuration file: files resolved and checked like music, a
prompt directory made a mapping, intervals bounded, hostile values refused with FILE:LINE:COL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from huntgroup.config.announcement_files import MAX_DIRECTORY_ENTRIES
from huntgroup.config.loader import load_config_text
from huntgroup.config.models import AnnouncementsConfig, Config
from huntgroup.engine.aio.file_checks import FILE_CHECKS
from huntgroup.errors import ConfigError

BASE = """\
lines:
  - number: "0102030401"
    password: a
groups:
  - name: Support
    pilot: "0140000001"
    members:
      - line: "0102030401"
        position: 1
    queue:
      announcements:
"""


def tone(path: Path, hz: float = 440.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(4000) / 8000
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * hz * t), 8000)


def prompts(directory: Path, *, without: tuple[str, ...] = ()) -> None:
    for name in ["you-are-caller", "in-queue", *map(str, range(10))]:
        if name not in without:
            tone(directory / f"{name}.wav")


def load(text: str, base: Path) -> Config:
    return load_config_text(BASE + text, "cfg.yaml", base, checks=FILE_CHECKS)


def problems(text: str, base: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(text, base)
    return [str(p) for p in info.value.problems]


FULL = """\
        greeting: sounds/greeting.wav
        periodic:
          file: sounds/busy.wav
          every: 30
        position:
          prompts: sounds/prompts
          every: 60
"""


def test_every_file_is_resolved_and_the_prompt_directory_becomes_a_mapping(
    tmp_path: Path,
) -> None:
    tone(tmp_path / "sounds" / "greeting.wav")
    tone(tmp_path / "sounds" / "busy.wav")
    prompts(tmp_path / "sounds" / "prompts")
    (tmp_path / "sounds" / "prompts" / "readme.txt").write_text("not a prompt")
    tone(tmp_path / "sounds" / "prompts" / "12.flac")
    settings = load(FULL, tmp_path).groups[0].queue.announcements
    sounds = tmp_path.resolve() / "sounds"
    assert settings.greeting == str(sounds / "greeting.wav")
    assert settings.periodic is not None and settings.periodic.file == str(sounds / "busy.wav")
    assert settings.periodic.every == 30
    assert settings.position is not None and settings.position.every == 60
    files = settings.position.files()
    assert set(files) == {"you-are-caller", "in-queue", "12", *map(str, range(10))}
    assert files["12"] == str(sounds / "prompts" / "12.flac")
    assert len(settings.files()) == 2 + len(files)


def test_default_is_no_announcement() -> None:
    settings = AnnouncementsConfig()
    assert (settings.greeting, settings.periodic, settings.position) == (None, None, None)
    assert settings.files() == ()


def test_missing_greeting_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.wav"
    assert problems("        greeting: nope.wav\n", tmp_path) == [
        f"cfg.yaml:12:19: groups.0.queue.announcements.greeting: announcement file not found: "
        f"'{missing}'"
    ]


def test_odd_audio_is_refused_at_check_time(tmp_path: Path) -> None:
    (tmp_path / "busy.wav").write_bytes(b"RIFF not really")
    found = problems("        periodic: {file: busy.wav, every: 10}\n", tmp_path)
    assert len(found) == 1
    assert (
        "groups.0.queue.announcements.periodic.file: announcement file cannot be played:"
        in (found[0])
    )


@pytest.mark.parametrize("every", ["0", "-5", "0.5", "3601", "1e308", ".nan", ".inf", "often"])
def test_bad_interval(tmp_path: Path, every: str) -> None:
    tone(tmp_path / "busy.wav")
    found = problems(f"        periodic: {{file: busy.wav, every: {every}}}\n", tmp_path)
    assert len(found) == 1 and "groups.0.queue.announcements.periodic.every" in found[0]


def test_periodic_needs_both_keys(tmp_path: Path) -> None:
    found = problems("        periodic: {every: 10}\n", tmp_path)
    assert len(found) == 1 and "periodic" in found[0] and "file" in found[0]


def test_prompt_directory_missing_required_prompts(tmp_path: Path) -> None:
    prompts(tmp_path / "p", without=("7", "you-are-caller"))
    found = problems("        position: {prompts: p, every: 10}\n", tmp_path)
    assert len(found) == 1
    assert "groups.0.queue.announcements.position.prompts" in found[0]
    assert "no file for you-are-caller, 7" in found[0]


def test_prompt_directory_with_two_files_for_one_prompt(tmp_path: Path) -> None:
    prompts(tmp_path / "p")
    tone(tmp_path / "p" / "3.flac")
    found = problems("        position: {prompts: p, every: 10}\n", tmp_path)
    assert len(found) == 1 and "two files for prompt '3'" in found[0]


def test_prompt_directory_not_found(tmp_path: Path) -> None:
    found = problems("        position: {prompts: nowhere, every: 10}\n", tmp_path)
    assert len(found) == 1 and "prompt directory not found" in found[0]


def test_prompt_directory_with_an_unplayable_prompt(tmp_path: Path) -> None:
    prompts(tmp_path / "p")
    (tmp_path / "p" / "4.wav").write_bytes(b"\x00" * 100)
    found = problems("        position: {prompts: p, every: 10}\n", tmp_path)
    assert len(found) == 1 and "announcement file cannot be played" in found[0]


def test_a_huge_prompt_directory_is_refused(tmp_path: Path) -> None:
    prompts(tmp_path / "p")
    for i in range(MAX_DIRECTORY_ENTRIES):
        (tmp_path / "p" / f"junk{i}").write_bytes(b"")
    found = problems("        position: {prompts: p, every: 10}\n", tmp_path)
    assert len(found) == 1 and f"more than {MAX_DIRECTORY_ENTRIES} entries" in found[0]


def test_prompt_mapping_is_resolved_and_checked(tmp_path: Path) -> None:
    prompts(tmp_path / "p")
    names = ["you-are-caller", *map(str, range(10))]
    mapping = ", ".join(f'"{n}": p/{n}.wav' for n in names)
    settings = load(f"        position: {{every: 10, prompts: {{{mapping}}}}}\n", tmp_path)
    position = settings.groups[0].queue.announcements.position
    assert position is not None
    assert position.files()["5"] == str(tmp_path.resolve() / "p" / "5.wav")


def test_prompt_mapping_with_unknown_or_missing_names(tmp_path: Path) -> None:
    prompts(tmp_path / "p")
    found = problems(
        '        position: {every: 10, prompts: {"you-are-caller": p/0.wav, "hello": p/1.wav}}\n',
        tmp_path,
    )
    assert any("unknown prompt name(s) 'hello'" in p for p in found), found


def test_prompt_mapping_with_a_missing_file(tmp_path: Path) -> None:
    prompts(tmp_path / "p")
    names = ["you-are-caller", *map(str, range(10))]
    mapping = ", ".join(f'"{n}": p/{n}.wav' for n in names).replace("p/3.wav", "p/33.wav")
    found = problems(f"        position: {{every: 10, prompts: {{{mapping}}}}}\n", tmp_path)
    assert len(found) == 1
    assert (
        "groups.0.queue.announcements.position.prompts.3: announcement file not found" in (found[0])
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('""', "empty file path"),
        ("a" * 5000, "invalid announcement path 'aaaa"),
        ("[1, 2]", "greeting"),
        ("~no-such-user-here/x.wav", "invalid announcement path"),
    ],
)
def test_hostile_greeting_values(tmp_path: Path, value: str, expected: str) -> None:
    found = problems(f"        greeting: {value}\n", tmp_path)
    assert len(found) == 1 and expected in found[0], found


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    found = problems("        greting: x.wav\n", tmp_path)
    assert len(found) == 1 and "greting" in found[0]
