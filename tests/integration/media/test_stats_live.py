"""The server's stats line: on SIGUSR1, and when it stops, with what really happened."""

from __future__ import annotations

import contextlib
import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.media_live_harness import (
    LOOPBACK,
    RtpSocket,
    SipUA,
    answer_bye,
    answer_invite,
    await_answer,
    closing_all,
    invite_pilot,
    make_config,
    rtp,
    start_server,
)
from tests.support.ports import datagrams_waiting, free_port_range
from tests.support.waiting import WaitTimeout, wait_until

pytestmark = pytest.mark.integration


def stats_lines(log: str) -> list[dict[str, int]]:
    return [
        {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
        for line in re.findall(r"stats: (.*)", log)
    ]


def wait_stats(log_of: Callable[[], str], count: int) -> list[dict[str, int]]:
    with contextlib.suppress(WaitTimeout):  # the caller's assertions say what is missing
        wait_until(lambda: len(stats_lines(log_of())) >= count, timeout=10, interval=0.05)
    return stats_lines(log_of())


def test_sigusr1_and_the_stop_report_calls_sip_and_rtp_counters(tmp_path: Path) -> None:
    member = SipUA("member", ("0.0.0.0", 0))
    server = start_server(
        tmp_path,
        make_config(
            rtp_ports=free_port_range(4),
            members=[{"uri": f"sip:agent@{LOOPBACK}:{member.port}", "position": 1}],
        ),
    )
    caller, stranger = SipUA("caller", server.sip), RtpSocket()
    caller_audio, member_audio = RtpSocket(), RtpSocket()
    with closing_all(member, caller, stranger, caller_audio, member_audio, server):
        caller.send(b"INVITE nonsense\r\n\r\n")  # malformed: counted, answered nothing
        call_id = invite_pilot(caller, caller_audio.port, ("PCMU",))
        leg, _ = answer_invite(member, member_audio.port)
        call = await_answer(caller, call_id)
        for i in range(5):  # the caller latches, then a stranger and junk follow
            caller_audio.sendto(rtp(0, i, 160 * i, 0x1111, b"\x00" * 160), call.server_rtp)
        member_audio.wait_for(5, timeout=5)
        for i in range(7):
            stranger.sendto(rtp(0, i, 160 * i, 0x2222, b"\x00" * 160), call.server_rtp)
        for _ in range(3):
            caller_audio.sendto(b"not rtp", call.server_rtp)
        wait_until(lambda: not datagrams_waiting(call.server_rtp[1]), timeout=10)
        server.process.send_signal(signal.SIGUSR1)
        [during] = wait_stats(server.log, 1)
        call.hang_up()
        answer_bye(member, leg.call_id)
        server.stop()
        final = wait_stats(server.log, 2)[-1]
    assert during["calls_active"] == 1 and during["rtp_ports_in_use"] == 2
    assert during["relayed"] == 5
    assert during["dropped_unexpected_source"] == 7
    assert during["dropped_bad_header"] == 3
    assert during["malformed"] == 1
    assert (final["invites"], final["calls"], final["bridged"]) == (1, 1, 1)
    assert final["calls_active"] == 0 and final["rtp_ports_in_use"] == 0
