"""The package's layers point one way, and nothing imports in a circle.

The rule (docs/architecture.md)::

    errors <- config <- distribution <- queue <- engine.b2bua
    media and engine.sip are leaves (over errors, memo and quick_init, which import nothing)
    drivers (engine.aio, file_checks), simulations and the CLI sit on top

The graph is read from the source with :mod:`ast`, so an import inside a
function or under ``if TYPE_CHECKING:`` counts like one at the top of a module:
a cycle hidden in a function is still a cycle. A function-level import of a
huntgroup module hides a dependency from the reader, so the few allowed are
listed in ``LAZY`` with their reason (a lazy import of an optional third-party
package, such as matplotlib, is fine).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

import huntgroup

PACKAGE = Path(huntgroup.__file__).parent

# What each layer may import, besides itself. A layer is the longest prefix listed.
ALLOWED: dict[str, frozenset[str]] = {
    "huntgroup.errors": frozenset(),
    "huntgroup.memo": frozenset(),  # bounded memos of pure parsers: a leaf under sip and media
    "huntgroup.quick_init": frozenset(),  # a frozen dataclass's quicker __init__: a leaf too
    "huntgroup.config": frozenset({"huntgroup.errors"}),
    "huntgroup.distribution": frozenset({"huntgroup.errors", "huntgroup.config"}),
    "huntgroup.queue": frozenset(
        {"huntgroup.errors", "huntgroup.quick_init", "huntgroup.config", "huntgroup.distribution"}
    ),
    "huntgroup.media": frozenset({"huntgroup.errors", "huntgroup.memo", "huntgroup.quick_init"}),
    "huntgroup.engine.sip": frozenset(
        {"huntgroup.errors", "huntgroup.memo", "huntgroup.quick_init"}
    ),
    "huntgroup.engine.b2bua": frozenset(
        {
            "huntgroup.errors",
            "huntgroup.memo",
            "huntgroup.quick_init",
            "huntgroup.config",
            "huntgroup.distribution",
            "huntgroup.queue",
            "huntgroup.media",
            "huntgroup.engine.sip",
        }
    ),
}
# The layers on top may import any layer below; they must not import each other in a
# circle, which the cycle tests check.
TOP = (
    "huntgroup.engine.aio",
    "huntgroup.admin",
    "huntgroup.node",
    "huntgroup.ctl",
    "huntgroup.simulations",
    "huntgroup.cli",
)
# Only these may touch the outside world (sockets, clocks, TLS, threads, processes).
IO_MODULES = frozenset(
    {"asyncio", "socket", "ssl", "time", "select", "selectors", "threading", "subprocess"}
)
IO_ALLOWED = (*TOP, "huntgroup.__main__")
# (module, huntgroup module it imports inside a function): why
LAZY = {
    ("huntgroup.cli", "huntgroup.node"): "serve: the server costs ~0.5 s at --help",
    ("huntgroup.cli", "huntgroup.admin.token"): "serve: same (the admin package)",
    ("huntgroup.cli", "huntgroup.engine.b2bua.connections"): "serve: same (the B2BUA package)",
    ("huntgroup.cli", "huntgroup.engine.aio.records.schema"): "records init-db: psycopg at --help",
    ("huntgroup.cli", "huntgroup.engine.aio.records.sinks"): "records init-db: same (the sinks)",
    ("huntgroup.simulations.cli", "huntgroup.simulations.runner"): "simulate: scipy at every cmd",
    ("huntgroup.simulations.cli", "huntgroup.simulations.live.sip"): "simulate: same (runner)",
    ("huntgroup.simulations", "huntgroup.simulations.runner"): "same (package re-exports)",
    ("huntgroup.simulations", "huntgroup.simulations.model.scenario"): "same",
    ("huntgroup.simulations", "huntgroup.simulations.virtual.driver"): "same",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path) -> tuple[set[str], set[str], set[str]]:
    """(huntgroup modules, outside top-level names, huntgroup modules imported in a
    function or a class) that the module imports."""
    is_package = path.name == "__init__.py"
    ours: set[str] = set()
    outside: set[str] = set()
    lazy: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(node) for node in tree.body}
    top_level |= {
        id(inner)
        for node in tree.body
        if isinstance(node, ast.If)  # if TYPE_CHECKING: at the top
        for inner in node.body
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + is_package]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            targets = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            if target in MODULES:
                if target != name:
                    ours.add(target)
                    if id(node) not in top_level:
                        lazy.add(target)
            elif not target.startswith("huntgroup"):
                outside.add(target.split(".")[0])
    return ours, outside, lazy


GRAPH: dict[str, set[str]] = {}
OUTSIDE: dict[str, set[str]] = {}
LAZY_FOUND: dict[str, set[str]] = {}
for _name, _path in MODULES.items():
    GRAPH[_name], OUTSIDE[_name], LAZY_FOUND[_name] = imports_of(_name, _path)


def layer_of(name: str) -> str:
    for prefix in sorted((*ALLOWED, *TOP), key=len, reverse=True):
        if name == prefix or name.startswith(prefix + "."):
            return prefix
    return "huntgroup"


def package_of(name: str) -> str:
    """The package a module belongs to; a module at the top (errors, cli) is its own."""
    path = MODULES[name]
    parent = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return name if parent == "huntgroup" else parent


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            if pending:
                nxt = pending.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_every_package_module_is_in_a_layer() -> None:
    """Only the entry point and empty namespace packages sit outside the layers."""
    stray = [
        n
        for n in MODULES
        if layer_of(n) == "huntgroup" and GRAPH[n] and n not in ("huntgroup", "huntgroup.__main__")
    ]
    assert stray == [], stray


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_the_layers_below_it(layer: str) -> None:
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if layer_of(name) == layer
        for target in targets
        if layer_of(target) != layer and layer_of(target) not in ALLOWED[layer]
    )
    assert not wrong, "\n".join(wrong)


def test_only_the_drivers_touch_sockets_clocks_and_threads() -> None:
    wrong = sorted(
        f"{name} imports {sorted(OUTSIDE[name] & IO_MODULES)}"
        for name in MODULES
        if OUTSIDE[name] & IO_MODULES and not name.startswith(IO_ALLOWED)
    )
    assert not wrong, "\n".join(wrong)


def test_huntgroup_modules_are_imported_at_module_level() -> None:
    hidden = sorted(
        (name, target)
        for name, targets in LAZY_FOUND.items()
        for target in targets
        if (name, target) not in LAZY
    )
    assert hidden == []


def test_no_module_imports_in_a_circle() -> None:
    assert cycles(GRAPH) == []


def test_no_package_imports_in_a_circle() -> None:
    packages: dict[str, set[str]] = {}
    for name, targets in GRAPH.items():
        source = package_of(name)
        edges = packages.setdefault(source, set())
        edges.update(package_of(t) for t in targets if package_of(t) != source)
    assert cycles(packages) == []


def test_the_checks_see_function_level_imports_and_cycles(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from huntgroup.engine.b2bua import B2BUA\n    import socket\n")
    ours, outside, lazy = imports_of("huntgroup.config.probe", probe)
    assert "huntgroup.engine.b2bua" in ours and "socket" in outside
    assert lazy == {"huntgroup.engine.b2bua"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
