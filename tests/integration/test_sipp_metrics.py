"""``/metrics`` of a real ``huntgroup serve`` under SIPp calls: scraped over HTTP from the
admin listener and parsed with prometheus_client's parser."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.ports import PortAllocator
from tests.support.sip_harness import HOST, HuntgroupServer, Sipp, group, server_config

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

PILOT = "0140000000"
StartServer = Callable[[dict[str, Any]], HuntgroupServer]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain; version=")
        text = answer.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_a_queued_caller_and_an_answered_call_show_in_the_metrics(
    sipp: Sipp, ports: PortAllocator, start_server: StartServer
) -> None:
    m1 = sipp.member("m1", "answer", answer_ms=100)
    config = server_config(
        ports, groups=[group("G", PILOT, "linear", [m1.uri], queue={"max_wait": 2})]
    )
    admin_port = ports.port()
    config["server"]["admin"] = {"listen": f"{HOST}:{admin_port}"}
    server = start_server(config)
    idle = scrape(admin_port)
    assert value(idle, "huntgroup_queue_callers", group="G") == 0
    assert value(idle, "huntgroup_members", group="G", state="free") == 1

    # the queued caller gives up (max_wait) long before the talking one hangs up: m1 is
    # never offered it
    talking = sipp.call("talking", server.port, PILOT, duration_ms=6000)
    server.wait_for_log(r"call \S+: bridged to sip:m1@")
    queued = sipp.call("queued", server.port, PILOT, "uac_queue.xml")
    server.wait_for_log(r"call \S+: queued \(")
    busy = scrape(admin_port)
    assert value(busy, "huntgroup_queue_callers", group="G") == 1
    assert 0 <= value(busy, "huntgroup_queue_oldest_wait_seconds", group="G") < 2.5
    assert value(busy, "huntgroup_members", group="G", state="talking") == 1
    assert value(busy, "huntgroup_members", group="G", state="free") == 0
    assert value(busy, "huntgroup_calls_active") == 2
    assert value(busy, "huntgroup_media_sessions") == 2

    talking.expect_success()
    queued.expect_success()
    after = scrape(admin_port)
    received = "huntgroup_sip_requests_received_total"
    assert value(after, received, method="INVITE") == 2
    assert value(after, received, method="BYE") >= 1  # the talking caller's
    assert value(after, "huntgroup_sip_requests_sent_total", method="INVITE") == 1  # to m1
    assert value(after, "huntgroup_sip_requests_sent_total", method="BYE") >= 2
    assert value(after, "huntgroup_sip_responses_received_total", code="200") >= 1
    assert value(after, "huntgroup_sip_responses_sent_total", code="200") >= 2
    assert value(after, "huntgroup_calls_bridged_total") == 1
    assert value(after, "huntgroup_queue_callers", group="G") == 0
    assert value(after, "huntgroup_rtp_packets_sent_total", kind="music") > 0
    # the call records' sink: one answered call, one that waited max_wait in vain
    calls = "huntgroup_calls_total"
    assert value(after, calls, group="G", outcome="answered") == 1
    assert value(after, calls, group="G", outcome="timeout") == 1
    assert value(after, "huntgroup_member_answered_total", group="G", member=m1.uri) == 1
    gave_up = value(after, "huntgroup_wait_seconds_sum", group="G", answered="false")
    assert 1.5 <= gave_up <= 10  # max_wait: 2 s
    assert value(after, "huntgroup_wait_seconds_count", group="G", answered="true") == 1
    talk = value(after, "huntgroup_talk_seconds_sum", group="G")
    assert 5 <= talk <= 15  # the talking caller hangs up after 6 s
    assert value(after, "huntgroup_records_sink_errors_total") == 0
