"""SIGHUP with the live server: the changes are logged, calls in progress go on, a bad file
is refused and the running configuration stays."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import yaml

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
from tests.support.ports import free_port_range

pytestmark = pytest.mark.integration


def test_sighup_applies_a_good_file_refuses_a_bad_one_and_keeps_the_call(tmp_path: Path) -> None:
    first, second = SipUA("first", ("0.0.0.0", 0)), SipUA("second", ("0.0.0.0", 0))
    config = make_config(
        rtp_ports=free_port_range(8),
        members=[{"uri": f"sip:first@{LOOPBACK}:{first.port}", "position": 1}],
    )
    server = start_server(tmp_path, config)
    path = tmp_path / "huntgroup.yaml"
    caller, later = SipUA("caller", server.sip), SipUA("later", server.sip)
    audio = [RtpSocket() for _ in range(4)]
    with closing_all(first, second, caller, later, *audio, server):
        call_id = invite_pilot(caller, audio[0].port, ("PCMU",))
        leg, first_rtp = answer_invite(first, audio[1].port)
        call = await_answer(caller, call_id)

        # A good file: the second member joins, linear becomes round_robin.
        config["groups"][0]["algorithm"] = "round_robin"
        config["groups"][0]["members"].append(
            {"uri": f"sip:second@{LOOPBACK}:{second.port}", "position": 2}
        )
        path.write_text(yaml.safe_dump(config))
        server.process.send_signal(signal.SIGHUP)
        server.wait_log(r"reload: group Live: algorithm linear -> round_robin")
        server.wait_log(rf"reload: group Live: member sip:second@{LOOPBACK}:\d+ added")
        server.wait_log(r"reload: 1 group\(s\)")

        # A bad file: refused, with its error, and nothing changes.
        path.write_text(path.read_text().replace("round_robin", "spiral"))
        server.process.send_signal(signal.SIGHUP)
        server.wait_log(r"reload refused.*\n.*groups\.0\.algorithm")

        # The call bridged before both reloads still carries audio both ways.
        for i in range(5):
            audio[0].sendto(rtp(0, i, 160 * i, 0xA, b"\x01" * 160), call.server_rtp)
            audio[1].sendto(rtp(0, i, 160 * i, 0xB, b"\x02" * 160), first_rtp)
        assert len(audio[1].wait_for(5)) >= 5 and len(audio[0].wait_for(5)) >= 5

        # The first member is busy: the next call goes to the member the reload added.
        later_id = invite_pilot(later, audio[2].port, ("PCMU",))
        second_leg, _ = answer_invite(second, audio[3].port)
        later_call = await_answer(later, later_id)
        later_call.hang_up()
        answer_bye(second, second_leg.call_id)
        call.hang_up()
        answer_bye(first, leg.call_id)
    assert server.process.returncode == 0
