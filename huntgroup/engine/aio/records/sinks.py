"""The report sinks that ``records:`` asks for, opened at start (docs/configuration.md)."""

from __future__ import annotations

import os
from pathlib import Path

from huntgroup.config.models import PostgresRecordsConfig, RecordsConfig
from huntgroup.engine.aio.records.jsonl import JsonLinesSink
from huntgroup.engine.aio.records.postgres import PostgresSink
from huntgroup.engine.aio.records.queue_log import QueueLogSink
from huntgroup.engine.aio.records.reports import ReportSink
from huntgroup.errors import ConfigError, ConfigProblem


def open_sinks(config: RecordsConfig) -> list[ReportSink]:
    """The sinks of ``config``; a file that cannot be opened raises OSError, a DSN that
    cannot be found, or a file's directory that cannot be created, ConfigError (the
    server does not start). A missing directory is created (mode 0750)."""
    sinks: list[ReportSink] = []
    queued = config.max_queued_lines
    if config.jsonl is not None:
        sinks.append(JsonLinesSink(_directory_made(config.jsonl, "jsonl"), max_queued=queued))
    if config.queue_log is not None:
        sinks.append(
            QueueLogSink(_directory_made(config.queue_log, "queue_log"), max_queued=queued)
        )
    if config.postgres is not None:
        pg = config.postgres
        sinks.append(
            PostgresSink(
                resolve_dsn(pg),
                batch_size=pg.batch_size,
                max_pending=pg.max_pending,
                max_pending_bytes=pg.max_pending_bytes,
                flush_interval=pg.flush_interval,
                spool=None if pg.spool is None else _directory_made(pg.spool, "postgres.spool"),
            )
        )
    return sinks


def _directory_made(path: str, key: str) -> str:
    """``path``, its directory created first when missing (ConfigError when it cannot)."""
    directory = Path(path).parent
    try:
        directory.mkdir(mode=0o750, parents=True, exist_ok=True)
    except OSError as err:
        message = f"cannot create the directory {directory} of {path}: {err.strerror or err}"
        raise _problem(key, message) from err
    return path


def resolve_dsn(config: PostgresRecordsConfig) -> str:
    """The connection string: ``dsn``, or the variable ``dsn_env``, or the file ``dsn_file``."""
    if config.dsn is not None:
        return config.dsn
    if config.dsn_env is not None:
        value = os.environ.get(config.dsn_env, "").strip()
        if not value:
            raise _problem(
                "postgres.dsn_env", f"the environment variable {config.dsn_env} is not set"
            )
        return value
    assert config.dsn_file is not None
    try:
        value = Path(config.dsn_file).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise _problem("postgres.dsn_file", str(err)) from err
    if not value:
        raise _problem("postgres.dsn_file", f"{config.dsn_file} is empty")
    return value


def _problem(key: str, message: str) -> ConfigError:
    """``records.{key}`` cannot be used (a DSN that cannot be found, a directory that
    cannot be created): the server's configuration is unusable."""
    return ConfigError([ConfigProblem("records", 0, 0, f"records.{key}", message)])
