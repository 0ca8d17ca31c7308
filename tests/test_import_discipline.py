"""Imports inside huntgroup: at module level, and without cycles between modules.

A function-level import of a huntgroup module hides a dependency (and often a
cycle) from the reader; the only ones allowed are listed in LAZY with the
reason. Lazy imports of optional third-party packages (matplotlib) are fine.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import huntgroup

PACKAGE = Path(huntgroup.__file__).parent
MODULES = sorted(PACKAGE.rglob("*.py"))

# (file, module imported in a function): why
LAZY = {
    ("cli.py", "huntgroup.engine.aio.server"): "serve: the server costs ~0.5 s at --help",
    ("cli.py", "huntgroup.engine.b2bua.connections"): "serve: same (the B2BUA package)",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(tree: ast.AST) -> Iterator[tuple[ast.stmt, list[str]]]:
    """Each import statement of ``tree`` with the absolute names it may load."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield node, [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node, [node.module] + [f"{node.module}.{a.name}" for a in node.names]


def function_level_imports(tree: ast.Module) -> list[str]:
    """The huntgroup modules imported anywhere but at the top level of ``tree``."""
    top = {id(node) for node in tree.body}
    found = []
    for node, names in imports(tree):
        if id(node) not in top and names[0].split(".")[0] == "huntgroup":
            found.append(names[0])
    return found


def test_huntgroup_modules_are_imported_at_module_level() -> None:
    hidden = [
        (str(path.relative_to(PACKAGE)), name)
        for path in MODULES
        for name in function_level_imports(ast.parse(path.read_text(), str(path)))
        if (str(path.relative_to(PACKAGE)), name) not in LAZY
    ]
    assert hidden == []


def test_the_scan_finds_an_import_in_a_function() -> None:
    tree = ast.parse("import json\ndef f():\n    from huntgroup.errors import ConfigError\n")
    assert function_level_imports(tree) == ["huntgroup.errors"]


def import_graph() -> dict[str, set[str]]:
    """module -> the huntgroup modules it imports (function-level imports included)."""
    known = {module_name(p): p for p in MODULES}
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for _, names in imports(ast.parse(path.read_text(), str(path))):
            graph[name] |= {n for n in names if n in known and n != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(sorted([v, *component]))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_itself_through_others() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_search_finds_a_loop() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_simulation_reports_and_comparison_are_imported_one_way() -> None:
    """cli -> runner -> compare -> report: nothing imports a layer above itself."""
    graph = import_graph()
    order = ["cli", "runner", "compare", "report"]
    for i, lower in enumerate(order):
        for upper in order[:i]:
            assert f"huntgroup.simulations.{upper}" not in graph[f"huntgroup.simulations.{lower}"]
