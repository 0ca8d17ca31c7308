"""Each kind of configuration error gives the exact FILE:LINE:COL: path: message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from huntgroup.config.loader import load_config_text
from huntgroup.engine.aio.file_checks import FILE_CHECKS
from huntgroup.errors import ConfigError

BASE = """\
lines:
  - number: "0102030401"
    password: a
  - number: "0102030402"
    password: b
groups:
  - name: Support
    pilot: "0140000001"
    members:
      - line: "0102030401"
        position: 1
      - line: "0102030402"
        position: 2
"""


def problems(text: str, base_dir: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(textwrap.dedent(text), "cfg.yaml", base_dir or Path("/nonexistent"))
    return [str(p) for p in info.value.problems]


def test_base_is_valid() -> None:
    cfg = load_config_text(BASE, "cfg.yaml", Path("/nonexistent"))
    assert [m.key for m in cfg.groups[0].members] == ["0102030401", "0102030402"]


def test_unknown_key_points_at_the_key_and_lists_allowed_keys() -> None:
    text = BASE.replace("    pilot:", "    colour: blue\n    pilot:")
    assert problems(text) == [
        "cfg.yaml:8:5: groups.0.colour: unknown key 'colour'; allowed keys: name, pilot, "
        "algorithm, no_answer_timeout, wrap_up, call_waiting, hunt_direct_calls, "
        "pilot_as_caller_id, priority, queue, no_answer, members"
    ]


def test_unknown_top_level_key() -> None:
    assert problems("grups: []\n") == [
        "cfg.yaml:1:1: grups: unknown key 'grups'; allowed keys: server, lines, groups, records"
    ]


def test_wrong_types_say_what_was_expected() -> None:
    text = BASE + textwrap.indent(
        textwrap.dedent("""\
        wrap_up: soon
        call_waiting: maybe
        queue: 5
        """),
        "    ",
    )
    assert problems(text) == [
        "cfg.yaml:14:14: groups.0.wrap_up: expected a number, got the text 'soon'",
        "cfg.yaml:15:19: groups.0.call_waiting: expected true or false, got the text 'maybe'",
        "cfg.yaml:16:12: groups.0.queue: expected a mapping (keys: max_length, max_wait, "
        "music, answer, overflow_to, when_empty, announcements), got the number 5",
    ]


def test_unquoted_number_read_as_integer_suggests_quotes() -> None:
    text = BASE.replace('pilot: "0140000001"', "pilot: 0140000001")
    assert problems(text) == [
        "cfg.yaml:8:12: groups.0.pilot: expected text, got the number 0140000001; "
        'write numbers that must stay as typed in quotes: "0140000001"'
    ]


def test_list_expected() -> None:
    assert problems("lines: nobody\n") == [
        "cfg.yaml:1:8: lines: expected a list, got the text 'nobody'"
    ]


def test_missing_key_points_at_the_enclosing_mapping() -> None:
    text = BASE.replace('    pilot: "0140000001"\n', "")
    assert problems(text) == ["cfg.yaml:7:5: groups.0.pilot: required key 'pilot' is missing"]


def test_duplicate_pilots() -> None:
    text = BASE + '  - name: Sales\n    pilot: "0140000001"\n'
    assert problems(text) == [
        "cfg.yaml:15:12: groups.1.pilot: duplicate pilot '0140000001' (first at line 8)"
    ]


def test_duplicate_positions() -> None:
    text = BASE.replace("position: 2", "position: 1")
    assert problems(text) == [
        "cfg.yaml:13:19: groups.0.members.1.position: duplicate position 1 (first at line 11)"
    ]


def test_member_naming_an_unknown_line() -> None:
    text = BASE.replace('line: "0102030402"', 'line: "0102030499"')
    assert problems(text) == [
        "cfg.yaml:12:15: groups.0.members.1.line: no line '0102030499' in 'lines'"
    ]


def test_negative_max_length() -> None:
    text = BASE + "    queue:\n      max_length: -1\n"
    assert problems(text) == [
        "cfg.yaml:15:19: groups.0.queue.max_length: must be at least 0, got -1"
    ]


def test_unknown_algorithm_lists_the_valid_ones() -> None:
    text = BASE + "    algorithm: random\n"
    assert problems(text) == [
        "cfg.yaml:14:16: groups.0.algorithm: unknown algorithm 'random'; valid algorithms: "
        "ring_all, linear, circular, round_robin, least_active"
    ]


def test_unknown_media_mode_lists_valid_values() -> None:
    assert problems("server:\n  media:\n    mode: bridge\n") == [
        "cfg.yaml:3:11: server.media.mode: unknown mode 'bridge'; valid values: relay, direct"
    ]


def test_missing_music_file(tmp_path: Path) -> None:
    text = BASE + "    queue:\n      music: sounds/hold.wav\n"
    missing = tmp_path / "sounds" / "hold.wav"
    assert problems(text, tmp_path) == [
        f"cfg.yaml:15:14: groups.0.queue.music: music file not found: '{missing}'"
    ]


def test_music_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "sounds").mkdir()
    text = BASE + "    queue:\n      music: sounds\n"
    assert problems(text, tmp_path) == [
        "cfg.yaml:15:14: groups.0.queue.music: music path is not a regular file: "
        f"'{tmp_path / 'sounds'}'"
    ]


def write_tone(path: Path) -> None:
    import numpy as np
    import soundfile

    t = np.arange(16000) / 16000
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * 440 * t), 16000)


def test_music_that_is_not_audio_is_reported_at_check_time(tmp_path: Path) -> None:
    (tmp_path / "hold.wav").write_bytes(b"RIFF not really")
    text = BASE + "    queue:\n      music: hold.wav\n"
    with pytest.raises(ConfigError) as err:
        load_config_text(text, "cfg.yaml", tmp_path, checks=FILE_CHECKS)
    assert "groups.0.queue.music: music file cannot be played:" in str(err.value)
    assert str(err.value).startswith("cfg.yaml:15:14:")


def test_music_is_resolved_against_the_base_directory(tmp_path: Path) -> None:
    (tmp_path / "sounds").mkdir()
    write_tone(tmp_path / "sounds" / "hold.wav")
    text = BASE + "    queue:\n      music: sounds/../sounds/hold.wav\n"
    cfg = load_config_text(text, "cfg.yaml", tmp_path)
    assert cfg.groups[0].queue.music == str((tmp_path / "sounds" / "hold.wav").resolve())


def test_no_answer_after_without_forward_to() -> None:
    text = BASE + "    no_answer:\n      after: 30\n"
    assert problems(text) == [
        "cfg.yaml:15:7: groups.0.no_answer: 'after' needs 'forward_to': where should the call go?"
    ]


def test_duplicate_mapping_key() -> None:
    text = BASE.replace("    password: b\n", "    password: b\n    password: c\n")
    assert problems(text) == [
        "cfg.yaml:6:5: lines.1.password: duplicate key 'password' (first at line 5)"
    ]


def test_member_with_both_line_and_uri() -> None:
    text = BASE.replace(
        "        position: 2", '        uri: "sip:x@127.0.0.1"\n        position: 2'
    )
    assert problems(text) == [
        "cfg.yaml:12:9: groups.0.members.1: a member needs exactly one of 'line' or 'uri'"
    ]


def test_several_errors_are_all_reported_in_file_order(tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        server:
          listen: ["udp:0.0.0.0:5060"]
          colour: blue
        lines:
          - number: "0102030401"
            password: a
          - number: "0102030401"
            password: b
        groups:
          - name: Support
            pilot: "0140000001"
            algorithm: random
            queue:
              max_length: -3
              music: nope.wav
            no_answer:
              after: 10
            members:
              - line: "0102030409"
                position: 1
              - line: "0102030401"
                position: 1
          - name: Support
            pilot: "0140000001"
            colour: red
    """)
    assert problems(text, tmp_path) == [
        "cfg.yaml:3:3: server.colour: unknown key 'colour'; allowed keys: listen, domain, "
        "upstream, trusted_peers, media, state, state_auth, state_tls, timers, shutdown_grace, "
        "digest_algorithms, "
        "tls, connections, limits, auth, calls, subscriptions, admin",
        "cfg.yaml:7:13: lines.1.number: duplicate line number '0102030401' (first at line 5)",
        "cfg.yaml:12:16: groups.0.algorithm: unknown algorithm 'random'; valid algorithms: "
        "ring_all, linear, circular, round_robin, least_active",
        "cfg.yaml:14:19: groups.0.queue.max_length: must be at least 0, got -3",
        f"cfg.yaml:15:14: groups.0.queue.music: music file not found: '{tmp_path / 'nope.wav'}'",
        "cfg.yaml:17:7: groups.0.no_answer: 'after' needs 'forward_to': where should the call go?",
        "cfg.yaml:19:15: groups.0.members.0.line: no line '0102030409' in 'lines'",
        "cfg.yaml:22:19: groups.0.members.1.position: duplicate position 1 (first at line 20)",
        "cfg.yaml:23:11: groups.1.name: duplicate group name 'Support' (first at line 10)",
        "cfg.yaml:24:12: groups.1.pilot: duplicate pilot '0140000001' (first at line 11)",
        "cfg.yaml:25:5: groups.1.colour: unknown key 'colour'; allowed keys: name, pilot, "
        "algorithm, no_answer_timeout, wrap_up, call_waiting, hunt_direct_calls, "
        "pilot_as_caller_id, priority, queue, no_answer, members",
    ]


def test_empty_file_is_an_error() -> None:
    for text in ("", "# only a comment\n", "---\n", "null\n"):
        assert problems(text) == [
            "cfg.yaml:1:1: empty configuration: expected a mapping with server, lines, groups"
        ]


def test_top_level_must_be_a_mapping() -> None:
    assert problems("- a\n- b\n") == [
        "cfg.yaml:1:1: the top level must be a mapping (server, lines, groups), not a list"
    ]


def test_yaml_syntax_error_has_a_position() -> None:
    assert problems("server:\n  domain: [a\n") == [
        "cfg.yaml:3:1: invalid YAML: while parsing a flow sequence, expected ',' or ']', "
        "but got '<stream end>'"
    ]


def test_second_document_is_an_error() -> None:
    assert problems("lines: []\n---\ngroups: []\n") == [
        "cfg.yaml:2:1: only one YAML document is allowed (found a second '---')"
    ]


def test_the_loader_alone_checks_music_is_readable_not_playable(tmp_path: Path) -> None:
    """Whether audio plays is the caller's check (huntgroup.engine.aio.file_checks): the config
    layer imports no media code; without it a readable file is taken as it is."""
    (tmp_path / "hold.wav").write_bytes(b"RIFF not really")
    text = BASE + "    queue:\n      music: hold.wav\n"
    cfg = load_config_text(text, "cfg.yaml", tmp_path)
    assert cfg.groups[0].queue.music == str((tmp_path / "hold.wav").resolve())


def test_line_and_server_music_are_resolved_and_checked(tmp_path: Path) -> None:
    """lines[].music and server.media.music are music files like queue.music: resolved
    against the base directory, and reported at their own line when missing."""
    (tmp_path / "alice.wav").write_bytes(b"RIFF")
    (tmp_path / "default.wav").write_bytes(b"RIFF")
    text = "server:\n  media:\n    music: default.wav\n" + BASE.replace(
        "    password: a\n", "    password: a\n    music: alice.wav\n", 1
    )
    cfg = load_config_text(text, "cfg.yaml", tmp_path)
    assert cfg.server.media.music == str((tmp_path / "default.wav").resolve())
    assert cfg.lines[0].music == str((tmp_path / "alice.wav").resolve())
    assert cfg.lines[1].music is None
    text = "server:\n  media:\n    music: nope.wav\n" + BASE.replace(
        "    password: b\n", '    password: b\n    music: ""\n', 1
    )
    assert problems(text, tmp_path) == [
        f"cfg.yaml:3:12: server.media.music: music file not found: '{tmp_path / 'nope.wav'}'",
        "cfg.yaml:9:12: lines.1.music: empty music path; use null for the default music",
    ]


@pytest.mark.parametrize(
    ("escaped", "code"),
    [("Alice\\r\\nVia: SIP/2.0/UDP evil", "000D"), ("tab\\there", "0009"), ("bell\\a", "0007")],
)
def test_a_line_name_with_control_characters_is_refused(escaped: str, code: str) -> None:
    """The name goes into From and P-Asserted-Identity: CR/LF would split the header."""
    text = BASE.replace("    password: a\n", f'    password: a\n    name: "{escaped}"\n', 1)
    assert problems(text) == [
        f"cfg.yaml:4:11: lines.0.name: the name holds a control character (U+{code}); a "
        "display name is printable text on one line"
    ]


def test_a_line_name_with_quotes_and_backslashes_is_fine() -> None:
    text = BASE.replace("    password: a\n", "    password: a\n    name: 'Al \"Boss\" \\\\'\n", 1)
    cfg = load_config_text(text, "cfg.yaml", Path("/nonexistent"))
    assert cfg.lines[0].name == 'Al "Boss" \\\\'
