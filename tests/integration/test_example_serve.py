"""``make serve`` on a fresh clone: ``huntgroup serve`` on the shipped example starts without
a database or root (its record files next to it, their directory created) and is ready."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.ports import PortAllocator
from tests.support.sip_harness import REPO_ROOT
from tests.support.waiting import wait_until

EXAMPLE = REPO_ROOT / "examples" / "huntgroup.yaml"


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def test_the_example_serves_with_no_database_and_its_records_directory_made(
    tmp_path: Path,
) -> None:
    """The example copied beside its files, only its ports changed for free ones."""
    for shipped in ("music", "tls", "announcements"):
        (tmp_path / shipped).symlink_to(EXAMPLE.parent / shipped)
    ports = PortAllocator()
    sip, tls, admin = ports.port(), ports.port(), ports.port()
    text = EXAMPLE.read_text(encoding="utf-8")
    for old, new in (
        ('127.0.0.1:5060"', f'127.0.0.1:{sip}"'),
        ('[::1]:5060"', f'[::1]:{sip}"'),
        ('127.0.0.1:5061"', f'127.0.0.1:{tls}"'),
        ('"127.0.0.1:9090"', f'"127.0.0.1:{admin}"'),
    ):
        assert old in text
        text = text.replace(old, new)
    config = tmp_path / "huntgroup.yaml"
    config.write_text(text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "HUNTGROUP_RECORDS_DSN"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    server = subprocess.Popen(
        [sys.executable, "-m", "huntgroup", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{admin}/readyz"
        wait_until(lambda: ready(url) or server.poll() is not None, timeout=60, message="not ready")
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        assert (tmp_path / "records" / "calls.jsonl").exists()
        assert (tmp_path / "records" / "queue_log").exists()
    finally:
        server.send_signal(signal.SIGTERM)
        _, errors = server.communicate(timeout=60)
    assert server.returncode == 0, errors
