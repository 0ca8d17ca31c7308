"""The report fan-out and the file sinks: JSON lines, Asterisk queue_log, reopen on rotation."""

from __future__ import annotations

import json
import logging
import stat
import threading
from dataclasses import replace
from pathlib import Path
from typing import TextIO

import pytest

from huntgroup.config import load_config
from huntgroup.config.models import Config, PostgresRecordsConfig, RecordsConfig
from huntgroup.engine.aio.records.jsonl import JsonLinesSink
from huntgroup.engine.aio.records.queue_log import QueueLogSink, change_line, event_line
from huntgroup.engine.aio.records.reports import Reports
from huntgroup.engine.aio.records.sinks import open_sinks, resolve_dsn
from huntgroup.engine.b2bua.call_records import CallRecord, MemberChange, QueueEvent
from huntgroup.errors import ConfigError
from tests.support.records import ANSWERED, T0
from tests.support.waiting import wait_until


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
        "position": 2,
        "offers": [
            {"member": "m1", "start": T0, "end": T0 + 10, "result": "no_answer"},
            {"member": "m2", "start": T0 + 10, "end": None, "result": "answered"},
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


def test_queue_log_lines_are_written_as_the_events_come_before_the_call_ends(
    tmp_path: Path,
) -> None:
    path = tmp_path / "queue_log"
    reports = Reports()
    reports.add(Collect())  # a sink without queue_event gets no queue events
    reports.add(QueueLogSink(str(path)))
    t = int(T0)
    reports.deliver(QueueEvent(T0, "abc@host", "Support", "NONE", "ENTERQUEUE", ("", "06", "2")))
    entered = f"{t}|abc@host|Support|NONE|ENTERQUEUE||06|2\n"
    wait_until(lambda: path.read_text() == entered, timeout=10, message="not written promptly")
    reports.deliver(QueueEvent(T0 + 10.6, "abc@host", "Support", "m1", "RINGNOANSWER", ("10600",)))
    reports.deliver(ANSWERED)  # the call's record writes nothing more
    ring = f"{t + 10}|abc@host|Support|m1|RINGNOANSWER|10600\n"
    wait_until(lambda: path.read_text() == entered + ring, timeout=10, message=path.read_text)
    assert reports.failures == 0


def test_queue_log_fields_full_and_hostile_callers() -> None:
    full = QueueEvent(T0, "abc@host", "Support", "NONE", "FULL", ("",))
    assert event_line(full) == f"{int(T0)}|abc@host|Support|NONE|FULL|\n"
    hostile = QueueEvent(
        T0, "x|y", "Support", "NONE", "ENTERQUEUE", ("", "06|evil\n1|x|y|z|CONNECT", "1")
    )
    assert event_line(hostile) == (
        f"{int(T0)}|x_y|Support|NONE|ENTERQUEUE||06_evil_1_x_y_z_CONNECT|1\n"
    )


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
    assert path.read_text().splitlines() == [change_line(pause).strip()]


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


def test_record_files_are_relative_to_the_config_and_their_directory_is_made(
    tmp_path: Path,
) -> None:
    config_file = tmp_path / "conf" / "huntgroup.yaml"
    config_file.parent.mkdir()
    config_file.write_text(
        "records:\n  jsonl: records/calls.jsonl\n  queue_log: /abs/queue_log\n", encoding="utf-8"
    )
    records = load_config(config_file).records
    assert records.jsonl == str(tmp_path / "conf" / "records" / "calls.jsonl")
    assert records.queue_log == "/abs/queue_log"
    assert records.jsonl is not None
    sinks = open_sinks(records.model_copy(update={"queue_log": None}))
    try:
        assert Path(records.jsonl).parent.is_dir() and Path(records.jsonl).exists()
    finally:
        for sink in sinks:
            sink.close()  # type: ignore[attr-defined]
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match=r"records\.queue_log.*cannot create the directory"):
        open_sinks(RecordsConfig(queue_log=str(blocker / "logs" / "queue_log")))


class Stalled:
    """A file whose writes block until released (a stalled disk), then go to ``file``."""

    def __init__(self, file: TextIO) -> None:
        self.file = file
        self.entered = threading.Event()
        self.release = threading.Event()
        self.closed = False

    def write(self, text: str) -> int:
        self.entered.set()
        self.release.wait()
        return self.file.write(text)

    def flush(self) -> None:
        self.file.flush()

    def fileno(self) -> int:
        return self.file.fileno()

    def close(self) -> None:
        self.file.close()
        self.closed = True


def test_a_stalled_file_never_blocks_the_caller_and_drops_beyond_the_bound_are_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "calls.jsonl"
    sink = JsonLinesSink(str(path), max_queued=5)
    stalled = Stalled(sink.file._file)
    sink.file._file = stalled  # type: ignore[assignment]
    sink.call_ended(replace(ANSWERED, call_id="c0"))
    wait_until(stalled.entered.is_set, timeout=10, message="the writer thread did not write")
    for i in range(1, 11):  # the thread is stuck in write(): these only queue
        sink.call_ended(replace(ANSWERED, call_id=f"c{i}"))
    # c0 (being written) and c1..c4 fill the bound: c5..c10 dropped
    assert (sink.file.dropped, sink.counters()) == (6, {"records_file_dropped": 6})
    assert any("dropped" in r.getMessage() for r in caplog.records)
    stalled.release.set()
    sink.close()
    ids = [json.loads(x)["call_id"] for x in path.read_text().splitlines()]
    assert ids == [f"c{i}" for i in range(5)]  # in order, the dropped ones missing
    assert stalled.closed


def test_many_lines_keep_their_order_across_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    sink = QueueLogSink(str(path))
    for i in range(300):
        if i == 150:
            path.rename(tmp_path / "queue_log.1")
            sink.reopen()
        sink.member_changed(MemberChange(T0 + i, "Support", f"m{i}", "pause", "", "api"))
    wait_until(lambda: path.exists() and len(path.read_text().splitlines()) == 150, timeout=10)
    sink.close()
    old = (tmp_path / "queue_log.1").read_text().splitlines()
    new = path.read_text().splitlines()
    assert [x.split("|")[3] for x in old + new] == [f"m{i}" for i in range(300)]
    assert len(old) == 150
