"""Issue 13, live: two ``huntgroup serve`` nodes on one real Redis never ring one member at once.

One SIPp member and two SIPp callers, one on each node. Node A's caller
reaches the member; while it talks, node B's caller comes: B's claim is
refused, so B queues it, and rings the member only once A's call ended and
released its claim. The member's own log shows it never had two calls at once.
This is the whole path across processes (the core's Claim, the server's claim
task, the script, the INVITE after the grant); the race of two nodes claiming
at the same instant is shown in one process, on a real Redis, by
``tests/queue/state/test_redis_claims.py``.
Run with:  pytest tests/integration -m integration
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.ports import PortAllocator
from tests.support.sip_harness import HuntgroupServer, Sipp, SippProcess, group, server_config
from tests.support.state_harness import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

PILOT = "0140000001"
StartServer = Callable[[dict[str, Any]], HuntgroupServer]


def most_calls_at_once(member: SippProcess) -> int:
    """The most calls the member had at one moment, from its own log (INVITE to BYE)."""
    open_calls: set[str] = set()
    most = 0
    for message in member.messages():
        if message.direction != "received" or not message.is_request:
            continue
        call_id = message.call_id
        if message.method == "INVITE":
            open_calls.add(call_id)
            most = max(most, len(open_calls))
        elif message.method in ("BYE", "CANCEL"):
            open_calls.discard(call_id)
    return most


def test_two_nodes_never_ring_the_one_member_at_once(
    ports: PortAllocator, start_server: StartServer, sipp: Sipp, tmp_path: Path
) -> None:
    try:
        redis_server = RedisServer(tmp_path)
    except RuntimeError as err:
        pytest.fail(str(err))
    redis_server.start()
    try:
        member = sipp.member("agent", "answer", answer_ms=200, timeout=90)

        def node() -> dict[str, Any]:
            groups = [group("Support", PILOT, "linear", [member.uri], no_answer_timeout=20)]
            config = server_config(ports, groups=groups)
            config["server"]["state"] = redis_server.url
            return config

        a, b = start_server(node()), start_server(node())
        first = sipp.call("on-a", a.port, PILOT, duration_ms=1500, timeout=60)
        a.wait_for_log(r"call \S+: bridged to " + member.uri)
        # the member talks on A: B holds its caller (claim refused) until A's call ends
        second = sipp.call("on-b", b.port, PILOT, duration_ms=8000, timeout=60)
        b.wait_for_log(r"call \S+: queued")
        b.wait_for_log(r"call \S+: bridged to " + member.uri)
        first.expect_success(timeout=60)
        second.expect_success(timeout=60)
        assert most_calls_at_once(member) == 1
        invites = {m.call_id for m in member.received("INVITE")}
        assert len(invites) == 2, "each caller reached the member, one after the other"
    finally:
        redis_server.stop()
