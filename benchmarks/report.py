"""Shared helpers for benchmarks: machine description and docs/benchmarks.md sections."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nEach section is rewritten by the command it names.\n"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def median_of(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def write_section(name: str, command: str, body: str) -> None:
    """Replace (or append) the section ``name`` of docs/benchmarks.md."""
    stamp = _dt.date.today().isoformat()
    section = (
        f"<!-- {name}:start -->\n## {name}\n\n"
        f"- command: `{command}`\n- machine: {machine()}\n- date: {stamp}\n\n"
        f"{body.rstrip()}\n<!-- {name}:end -->\n"
    )
    text = DOC.read_text() if DOC.exists() else HEADER
    pattern = re.compile(
        rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->\n?", re.S
    )
    text = pattern.sub(section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)


def check_native_build(build: Path, build_set: str) -> None:
    """Refuse a missing compiled build, or one older than the sources (it would time
    old code), naming the command that makes it (``scripts/build_native.sh``)."""
    done = subprocess.run(
        [
            "bash",
            str(DOC.parent.parent / "scripts/build_native.sh"),
            "--check",
            "--out",
            str(build),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(
            f"{done.stderr.strip()}: build it first with "
            f"scripts/build_native.sh --out {build} --set {build_set}"
        )
