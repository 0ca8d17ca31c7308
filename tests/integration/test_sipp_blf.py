"""``huntgroup serve`` and supervision keys (BLF, RFC 4235): SIPp subscribes and checks the XML.

A SIPp watcher (a line, digest-authenticated) subscribes to the dialog
events of another line, or of a pilot, and checks every NOTIFY with regexps
(``tests/integration/scenarios/uac_blf_*.xml``): a mismatch, a missing
NOTIFY or an extra one fails the SIPp run.
A SIPp phone that serves the package itself (``uas_dialog_notifier.xml``)
reports a call of its own: the server, subscribed to it (``watch_phones``),
turns it into LineActivity for the core (busy, then free).
Run with:  pytest tests/integration/test_sipp_blf.py
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.ports import PortAllocator
from tests.support.sip_harness import DOMAIN, HuntgroupServer, Sipp, group, server_config

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

PILOT = "0140000000"
LINE_A = "0102030405"  # watched
LINE_B = "0102030406"  # watches
PASSWORD = "s3cret"
StartServer = Callable[[dict[str, Any]], HuntgroupServer]


def _md5_line(number: str) -> dict[str, Any]:
    """A line storing only ha1_md5: the server challenges it with MD5 alone, which SIPp needs."""
    ha1 = hashlib.md5(f"{number}:{DOMAIN}:{PASSWORD}".encode()).hexdigest()
    return {"number": number, "name": f"Line {number[-2:]}", "ha1_md5": ha1}


def test_a_key_on_a_line_follows_ringing_talking_and_hanging_up(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    phone_a = sipp.member("phone_a", "bye", answer_ms=1500, hangup_ms=1500)
    config = server_config(ports, lines=[_md5_line(LINE_A), _md5_line(LINE_B)])
    server = start_server(config)
    sipp.register("register", server.port, LINE_A, PASSWORD, contact_port=phone_a.port).wait()
    key = sipp.watch("key", server.port, LINE_B, PASSWORD, LINE_A, "uac_blf_line.xml")
    server.wait_for_log(rf"line {LINE_B} watches {LINE_A} for 600 s")
    call = sipp.call("caller", server.port, LINE_A, "uac_wait_bye.xml")
    call.expect_success()
    key.expect_success()
    notifies = key.received("NOTIFY")
    assert len(notifies) == 5
    assert f"line {LINE_B} stops watching {LINE_A}" in server.log()


def test_a_key_on_a_pilot_shows_waiting_callers(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    agent = sipp.member("agent", "answer", answer_ms=1000)
    config = server_config(
        ports,
        lines=[_md5_line(LINE_B)],
        groups=[group("G", PILOT, "linear", [agent.uri], no_answer_timeout=10)],
    )
    server = start_server(config)
    key = sipp.watch("key", server.port, LINE_B, PASSWORD, PILOT, "uac_blf_pilot.xml")
    server.wait_for_log(rf"line {LINE_B} watches {PILOT} for 600 s")
    first = sipp.call("first", server.port, PILOT, duration_ms=6000)
    server.wait_for_log(r"call \S+: bridged to")
    second = sipp.call("second", server.port, PILOT, duration_ms=3000)  # music, then BYE
    server.wait_for_log(r"call \S+: queued \(answered\)")
    key.expect_success()
    first.expect_success()
    second.expect_success()
    assert len(key.received("NOTIFY")) == 5


def test_a_phone_that_reports_its_own_call_makes_its_line_busy_then_free(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    phone = sipp.member("phone", "dialog_notifier", answer_ms=1500)
    config = server_config(
        ports,
        lines=[_md5_line(LINE_A)],
        groups=[group("G", PILOT, "linear", [LINE_A])],
    )
    config["server"]["subscriptions"] = {"watch_phones": True}
    server = start_server(config)
    sipp.register("register", server.port, LINE_A, PASSWORD, contact_port=phone.port).wait()
    server.wait_for_log(rf"line {LINE_A}: subscribing to its phone's dialog events")
    server.wait_for_log(rf"line {LINE_A}: busy on its own")
    server.wait_for_log(rf"line {LINE_A}: free on its own")
    phone.expect_success()
    assert "not watched" not in server.log()


def test_by_default_only_a_phone_that_advertises_dialog_is_watched_and_kept_from_group_calls(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    """The default ``watch_phones: auto``: LINE_A's phone registers with ``Allow-Events:
    dialog`` and gets our SUBSCRIBE; its own call (8 s) makes LINE_A busy, so a group
    call goes to LINE_B (first in the linear order is LINE_A). LINE_B's SIPp phone
    registers without Allow-Events and gets no SUBSCRIBE; the notifier gets no INVITE
    (an unexpected request would fail its run)."""
    phone = sipp.member("phone", "dialog_notifier", answer_ms=8000)
    agent = sipp.member("agent", "answer", answer_ms=300)
    config = server_config(
        ports,
        lines=[_md5_line(LINE_A), _md5_line(LINE_B)],
        groups=[group("G", PILOT, "linear", [LINE_A, LINE_B])],
    )
    assert "subscriptions" not in config["server"]  # the default configuration
    server = start_server(config)
    sipp.register("register_b", server.port, LINE_B, PASSWORD, contact_port=agent.port).wait()
    server.wait_for_log(rf"line {LINE_B}: 1 contact\(s\) registered")
    sipp.register(
        "register_a",
        server.port,
        LINE_A,
        PASSWORD,
        contact_port=phone.port,
        scenario="uac_register_auth_dialog.xml",
    ).wait()
    server.wait_for_log(rf"line {LINE_A}: busy on its own")
    call = sipp.call("caller", server.port, PILOT, duration_ms=1000)
    call.expect_success()
    server.wait_for_log(rf"call \S+: bridged to {LINE_B}")
    server.wait_for_log(rf"line {LINE_A}: free on its own")
    phone.expect_success()
    log = server.log()
    assert log.count("subscribing to its phone's dialog events") == 1
    assert f"line {LINE_B}: subscribing" not in log
    assert not re.search(rf"bridged to {LINE_A}", log)
    assert agent.received("SUBSCRIBE") == []
    assert len(agent.received("INVITE")) == 1
    assert phone.received("INVITE") == []
