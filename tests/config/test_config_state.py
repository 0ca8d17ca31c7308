"""``server.state``, ``state_auth``, ``state_tls``: Redis URLs, Sentinel, no credentials inside."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from huntgroup.config.loader import load_config_text
from huntgroup.config.models import Config
from huntgroup.config.state_url import SentinelTarget, parse_state_url
from huntgroup.errors import ConfigError


def server(body: str) -> str:
    return "server:\n" + textwrap.indent(textwrap.dedent(body), "  ")


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "cfg.yaml", Path("/etc/huntgroup"))
    return [str(p) for p in info.value.problems]


def load(text: str) -> Config:
    return load_config_text(text, "cfg.yaml", Path("/etc/huntgroup"))


def test_a_url_with_a_password_is_refused_and_points_to_the_env_or_file_settings() -> None:
    (message,) = problems(server('state: "rediss://:hunter2@redis.example.net:6380/2"\n'))
    assert message.startswith("cfg.yaml:2:10: server.state: ")
    assert "server.state_auth.password_env" in message
    assert "server.state_auth.password_file" in message
    assert "hunter2" not in message


def test_the_password_and_tls_files_are_named_not_written(tmp_path: Path) -> None:
    for name in ("tls/ca.pem", "tls/key.pem", "abs/cert.pem"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("PEM")
    text = (
        server("""\
        state: "rediss://redis.example.net:6380/2"
        state_auth: {username: huntgroup, password_file: secrets/redis}
        state_tls: {ca: tls/ca.pem, certificate: CERT, private_key: tls/key.pem}
        """)
    ).replace("CERT", str(tmp_path / "abs/cert.pem"))
    cfg = load_config_text(text, "cfg.yaml", tmp_path)
    assert cfg.server.state_auth.username == "huntgroup"
    assert cfg.server.state_auth.password_file == str(tmp_path / "secrets/redis")
    assert cfg.server.state_tls.ca == str(tmp_path / "tls/ca.pem")
    assert cfg.server.state_tls.certificate == str(tmp_path / "abs/cert.pem")
    assert cfg.server.state_tls.private_key == str(tmp_path / "tls/key.pem")
    assert cfg.server.state_tls.verify
    # a file that is not there is named where the file names it
    (tmp_path / "tls/ca.pem").unlink()
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "cfg.yaml", tmp_path)
    (problem,) = [str(p) for p in info.value.problems]
    assert problem.startswith("cfg.yaml:4:19: server.state_tls.ca: TLS file not found: ")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "state_auth: {password_env: A, password_file: /b}\n",
            "password_env or in password_file, not both",
        ),
        ("state_auth: {username: u}\n", "a username needs a password"),
        (
            "state_auth: {sentinel_password_env: A, sentinel_password_file: /b}\n",
            "sentinel_password_env or in sentinel_password_file, not both",
        ),
        ("state_auth: {password_env: 'not a name'}\n", "password_env"),
        ("state_tls: {ca: /ca.pem}\n", "server.state is not a rediss://"),
        ('state: "rediss://h/0"\nstate_tls: {private_key: /k.pem}\n', "needs its certificate"),
    ],
)
def test_inconsistent_credentials_and_tls_are_refused(body: str, expected: str) -> None:
    assert any(expected in p for p in problems(server(body))), problems(server(body))


def test_sentinel_urls() -> None:
    assert parse_state_url("redis+sentinel://10.0.0.1:26379,[::1]:26380,s3/mymaster/2") == (
        SentinelTarget((("10.0.0.1", 26379), ("::1", 26380), ("s3", 26379)), "mymaster", 2, False)
    )
    assert parse_state_url("rediss+sentinel://s1/m") == SentinelTarget(
        (("s1", 26379),), "m", 0, True
    )
    cfg = load(server('state: "redis+sentinel://s1:26379,s2:26379/hg/0"\n'))
    assert cfg.server.state == "redis+sentinel://s1:26379,s2:26379/hg/0"


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://s1:26379",  # no master name
        "redis+sentinel:///m/0",  # no sentinel
        "redis+sentinel://s1:99999/m/0",  # port
        "redis+sentinel://s1/m/zero",  # database
        "redis+sentinel://s1/m/0/extra",
        "redis+sentinel://s1/m?x=1",
        "redis+sentinel://:pw@s1/m/0",  # credentials
        "http://h/0",
        "redis://h:notaport/0",
        "redis:///0",
    ],
)
def test_bad_state_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_state_url(url)
    assert problems(server(f'state: "{url}"\n'))
