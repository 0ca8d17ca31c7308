"""contrib/systemd/huntgroup.service: the keys the server relies on, and systemd's own check.

The unit is read as systemd reads it (a key may repeat: ExecReload, SystemCallFilter),
and its promises are checked against the code: Type=notify (the server sends READY=1,
:mod:`huntgroup.engine.aio.systemd`), a stop timeout above the drain
(``server.shutdown_grace`` + the 5 s the server allows past it), a watchdog, a
dedicated user, hardening. The file also passes ``systemd-analyze verify`` (Debian's
``systemd`` package, which ``scripts/setup.sh`` installs when missing), with ExecStart pointing at
this checkout's ``huntgroup`` command.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from huntgroup.config.models import ServerConfig
from huntgroup.engine.aio.redis_bindings import STOP_GRACE as BINDINGS_STOP_GRACE
from huntgroup.engine.aio.redis_state import STOP_GRACE as STATE_STOP_GRACE

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "contrib/systemd/huntgroup.service"
# Server.shutdown: the drain waits grace + 5 s at most; with a shared Redis state the
# bindings and the state then stop, each waiting its tasks at most its grace
DRAIN_MARGIN = 5 + BINDINGS_STOP_GRACE + STATE_STOP_GRACE


def read_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections → key → values in order (systemd's syntax: ``#``/``;`` comments,
    repeated keys, an empty value resetting the list)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"a key outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=VALUE: {line!r}"
        values = current.setdefault(key.strip(), [])
        if value.strip():
            values.append(value.strip())
        else:
            values.clear()
    return sections


def seconds(value: str) -> float:
    units = {"s": 1, "sec": 1, "min": 60, "ms": 0.001}
    for suffix, factor in sorted(units.items(), key=lambda x: -len(x[0])):
        if value.endswith(suffix):
            return float(value.removesuffix(suffix)) * factor
    return float(value)


def test_the_unit_is_type_notify_with_a_watchdog_a_drain_and_a_dedicated_user() -> None:
    unit = read_unit(UNIT.read_text())
    service = {key: values[-1] for key, values in unit["Service"].items() if values}
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert " serve --config " in service["ExecStart"]
    assert unit["Service"]["ExecReload"][-1] == "/bin/kill -HUP $MAINPID"
    assert service["KillSignal"] == "SIGTERM"
    grace = ServerConfig.model_fields["shutdown_grace"].default
    assert seconds(service["TimeoutStopSec"]) > grace + DRAIN_MARGIN
    assert seconds(service["WatchdogSec"]) > 0
    assert service["Restart"] == "on-failure"
    assert service["User"] not in ("", "root") and service["Group"] != "root"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert "/var/lib/huntgroup" in service["ReadWritePaths"].split()
    assert service["PrivateTmp"] == "yes"
    assert int(service["LimitNOFILE"]) >= 4096
    assert service["EnvironmentFile"].lstrip("-").startswith("/etc/huntgroup/")
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze is missing: run scripts/setup.sh"
    command = shutil.which("huntgroup") or str(Path(sys.executable).parent / "huntgroup")
    assert Path(command).exists(), command
    local = tmp_path / "huntgroup.service"
    local.write_text(UNIT.read_text().replace("/usr/local/bin/huntgroup", command))
    done = subprocess.run(
        [analyze, "verify", str(local)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "huntgroup.service" not in done.stdout + done.stderr, done.stdout + done.stderr
