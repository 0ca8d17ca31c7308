"""The Redis client of the shared state: one server or a Sentinel master, password, TLS.

Theory of operation
-------------------
``server.state`` names either one Redis server (``redis://``, ``rediss://``)
or a master monitored by Redis Sentinel (``redis+sentinel://``,
``rediss+sentinel://``, parsed by :mod:`huntgroup.config.state_url`). Both
give one ``redis.asyncio.Redis`` client that the driver uses the same way.

With Sentinel the client's pool (redis-py's ``SentinelConnectionPool``) asks
the sentinels for the master's address whenever it opens a connection. After a
failover the old master's connections fail (refused, reset, or ``READONLY``
once it is back as a replica, which redis-py turns into a connection error);
the driver treats that as Redis being away, keeps its changes and retries, and
the next connection goes to the master the sentinels promoted. Scripts are
reloaded on ``NOSCRIPT``: by redis-py's script object for a script run alone,
by :func:`run_pipeline` for the scripts it sends together in one round trip
(redis-py's own pipelines would ask ``SCRIPT EXISTS`` first, a second round
trip every time), and by :class:`FastLane`, the hot path's own connection
(a flush's scripts and a claim: commands packed and written at once on one
connection of the client's pool, no pipeline object per round trip).

The password is read here, at connection, from the environment variable or the
file ``server.state_auth`` names; the same credentials are given to the master
and its replicas; the sentinels get their own password (``sentinel_password_env``
or ``sentinel_password_file``), if they have one. ``server.state_tls``
gives the CA, an optional client certificate, and whether to verify the
server; TLS 1.2 is the minimum.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from huntgroup.config.models import StateAuthConfig, StateTlsConfig
from huntgroup.config.state_url import SentinelTarget, parse_state_url
from huntgroup.engine.aio.secret_file import SecretFileError, read_secret_file
from huntgroup.errors import StateError

MAX_PASSWORD_LENGTH = 4096


def redact(url: str) -> str:
    """``url`` without its password, for messages."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{port}" if port else "")
    return urlunsplit(parts._replace(netloc=netloc))


UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
"""Errors that mean Redis is away (what was to be written is kept and retried)."""


def read_password(
    auth: StateAuthConfig, environ: Mapping[str, str] | None = None, *, sentinel: bool = False
) -> str | None:
    """The Redis password ``auth`` names, or with ``sentinel`` the sentinels' (None: no
    password); StateError if it cannot be read."""
    env = os.environ if environ is None else environ
    what = "sentinel_password" if sentinel else "password"
    variable = auth.sentinel_password_env if sentinel else auth.password_env
    file = auth.sentinel_password_file if sentinel else auth.password_file
    if variable is not None:
        password = env.get(variable, "")
        if not password:
            raise StateError(
                f"server.state_auth.{what}_env: environment variable {variable} is unset or empty"
            )
    elif file is not None:
        where = f"server.state_auth.{what}_file: {file}"
        try:
            raw = read_secret_file(file, MAX_PASSWORD_LENGTH)
        except SecretFileError as err:
            raise StateError(f"{where}: {err}") from None
        try:
            password = raw.decode("utf-8").strip("\r\n")
        except UnicodeDecodeError:
            raise StateError(f"{where} is not UTF-8 text") from None
        if not password:
            raise StateError(f"{where} is empty")
    else:
        return None
    if len(password) > MAX_PASSWORD_LENGTH:
        raise StateError(f"the Redis password is longer than {MAX_PASSWORD_LENGTH} characters")
    return password


def tls_options(tls: StateTlsConfig) -> dict[str, Any]:
    """redis-py's connection options for ``tls``."""
    return {
        "ssl_ca_certs": tls.ca,
        "ssl_certfile": tls.certificate,
        "ssl_keyfile": tls.private_key,
        "ssl_cert_reqs": "required" if tls.verify else "none",
        "ssl_check_hostname": tls.verify,
        "ssl_min_version": ssl.TLSVersion.TLSv1_2,
    }


def redis_client(
    url: str,
    auth: StateAuthConfig,
    tls: StateTlsConfig,
    *,
    connect_timeout: float,
    environ: Mapping[str, str] | None = None,
    decode_responses: bool = True,
) -> aioredis.Redis:
    """The client of ``url``; StateError if the URL or the credentials are unusable.
    ``decode_responses=False``: replies stay bytes (values not trusted to be UTF-8)."""
    try:
        target = parse_state_url(url)
    except ValueError as err:
        raise StateError(f"server.state: {redact(url)!r} is not a Redis URL: {err}") from None
    common: dict[str, Any] = {
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": max(connect_timeout, 5.0),
        "retry": Retry(NoBackoff(), 0),
    }
    credentials = {"username": auth.username, "password": read_password(auth, environ)}
    if isinstance(target, SentinelTarget):
        sentinel_password = read_password(auth, environ, sentinel=True)
        return _sentinel_client(
            target, tls, common, credentials, sentinel_password, decode_responses
        )
    options = tls_options(tls) if url.startswith("rediss://") else {}
    try:
        return aioredis.from_url(
            url, decode_responses=decode_responses, **common, **credentials, **options
        )
    except ValueError as err:
        raise StateError(f"server.state: {redact(url)!r} is not a Redis URL: {err}") from None


def _sentinel_client(
    target: SentinelTarget,
    tls: StateTlsConfig,
    common: dict[str, Any],
    credentials: dict[str, Any],
    sentinel_password: str | None,
    decode_responses: bool = True,
) -> aioredis.Redis:
    options = {"ssl": True, **tls_options(tls)} if target.tls else {}
    sentinel = Sentinel(
        list(target.sentinels),
        sentinel_kwargs={
            **common,
            **options,
            "decode_responses": True,
            "password": sentinel_password,
        },
        **common,
        **options,
    )
    client: aioredis.Redis = sentinel.master_for(
        target.master,
        redis_class=aioredis.Redis,
        db=target.db,
        decode_responses=decode_responses,
        **credentials,
    )
    return client


async def close_client(client: aioredis.Redis) -> None:
    """Close ``client`` and, for a Sentinel master, its connections to the sentinels."""
    pool = client.connection_pool
    with contextlib.suppress(Exception):
        await client.aclose()
    if isinstance(pool, SentinelConnectionPool):
        with contextlib.suppress(Exception):
            await pool.sentinel_manager.aclose()


async def end_tasks(
    tasks: Iterable[asyncio.Task[Any]], grace: float, logger: logging.Logger, label: str
) -> None:
    """Wait for ``tasks`` (cancelled by the caller) at most ``grace`` s: one stuck on an
    await with no timeout must not hold a shutdown. Those that did not end are logged
    (and left cancelled), and so are those that had died of an error; none is raised."""
    tasks = list(tasks)
    if not tasks:
        return
    done, stuck = await asyncio.wait(tasks, timeout=grace)
    for task in stuck:
        logger.warning("%s task %s did not end when stopped", label, task.get_name())
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "%s task %s had ended on an error",
                label,
                task.get_name(),
                exc_info=task.exception(),
            )


async def run_pipeline(
    client: aioredis.Redis,
    fill: Callable[[Any], None],
    scripts: Iterable[str],
) -> list[Any]:
    """Run the commands ``fill`` queues on a pipeline (``EVALSHA`` of ``scripts`` among
    them) in one round trip, and return their answers, an exception object for a command
    Redis refused. A ``NOSCRIPT`` answer (a new master, a ``SCRIPT FLUSH``) loads
    ``scripts`` and runs the whole pipeline once more: its commands must bear running
    twice (the state's scripts do: a batch already applied is recognised, claims are
    written again as they were). A lost connection raises, as for any command."""
    results: list[Any] = []
    for attempt in range(2):
        pipe = client.pipeline(transaction=False)
        fill(pipe)
        results = await pipe.execute(raise_on_error=False)
        if attempt or not any(isinstance(r, NoScriptError) for r in results):
            break
        for script in scripts:
            await client.script_load(script)
    return results


class PackedCommands:
    """Commands gathered for :class:`FastLane` (the pipeline methods the hot path uses)."""

    __slots__ = ("commands",)

    def __init__(self) -> None:
        self.commands: list[tuple[Any, ...]] = []

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> None:
        self.commands.append(("EVALSHA", sha, numkeys, *keys_and_args))

    def zadd(self, key: str, mapping: Mapping[str, float]) -> None:
        pairs = [part for member, score in mapping.items() for part in (score, member)]
        self.commands.append(("ZADD", key, *pairs))

    def zrem(self, key: str, *members: str) -> None:
        self.commands.append(("ZREM", key, *members))


class FastLane:
    """The hot path's round trips (a flush's scripts, a claim) on ONE connection taken from
    the client's pool, packed and written at once, their replies read in order: none of a
    redis-py pipeline's or command's machinery per round trip (its objects, the pool's
    lock, the retry wrapper), while the connection itself stays redis-py's (password,
    TLS, the Sentinel master's address at every connect, ``READONLY`` turned into a
    connection error). One round trip at a time (a lock). Any failure, a cancellation
    included, drops the connection (a reply half read would poison the next); the next
    run connects again. ``NOSCRIPT`` loads the scripts and runs the commands once more,
    as :func:`run_pipeline` does."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._conn: Any = None
        self._lock = asyncio.Lock()

    async def run(
        self, fill: Callable[[PackedCommands], None], scripts: Iterable[str]
    ) -> list[Any]:
        """Like :func:`run_pipeline`: the answers of ``fill``'s commands, an exception object
        for a command Redis refused; a lost connection raises."""
        packed = PackedCommands()
        fill(packed)
        async with self._lock:
            results = await self._send(packed.commands)
            if any(isinstance(r, NoScriptError) for r in results):
                for script in scripts:
                    await self._client.script_load(script)
                results = await self._send(packed.commands)
        return results

    async def _send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        conn = self._conn
        if conn is None:
            pool = self._client.connection_pool
            conn = self._conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
            results: list[Any] = []
            for _ in commands:
                try:
                    results.append(await conn.read_response())
                except ResponseError as err:
                    results.append(err)
            return results
        except BaseException:
            await self._drop()
            raise

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect()
            with contextlib.suppress(Exception):
                await self._client.connection_pool.release(conn)

    async def close(self) -> None:
        """Give the connection back to the client's pool."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await self._client.connection_pool.release(conn)
