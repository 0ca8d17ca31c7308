"""A real ``huntgroup serve`` on loopback for the live-mode tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.sip_harness import answers_options

REPO = Path(__file__).resolve().parents[2]
OUTCOMES = (
    "answered",
    "abandoned",
    "timed_out",
    "rejected_full",
    "forwarded",
    "no_answer",
    "unfinished",
)


@contextmanager
def serving(directory: Path, config: dict[str, Any], port: int) -> Iterator[None]:
    """``huntgroup serve`` on ``config`` (listening on udp 127.0.0.1:``port``) until exit."""
    served = directory / "served.yaml"
    served.write_text(yaml.safe_dump(config))
    log = (directory / "server.log").open("w")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "huntgroup", "serve", "--config", str(served)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        # generous: a loaded machine starts Python slowly
        if not answers_options(process, port, deadline=60):
            log.flush()
            pytest.fail("huntgroup serve did not start:\n" + (directory / "server.log").read_text())
        yield
    finally:
        process.kill()
        process.wait()
        log.close()
