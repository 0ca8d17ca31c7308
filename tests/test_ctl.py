"""``huntgroup ctl`` without a server: its tables, durations, and where it looks."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from huntgroup.cli import main
from huntgroup.config.models import AdminConfig
from huntgroup.ctl import (
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    CtlError,
    duration,
    listener_url,
    table,
    target,
)


def test_tables_align_text_left_and_numbers_right() -> None:
    out = table(["NAME", "N", "NOTE"], [("a", 5, None), ("long name", 12, "x")])
    assert out.splitlines() == [
        "NAME        N  NOTE",
        "a           5  -",
        "long name  12  x",
    ]
    assert table(["ONLY"], []) == "ONLY"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59.9, "59s"), (60, "1m00s"), (3599, "59m59s"), (7320, "2h02m")],
)
def test_durations(seconds: float, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("127.0.0.1:9090", "http://127.0.0.1:9090"),
        ("0.0.0.0:9090", "http://127.0.0.1:9090"),
        ("[::]:9090", "http://[::1]:9090"),
        ("[::1]:8080", "http://[::1]:8080"),
        ("localhost:9", "http://localhost:9"),
    ],
)
def test_the_listener_url_comes_from_server_admin_listen(listen: str, url: str) -> None:
    assert listener_url(AdminConfig(listen=listen, token_env="T")) == url


def test_without_a_listener_or_a_place_ctl_says_so(tmp_path: Path) -> None:
    with pytest.raises(CtlError) as nowhere:
        target(argparse.Namespace(url=None, config=None, token_file=None))
    assert nowhere.value.status == EXIT_UNREACHABLE
    config = tmp_path / "h.yaml"
    config.write_text("groups: []\n")
    with pytest.raises(CtlError) as off:
        target(argparse.Namespace(url=None, config=str(config), token_file=None))
    assert off.value.status == EXIT_REFUSED and "off" in str(off.value)
    config.write_text("server: {admin: {listen: '127.0.0.1:9', token_env: HG_NOT_SET_X}}\n")
    with pytest.raises(CtlError) as token:
        target(argparse.Namespace(url=None, config=str(config), token_file=None))
    assert token.value.status == EXIT_REFUSED and "HG_NOT_SET_X" in str(token.value)


def test_a_bad_config_file_is_refused_with_its_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "h.yaml"
    config.write_text("server: {admin: {listen: 'nowhere'}}\n")
    assert main(["ctl", "--config", str(config), "status"]) == EXIT_REFUSED
    assert "HOST:PORT" in capsys.readouterr().err


def test_options_go_before_or_after_the_action(capsys: pytest.CaptureFixture[str]) -> None:
    url = "http://127.0.0.1:1"  # nothing listens on port 1
    assert main(["ctl", "--url", url, "status"]) == EXIT_UNREACHABLE
    assert main(["ctl", "pause", "G", "m", "--url", url, "--reason", "x"]) == EXIT_UNREACHABLE
    assert "cannot reach http://127.0.0.1:1" in capsys.readouterr().err
