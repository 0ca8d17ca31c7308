"""Issue 11, live: lines with no registered phone are unavailable, not free.

The issue's reproduction: ``huntgroup serve`` with the example's Support group
(two lines that never register, then the agent at a fixed URI, here a SIPp
UAS), and three callers 1 s apart. The agent takes the first; the second and
the third are queued with hold music (never hunting through the two lines), and
when the agent comes out of wrap-up it gets the second caller, then the third.
Run with:  pytest tests/integration -m integration
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.ports import PortAllocator
from tests.support.sip_harness import HuntgroupServer, Sipp, group, server_config

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

PILOT = "0140000001"
LINES = ("0102030401", "0102030402")
CALLERS = {"c1": "0611000001", "c2": "0611000002", "c3": "0611000003"}
StartServer = Callable[[dict[str, Any]], HuntgroupServer]


def test_callers_wait_with_music_and_the_agent_takes_them_in_arrival_order(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    agent = sipp.member("agent", "answer", answer_ms=200, timeout=90)
    support = group(
        "Support",
        PILOT,
        "round_robin",
        [*LINES, agent.uri],
        no_answer_timeout=15,
        wrap_up=2,
        queue={"max_length": 5, "max_wait": 60, "answer": True},
    )
    lines = [{"number": n, "password": f"pw-{n}"} for n in LINES]
    server = start_server(server_config(ports, groups=[support], lines=lines))
    # c1 talks 1.5 s (c2 and c3 queue meanwhile, or in its 2 s wrap-up); c2 talks 6 s
    # from its answer by the queue (bridged ~3.5 s in, it is still on the agent when c3
    # would be next); c3 stays long enough to be bridged after c2 (~8.5 s in; it hangs
    # up ~12 s in: the same ~3.5 s margin for a loaded machine as before, 4 s less wait).
    durations = {"c1": 1500, "c2": 6000, "c3": 11000}
    callers = {}
    for name, number in CALLERS.items():
        callers[name] = sipp.call(
            name, server.port, PILOT, caller=number, duration_ms=durations[name], timeout=60
        )
        if name == "c1":
            server.wait_for_log(r"call \S+: bridged to sip:agent@")
        else:  # each caller starts once the previous one is in: no race between processes
            server.wait_for_log(r"call \S+: queued \(answered\)", count=int(name[1]) - 1)
    for caller in callers.values():
        caller.expect_success(timeout=60)

    # c2 and c3 were answered by the queue, with hold music in the SDP
    for name in ("c2", "c3"):
        ok = callers[name].received(200)[0]
        assert "m=audio" in ok.body, name
    # the agent got the callers in arrival order
    offered = [m.header("From") or "" for m in agent.received("INVITE")]
    order = [next(n for n, num in CALLERS.items() if num in f) for f in offered]
    assert order == ["c1", "c2", "c3"], offered
    log = server.log()
    # no hunting in circles through the unregistered lines
    assert len(re.findall(r"unreachable \(no contact\)", log)) == 0, log
    for line in LINES:
        assert f"member {line}: unavailable (no registered contact)" in log
        assert f"ringing {line}" not in log
    assert len(re.findall(r"call \S+: queued \(answered\)", log)) == 2
