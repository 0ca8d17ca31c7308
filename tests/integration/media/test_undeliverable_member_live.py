"""A member whose phone is off is skipped at once: ICMP unreachable, or TCP refused.

The group rings a member that cannot be reached, then a member that answers.
With the default T1 (timer B = 32 s) and a 20 s no-answer timeout, the second
member is only offered the call quickly if the server took the transport
error as the first member's refusal (RFC 3261 §8.1.3.1: a 503).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
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
    start_server,
)
from tests.support.ports import free_port_range

pytestmark = pytest.mark.integration


def dead_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def refusing_tcp() -> Iterator[int]:
    """A TCP port that is bound but not listening: connections to it are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_the_next_member_is_rung_as_soon_as_the_first_is_unreachable(
    tmp_path: Path, request: pytest.FixtureRequest, transport: str
) -> None:
    if transport == "udp":
        dead = f"sip:off@{LOOPBACK}:{dead_udp_port()}"
    else:
        dead = f"sip:off@{LOOPBACK}:{request.getfixturevalue('refusing_tcp')};transport=tcp"
    member, caller = SipUA("member", ("0.0.0.0", 0)), SipUA("caller", ("0.0.0.0", 0))
    caller_audio, member_audio = RtpSocket(), RtpSocket()
    config = make_config(
        rtp_ports=free_port_range(4),
        members=[
            {"uri": dead, "position": 1},
            {"uri": f"sip:agent@{LOOPBACK}:{member.port}", "position": 2},
        ],
    )
    config["groups"][0]["no_answer_timeout"] = 20
    server = start_server(tmp_path, config)
    with closing_all(member, caller, caller_audio, member_audio, server):
        caller.server = server.sip
        started = time.monotonic()
        call_id = invite_pilot(caller, caller_audio.port, ("PCMU",))
        invite, _ = answer_invite(member, member_audio.port, timeout=10)
        offered_after = time.monotonic() - started
        call = await_answer(caller, call_id)
        call.hang_up()
        answer_bye(member, invite.call_id)
        log = server.log()
    # Timer B (32 s) and the no-answer timeout (20 s) are both far away.
    assert offered_after < 10, f"the second member was rung after {offered_after:.1f} s"
    assert "member sip:off" in log and "did not take the call (503)" in log, log


def test_a_member_named_by_host_name_is_reached_and_a_dead_name_is_skipped(
    tmp_path: Path,
) -> None:
    """``localhost`` resolves from /etc/hosts (no DNS needed); ``.invalid`` never resolves
    (RFC 6761): that member is skipped as unreachable, without blocking the server."""
    member, caller = SipUA("member", ("0.0.0.0", 0)), SipUA("caller", ("0.0.0.0", 0))
    caller_audio, member_audio = RtpSocket(), RtpSocket()
    config = make_config(
        rtp_ports=free_port_range(4),
        members=[
            {"uri": "sip:ghost@no-such-host.invalid:5060", "position": 1},
            {"uri": f"sip:agent@localhost:{member.port}", "position": 2},
        ],
        max_wait=120,
    )
    # Without DNS at all, the resolver may take its timeouts (glibc: up to ~30 s) to
    # fail: the no-answer timeout stays longer, so only the failure moves the hunt on.
    config["groups"][0]["no_answer_timeout"] = 90
    server = start_server(tmp_path, config)
    with closing_all(member, caller, caller_audio, member_audio, server):
        caller.server = server.sip
        call_id = invite_pilot(caller, caller_audio.port, ("PCMU",))
        invite, _ = answer_invite(member, member_audio.port, timeout=60)
        call = await_answer(caller, call_id)
        call.hang_up()
        answer_bye(member, invite.call_id)
        log = server.log()
    assert invite.start.startswith(f"INVITE sip:agent@localhost:{member.port}")
    assert "cannot resolve no-such-host.invalid" in log
    assert "member sip:ghost@no-such-host.invalid:5060 did not take the call (503)" in log
