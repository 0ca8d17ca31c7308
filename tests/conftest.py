"""Suite-wide settings: in CI, hypothesis runs derandomized (reproducible examples).

When ``HUNTGROUP_NATIVE_BUILD`` names a compiled build (``scripts/test_native.sh``),
the session refuses to start unless every module compiled there is the one imported:
a run that silently tested the ``.py`` files would pass for the wrong reason.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def compiled_modules(build: Path) -> list[str]:
    """The dotted names of the extension modules of a build's huntgroup package."""
    names = []
    for so in sorted((build / "huntgroup").rglob("*.so")):
        parts = so.relative_to(build).with_name(so.name.split(".")[0]).parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def not_imported_from(build: Path) -> list[str]:
    """The build's compiled modules that this process imports from anywhere else."""
    wrong = []
    for name in compiled_modules(build):
        path = Path(str(importlib.import_module(name).__file__)).resolve()
        if path.suffix != ".so" or build.resolve() not in path.parents:
            wrong.append(f"{name} ({path})")
    return wrong


def pytest_configure(config: pytest.Config) -> None:
    build = os.environ.get("HUNTGROUP_NATIVE_BUILD")
    if not build:
        return
    if not compiled_modules(Path(build)):
        raise pytest.UsageError(f"HUNTGROUP_NATIVE_BUILD={build}: no compiled module there")
    if wrong := not_imported_from(Path(build)):
        raise pytest.UsageError(
            "HUNTGROUP_NATIVE_BUILD: these modules are not imported from the build "
            f"(PYTHONPATH={build} and --import-mode=append?): {', '.join(wrong)}"
        )
