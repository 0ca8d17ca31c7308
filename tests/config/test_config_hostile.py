"""Hostile or broken input gives a ConfigError (exit 1 in the CLI), never another exception."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from huntgroup.cli import main
from huntgroup.config.loader import load_config, load_config_text
from huntgroup.config.models import Config
from huntgroup.config.safe_yaml import MAX_BYTES, MAX_DEPTH, MAX_NODES
from huntgroup.errors import ConfigError

HERE = Path("/nonexistent")


def messages(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "evil.yaml", HERE)
    return [str(p) for p in info.value.problems]


def test_python_object_tags_are_refused_and_never_constructed(tmp_path: Path) -> None:
    witness = tmp_path / "pwned"
    text = (
        "server:\n"
        f"  domain: !!python/object/apply:os.system ['touch {witness}']\n"
        "lines: !!python/object/new:builtins.list []\n"
        "groups: !!python/name:os.system\n"
    )
    assert messages(text) == [
        "evil.yaml:2:11: server.domain: tag !!python/object/apply:os.system is not allowed",
        "evil.yaml:3:8: lines: tag !!python/object/new:builtins.list is not allowed",
        "evil.yaml:4:9: groups: tag !!python/name:os.system is not allowed",
    ]
    assert not witness.exists()


def test_custom_and_non_standard_tags_are_refused() -> None:
    text = "server:\n  domain: !custom x\n  media: !!omap [a: 1]\nlines: !!set {a, b}\n"
    assert messages(text) == [
        "evil.yaml:2:11: server.domain: tag !custom is not allowed",
        "evil.yaml:3:10: server.media: tag !!omap is not allowed",
        "evil.yaml:4:8: lines: tag !!set is not allowed",
    ]


def test_tag_on_a_key_is_refused() -> None:
    assert messages("!!python/str server: {}\n") == [
        "evil.yaml:1:1: tag !!python/str is not allowed here"
    ]


def test_binary_tag_is_refused() -> None:
    assert messages("server:\n  domain: !!binary aGVsbG8=\n") == [
        "evil.yaml:2:11: server.domain: tag !!binary is not allowed"
    ]


def test_standard_explicit_tags_are_fine() -> None:
    cfg = load_config_text(
        'server:\n  domain: !!str example.net\n  shutdown_grace: !!int "12"\n', "x", HERE
    )
    assert (cfg.server.domain, cfg.server.shutdown_grace) == ("example.net", 12)


def test_alias_bomb_is_refused() -> None:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    out = messages("\n".join(lines) + "\n")
    assert len(out) == 1
    assert out[0].startswith("evil.yaml:")
    assert f"more than {MAX_NODES} nodes once aliases are expanded" in out[0]


def test_recursive_alias_is_refused() -> None:
    assert messages("lines: &a [*a]\n") == [
        "evil.yaml:1:12: alias *a names no complete anchor above it"
    ]


def test_aliases_within_the_limit_work() -> None:
    text = (
        "lines:\n"
        '  - &alice {number: "0102030401", password: a}\n'
        "groups:\n"
        '  - {name: A, pilot: "0140000001", members: &m [{line: "0102030401", position: 1}]}\n'
        '  - {name: B, pilot: "0140000002", members: *m}\n'
    )
    cfg = load_config_text(text, "x", HERE)
    assert [g.members[0].line for g in cfg.groups] == ["0102030401", "0102030401"]


def test_more_than_one_mebibyte_is_refused(tmp_path: Path) -> None:
    text = "server:\n  domain: " + "x" * MAX_BYTES + "\n"
    assert messages(text) == [
        "evil.yaml:1:1: the file is larger than 1024 KiB; refusing to read it"
    ]
    big = tmp_path / "big.yaml"
    big.write_text(text)
    with pytest.raises(ConfigError, match="larger than 1024 KiB"):
        load_config(big)


def test_multibyte_text_just_over_the_limit_is_refused() -> None:
    text = "# " + "é" * (MAX_BYTES // 2)  # fewer characters than the limit, more bytes
    assert messages(text) == [
        "evil.yaml:1:1: the file is larger than 1024 KiB; refusing to read it"
    ]


def test_binary_garbage(tmp_path: Path) -> None:
    garbage = bytes((i * 37 + 11) % 256 for i in range(4096))
    path = tmp_path / "garbage.yaml"
    path.write_bytes(garbage)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert len(info.value.problems) == 1
    assert "not valid UTF-8" in info.value.problems[0].message


def test_control_characters_in_text() -> None:
    assert messages("server:\n  domain: a\x00b\n") == [
        "evil.yaml:2:12: unexpected control or binary character U+0000: is this a text file?"
    ]


def test_invalid_utf8_points_at_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("lines:\n  - name: Chlo\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [str(p) for p in info.value.problems] == [
        f"{path}:2:15: not valid UTF-8 (byte 0xe9); save the file as UTF-8"
    ]


def test_list_at_top_level() -> None:
    assert messages("- server\n") == [
        "evil.yaml:1:1: the top level must be a mapping (server, lines, groups), not a list"
    ]


def test_scalar_at_top_level() -> None:
    assert messages("hello\n") == [
        "evil.yaml:1:1: the top level must be a mapping (server, lines, groups), not text"
    ]


@pytest.mark.parametrize(
    "text",
    [
        "[" * 400_000 + "]" * 400_000,
        "{a: " * 10_000 + "1" + "}" * 10_000,
        "".join(" " * i + "a:\n" for i in range(300)),
        "".join(" " * (2 * i) + "- \n" for i in range(300)),
    ],
    ids=["flow-lists", "flow-maps", "block-maps", "block-lists"],
)
def test_deep_nesting_is_refused(text: str) -> None:
    out = messages(text)
    assert len(out) == 1
    assert f"nesting deeper than {MAX_DEPTH} levels" in out[0]


def test_complex_keys_are_refused() -> None:
    assert messages("? [a, b]\n: c\n") == [
        "evil.yaml:1:3: a key must be plain text, not a list or mapping"
    ]


def test_huge_integer_is_an_error_not_a_crash() -> None:
    out = messages("server:\n  shutdown_grace: " + "9" * 5000 + "\n")
    assert len(out) == 1
    assert out[0].startswith("evil.yaml:2:19: server.shutdown_grace: '9999")
    assert out[0].endswith("is not a valid int")
    assert len(out[0]) < 200


def test_cli_exit_status_on_hostile_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("groups: !!python/object/apply:os.system ['true']\n")
    assert main(["check", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        captured.err == f"{path}:1:9: groups: tag !!python/object/apply:os.system is not allowed\n"
    )


YAML_PIECES = [
    "server:",
    "lines:",
    "groups:",
    "members:",
    "queue:",
    "no_answer:",
    "media:",
    "\n",
    "  ",
    "    ",
    "- ",
    ": ",
    "name: x",
    'pilot: "0140000001"',
    "number: '0102030401'",
    "password: p",
    "position: 1",
    "line: 0102030401",
    "uri: sip:a@b",
    "algorithm: linear",
    "max_length: -1",
    "music: x.wav",
    "after: 5",
    "&a ",
    "*a",
    "[",
    "]",
    "{",
    "}",
    ",",
    "? ",
    "---",
    "...",
    "#",
    "%YAML 1.1\n",
    "\t",
    "!!python/object:os.system",
    "!x ",
    "!!str ",
    "!!int ",
    "|",
    ">",
    '"',
    "'",
    "\\",
    "<<: *a",
    "~",
    "null",
    "yes",
    "1e400",
    "0x1F",
    "1:30",
    "\x00",
    "\ufeff",
    "é",
    "\ud800",
]


def _only_config_or_config_error(text: str) -> None:
    try:
        result = load_config_text(text, "fuzz.yaml", HERE)
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.file == "fuzz.yaml"
            assert problem.line >= 1 and problem.column >= 1
            assert problem.message
    else:
        assert isinstance(result, Config)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_fuzz_random_text(text: str) -> None:
    _only_config_or_config_error(text)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(YAML_PIECES), max_size=60).map("".join))
def test_fuzz_yaml_like_text(text: str) -> None:
    _only_config_or_config_error(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_fuzz_random_bytes_from_a_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_bytes(data)
        try:
            result = load_config(path)
        except ConfigError as exc:
            assert exc.problems
        else:
            assert isinstance(result, Config)


MUSIC_CONFIG = 'groups:\n  - name: a\n    pilot: "0140000001"\n    queue:\n      music: {}\n'


@pytest.mark.parametrize(
    ("music", "message"),
    [
        ('""', "empty music path; use null for the default music"),
        ("a" * 5000, "invalid music path 'aaaa"),
        ("~no-such-user-here/x.wav", "invalid music path '~no-such-user-here/x.wav'"),
    ],
)
def test_unusable_music_paths(music: str, message: str) -> None:
    out = messages(MUSIC_CONFIG.format(music))
    assert len(out) == 1
    assert out[0].startswith(f"evil.yaml:5:14: groups.0.queue.music: {message}")
    assert len(out[0]) < 250


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_fuzz_music_paths(music: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            cfg = load_config_text(MUSIC_CONFIG.format(json.dumps(music)), "fuzz.yaml", Path(tmp))
        except ConfigError as exc:
            assert [p.path for p in exc.problems] == ["groups.0.queue.music"]
        else:
            assert Path(cfg.groups[0].queue.music or "").is_file()
