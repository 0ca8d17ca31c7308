"""Issue 12, live: ``huntgroup ctl`` against a real ``huntgroup serve``, with SIPp calls.

The server runs with its admin listener on a free loopback port and a token in a
file (mode 600); every ``ctl`` is a subprocess that finds the listener and the
token from the server's configuration file. A paused member is not rung, an
unpaused one is; a ``uri:`` member logs out and in; the JSON answers match the
OpenAPI file. Run with:  pytest tests/integration -m integration
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.openapi_check import check_answer
from tests.support.ports import PortAllocator
from tests.support.sip_harness import (
    REPO_ROOT,
    HuntgroupServer,
    Sipp,
    SippProcess,
    group,
    server_config,
)
from tests.support.state_harness import RedisServer
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

PILOT = "0140000001"
TOKEN = "ctl-live-token-0123456789abcdef"
StartServer = Callable[[dict[str, Any]], HuntgroupServer]


def ctl(server: HuntgroupServer, *args: str) -> subprocess.CompletedProcess[str]:
    """``huntgroup ctl --config FILE ARGS...`` in a subprocess (bounded)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "huntgroup", "ctl", "--config", str(server.config_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def ok(server: HuntgroupServer, *args: str) -> str:
    done = ctl(server, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def view(server: HuntgroupServer, path: str, *args: str) -> Any:
    """``ctl ARGS --json``, checked against the OpenAPI file as the answer of GET ``path``."""
    answer = json.loads(ok(server, *args, "--json"))
    check_answer("GET", path, 200, answer)
    return answer


def states(server: HuntgroupServer) -> dict[str, str]:
    answer = view(server, "/api/v1/members/Support", "members", "Support")
    return {m["member"]: m["state"] for m in answer["members"]}


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def rung(server: HuntgroupServer, member: SippProcess) -> int:
    """Offers to ``member`` so far, from the server's log (reading SIPp's log stops it)."""
    return server.log().count(f"ringing {member.uri} ")


def test_ctl_pauses_logs_out_and_in_and_the_calls_follow(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer, tmp_path: Path
) -> None:
    first = sipp.member("first", "answer", answer_ms=200, timeout=120)
    second = sipp.member("second", "answer", answer_ms=200, timeout=120)
    token_file = tmp_path / "admin.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    config = server_config(
        ports, groups=[group("Support", PILOT, "linear", [first.uri, second.uri])]
    )
    config["server"]["admin"] = {
        "listen": f"127.0.0.1:{ports.port()}",
        "token_file": str(token_file),
    }
    queue_log = tmp_path / "queue_log"
    config["records"] = {"queue_log": str(queue_log)}
    server = start_server(config)

    # paused: the first member, first in a linear hunt, is not rung
    out = ok(server, "pause", "Support", first.uri, "--reason", "lunch")
    assert out.strip() == f"member {first.uri} in group Support paused"
    assert "already" in ok(server, "pause", "Support", first.uri)
    wait_until(  # recorded: queue_log's PAUSE with the reason (once: the repeat is no change)
        lambda: f"|Support|{first.uri}|PAUSE|lunch" in _read(queue_log),
        timeout=30,
        message=lambda: f"no PAUSE in the queue_log:\n{_read(queue_log)}",
    )
    assert _read(queue_log).count("|PAUSE|") == 1
    table = ok(server, "members", "Support")
    assert table.splitlines()[0].split() == [
        "MEMBER", "NAME", "STATE", "FOR", "REASON", "JOINED", "TALK", "ANSWERED",
    ]  # fmt: skip
    assert any(
        first.uri in row and "paused" in row and "lunch" in row for row in table.splitlines()
    )
    caller = sipp.call("c1", server.port, PILOT, duration_ms=8_000, timeout=60)
    server.wait_for_log(r"call \S+: bridged to sip:second@")
    calls = view(server, "/api/v1/calls", "calls")["calls"]
    status = view(server, "/api/v1/status", "status")
    view(server, "/api/v1/queues", "queues")
    assert [(c["state"], c["member"]) for c in calls] == [("talking", second.uri)]
    assert status["calls_active"] == 1 and status["members_paused"] == 1
    caller.expect_success(timeout=60)
    assert rung(server, first) == 0 and rung(server, second) == 1

    # unpaused: it is rung again
    assert ok(server, "unpause", "Support", first.uri).strip().endswith("unpaused")
    caller = sipp.call("c2", server.port, PILOT, duration_ms=300, timeout=60)
    caller.expect_success(timeout=60)
    assert rung(server, first) == 1 and rung(server, second) == 1

    # a uri: member logs out (not rung) and back in
    ok(server, "logout", "Support", first.uri)
    assert states(server)[first.uri] == "logged_out"
    caller = sipp.call("c3", server.port, PILOT, duration_ms=300, timeout=60)
    caller.expect_success(timeout=60)
    assert rung(server, first) == 1 and rung(server, second) == 2
    ok(server, "login", "Support", first.uri)
    assert states(server)[first.uri] == "free"

    # refusals and the exit statuses
    refused = ctl(server, "pause", "Support", "sip:nobody@127.0.0.1")
    assert refused.returncode == 1 and "404" in refused.stderr
    refused = ctl(server, "pause", "Support", first.uri, "--reason", "x" * 200)
    assert refused.returncode == 1 and "128" in refused.stderr
    assert "the file did not change" in ok(server, "reload")
    assert "CALLERS" in ok(server, "queues") and "calls_active" in ok(server, "status")
    assert len(first.received("INVITE")) == 1 and len(second.received("INVITE")) == 2
    log = server.log()
    assert f"member {first.uri}: pause, group Support (api): lunch" in log
    assert f"member {first.uri}: logout, group Support (api)" in log


def test_ctl_says_when_it_cannot_reach_or_is_refused(ports: PortAllocator, tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "huntgroup", "ctl", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )

    down = run("--url", f"http://127.0.0.1:{ports.port()}", "status")
    assert down.returncode == 3 and "cannot reach" in down.stderr
    nowhere = run("status")
    assert nowhere.returncode == 3 and "--url" in nowhere.stderr
    open_token = tmp_path / "token"
    open_token.write_text(TOKEN)
    open_token.chmod(0o644)
    loose = run("--url", "http://127.0.0.1:1", "--token-file", str(open_token), "status")
    assert loose.returncode == 1 and "chmod 600" in loose.stderr


def test_a_pause_reaches_the_other_node_and_survives_its_restart(
    ports: PortAllocator, start_server: StartServer, tmp_path: Path
) -> None:
    """Two ``huntgroup serve`` nodes on one real Redis: a pause made through node A's
    API shows on node B, stays through B's restart, and B's unpause reaches A."""
    try:
        redis_server = RedisServer(tmp_path)
    except RuntimeError as err:
        pytest.fail(str(err))
    redis_server.start()
    try:
        agent = "sip:agent@127.0.0.1:5999"

        def node() -> dict[str, Any]:
            config = server_config(ports, groups=[group("Support", PILOT, "linear", [agent])])
            config["server"]["state"] = redis_server.url
            config["server"]["admin"] = {"listen": f"127.0.0.1:{ports.port()}"}
            return config

        a, b = start_server(node()), start_server(node())
        ok(a, "pause", "Support", agent, "--reason", "training")

        def on(server: HuntgroupServer) -> tuple[str, str | None]:
            answer = view(server, "/api/v1/members/Support", "members", "Support")
            member = answer["members"][0]
            return member["state"], member["paused_reason"]

        wait_until(lambda: on(b) == ("paused", "training"), timeout=30, interval=0.2)
        b.stop()
        b_again = start_server(b.config)
        assert on(b_again) == ("paused", "training")
        ok(b_again, "unpause", "Support", agent)
        wait_until(lambda: on(a) == ("free", None), timeout=30, interval=0.2)
    finally:
        redis_server.stop()
