"""``huntgroup serve`` and trust (docs/security.md): forged identities and foreign contacts.

A SIPp caller that writes a line's number in its From is still an outside
caller: the member's INVITE asserts nothing, and ``hunt_direct_calls`` treats
it as external. A P-Asserted-Identity is kept only from a trusted peer. A line
cannot register a contact on another host.
Run with:  pytest tests/integration/test_sipp_trust.py
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.ports import PortAllocator
from tests.support.sip_harness import DOMAIN, HuntgroupServer, Sipp, group, server_config

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

PILOT = "0140000000"
LINE_A = "0102030405"
LINE_B = "0102030406"
PASSWORD = "s3cret"
StartServer = Callable[[dict[str, Any]], HuntgroupServer]


def _md5_line(number: str, **options: Any) -> dict[str, Any]:
    """A line storing only ha1_md5: the server challenges it with MD5 alone, which SIPp needs."""
    ha1 = hashlib.md5(f"{number}:{DOMAIN}:{PASSWORD}".encode()).hexdigest()
    return {"number": number, "name": "SIPp line", "ha1_md5": ha1, **options}


def test_a_forged_from_of_a_line_is_not_asserted_and_counts_as_external(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    phone_a = sipp.member("phone_a", "noanswer")
    agent = sipp.member("agent", "answer", answer_ms=200)
    config = server_config(
        ports,
        lines=[_md5_line(LINE_A, no_answer_timeout=30), _md5_line(LINE_B)],
        groups=[
            group("G", PILOT, "linear", [LINE_A, agent.uri], hunt_direct_calls=True),
        ],
    )
    server = start_server(config)
    sipp.register("register", server.port, LINE_A, PASSWORD, contact_port=phone_a.port).wait()
    # An outside caller rings LINE_A: it is busy (ringing) from now on.
    first = sipp.call("first", server.port, LINE_A, "uac_cancel.xml", duration_ms=6000)
    server.wait_for_log(rf"ringing {LINE_A} \(direct\)")
    # Another outside caller claims to be LINE_B, a line of the company.
    forged = sipp.call("forged", server.port, LINE_A, caller=LINE_B, duration_ms=300)
    forged.expect_success()  # external: hunted into the group, the agent answers
    invites = agent.received("INVITE")
    assert len(invites) == 1
    assert invites[0].headers_named("P-Asserted-Identity") == []
    assert f"{LINE_B} -> line {LINE_A} (external)" in server.log()
    first.expect_success()


@pytest.mark.parametrize("trusted", [False, True])
def test_a_callers_pai_is_kept_from_a_trusted_peer_only(
    trusted: bool, sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    agent = sipp.member("agent", "answer", answer_ms=200)
    config = server_config(ports, groups=[group("G", PILOT, "linear", [agent.uri])])
    if trusted:
        config["server"]["trusted_peers"] = ["127.0.0.1"]
    server = start_server(config)
    caller = "0633333333" if trusted else LINE_A
    call = sipp.call("caller", server.port, PILOT, "uac_call_pai.xml", caller=caller)
    call.expect_success()
    invites = agent.received("INVITE")
    assert len(invites) == 1
    expected = [f"<sip:{caller}@pai.test>"] if trusted else []
    assert invites[0].headers_named("P-Asserted-Identity") == expected


def test_a_contact_on_another_host_is_refused_and_one_on_the_source_host_accepted(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    server = start_server(server_config(ports, lines=[_md5_line(LINE_A)]))
    target = ports.port()
    refused = sipp.register(
        "elsewhere",
        server.port,
        LINE_A,
        PASSWORD,
        contact_port=target,
        contact_host="127.0.0.2",
        scenario="uac_register_wrong.xml",  # 401, then 403 to the authenticated REGISTER
    )
    refused.expect_success()
    assert [m.status for m in refused.received(403)] == [403]
    server.wait_for_log(rf"line {LINE_A}: REGISTER from 127\.0\.0\.1:\d+ refused \(403\)")
    # the same line, a contact on its own host (another port than the REGISTER's): 200
    sipp.register("own", server.port, LINE_A, PASSWORD, contact_port=target).expect_success()
    server.wait_for_log(rf"line {LINE_A}: 1 contact\(s\) registered")
