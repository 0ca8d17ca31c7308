"""engine/sip is a leaf: it imports only huntgroup.errors, huntgroup.memo,
huntgroup.quick_init (leaves too) and itself (module- or function-level), so the SIP
library never depends on the call logic or a driver."""

from __future__ import annotations

import ast
from pathlib import Path

import huntgroup.engine.sip

SIP = Path(huntgroup.engine.sip.__file__).parent
ALLOWED = ("huntgroup.engine.sip", "huntgroup.errors", "huntgroup.memo", "huntgroup.quick_init")
DRIVER_MODULES = {"asyncio", "socket", "ssl", "time", "selectors"}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_engine_sip_imports_only_errors_memo_and_itself() -> None:
    modules = sorted(SIP.glob("*.py"))
    assert len(modules) > 10
    for path in modules:
        names = imports(path)
        ours = {n for n in names if n == "huntgroup" or n.startswith("huntgroup.")}
        stray = {n for n in ours if not any(n == a or n.startswith(a + ".") for a in ALLOWED)}
        assert not stray, f"{path.name} imports {sorted(stray)}"
        assert not names & DRIVER_MODULES, f"{path.name} imports {sorted(names & DRIVER_MODULES)}"
