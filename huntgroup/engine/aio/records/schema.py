"""The PostgreSQL schema of call records, and ``huntgroup records init-db``.

Theory of operation
-------------------
:data:`SCHEMA` is the whole schema, in statements that can all run again
(``CREATE ... IF NOT EXISTS``): :func:`init_db` applies it in one
transaction, so running it twice, or on a database a running server already
writes to, changes nothing; a column added by a later version is added to a
database made by an earlier one (``ADD COLUMN IF NOT EXISTS``, nullable: the
rows written before have NULL there). Every record carries a ``record_id`` (a UUID
given when the record is queued, kept across retries): it is the primary key,
and rows are inserted with ``ON CONFLICT DO NOTHING``, so a batch written
again after a commit whose outcome was unknown adds nothing
(:mod:`.postgres`). ``group`` and ``end`` are SQL keywords: the columns are
``group_name`` and ``end_at``. docs/operations.md quotes this schema verbatim.
"""

from __future__ import annotations

import psycopg

SCHEMA = """\
CREATE TABLE IF NOT EXISTS calls (
    record_id     uuid PRIMARY KEY,
    call_id       text NOT NULL,
    node          text NOT NULL,
    kind          text NOT NULL,          -- group | direct | outgoing
    group_name    text,
    pilot         text,
    caller        text NOT NULL,
    callee        text NOT NULL,
    identity      text NOT NULL,
    arrival       timestamptz NOT NULL,
    answer        timestamptz,
    end_at        timestamptz NOT NULL,
    wait_seconds  double precision NOT NULL,
    talk_seconds  double precision NOT NULL,
    member        text,
    outcome       text NOT NULL,          -- answered | abandoned | timeout | queue_full
                                          -- | no_answer | forwarded | refused
    release_code  integer NOT NULL,
    hangup        text NOT NULL,          -- caller | member | server
    queue_position integer                -- the caller's position when it entered the queue
);
ALTER TABLE calls ADD COLUMN IF NOT EXISTS queue_position integer;
CREATE INDEX IF NOT EXISTS calls_group_arrival ON calls (group_name, arrival);
CREATE INDEX IF NOT EXISTS calls_arrival ON calls (arrival);
CREATE INDEX IF NOT EXISTS calls_member_arrival ON calls (member, arrival)
    WHERE member IS NOT NULL;

CREATE TABLE IF NOT EXISTS call_offers (
    record_id  uuid NOT NULL REFERENCES calls (record_id) ON DELETE CASCADE,
    seq        integer NOT NULL,          -- 0, 1, ... in the order of the offers
    member     text NOT NULL,
    start_at   timestamptz NOT NULL,
    result     text NOT NULL,             -- answered | no_answer | busy | declined
                                          -- | unreachable | cancelled
    end_at     timestamptz,               -- when the offer ended (its result)
    PRIMARY KEY (record_id, seq)
);
ALTER TABLE call_offers ADD COLUMN IF NOT EXISTS end_at timestamptz;
CREATE INDEX IF NOT EXISTS call_offers_member_start ON call_offers (member, start_at);

CREATE TABLE IF NOT EXISTS member_changes (
    record_id   uuid PRIMARY KEY,
    at          timestamptz NOT NULL,
    group_name  text NOT NULL,
    member      text NOT NULL,
    action      text NOT NULL,            -- login | logout | pause | unpause
    reason      text NOT NULL,
    origin      text NOT NULL
);
CREATE INDEX IF NOT EXISTS member_changes_group_at ON member_changes (group_name, at);
"""

CONNECT_TIMEOUT = 5
"""Seconds a connection attempt may take (libpq ``connect_timeout``)."""


def connect(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    """A connection to ``dsn``, with :data:`CONNECT_TIMEOUT` and the application name."""
    return psycopg.connect(
        dsn, connect_timeout=CONNECT_TIMEOUT, application_name="huntgroup", autocommit=False
    )


def init_db(dsn: str) -> None:
    """Create the schema in the database of ``dsn`` (idempotent: see the module docstring)."""
    with connect(dsn) as conn:
        conn.execute(SCHEMA)  # several statements: psycopg sends them as one simple query
        conn.commit()
