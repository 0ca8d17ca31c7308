"""``huntgroup serve`` and option tags, against SIPp: an INVITE that requires 100rel (RFC 3262,
not supported) is refused with 420 Bad Extension and ``Unsupported: 100rel`` (RFC 3261
§8.2.2.3), and no member is rung."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.ports import PortAllocator
from tests.support.sip_harness import HuntgroupServer, Sipp, group, server_config

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

PILOT = "0140000000"


def test_invite_requiring_100rel_gets_420_with_unsupported(
    sipp: Sipp, ports: PortAllocator, start_server: Callable[[dict[str, Any]], HuntgroupServer]
) -> None:
    member = sipp.member("m1", "answer", answer_ms=100)
    server = start_server(server_config(ports, groups=[group("G", PILOT, "linear", [member.uri])]))
    caller = sipp.call("c1", server.port, PILOT, "uac_require_100rel.xml")
    caller.expect_success()
    refused = caller.received(420)[0]
    assert refused.header("Unsupported") == "100rel"
    assert "100rel" not in (refused.header("Supported") or "")
    assert member.received("INVITE") == []
