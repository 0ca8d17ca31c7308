"""The harness and every SIPp scenario, caller against member, without the server.

Each UAC scenario is run against the UAS scenario it will meet through
huntgroup, so a broken scenario or harness fails here, not in a server test.
The registration scenarios are run against a small registrar built on
huntgroup's own digest authenticator, which offers SHA-256 first as the
server does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from huntgroup.config.models import Config, semantic_problems
from tests.support.ports import PortAllocator, udp_port_refuses
from tests.support.sip_harness import (
    DOMAIN,
    SCENARIOS,
    DigestRegistrar,
    Sipp,
    group,
    invites_in_order,
    member_uri,
    options_ping,
    parse_message_log,
    server_config,
    sipp_binary,
)
from tests.support.sip_messages import parse_message

pytestmark = pytest.mark.integration

PILOT = "0140000000"


def test_every_scenario_file_is_exercised_here() -> None:
    here = "\n".join(p.read_text() for p in Path(__file__).parent.rglob("test_*.py"))
    for path in sorted(SCENARIOS.glob("*.xml")):
        stem = path.stem
        named = f'"{path.name}"' in here or (
            stem.startswith("uas_") and f'"{stem.removeprefix("uas_")}"' in here
        )
        assert named, f"{path.name} is run by no integration test"


def test_answering_member_and_caller_who_hangs_up(sipp: Sipp) -> None:
    member = sipp.member("m1", "answer", answer_ms=300)
    caller = sipp.call("c1", member.port, PILOT, "uac_call.xml", duration_ms=200)
    caller.expect_success()
    assert [m.method for m in member.received("INVITE")] == ["INVITE"]
    invite = member.received("INVITE")[0]
    assert invite.request_uri == f"sip:{PILOT}@127.0.0.1:{member.port}"
    assert "m=audio" in invite.body and "PCMU/8000" in invite.body
    assert [m.status for m in caller.received(180)] == [180]
    ok = caller.received(200)[0]
    assert "m=audio" in ok.body
    assert len(member.received("ACK")) == 1 and len(member.received("BYE")) == 1
    # the member rang for about answer_ms before it answered (generous margin)
    assert ok.time - invite.time >= 0.25
    # the Contacts carry lowercase transport=udp
    assert "transport=udp" in (invite.header("Contact") or "")
    assert "transport=udp" in (ok.header("Contact") or "")


def test_session_timer_caller_and_member(sipp: Sipp) -> None:
    member = sipp.member("m1", "timer", answer_ms=100)
    caller = sipp.call("c1", member.port, PILOT, "uac_timer.xml", duration_ms=200)
    caller.expect_success()
    ok = caller.received(200)[0]
    assert ok.header("Session-Expires") == "1800;refresher=uas"
    assert ok.header("Require") == "timer"


def test_caller_cancels_a_ringing_answering_member(sipp: Sipp) -> None:
    member = sipp.member("m1", "answer", answer_ms=5000)
    caller = sipp.call("c1", member.port, PILOT, "uac_cancel.xml", duration_ms=300)
    caller.expect_success()
    assert len(member.received("CANCEL")) == 1
    assert [m.status for m in member.sent(487)] == [487]
    assert not member.sent(200) or all(m.cseq_method == "CANCEL" for m in member.sent(200))
    assert len(member.received("ACK")) == 1


def test_member_that_never_answers_is_cancelled(sipp: Sipp) -> None:
    member = sipp.member("m1", "noanswer")
    caller = sipp.call("c1", member.port, PILOT, "uac_cancel.xml", duration_ms=300)
    caller.expect_success()
    assert len(member.received("CANCEL")) == 1
    assert [m.status for m in caller.received(487)] == [487]
    assert [m.cseq_method for m in member.sent(487)] == ["INVITE"]


def test_busy_member_and_caller_expecting_486(sipp: Sipp) -> None:
    member = sipp.member("m1", "busy")
    caller = sipp.call("c1", member.port, PILOT, "uac_expect_busy.xml")
    caller.expect_success()
    assert [m.status for m in caller.received(486)] == [486]
    assert len(member.received("ACK")) == 1


@pytest.mark.parametrize(("behaviour", "status"), [("decline", 603), ("busy", 486)])
def test_rejecting_member_and_caller_expecting_any_reject(
    sipp: Sipp, behaviour: str, status: int
) -> None:
    member = sipp.member("m1", behaviour)  # type: ignore[arg-type]
    caller = sipp.call("c1", member.port, PILOT, "uac_expect_reject.xml")
    caller.expect_success()
    finals = [m.status for m in caller.messages() if m.status is not None and m.status >= 300]
    assert finals == [status]


def test_member_hangs_up_and_caller_receives_bye(sipp: Sipp) -> None:
    member = sipp.member("m1", "bye", answer_ms=200, hangup_ms=400)
    caller = sipp.call("c1", member.port, PILOT, "uac_wait_bye.xml")
    caller.expect_success()
    bye = caller.received("BYE")
    assert len(bye) == 1
    assert bye[0].call_id == member.received("INVITE")[0].call_id
    ack = member.received("ACK")[0]
    assert bye[0].time - ack.time >= 0.3  # hangup_ms, generous margin
    assert [m.status for m in member.received(200)] == [200]


def test_queue_caller_answered_with_sdp_then_released(sipp: Sipp) -> None:
    # uas_bye plays the server's part: answer with audio, hang up later (max_wait)
    stand_in = sipp.member("server", "bye", answer_ms=0, hangup_ms=600)
    caller = sipp.call("c1", stand_in.port, PILOT, "uac_queue.xml")
    caller.expect_success()
    assert len(caller.received("BYE")) == 1
    assert [m.status for m in caller.sent(200)] == [200]


def test_one_member_process_takes_several_calls_and_order_is_recorded(sipp: Sipp) -> None:
    m1 = sipp.member("m1", "answer", answer_ms=100)
    m2 = sipp.member("m2", "answer", answer_ms=100)
    for i, target in enumerate([m2, m1, m2]):
        sipp.call(f"c{i}", target.port, PILOT, "uac_call.xml", duration_ms=50).expect_success()
    assert invites_in_order({"m1": m1, "m2": m2}) == ["m2", "m1", "m2"]
    assert len({m.call_id for m in m2.received("INVITE")}) == 2


def test_members_answer_options_pings(sipp: Sipp) -> None:
    member = sipp.member("m1", "answer")
    assert options_ping(member.port, wait=2) == 200


def test_caller_to_an_unreachable_port_fails(sipp: Sipp, ports: PortAllocator) -> None:
    dead = ports.unreachable()
    assert udp_port_refuses(dead)
    assert options_ping(dead, wait=0.5) is None
    caller = sipp.call("c1", dead, PILOT, "uac_call.xml", timeout=4)
    assert caller.wait() != 0
    assert not caller.received(200)


def test_missing_sipp_fails_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(AssertionError, match="sip-tester"):
        sipp_binary()


def test_server_config_is_valid_against_the_contract(ports: PortAllocator) -> None:
    doc = server_config(
        ports,
        lines=[{"number": "0102030405", "ha1_md5": "0" * 32}],
        groups=[
            group(
                "Support",
                PILOT,
                "linear",
                [member_uri("m1", 40001), "0102030405"],
                queue={"max_length": 1, "max_wait": 5},
            )
        ],
    )
    config = Config.model_validate(yaml.safe_load(yaml.safe_dump(doc)))
    assert semantic_problems(config) == []
    listen = config.server.listen
    assert listen[0].startswith("udp:127.0.0.1:") and listen[1].startswith("tcp:127.0.0.1:")
    assert listen[0].rsplit(":", 1)[1] == listen[1].rsplit(":", 1)[1]
    low, high = config.server.media.port_range
    assert high - low + 1 == 40
    members = config.groups[0].ordered_members()
    assert members[0].uri == "sip:m1@127.0.0.1:40001" and members[1].line == "0102030405"
    assert config.groups[0].no_answer_timeout == 2


def test_port_allocator_never_repeats(ports: PortAllocator) -> None:
    seen = [ports.port() for _ in range(20)]
    assert len(set(seen)) == 20
    start = ports.block(10)
    assert not set(range(start, start + 10)) & set(seen)


def test_message_log_parser_reads_timestamps_and_headers(tmp_path: Path) -> None:
    log = tmp_path / "m.log"
    log.write_text(
        "----------------------------------------------- 2026-01-02 03:04:05.250000\n"
        "UDP message received [120] bytes :\n\n"
        "INVITE sip:0140000000@127.0.0.1:5060 SIP/2.0\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\n"
        "i: abc@h\nCSeq: 1 INVITE\nContent-Length: 3\n\nv=0\n\n"
        "----------------------------------------------- 2026-01-02 03:04:05.750000\n"
        "UDP message sent (80 bytes):\n\n"
        "SIP/2.0 486 Busy Here\nCall-ID: abc@h\nCSeq: 1 INVITE\n\n"
        "-----------------------------------------------\n"
        "Unexpected UDP message received:\n\nSIP/2.0 486 Busy Here\n\n"
    )
    first, second = parse_message_log(log)
    assert first.method == "INVITE" and first.direction == "received" and first.body == "v=0"
    assert first.call_id == "abc@h" and first.cseq_method == "INVITE"
    assert second.status == 486 and second.direction == "sent"
    assert second.time - first.time == pytest.approx(0.5)


def test_a_received_message_is_read_with_huntgroups_parser() -> None:
    data = (
        b"SIP/2.0 200 OK\r\n"
        b"v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK2\r\n"
        b"f: <sip:a@h>;tag=1\r\nt: <sip:b@h>;tag=2\r\n"
        b"i: abc@h\r\nCSeq: 7 BYE\r\nSupported: replaces,\r\n timer\r\n"
        b"l: 3\r\n\r\nv=0 and more"
    )
    message = parse_message(data, source=("127.0.0.1", 5060))
    assert (message.status, message.method, message.is_request) == (200, None, False)
    assert (message.call_id, message.cseq, message.cseq_method) == ("abc@h", (7, "BYE"), "BYE")
    assert message.tag("To") == "2" and message.tag("f") == "1"
    assert len(message.all("Via")) == 2 and message.headers_named("v") == message.all("Via")
    assert message.header("Supported") == "replaces, timer"
    assert message.body == "v=0" and message.source == ("127.0.0.1", 5060)


def test_a_message_the_parser_refuses_is_read_from_its_split_head() -> None:
    message = parse_message(b"INVITE sip:x@h SIP/2.0\r\ni: id\r\nContent-Length: 2\r\n\r\nabc")
    assert (message.method, message.request_uri, message.call_id) == ("INVITE", "sip:x@h", "id")
    assert message.body == "ab" and message.header("From") is None


# ----------------------------------------------------------------- registration


@pytest.fixture
def registrar_factory(ports: PortAllocator) -> Iterator[list[DigestRegistrar]]:
    made: list[DigestRegistrar] = []
    yield made
    for registrar in made:
        registrar.close()


def _registrar(made: list[DigestRegistrar], ports: PortAllocator, *algs: str) -> DigestRegistrar:
    registrar = DigestRegistrar(ports.port(), algs, "s3cret")
    made.append(registrar)
    return registrar


def test_register_with_md5_digest(
    sipp: Sipp, ports: PortAllocator, registrar_factory: list[DigestRegistrar]
) -> None:
    registrar = _registrar(registrar_factory, ports, "MD5")
    port = registrar.sock.getsockname()[1]
    reg = sipp.register(
        "r1", port, "0102030405", "s3cret", contact_port=45678, scenario="uac_register_auth.xml"
    )
    reg.expect_success()
    assert registrar.outcomes == [("MD5", f"sip:{DOMAIN}", "ok")]
    assert registrar.contacts == ["<sip:0102030405@127.0.0.1:45678;transport=udp>"]


def test_register_with_wrong_password_gets_403(
    sipp: Sipp, ports: PortAllocator, registrar_factory: list[DigestRegistrar]
) -> None:
    registrar = _registrar(registrar_factory, ports, "MD5")
    port = registrar.sock.getsockname()[1]
    reg = sipp.register(
        "r1", port, "0102030405", "wrong", contact_port=45678, scenario="uac_register_wrong.xml"
    )
    reg.expect_success()
    assert registrar.outcomes == [("MD5", f"sip:{DOMAIN}", "wrong password")]


def test_sipp_cannot_answer_a_sha256_first_challenge(
    sipp: Sipp, ports: PortAllocator, registrar_factory: list[DigestRegistrar]
) -> None:
    """Documents SIPp 3.6.1: it reads only the first challenge and knows only MD5.

    The server lists SHA-256 first (RFC 8760), so the server tests register
    lines that store only ``ha1_md5``, which are challenged with MD5 alone.
    """
    registrar = _registrar(registrar_factory, ports, "SHA-256", "MD5")
    port = registrar.sock.getsockname()[1]
    reg = sipp.register("r1", port, "0102030405", "s3cret", contact_port=45678)
    assert reg.wait() != 0
    assert "MD5" in reg.errors()
    assert registrar.outcomes == []
