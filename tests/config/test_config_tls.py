"""``server.tls``: paths resolved against the file, loaded by ``check``, errors located."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from huntgroup.config.loader import load_config_text
from huntgroup.engine.aio.file_checks import FILE_CHECKS
from huntgroup.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CERT = ROOT / "examples" / "tls" / "example-cert.pem"
KEY = ROOT / "examples" / "tls" / "example-key.pem"


def config(listen: str, tls: str) -> str:
    return f"server:\n  listen: [{listen}]\n  tls:\n{tls}"


def problems(text: str, base_dir: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "cfg.yaml", base_dir, checks=FILE_CHECKS)
    return [str(p) for p in info.value.problems]


@pytest.fixture
def tls_dir(tmp_path: Path) -> Path:
    shutil.copy(CERT, tmp_path / "cert.pem")
    shutil.copy(KEY, tmp_path / "key.pem")
    return tmp_path


def test_relative_paths_are_resolved_against_the_file(tls_dir: Path) -> None:
    text = config('"tls:127.0.0.1:5061"', "    certificate: cert.pem\n    private_key: key.pem\n")
    cfg = load_config_text(text, "cfg.yaml", tls_dir)
    assert cfg.server.tls.certificate == str(tls_dir / "cert.pem")
    assert cfg.server.tls.private_key == str(tls_dir / "key.pem")
    assert cfg.server.tls.ca is None and cfg.server.tls.verify_peers


def test_a_tls_listen_address_needs_a_certificate(tmp_path: Path) -> None:
    text = 'server:\n  listen: ["udp:127.0.0.1:5060", "tls:127.0.0.1:5061"]\n'
    assert problems(text, tmp_path) == [
        "cfg.yaml:2:34: server.listen.1: a tls: address needs server.tls.certificate"
    ]


def test_missing_files_are_reported_where_they_are_named(tmp_path: Path) -> None:
    text = config('"tls:127.0.0.1:5061"', "    certificate: nope.pem\n    ca: ''\n")
    assert problems(text, tmp_path) == [
        f"cfg.yaml:4:18: server.tls.certificate: TLS file not found: '{tmp_path / 'nope.pem'}'",
        "cfg.yaml:5:9: server.tls.ca: empty TLS file path; use null for none",
    ]


def test_a_key_that_does_not_match_the_certificate_is_refused(tls_dir: Path) -> None:
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-out", str(tls_dir / "other-key.pem")],
        check=True,
        capture_output=True,
    )  # fmt: skip
    tls = "    certificate: cert.pem\n    private_key: other-key.pem\n"
    [problem] = problems(config('"tls:127.0.0.1:5061"', tls), tls_dir)
    assert problem.startswith("cfg.yaml:4:18: server.tls.certificate: cannot use the certificate")
    assert "KEY_VALUES_MISMATCH" in problem


def test_a_ca_bundle_that_is_not_pem_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    text = config('"udp:127.0.0.1:5060"', "    ca: ca.pem\n")
    [problem] = problems(text, tmp_path)
    assert problem.startswith("cfg.yaml:4:9: server.tls.ca: cannot use the CA bundle:")
