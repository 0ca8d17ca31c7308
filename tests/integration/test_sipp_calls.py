"""``huntgroup serve`` against real SIP peers: SIPp callers and SIPp members.

Members are SIPp UAS processes reached at fixed URIs ``sip:mN@127.0.0.1:PORT``
(or at the contact a line registered). Assertions are on the order of the
offers and on the SIP outcomes; times are only checked with wide margins.
Run with:  pytest tests/integration -m integration
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.ports import PortAllocator
from tests.support.sip_harness import (
    DOMAIN,
    HuntgroupServer,
    Sipp,
    SippProcess,
    group,
    invites_in_order,
    options_ping,
    server_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

PILOT = "0140000000"
StartServer = Callable[[dict[str, Any]], HuntgroupServer]


def _members(*procs: SippProcess) -> dict[str, SippProcess]:
    return {p.name: p for p in procs}


def _invite_sent(caller: SippProcess) -> float:
    return next(m.time for m in caller.sent("INVITE"))


def _one_group(
    ports: PortAllocator, algorithm: str, members: list[SippProcess], **options: Any
) -> dict[str, Any]:
    return server_config(
        ports, groups=[group("G", PILOT, algorithm, [m.uri for m in members], **options)]
    )


def test_server_answers_options_and_exits_on_sigterm(
    ports: PortAllocator, start_server: StartServer
) -> None:
    server = start_server(server_config(ports))
    assert options_ping(server.port, wait=2) == 200
    assert server.stop() == 0


# ----------------------------------------------------------------- algorithms


def test_linear_skips_no_answer_and_busy_until_m3_answers(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    m1 = sipp.member("m1", "noanswer")
    m2 = sipp.member("m2", "busy")
    m3 = sipp.member("m3", "answer", answer_ms=300)
    server = start_server(_one_group(ports, "linear", [m1, m2, m3], no_answer_timeout=2))
    caller = sipp.call("caller", server.port, PILOT, "uac_call.xml", duration_ms=500)
    caller.expect_success()

    assert invites_in_order(_members(m1, m2, m3)) == ["m1", "m2", "m3"]
    # m1 rang for no_answer_timeout, then got CANCEL (and answered 487)
    (invite1,) = m1.received("INVITE")
    (cancel1,) = m1.received("CANCEL")
    assert cancel1.time - invite1.time >= 1.5
    assert [m.cseq_method for m in m1.sent(487)] == ["INVITE"]
    # m2's 486 was acknowledged, m2 was not cancelled
    assert len(m2.received("ACK")) == 1 and not m2.received("CANCEL")
    # caller answered; its BYE ended the member's leg
    assert caller.final_status() == 200
    assert len(m3.received("ACK")) == 1
    assert len(m3.received("BYE")) == 1


def test_linear_releases_with_480_after_one_failed_pass(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    m1 = sipp.member("m1", "busy")
    m2 = sipp.member("m2", "decline")
    server = start_server(_one_group(ports, "linear", [m1, m2], no_answer_timeout=2))
    caller = sipp.call("caller", server.port, PILOT, "uac_expect_reject.xml")
    caller.expect_success()
    assert caller.final_status() == 480
    assert invites_in_order(_members(m1, m2)) == ["m1", "m2"]


def test_circular_replays_the_group_until_max_wait(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    m1 = sipp.member("m1", "busy")
    m2 = sipp.member("m2", "decline")
    server = start_server(
        _one_group(ports, "circular", [m1, m2], no_answer_timeout=2, queue={"max_wait": 3.5})
    )
    caller = sipp.call("caller", server.port, PILOT, "uac_expect_reject.xml")
    caller.expect_success()
    order = invites_in_order(_members(m1, m2))
    assert len(order) >= 4, order
    assert order == ["m1", "m2"] * (len(order) // 2) + ["m1"] * (len(order) % 2)
    assert caller.final_status() == 480


def test_round_robin_starts_after_the_member_who_took_the_last_call(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    members = [sipp.member(f"m{i}", "answer", answer_ms=100) for i in (1, 2, 3)]
    server = start_server(_one_group(ports, "round_robin", members, no_answer_timeout=2))
    for i in range(4):
        sipp.call(f"c{i}", server.port, PILOT, duration_ms=200).expect_success()
    assert invites_in_order(_members(*members)) == ["m1", "m2", "m3", "m1"]


def test_least_active_offers_the_least_talk_time_first(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    members = [sipp.member(f"m{i}", "answer", answer_ms=100) for i in (1, 2, 3)]
    server = start_server(_one_group(ports, "least_active", members, no_answer_timeout=2))
    # ties go to the lower position: m1, then m2, then m3; talk 2.0 s, 0.3 s, 1.0 s
    for i, talk_ms in enumerate([2000, 300, 1000, 300]):
        sipp.call(f"c{i}", server.port, PILOT, duration_ms=talk_ms).expect_success()
    assert invites_in_order(_members(*members)) == ["m1", "m2", "m3", "m2"]


def test_ring_all_first_answer_wins_and_the_other_legs_are_cancelled(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    m1 = sipp.member("m1", "noanswer")
    m2 = sipp.member("m2", "answer", answer_ms=500)
    m3 = sipp.member("m3", "answer", answer_ms=2500)
    server = start_server(_one_group(ports, "ring_all", [m1, m2, m3], no_answer_timeout=5))
    caller = sipp.call("caller", server.port, PILOT, duration_ms=500)
    caller.expect_success()

    invites = {name: p.received("INVITE")[0].time for name, p in _members(m1, m2, m3).items()}
    assert max(invites.values()) - min(invites.values()) < 1.0  # rung together
    assert caller.final_status() == 200
    for loser in (m1, m3):
        assert len(loser.received("CANCEL")) == 1, loser.name
        assert len(loser.sent(487)) == 1, loser.name
    assert not m2.received("CANCEL")
    assert len(m2.received("BYE")) == 1


# ----------------------------------------------------------------- queue


def test_full_queue_answers_486_and_max_wait_releases_the_queued_caller(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    m1 = sipp.member("m1", "answer", answer_ms=100)
    server = start_server(
        _one_group(
            ports, "linear", [m1], no_answer_timeout=2, queue={"max_length": 1, "max_wait": 3}
        )
    )
    talking = sipp.call("talking", server.port, PILOT, duration_ms=8000)
    # Each caller starts only once the server has taken the previous one in: the
    # three SIPp processes race otherwise (a loaded machine can start them out of order).
    server.wait_for_log(r"call \S+: bridged to sip:m1@")  # m1 is on the call
    queued = sipp.call("queued", server.port, PILOT, "uac_queue.xml")
    server.wait_for_log(r"call \S+: queued \(")  # the only place in the queue is taken
    refused = sipp.call("refused", server.port, PILOT, "uac_expect_busy.xml")

    refused.expect_success()
    assert refused.final_status() == 486
    queued.expect_success()
    ok = queued.received(200)[0]
    assert "m=audio" in ok.body  # hold music offered
    (bye,) = queued.received("BYE")
    assert bye.time - _invite_sent(queued) >= 2.5  # max_wait, from the call's arrival
    talking.expect_success()
    assert len(m1.received("INVITE")) == 1  # the queued caller was never offered


def test_max_wait_releases_a_caller_while_hunting(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    m1 = sipp.member("m1", "noanswer")
    server = start_server(
        _one_group(ports, "circular", [m1], no_answer_timeout=2, queue={"max_wait": 3})
    )
    caller = sipp.call("caller", server.port, PILOT, "uac_expect_reject.xml")
    caller.expect_success()
    assert caller.final_status() == 480
    final = next(m for m in caller.received(480))
    assert final.time - _invite_sent(caller) >= 2.5
    assert len(m1.received("CANCEL")) == len(m1.received("INVITE")) >= 1


# ----------------------------------------------------------------- hang-ups


def test_caller_cancel_while_ringing_cancels_every_leg(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    m1 = sipp.member("m1", "noanswer")
    m2 = sipp.member("m2", "answer", answer_ms=8000)
    server = start_server(_one_group(ports, "ring_all", [m1, m2], no_answer_timeout=5))
    caller = sipp.call("caller", server.port, PILOT, "uac_cancel.xml", duration_ms=1000)
    caller.expect_success()
    assert caller.final_status() == 487
    for member in (m1, m2):
        assert len(member.received("CANCEL")) == 1, member.name
        assert not [m for m in member.sent(200) if m.cseq_method == "INVITE"], member.name


def test_member_hangs_up_and_the_caller_gets_bye(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    m1 = sipp.member("m1", "bye", answer_ms=200, hangup_ms=800)
    server = start_server(_one_group(ports, "linear", [m1], no_answer_timeout=2))
    caller = sipp.call("caller", server.port, PILOT, "uac_wait_bye.xml")
    caller.expect_success()
    assert len(caller.received("BYE")) == 1
    assert [m.cseq_method for m in m1.received(200)] == ["BYE"]


def test_unreachable_member_counts_as_not_answering_at_once(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    dead_port = ports.unreachable()
    m2 = sipp.member("m2", "answer", answer_ms=200)
    config = server_config(
        ports,
        groups=[
            group(
                "G",
                PILOT,
                "linear",
                [f"sip:m1@127.0.0.1:{dead_port}", m2.uri],
                no_answer_timeout=10,
            )
        ],
    )
    config["server"]["timers"] = {"t1": 0.05}  # timer B = 64*T1 = 3.2 s if ICMP is ignored
    server = start_server(config)
    caller = sipp.call("caller", server.port, PILOT, duration_ms=300)
    caller.expect_success()
    assert caller.final_status() == 200
    # m2 was offered long before m1's no_answer_timeout (10 s) could run out
    assert m2.received("INVITE")[0].time - _invite_sent(caller) < 7


# ----------------------------------------------------------------- registration


def _md5_line(number: str, password: str) -> dict[str, Any]:
    """A line storing only ha1_md5: the server challenges it with MD5 alone, which SIPp needs."""
    ha1 = hashlib.md5(f"{number}:{DOMAIN}:{password}".encode()).hexdigest()
    return {"number": number, "name": "SIPp line", "ha1_md5": ha1}


def test_register_with_digest_then_calls_reach_the_registered_contact(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    line = "0102030405"
    phone = sipp.member("phone", "answer", answer_ms=200)
    config = server_config(
        ports,
        lines=[_md5_line(line, "s3cret")],
        groups=[group("G", PILOT, "linear", [line], no_answer_timeout=3)],
    )
    server = start_server(config)
    sipp.register("register", server.port, line, "s3cret", contact_port=phone.port).expect_success()

    via_group = sipp.call("via_group", server.port, PILOT, duration_ms=300)
    via_group.expect_success()
    direct = sipp.call("direct", server.port, line, duration_ms=300)
    direct.expect_success()

    invites = phone.received("INVITE")
    assert len(invites) == 2
    for invite in invites:
        assert (invite.request_uri or "").startswith(f"sip:{line}@127.0.0.1:{phone.port}")


def test_register_with_a_wrong_password_is_forbidden(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    line = "0102030405"
    server = start_server(server_config(ports, lines=[_md5_line(line, "s3cret")]))
    reg = sipp.register(
        "register",
        server.port,
        line,
        "wrong",
        contact_port=40000,
        scenario="uac_register_wrong.xml",
    )
    reg.expect_success()
    assert [m.status for m in reg.received(403)] == [403]
