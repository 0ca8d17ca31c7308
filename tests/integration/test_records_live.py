"""Call records from a real ``huntgroup serve``: SIPp calls, the JSON-lines file, the
queue_log, a log rotation (move, then SIGHUP), and PostgreSQL stopped while calls go on."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from huntgroup.engine.aio.records.schema import init_db
from tests.support.ports import PortAllocator
from tests.support.postgres import PgCluster, postgres  # noqa: F401  (the fixture)
from tests.support.sip_harness import (
    CALLER_NUMBER,
    HuntgroupServer,
    Sipp,
    group,
    server_config,
)
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

PILOT = "0140000000"
SALES = "0140000001"  # a second group, whose member takes 5 s to answer
StartServer = Callable[[dict[str, Any]], HuntgroupServer]


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def calls_in(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT call_id, group_name, member, outcome FROM calls ORDER BY arrival"
        ).fetchall()


def test_records_of_real_calls_in_every_sink_through_a_rotation_and_a_db_outage(
    sipp: Sipp,
    ports: PortAllocator,
    start_server: StartServer,
    tmp_path: Path,
    postgres: PgCluster,  # noqa: F811
) -> None:
    init_db(postgres.dsn)
    jsonl, queue_log = tmp_path / "calls.jsonl", tmp_path / "queue_log"
    m1 = sipp.member("m1", "answer", answer_ms=200)
    slow = sipp.member("m2", "answer", answer_ms=5000)
    sales = group("Sales", SALES, "linear", [slow.uri], no_answer_timeout=20)
    config = server_config(ports, groups=[group("Support", PILOT, "linear", [m1.uri]), sales])
    config["records"] = {
        "jsonl": str(jsonl),
        "queue_log": str(queue_log),
        "postgres": {"dsn": postgres.dsn, "flush_interval": 0.1},
    }
    server = start_server(config)

    sipp.call("c1", server.port, PILOT, duration_ms=300).expect_success()
    first = json.loads(
        wait_until(lambda: lines_of(jsonl)[0] if lines_of(jsonl) else None, timeout=30)
    )
    assert (first["type"], first["group"], first["pilot"], first["caller"]) == (
        "call",
        "Support",
        PILOT,
        CALLER_NUMBER,
    )
    assert (first["outcome"], first["member"], first["release_code"]) == ("answered", m1.uri, 200)
    assert [x["result"] for x in first["offers"]] == ["answered"]
    assert first["talk"] > 0 and first["end"] >= first["answer"] >= first["arrival"]
    events = [x.split("|")[4] for x in lines_of(queue_log)]
    assert events == ["ENTERQUEUE", "CONNECT", "COMPLETECALLER"]
    wait_until(lambda: len(calls_in(postgres.dsn)) == 1, timeout=30)

    # logrotate: move the files, then SIGHUP; the next call goes to new files
    jsonl.rename(tmp_path / "calls.jsonl.1")
    queue_log.rename(tmp_path / "queue_log.1")
    assert server.popen is not None
    changed = {**config, "records": {**config["records"], "jsonl": str(tmp_path / "other.jsonl")}}
    server.config_file.write_text(yaml.safe_dump(changed, sort_keys=False))
    server.popen.send_signal(signal.SIGHUP)
    wait_until(jsonl.exists, timeout=30, message="the JSON-lines file was not reopened")
    server.wait_for_log(r"changes under 'records' take effect at the next restart")

    # PostgreSQL goes away: the call goes on, its record waits, then lands once
    postgres.stop()
    sipp.call("c2", server.port, PILOT, duration_ms=300).expect_success()
    second = json.loads(
        wait_until(lambda: lines_of(jsonl)[0] if lines_of(jsonl) else None, timeout=30)
    )
    assert second["outcome"] == "answered" and second["call_id"] != first["call_id"]
    assert len(lines_of(tmp_path / "calls.jsonl.1")) == 1
    assert [x.split("|")[4] for x in lines_of(queue_log)] == events
    server.wait_for_log(r"records\.postgres: could not write 1 record\(s\), 1 pending")
    postgres.start()
    wait_until(lambda: len(calls_in(postgres.dsn)) == 2, timeout=60)
    assert [r[0] for r in calls_in(postgres.dsn)] == [first["call_id"], second["call_id"]]

    # live: a caller's ENTERQUEUE is in the file while its call is up (its member
    # rings for 5 s); a second caller, queued behind it, enters at position 2
    def entered() -> list[list[str]]:
        return [x.split("|") for x in lines_of(queue_log) if "|Sales|NONE|ENTERQUEUE|" in x]

    c3 = sipp.call("c3", server.port, SALES, duration_ms=300)
    ringing = wait_until(lambda: entered() or None, timeout=30)[0]
    assert c3.popen.poll() is None  # the caller is still in its call
    assert [x for x in lines_of(queue_log) if x.split("|")[1] == ringing[1]] == ["|".join(ringing)]
    c4 = sipp.call("c4", server.port, SALES, duration_ms=300)
    waiting = wait_until(lambda: entered()[1] if len(entered()) == 2 else None, timeout=30)
    assert (ringing[7], waiting[7]) == ("1", "2")  # ENTERQUEUE|url|callerid|position
    c3.expect_success()
    c4.expect_success()
    assert server.stop() == 0
    assert not (tmp_path / "other.jsonl").exists()
