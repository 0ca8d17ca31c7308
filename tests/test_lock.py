"""requirements.lock is the environment the suite runs on, and it fits pyproject.toml.

A range changed in pyproject.toml without a refreshed lock, a hand-edited pin
without its hashes, or a .venv that drifted from the lock fails here.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ \\]+)")


def locked() -> dict[str, tuple[Version, int]]:
    """Name → (pinned version, number of hashes) for every entry of the lock."""
    pins: dict[str, tuple[Version, int]] = {}
    name = ""
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = PIN.match(line)
        if match:
            name = canonicalize_name(match[1])
            pins[name] = (Version(match[2]), 0)
        elif line.strip().startswith("--hash=sha256:") and name:
            version, hashes = pins[name]
            pins[name] = (version, hashes + 1)
    return pins


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs.extend(extra)
    return [Requirement(r) for r in reqs]


def test_every_declared_dependency_is_pinned_inside_its_range() -> None:
    pins = locked()
    for req in declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is in pyproject.toml but not in requirements.lock"
        version, _ = pins[name]
        assert req.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {req.name}=={version}, outside pyproject.toml's {req}: "
            "run scripts/lock.sh"
        )


def test_every_pin_carries_hashes() -> None:
    unhashed = [name for name, (_, hashes) in locked().items() if hashes == 0]
    assert not unhashed, f"pins without --hash (pip would refuse the lock): {unhashed}"


def test_the_environment_is_the_lock() -> None:
    drift = {}
    for name, (version, _) in locked().items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            drift[name] = (str(version), "missing")
            continue
        if installed != version:
            drift[name] = (str(version), str(installed))
    assert not drift, (
        f"installed packages differ from requirements.lock (locked, installed): {drift}"
    )


def test_the_lock_was_made_from_this_pyproject() -> None:
    """scripts/lock.sh writes the sha256 of the pyproject.toml it read at the top of the
    lock: any later change of pyproject.toml needs a refreshed lock (and a test run)."""
    first = (ROOT / "requirements.lock").read_text().splitlines()[0]
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    assert first == f"# made from pyproject.toml sha256 {digest}", (
        "pyproject.toml changed since requirements.lock was made: run scripts/lock.sh -q "
        "(keeps the pins), then make test"
    )
