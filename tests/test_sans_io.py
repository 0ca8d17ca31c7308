"""The group core stays sans-I/O: no clock, no sockets, no event loop, no global randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import huntgroup

FORBIDDEN = {
    "asyncio",
    "socket",
    "time",
    "select",
    "selectors",
    "threading",
    "random",
    "datetime",
    "subprocess",
    "ssl",
    "redis",
    "trio",
    "anyio",
}
PACKAGE = Path(huntgroup.__file__).parent
CORE = sorted((PACKAGE / "distribution").rglob("*.py")) + sorted((PACKAGE / "queue").rglob("*.py"))


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            roots.add("__import__")
    return roots


def test_core_modules_exist() -> None:
    names = {p.name for p in CORE}
    assert {"core.py", "store.py", "hunt.py", "algorithms.py"} <= names
    assert {"operations.py", "journal.py", "codec.py", "sync.py"} <= names  # queue/state


STATE = sorted((PACKAGE / "queue" / "state").rglob("*.py"))
BELOW_STATE = ("huntgroup.errors", "huntgroup.config", "huntgroup.distribution", "huntgroup.queue")


@pytest.mark.parametrize("path", STATE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_shared_state_imports_only_the_layers_below_it(path: Path) -> None:
    """The sync protocol runs in virtual time: no driver, no Redis, no event loop."""
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            if name.split(".")[0] == "huntgroup":
                assert name.startswith(BELOW_STATE), f"{path.name} imports {name}"


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_module_imports_no_io(path: Path) -> None:
    bad = imported_roots(path) & (FORBIDDEN | {"__import__"})
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_core_never_imports_the_engine() -> None:
    for path in CORE:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("huntgroup.engine", "huntgroup.simulations"))


def test_the_scan_catches_a_forbidden_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import time\nfrom asyncio import sleep\n")
    assert imported_roots(probe) >= {"time", "asyncio"}


CONFIG = sorted((PACKAGE / "config").rglob("*.py"))


@pytest.mark.parametrize("path", CONFIG, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_config_layer_imports_no_io_and_nothing_above_it(path: Path) -> None:
    """Loading a configuration needs no socket, TLS or media code: the deep file checks
    are passed in (huntgroup.engine.aio.file_checks), function-level imports included."""
    bad = imported_roots(path) & (FORBIDDEN | {"__import__"})
    assert not bad, f"{path.name} imports {sorted(bad)}"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert not node.module.startswith(
                ("huntgroup.engine", "huntgroup.media", "huntgroup.simulations")
            ), f"{path.name} imports {node.module}"
