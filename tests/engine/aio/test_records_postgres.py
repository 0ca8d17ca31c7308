"""Call records in a real PostgreSQL (a private cluster, tests/support/postgres.py): the
schema, batches off the caller's thread, an outage, the pending bound, never twice."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import psycopg
import pytest

from huntgroup.cli import main
from huntgroup.engine.aio.records.postgres import PostgresSink
from huntgroup.engine.aio.records.schema import connect, init_db
from huntgroup.engine.b2bua.call_records import CallRecord, MemberChange, OfferRecord
from tests.support.postgres import PgCluster, postgres  # noqa: F401  (the fixture)
from tests.support.waiting import wait_until

T0 = 1_800_000_000.0


def record(i: int, *, offers: int = 2) -> CallRecord:
    return CallRecord(
        call_id=f"call-{i}@test",
        node="node-a",
        kind="group",
        group="Support",
        pilot="0140000000",
        caller="0612345678",
        callee="0140000000",
        identity="0612345678",
        arrival=T0 + i,
        answer=T0 + i + 5,
        end=T0 + i + 65,
        wait=5.0,
        talk=60.0,
        member=f"m{offers}",
        outcome="answered",
        release_code=200,
        offers=tuple(
            OfferRecord(f"m{k + 1}", T0 + i + k, "answered" if k == offers - 1 else "no_answer")
            for k in range(offers)
        ),
        hangup="caller",
    )


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
