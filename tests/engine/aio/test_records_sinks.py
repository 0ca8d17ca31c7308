"""The report fan-out and the file sinks: JSON lines, Asterisk queue_log, reopen on rotation."""

from __future__ import annotations

import json
import logging
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from huntgroup.config.models import Config, PostgresRecordsConfig
from huntgroup.engine.aio.records.jsonl import JsonLinesSink
from huntgroup.engine.aio.records.queue_log import QueueLogSink, call_lines, change_line
from huntgroup.engine.aio.records.reports import Reports
from huntgroup.engine.aio.records.sinks import resolve_dsn
from huntgroup.engine.b2bua.call_records import CallRecord, MemberChange, OfferRecord
from huntgroup.errors import ConfigError

T0 = 1_800_000_000.0
ANSWERED = CallRecord(
    call_id="abc@host",
    node="node-a",
    kind="group",
    group="Support",
    pilot="0140000000",
    caller="0612345678",
    callee="0140000000",
    identity="0612345678",
    arrival=T0,
    answer=T0 + 12,
    end=T0 + 72,
    wait=12.0,
    talk=60.0,
    member="m2",
    outcome="answered",
    release_code=200,
    offers=(OfferRecord("m1", T0, "no_answer"), OfferRecord("m2", T0 + 10, "answered")),
    hangup="member",
)


class Collect:
    def __init__(self) -> None:
        self.calls: list[CallRecord] = []
        self.changes: list[MemberChange] = []

    def call_ended(self, record: CallRecord) -> None:
        self.calls.append(record)

    def member_changed(self, change: MemberChange) -> None:
        self.changes.append(change)


class Broken:
    def call_ended(self, record: CallRecord) -> None:
        raise OSError("disk full")

    def member_changed(self, change: MemberChange) -> None:
        raise OSError("disk full")


def test_a_failing_sink_costs_only_its_own_work_and_is_logged_once_a_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reports = Reports()
    first, second = Collect(), Collect()
    reports.add(first)
    reports.add(Broken())
    reports.add(second)
    change = MemberChange(T0, "Support", "m1", "login", "", "api")
    with caplog.at_level(logging.WARNING, logger="huntgroup.records"):
        for _ in range(3):
            reports.deliver(ANSWERED)
        reports.member_changed(change)
    assert first.calls == second.calls == [ANSWERED] * 3
    assert first.changes == second.changes == [change]
    assert reports.failures == 4
    assert [r.getMessage() for r in caplog.records] == [
        "report sink Broken failed: OSError: disk full"
    ]


def test_json_lines_one_object_per_record_and_reopened_after_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    sink = JsonLinesSink(str(path))
    sink.call_ended(ANSWERED)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    path.rename(tmp_path / "calls.jsonl.1")  # logrotate moves the file, then SIGHUP
    sink.call_ended(replace(ANSWERED, call_id="second"))  # still the moved file
    sink.reopen()
    sink.member_changed(MemberChange(T0, "Support", "m1", "pause", "lunch", "api"))
    sink.close()
    old = [json.loads(x) for x in (tmp_path / "calls.jsonl.1").read_text().splitlines()]
    new = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["call_id"] for x in old] == ["abc@host", "second"]
    assert old[0] == {
        "type": "call",
        "call_id": "abc@host",
        "node": "node-a",
        "kind": "group",
        "group": "Support",
        "pilot": "0140000000",
        "caller": "0612345678",
        "callee": "0140000000",
        "identity": "0612345678",
        "arrival": T0,
        "answer": T0 + 12,
        "end": T0 + 72,
        "wait": 12.0,
        "talk": 60.0,
        "member": "m2",
        "outcome": "answered",
        "release_code": 200,
        "offers": [
            {"member": "m1", "start": T0, "result": "no_answer"},
            {"member": "m2", "start": T0 + 10, "result": "answered"},
        ],
    }
    assert new == [
        {
            "type": "member",
            "at": T0,
            "group": "Support",
            "member": "m1",
            "action": "pause",
            "reason": "lunch",
            "origin": "api",
        }
    ]


def test_queue_log_of_an_answered_call() -> None:
    t = int(T0)
    assert call_lines(ANSWERED) == [
        f"{t}|abc@host|Support|NONE|ENTERQUEUE||0612345678|1\n",
        f"{t + 10}|abc@host|Support|m1|RINGNOANSWER|10000\n",
        f"{t + 12}|abc@host|Support|m2|CONNECT|12|abc@host|2\n",
        f"{t + 72}|abc@host|Support|m2|COMPLETEAGENT|12|60|1\n",
    ]
    by_caller = replace(ANSWERED, hangup="caller")
    assert call_lines(by_caller)[-1] == f"{t + 72}|abc@host|Support|m2|COMPLETECALLER|12|60|1\n"


@pytest.mark.parametrize(
    ("outcome", "offers", "event"),
    [
        ("abandoned", (OfferRecord("m1", T0, "cancelled"),), "ABANDON"),
        ("timeout", (), "EXITWITHTIMEOUT"),
        ("no_answer", (OfferRecord("m1", T0, "busy"),), "EXITWITHTIMEOUT"),
        ("no_answer", (), "EXITEMPTY"),
        ("forwarded", (), "EXITWITHTIMEOUT"),
    ],
)
def test_queue_log_exits(outcome: str, offers: tuple[OfferRecord, ...], event: str) -> None:
    record = replace(
        ANSWERED, outcome=outcome, answer=None, member=None, wait=30.0, talk=0.0, offers=offers
    )
    lines = call_lines(record)
    assert lines[0].split("|")[4] == "ENTERQUEUE"
    assert lines[-1] == f"{int(T0) + 72}|abc@host|Support|NONE|{event}|1|1|30\n"
    busy = [x for x in lines if "|RINGNOANSWER|" in x]
    assert busy == (
        [f"{int(T0) + 72}|abc@host|Support|m1|RINGNOANSWER|0\n"]
        if offers and offers[0].result == "busy"
        else []
    )


def test_queue_log_full_queue_direct_calls_and_hostile_fields() -> None:
    full = replace(ANSWERED, outcome="queue_full", answer=None, member=None, offers=())
    assert call_lines(full) == [f"{int(T0)}|abc@host|Support|NONE|FULL\n"]
    assert call_lines(replace(ANSWERED, kind="direct", group=None)) == []
    hostile = replace(ANSWERED, caller="06|evil\n1|x|y|z|CONNECT")
    lines = call_lines(hostile)
    assert len(lines) == 4 and all(x.count("\n") == 1 for x in lines)
    assert lines[0] == f"{int(T0)}|abc@host|Support|NONE|ENTERQUEUE||06_evil_1_x_y_z_CONNECT|1\n"


def test_queue_log_member_changes(tmp_path: Path) -> None:
    pause = MemberChange(T0, "Support", "sip:m1@10.0.0.1", "pause", "lunch", "api")
    assert change_line(pause) == f"{int(T0)}|NONE|Support|sip:m1@10.0.0.1|PAUSE|lunch\n"
    login = MemberChange(T0, "Support", "0102030405", "login", "", "phone")
    assert change_line(login) == f"{int(T0)}|NONE|Support|0102030405|ADDMEMBER|\n"
    logout = replace(login, action="logout")
    assert change_line(logout).split("|")[4] == "REMOVEMEMBER"
    path = tmp_path / "queue_log"
    sink = QueueLogSink(str(path))
    sink.call_ended(ANSWERED)
    sink.member_changed(pause)
    sink.close()
    assert len(path.read_text().splitlines()) == 5


def test_records_settings_keep_passwords_out_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for dsn in (
        "host=db password=secret dbname=calls",
        "postgresql://huntgroup:secret@db/calls",
        "postgresql://db/calls?password=secret",
    ):
        with pytest.raises(ValueError, match="password"):
            PostgresRecordsConfig(dsn=dsn)
    with pytest.raises(ValueError, match="exactly one"):
        PostgresRecordsConfig(dsn="host=db", dsn_env="PGDSN")
    with pytest.raises(ValueError, match="exactly one"):
        PostgresRecordsConfig()
    assert resolve_dsn(PostgresRecordsConfig(dsn="host=db user=huntgroup")) == (
        "host=db user=huntgroup"
    )
    monkeypatch.setenv("HUNTGROUP_TEST_DSN", "host=db password=from-env")
    assert resolve_dsn(PostgresRecordsConfig(dsn_env="HUNTGROUP_TEST_DSN")).endswith("from-env")
    monkeypatch.delenv("HUNTGROUP_TEST_DSN")
    with pytest.raises(ConfigError, match="HUNTGROUP_TEST_DSN"):
        resolve_dsn(PostgresRecordsConfig(dsn_env="HUNTGROUP_TEST_DSN"))
    secret = tmp_path / "dsn"
    secret.write_text("host=db password=from-file\n")
    assert resolve_dsn(PostgresRecordsConfig(dsn_file=str(secret))) == "host=db password=from-file"
    config = Config.model_validate({"records": {"jsonl": "calls.jsonl"}})
    assert (config.records.jsonl, config.records.queue_log, config.records.postgres) == (
        "calls.jsonl",
        None,
        None,
    )
    assert Config().records.jsonl is None  # off unless set


def test_the_stats_line_gets_the_sinks_counters() -> None:
    class Counting(Collect):
        def counters(self) -> dict[str, int]:
            return {"records_pending": 3}

    reports = Reports()
    reports.add(Broken())
    reports.add(Counting())
    reports.deliver(ANSWERED)
    assert reports.counters() == {"records_sink_errors": 1, "records_pending": 3}
