"""/metrics: the scrape of a real server in this process, parsed with prometheus_client's
own parser (admin/metrics.py, server_collector.py, call_metrics.py)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import urllib.parse
from dataclasses import fields
from pathlib import Path

import aiohttp
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from huntgroup.admin.metrics import Metrics
from huntgroup.admin.server_collector import COUNTERS, GAUGES, PER_GROUP_GAUGES, RECORDS
from huntgroup.config.models import (
    AdminConfig,
    Config,
    GroupConfig,
    LineConfig,
    MediaConfig,
    MemberConfig,
    MetricsConfig,
    ServerConfig,
)
from huntgroup.engine.aio.media_io import MediaCounters
from huntgroup.engine.aio.records.jsonl import JsonLinesSink
from huntgroup.engine.aio.records.postgres import PostgresSink
from huntgroup.engine.aio.records.reports import Reports
from huntgroup.engine.aio.server import Server
from huntgroup.engine.b2bua.call_records import CallRecord
from huntgroup.engine.b2bua.stats import (
    OTHER_METHOD,
    OTHER_STATUS,
    ConnectionCounters,
    SipCounters,
    SipTraffic,
)
from huntgroup.node import start_admin
from huntgroup.queue.availability import MemberState
from tests.support.b2bua_peers import build, sdp
from tests.support.ports import free_port_range
from tests.support.waiting import async_wait_until

PILOT = "0140000000"
GROUP = "Support"
LINE = "0102030405"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def fetch(url: str) -> Samples:
    """GET /metrics, parsed by prometheus_client's parser."""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        return parse(await response.text())


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def config() -> Config:
    rtp_low, rtp_high = free_port_range(20)
    return Config(
        server=ServerConfig(
            listen=("udp:127.0.0.1:0",),
            admin=AdminConfig(listen="127.0.0.1:0"),
            media=MediaConfig(address="127.0.0.1", rtp_ports=f"{rtp_low}-{rtp_high}"),
        ),
        lines=(LineConfig(number=LINE, name="Agent", password="s3cret"),),
        groups=(
            GroupConfig(
                name="Support", pilot=PILOT, members=(MemberConfig(line=LINE, position=1),)
            ),
        ),
    )


def invite(port: int, server_port: int) -> bytes:
    uri = f"sip:{PILOT}@127.0.0.1:{server_port}"
    return build(
        f"INVITE {uri} SIP/2.0",
        [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-metrics-1;rport"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:0611111111@127.0.0.1:{port}>;tag=caller"),
            ("To", f"<{uri}>"),
            ("Call-ID", "metrics-call-1"),
            ("CSeq", "1 INVITE"),
            ("Contact", f"<sip:0611111111@127.0.0.1:{port}>"),
            ("Content-Type", "application/sdp"),
        ],
        sdp(port + 2),
    )


def test_a_queued_caller_shows_in_the_gauges_and_the_sip_counters() -> None:
    """A caller queued for a group whose one member has no phone registered: the scrape
    (real HTTP on the admin listener) shows it waiting, the member unavailable, the INVITE
    received, the answer sent."""

    async def scenario() -> tuple[Samples, Samples]:
        server = Server(config(), loop=asyncio.get_running_loop())
        await server.start()
        admin = await start_admin(server)
        assert admin is not None and admin.address is not None
        url = "http://{}:{}/metrics".format(*admin.address)
        caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        caller.bind(("127.0.0.1", 0))
        caller.setblocking(False)
        try:
            before = await fetch(url)
            server_port = server._udp[0][0].port
            caller.sendto(invite(caller.getsockname()[1], server_port), ("127.0.0.1", server_port))
            answers: list[bytes] = []

            def answered() -> bool:
                with contextlib.suppress(BlockingIOError):
                    answers.append(caller.recv(65536))
                return any(a.startswith(b"SIP/2.0 200 ") for a in answers)

            await async_wait_until(answered, timeout=10, message="the queue never answered")
            waited: list[Samples] = []

            async def grows() -> bool:  # the caller stays queued (max_wait: 120 s)
                waited.append(await fetch(url))
                return value(waited[-1], "huntgroup_queue_oldest_wait_seconds", group=GROUP) >= 0.3

            while not await grows():
                await asyncio.sleep(0.05)  # the polling period of a condition
            return before, waited[-1]
        finally:
            caller.close()
            await admin.stop()
            server.close()

    before, after = asyncio.run(scenario())
    assert value(before, "huntgroup_queue_callers", group="Support") == 0
    assert value(before, "huntgroup_queue_oldest_wait_seconds", group="Support") == 0
    assert value(after, "huntgroup_queue_callers", group="Support") == 1
    assert value(after, "huntgroup_calls_active") == 1
    assert value(after, "huntgroup_media_sessions") == 1
    assert value(after, "huntgroup_rtp_ports_in_use") == 1  # one pair, the caller's
    for state in MemberState:
        expected = 1 if state is MemberState.UNAVAILABLE else 0
        assert value(after, "huntgroup_members", group="Support", state=state.value) == expected
    received = "huntgroup_sip_requests_received_total"
    assert value(before, received, method="INVITE") == 0
    assert value(after, received, method="INVITE") == 1
    assert value(after, received, method="other") == 0
    assert value(after, "huntgroup_sip_responses_sent_total", code="200") >= 1
    assert value(after, "huntgroup_sip_messages_received_total") == 1
    assert value(after, "huntgroup_admission_refusals_total", reason="overload") == 0
    assert value(after, "huntgroup_draining") == 0
    assert "huntgroup_event_loop_lag_seconds" in {name for name, _ in after}
    assert value(after, "process_cpu_seconds_total") > 0


def test_every_stats_counter_and_gauge_has_its_prometheus_name() -> None:
    """The stats: line and /metrics read the same fields: none is left out, none is
    mapped twice (a new counter must be named in COUNTERS)."""
    mapped = [(source, field) for family in COUNTERS for source, field, _ in family.fields]
    assert len(mapped) == len(set(mapped))
    expected = {("sip", f.name) for f in fields(SipCounters)}
    expected |= {("media", f.name) for f in fields(MediaCounters)}
    expected |= {("conn", f.name) for f in fields(ConnectionCounters)}
    assert set(mapped) == expected
    names = [family.name for family in COUNTERS]
    assert len(names) == len(set(names)) and all(n.startswith("huntgroup_") for n in names)
    labelled = [family for family in COUNTERS if len(family.fields) > 1]
    assert all(family.label for family in labelled)


def test_every_gauge_of_the_server_is_exported() -> None:
    async def gauges() -> dict[str, int]:
        server = Server(config(), loop=asyncio.get_running_loop())
        await server.start()
        try:
            return server.gauges()
        finally:
            server.close()

    assert set(asyncio.run(gauges())) == set(GAUGES) | PER_GROUP_GAUGES
    assert not set(GAUGES) & PER_GROUP_GAUGES


def test_sip_traffic_keys_are_bounded() -> None:
    """A method nobody knows, a status beyond 699: counted, under 'other'."""
    traffic = SipTraffic(["INVITE", "BYE"])
    for method in ("INVITE", "FOO", "BAR", "BYE"):
        traffic.request_in(method)
    for status in (180, 200, 700, 999, 99):
        traffic.response_in(status)
    assert traffic.requests_in == {"BYE": 1, "INVITE": 1, OTHER_METHOD: 2}
    assert traffic.responses_in == {180: 1, 200: 1, OTHER_STATUS: 3}


def test_a_server_not_started_yet_has_only_the_process_metrics() -> None:
    async def scrape() -> Samples:
        metrics = Metrics(Server(config(), loop=asyncio.get_running_loop()))
        body, content_type = metrics.exposition()
        assert content_type.startswith("text/plain")
        return parse(body.decode())

    samples = asyncio.run(scrape())
    assert ("huntgroup_calls_active", ()) not in samples
    assert value(samples, "process_cpu_seconds_total") > 0


def test_every_metric_is_in_the_operators_guide() -> None:
    """docs/operations.md names every huntgroup_* family a scrape shows, as it is written."""

    async def families() -> set[str]:
        server = Server(config(), loop=asyncio.get_running_loop())
        await server.start()
        try:
            body, _ = Metrics(server).exposition()
        finally:
            server.close()
        return {f.name for f in text_string_to_metric_families(body.decode())}

    guide = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    ours = {name for name in asyncio.run(families()) if name.startswith("huntgroup_")}
    assert len(ours) > 40
    missing = [n for n in ours if f"`{n}_total`" not in guide and f"`{n}`" not in guide]
    assert missing == []


def test_every_call_records_count_has_its_prometheus_name(tmp_path: Path) -> None:
    """The stats: line's records_* keys (Server.reports.counters, the PostgreSQL writer's
    included) are all in RECORDS, each once."""

    def refuse(dsn: str) -> psycopg.Connection:
        raise psycopg.OperationalError("no database in this test")

    reports = Reports()
    sink = PostgresSink("dbname=none", connector=refuse, close_timeout=0.1)
    reports.add(sink)
    reports.add(JsonLinesSink(str(tmp_path / "calls.jsonl")))  # a file's counts too
    try:
        assert set(reports.counters()) == set(RECORDS)
    finally:
        reports.close()


def test_a_pause_through_the_api_shows_in_the_member_states_and_changes() -> None:
    """POST .../pause on the admin listener: the member counts as paused, and its change
    reaches the metrics through the call records' report sinks."""
    agent = "sip:agent@127.0.0.1:5999"
    base = config()
    group = GroupConfig(name=GROUP, pilot=PILOT, members=(MemberConfig(uri=agent, position=1),))
    paused_config = base.model_copy(update={"groups": (group,)})

    async def scenario() -> tuple[Samples, Samples]:
        server = Server(paused_config, loop=asyncio.get_running_loop())
        await server.start()
        admin = await start_admin(server)
        assert admin is not None and admin.address is not None
        base_url = "http://{}:{}".format(*admin.address)
        try:
            before = await fetch(f"{base_url}/metrics")
            member = urllib.parse.quote(agent, safe="")
            pause = f"{base_url}/api/v1/members/{GROUP}/{member}/pause"
            async with (
                aiohttp.ClientSession() as session,
                session.post(pause, json={"reason": "lunch"}) as answer,
            ):
                assert answer.status == 200
            return before, await fetch(f"{base_url}/metrics")
        finally:
            await admin.stop()
            server.close()

    before, after = asyncio.run(scenario())
    assert value(before, "huntgroup_members", group=GROUP, state="free") == 1
    assert value(before, "huntgroup_members", group=GROUP, state="paused") == 0
    assert value(after, "huntgroup_members", group=GROUP, state="paused") == 1
    assert value(after, "huntgroup_members", group=GROUP, state="free") == 0
    assert value(after, "huntgroup_member_changes_total", action="pause") == 1


def test_the_member_series_cap_holds_on_the_served_metrics() -> None:
    """server.admin.metrics.max_member_series: 1 on a real listener: the records the
    server's report sinks get count the first member apart, the second as "other"."""
    first, second = "sip:a@127.0.0.1:5998", "sip:b@127.0.0.1:5999"
    base = config()
    group = GroupConfig(
        name=GROUP,
        pilot=PILOT,
        members=(MemberConfig(uri=first, position=1), MemberConfig(uri=second, position=2)),
    )
    admin = AdminConfig(listen="127.0.0.1:0", metrics=MetricsConfig(max_member_series=1))
    capped = base.model_copy(
        update={"groups": (group,), "server": base.server.model_copy(update={"admin": admin})}
    )

    def answered(member: str) -> CallRecord:
        return CallRecord(
            call_id=f"{member}-call", node="n", kind="group", group=GROUP, pilot=PILOT,
            caller="0611111111", callee=PILOT, identity="0611111111", arrival=0.0,
            answer=5.0, end=65.0, wait=5.0, talk=60.0, member=member, outcome="answered",
            release_code=200, offers=(),
        )  # fmt: skip

    async def scenario() -> Samples:
        server = Server(capped, loop=asyncio.get_running_loop())
        await server.start()
        listener = await start_admin(server)
        assert listener is not None and listener.address is not None
        try:
            for member in (first, second, second):
                server.reports.deliver(answered(member))
            return await fetch("http://{}:{}/metrics".format(*listener.address))
        finally:
            await listener.stop()
            server.close()

    samples = asyncio.run(scenario())
    per_member = {
        dict(labels)["member"]: v
        for (name, labels), v in samples.items()
        if name == "huntgroup_member_answered_total"
    }
    assert per_member == {first: 1, "other": 2}
    assert value(samples, "huntgroup_calls_total", group=GROUP, outcome="answered") == 3


def test_the_overload_shedding_share_is_exported() -> None:
    """A node whose input stays a second late sheds new calls: /metrics shows the share."""

    async def scrape() -> tuple[Samples, Samples]:
        server = Server(config(), loop=asyncio.get_running_loop())
        await server.start()
        try:
            metrics = Metrics(server)
            before = parse(metrics.exposition()[0].decode())
            now = server.loop.time()
            admission = server.b2bua.admission
            for step in range(100, -1, -1):  # the last second: input 1 s late throughout
                admission.loop_lag(1.0, now=now - step / 100)
            after = parse(metrics.exposition()[0].decode())
        finally:
            server.close()
        return before, after

    before, after = asyncio.run(scrape())
    assert value(before, "huntgroup_overload_shedding_ratio") == 0
    assert value(after, "huntgroup_overload_shedding_ratio") > 0.5
    assert value(after, "huntgroup_event_loop_lag_seconds") > 0.1
