"""Call records in a real PostgreSQL (a private cluster, tests/support/postgres.py): the
schema, batches off the caller's thread, an outage, the pending bound, never twice."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from huntgroup.cli import main
from huntgroup.engine.aio.records.jsonl import JsonLinesSink
from huntgroup.engine.aio.records.postgres import (
    OFFER_BYTES,
    RECORD_BYTES,
    PostgresSink,
    estimated_size,
)
from huntgroup.engine.aio.records.queue_log import QueueLogSink
from huntgroup.engine.aio.records.reports import Reports
from huntgroup.engine.aio.records.schema import connect, init_db
from huntgroup.engine.b2bua.call_records import MemberChange, QueueEvent
from tests.engine.b2bua.test_b2bua_call_records import PILOT, World
from tests.support.postgres import PgCluster, postgres  # noqa: F401  (the fixture)
from tests.support.records import PAUSE, T0, record
from tests.support.waiting import wait_until


def rows(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


@pytest.fixture
def db(postgres: PgCluster) -> Iterator[str]:  # noqa: F811
    """The cluster's DSN, with a fresh schema (the tables emptied)."""
    if not postgres.running():
        postgres.start()
    init_db(postgres.dsn)
    with psycopg.connect(postgres.dsn) as conn:
        conn.execute("TRUNCATE calls, call_offers, member_changes")
    yield postgres.dsn


def sink(dsn: str, **settings: Any) -> PostgresSink:
    options: dict[str, Any] = {"flush_interval": 0.05, "max_backoff": 0.2, **settings}
    return PostgresSink(dsn, **options)


def test_init_db_creates_the_schema_and_can_run_again(postgres: PgCluster) -> None:  # noqa: F811
    assert main(["records", "init-db", "--dsn", postgres.dsn]) == 0
    assert main(["records", "init-db", "--dsn", postgres.dsn]) == 0  # idempotent
    tables = rows(
        postgres.dsn,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    assert tables == [("call_offers",), ("calls",), ("member_changes",)]
    indexes = {r[0] for r in rows(postgres.dsn, "SELECT indexname FROM pg_indexes")}
    assert {"calls_group_arrival", "calls_arrival", "member_changes_group_at"} <= indexes


def test_init_db_adds_the_new_columns_to_an_older_database_and_they_are_written(
    db: str,
) -> None:
    with psycopg.connect(db) as conn:  # a database made before the columns existed
        conn.execute("ALTER TABLE calls DROP COLUMN queue_position")
        conn.execute("ALTER TABLE call_offers DROP COLUMN end_at")
    init_db(db)
    out = sink(db)
    first = record(0)
    out.call_ended(replace(first, position=3, offers=(replace(first.offers[0], end=T0 + 4.5),)))
    out.call_ended(record(1))  # made by hand: no position, no offer end
    wait_until(lambda: out.written == 2, timeout=30, message=lambda: f"written {out.written}")
    out.close()
    assert rows(db, "SELECT call_id, queue_position FROM calls ORDER BY call_id") == [
        ("call-0@test", 3),
        ("call-1@test", None),
    ]
    ends = rows(
        db,
        "SELECT c.call_id, o.seq, extract(epoch FROM o.end_at) FROM call_offers o "
        "JOIN calls c USING (record_id) ORDER BY c.call_id, o.seq",
    )
    assert ends == [
        ("call-0@test", 0, T0 + 4.5),
        ("call-1@test", 0, None),
        ("call-1@test", 1, None),
    ]


def test_records_land_with_their_offers_and_member_changes(db: str) -> None:
    out = sink(db)
    for i in range(3):
        out.call_ended(record(i, offers=i + 1))
    out.member_changed(MemberChange(T0, "Support", "m1", "pause", "lunch", "api"))
    wait_until(lambda: out.written == 4, timeout=30, message=lambda: f"written {out.written}")
    out.close()
    calls = rows(
        db,
        "SELECT call_id, group_name, member, outcome, wait_seconds, talk_seconds, "
        "extract(epoch FROM arrival), release_code, hangup FROM calls ORDER BY call_id",
    )
    assert calls == [
        (f"call-{i}@test", "Support", f"m{i + 1}", "answered", 5.0, 60.0, T0 + i, 200, "caller")
        for i in range(3)
    ]
    offers = rows(
        db,
        "SELECT c.call_id, o.seq, o.member, o.result FROM call_offers o "
        "JOIN calls c USING (record_id) ORDER BY c.call_id, o.seq",
    )
    assert len(offers) == 1 + 2 + 3
    assert offers[-1] == ("call-2@test", 2, "m3", "answered")
    assert rows(db, "SELECT action, reason FROM member_changes") == [("pause", "lunch")]
    assert (out.pending, out.dropped) == (0, 0)


def test_an_outage_delays_records_not_calls_and_each_lands_once(
    db: str,
    postgres: PgCluster,  # noqa: F811
) -> None:
    out = sink(db)
    out.call_ended(record(0))
    wait_until(lambda: out.written == 1, timeout=30)
    postgres.stop()  # mid-run
    for i in range(1, 21):  # the calls go on: each record is queued, nothing waits
        out.call_ended(record(i))
    wait_until(lambda: out.failures >= 2, timeout=60, message="no failed write was retried")
    assert out.pending == 20 and out.written == 1 and out.dropped == 0
    postgres.start()
    wait_until(lambda: out.written == 21, timeout=60, message=lambda: f"written {out.written}")
    out.close()
    counts = rows(db, "SELECT count(*), count(DISTINCT call_id) FROM calls")
    assert counts == [(21, 21)]
    assert rows(db, "SELECT count(*) FROM call_offers") == [(42,)]


class CommitLost:
    """A connection whose first commit reaches the server, then reports a failure: the
    outcome of the transaction is unknown to the writer, which tries again."""

    lost = 0

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def cursor(self) -> Any:
        return self._conn.cursor()

    def commit(self) -> None:
        self._conn.commit()
        if CommitLost.lost == 0:
            CommitLost.lost += 1
            raise psycopg.OperationalError("server closed the connection unexpectedly")

    def close(self) -> None:
        self._conn.close()


def test_a_batch_retried_after_an_ambiguous_commit_is_not_written_twice(db: str) -> None:
    out = sink(db, connector=lambda dsn: CommitLost(connect(dsn)), batch_size=10)
    for i in range(5):
        out.call_ended(record(i))
    wait_until(lambda: out.written == 5, timeout=30)
    out.close()
    assert CommitLost.lost == 1 and out.failures == 1
    assert rows(db, "SELECT count(*) FROM calls") == [(5,)]
    assert rows(db, "SELECT count(*) FROM call_offers") == [(10,)]


def test_beyond_max_pending_records_are_dropped_and_counted(
    db: str,
    postgres: PgCluster,  # noqa: F811
) -> None:
    postgres.stop()
    out = sink(db, max_pending=5)
    for i in range(8):
        out.call_ended(record(i))
    assert (out.pending, out.dropped) == (5, 3)
    assert out.counters()["records_dropped"] == 3
    postgres.start()
    wait_until(lambda: out.written == 5, timeout=60)
    out.close()
    assert rows(db, "SELECT count(*) FROM calls") == [(5,)]


def test_a_bad_record_is_rejected_logged_and_the_others_keep_flowing(
    db: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="huntgroup.records")
    out = sink(db, batch_size=10, flush_interval=0.5)
    out_of_range = replace(record(2), call_id="too-big@test", release_code=2**40)
    nul_member = replace(record(3), call_id="nul@test", member="m\x00")
    for item in (record(0), record(1), out_of_range, nul_member, record(4)):
        out.call_ended(item)
    wait_until(
        lambda: out.written + out.rejected == 5,
        timeout=30,
        message=lambda: f"written {out.written}, rejected {out.rejected}",
    )
    out.call_ended(record(5))  # later records keep flowing
    wait_until(lambda: out.written == 4, timeout=30, message=lambda: f"written {out.written}")
    out.close()
    assert out.rejected == 2 and out.counters()["records_rejected"] == 2
    assert out.failures == 0  # not retried
    assert rows(db, "SELECT call_id FROM calls ORDER BY call_id") == [
        (f"call-{i}@test",) for i in (0, 1, 4, 5)
    ]
    dead = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(dead) == 2  # each logged once, the record itself in it
    letters = [json.loads(line.split("not written: ", 1)[1]) for line in dead]
    assert [(x["call_id"], x["release_code"], x["member"]) for x in letters] == [
        ("too-big@test", 2**40, "m2"),
        ("nul@test", 200, "m\x00"),
    ]


def test_hostile_caller_text_reaches_every_sink(db: str, tmp_path: Path) -> None:
    """Bytes that were not UTF-8 (the SIP parser keeps them as lone surrogates), a NUL, a
    right-to-left override: each sink still writes the record."""
    hostile = replace(
        record(0),
        call_id="k\udcfe@evil",
        caller="06\udcff\x00",
        identity="\u202eÉvïl \udc80\U0001f600",
    )
    jsonl = JsonLinesSink(str(tmp_path / "calls.jsonl"))
    queue_log = QueueLogSink(str(tmp_path / "queue_log"))
    out = sink(db)
    reports = Reports()
    for each in (jsonl, queue_log, out):
        reports.add(each)
    event = QueueEvent(
        T0, hostile.call_id, "Support", "NONE", "ENTERQUEUE", ("", hostile.caller, "1")
    )
    reports.deliver(event)
    reports.deliver(hostile)
    wait_until(lambda: out.written + out.rejected == 1, timeout=30)
    reports.close()
    assert reports.failures == 0 and out.rejected == 0
    (line,) = (tmp_path / "calls.jsonl").read_text(encoding="utf-8").splitlines()
    assert '"caller":"06\\udcff\\u0000"' in line  # a JSON escape: read back as it came
    assert json.loads(line)["caller"] == hostile.caller
    (entered,) = (tmp_path / "queue_log").read_text(encoding="utf-8").splitlines()
    assert entered == f"{int(T0)}|k\\udcfe@evil|Support|NONE|ENTERQUEUE||06\\udcff_|1"
    assert rows(db, "SELECT call_id, caller, identity FROM calls") == [
        ("k\\udcfe@evil", "06\\udcff\\x00", "\u202eÉvïl \\udc80\U0001f600")
    ]


def test_beyond_max_pending_bytes_records_are_dropped_and_counted(
    db: str,
    postgres: PgCluster,  # noqa: F811
) -> None:
    postgres.stop()
    two_offers = estimated_size(record(0))
    assert two_offers == RECORD_BYTES + 2 * OFFER_BYTES
    out = sink(db, max_pending_bytes=3 * two_offers + 100)
    ring_all = replace(record(9), offers=record(9, offers=40).offers)
    out.call_ended(ring_all)  # alone beyond the bound: dropped, though the count is far
    for i in range(5):
        out.call_ended(record(i))
    assert (out.pending, out.dropped, out.pending_bytes) == (3, 3, 3 * two_offers)
    postgres.start()
    wait_until(lambda: out.written == 3, timeout=60)
    assert out.pending_bytes == 0
    out.call_ended(record(5))  # room again
    wait_until(lambda: out.written == 4, timeout=60)
    out.close()
    assert rows(db, "SELECT count(*) FROM calls") == [(4,)]


def test_records_left_at_a_shutdown_during_an_outage_are_spooled_then_written_once(
    db: str,
    postgres: PgCluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool" / "records.jsonl"
    spool.parent.mkdir()
    first = sink(db, spool=str(spool), close_timeout=30)
    first.call_ended(record(0))
    wait_until(lambda: first.written == 1, timeout=30)
    postgres.stop()
    for i in range(1, 4):  # calls end during the outage
        first.call_ended(record(i))
    first.member_changed(PAUSE)
    first.close()
    assert stat.S_IMODE(spool.stat().st_mode) == 0o600
    spooled = spool.read_text(encoding="ascii").splitlines()
    assert [json.loads(x)["type"] for x in spooled] == ["call"] * 3 + ["member"]
    assert rows_when_up(postgres, db, "SELECT count(*) FROM calls") == [(1,)]

    second = sink(db, spool=str(spool))  # the next start: the spool first
    wait_until(lambda: second.written == 4, timeout=60, message=lambda: f"{second.written}")
    wait_until(lambda: spool.stat().st_size == 0, timeout=30, message="the spool not emptied")
    second.close()
    assert spool.stat().st_size == 0
    assert rows(db, "SELECT call_id FROM calls ORDER BY call_id") == [
        (f"call-{i}@test",) for i in range(4)
    ]
    assert rows(db, "SELECT action FROM member_changes") == [("pause",)]

    spool.write_text("\n".join(spooled) + "\n", encoding="ascii")  # replayed once more
    third = sink(db, spool=str(spool))
    wait_until(lambda: spool.stat().st_size == 0, timeout=60, message="the spool not emptied")
    third.close()
    assert rows(db, "SELECT count(*) FROM calls") == [(4,)]  # never twice
    assert rows(db, "SELECT count(*) FROM call_offers") == [(8,)]
    assert rows(db, "SELECT count(*) FROM member_changes") == [(1,)]


def rows_when_up(postgres: PgCluster, dsn: str, sql: str) -> list[tuple[Any, ...]]:  # noqa: F811
    """``rows`` with the cluster started again."""
    postgres.start()
    return rows(dsn, sql)


def test_a_hostile_caller_over_sip_gets_its_record_in_every_sink(db: str, tmp_path: Path) -> None:
    """A caller with an odd display name (a right-to-left override, an emoji) and a URI
    user holding escaped bytes that are not UTF-8 and a NUL, through the B2BUA: its
    record and queue events reach the three sinks."""
    w = World()
    call = w.caller.invite(PILOT, from_user="06%FF%00x", display="\u202eÉvïl \U0001f600")
    w.answer(1, call)
    call.bye()
    w.caller.response(200, "BYE")
    w.m[1].respond(w.m[1].request("BYE"), 200)
    jsonl = JsonLinesSink(str(tmp_path / "calls.jsonl"))
    queue_log = QueueLogSink(str(tmp_path / "queue_log"))
    out = sink(db)
    reports = Reports()
    for each in (jsonl, queue_log, out):
        reports.add(each)
    for event in w.net.queue_events:
        reports.deliver(event)
    (built,) = w.net.records
    reports.deliver(built)
    wait_until(lambda: out.written + out.rejected == 1, timeout=30)
    reports.close()
    assert reports.failures == 0 and (out.written, out.rejected) == (1, 0)
    (line,) = (tmp_path / "calls.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["caller"] == built.caller == "06%FF%00x"  # as received
    events = [x.split("|")[4] for x in (tmp_path / "queue_log").read_text().splitlines()]
    assert events == ["ENTERQUEUE", "CONNECT", "COMPLETECALLER"]
    assert rows(db, "SELECT caller, identity FROM calls") == [("06%FF%00x", "06%FF%00x")]
