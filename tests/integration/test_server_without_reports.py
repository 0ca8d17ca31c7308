"""The server runs without the simulator's report stack (matplotlib, ``huntgroup[sim]``).

Every process here gets a ``matplotlib`` package first on its path whose import
fails, as on a machine where only ``pip install huntgroup`` ran. ``serve`` must
still answer and route a call; ``check`` must still check; ``simulate`` must
say which extra to install instead of failing halfway with a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.ports import PortAllocator
from tests.support.sip_harness import REPO_ROOT, HuntgroupServer, Sipp, group, server_config

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

PILOT = "0140000000"
StartServer = Callable[[dict[str, Any]], HuntgroupServer]


@pytest.fixture
def no_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """PYTHONPATH (for this test's subprocesses) with a matplotlib that cannot be imported."""
    blocker = tmp_path / "blocked"
    (blocker / "matplotlib").mkdir(parents=True)
    (blocker / "matplotlib" / "__init__.py").write_text(
        "raise ImportError('matplotlib is blocked in this test')\n"
    )
    path = os.pathsep.join([str(REPO_ROOT), str(blocker)])
    monkeypatch.setenv("PYTHONPATH", path)
    return {**os.environ, "PYTHONPATH": path}


def _huntgroup(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "huntgroup", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_blocker_blocks(no_matplotlib: dict[str, str]) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", "import matplotlib"],
        env=no_matplotlib,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert probe.returncode != 0 and "blocked in this test" in probe.stderr


def test_serve_routes_a_call_without_matplotlib(
    no_matplotlib: dict[str, str], sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    member = sipp.member("m1", "answer", answer_ms=100)
    server = start_server(server_config(ports, groups=[group("G", PILOT, "linear", [member.uri])]))
    caller = sipp.call("caller", server.port, PILOT, "uac_call.xml", duration_ms=300)
    caller.expect_success()
    assert len(member.received("INVITE")) == 1
    assert "matplotlib" not in server.log()
    assert server.stop() == 0


def test_check_works_without_matplotlib(no_matplotlib: dict[str, str]) -> None:
    done = _huntgroup(no_matplotlib, "check", str(REPO_ROOT / "examples" / "huntgroup.yaml"))
    assert done.returncode == 0, done.stderr
    assert "matplotlib" not in done.stderr


def test_simulate_names_the_extra_it_needs(no_matplotlib: dict[str, str], tmp_path: Path) -> None:
    scenario = REPO_ROOT / "examples" / "scenarios" / "support-day.yaml"
    out = tmp_path / "out"
    done = _huntgroup(no_matplotlib, "simulate", str(scenario), "--out", str(out))
    assert done.returncode == 1
    assert "huntgroup[sim]" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()


def test_the_extras_say_where_matplotlib_belongs() -> None:
    """Library metadata: matplotlib is in the ``sim`` extra only, never a server dependency."""
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert not any(dep.startswith("matplotlib") for dep in project["dependencies"])
    assert any(dep.startswith("matplotlib") for dep in project["optional-dependencies"]["sim"])
