"""``server.state``: what the setting names, parsed once for the check and the driver.

Theory of operation
-------------------
``server.state`` is ``memory`` or a URL:

- ``redis://HOST:PORT/DB`` (``rediss://`` for TLS): one Redis server;
- ``redis+sentinel://HOST:PORT,HOST:PORT/MASTER/DB`` (``rediss+sentinel://``
  for TLS to the sentinels and to the master): the sentinels to ask, the name
  of the master they monitor, the database number. The form is the one
  redis-py's own documentation and several clients (Dramatiq, Spring, the
  ``redis-sentinel-url`` package) use; Celery's ``sentinel://`` needs the master
  name in a separate option, which a single setting cannot carry.

A URL never carries a password (``redis://:secret@host``): the configuration
file is often readable by more people than the Redis password should be, so the
password comes from ``server.state_auth`` (an environment variable or a file).
A user name in the URL is refused too, to keep the credentials in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_SENTINELS = 16
"""The most sentinels one URL may list (three or five is usual)."""

_HOST_PORT = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9._-]+))(?::(?P<port>\d+))?$"
)
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """A master known to Redis Sentinel."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int
    tls: bool


def parse_state_url(value: str) -> str | SentinelTarget:
    """``value`` checked: a plain Redis URL as is, a Sentinel URL parsed; ValueError if bad."""
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("redis", "rediss", "redis+sentinel", "rediss+sentinel"):
        raise ValueError(
            "expected 'memory', a redis:// or rediss:// URL, or "
            "redis+sentinel://HOST:PORT,HOST:PORT/MASTER/DB"
        )
    netloc = rest.split("/", 1)[0]
    if "@" in netloc:
        raise ValueError(
            "the URL holds credentials: give the password in server.state_auth.password_env "
            "or server.state_auth.password_file (and the user in server.state_auth.username), "
            "never in the configuration file"
        )
    if not scheme.endswith("+sentinel"):
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError as err:
            raise ValueError(f"not a Redis URL: {err}") from None
        if not parts.hostname:
            raise ValueError("the Redis URL names no host")
        if port == 0:
            raise ValueError("port 0 is not a Redis port")
        return value
    return _sentinel(rest, tls=scheme == "rediss+sentinel")


def _sentinel(rest: str, *, tls: bool) -> SentinelTarget:
    netloc, _, path = rest.partition("/")
    segments = [s for s in path.split("/") if s] if path else []
    if not netloc or not 1 <= len(segments) <= 2 or "?" in rest or "#" in rest:
        raise ValueError("expected redis+sentinel://HOST:PORT,HOST:PORT/MASTER/DB")
    sentinels: list[tuple[str, int]] = []
    for item in netloc.split(","):
        m = _HOST_PORT.match(item)
        port = int(m.group("port") or 26379) if m else 0
        if m is None or not 1 <= port <= 65535:
            raise ValueError(f"{item!r} is not HOST:PORT (IPv6 in brackets) of a sentinel")
        sentinels.append((m.group("v6") or m.group("host"), port))
    if len(sentinels) > MAX_SENTINELS:
        raise ValueError(f"at most {MAX_SENTINELS} sentinels")
    master = segments[0]
    if not _NAME.match(master):
        raise ValueError(f"{master!r} is not a master name (letters, digits, '.', '_', '-')")
    db = segments[1] if len(segments) == 2 else "0"
    if not db.isdigit() or int(db) > 1_000_000:
        raise ValueError(f"{db!r} is not a database number")
    return SentinelTarget(tuple(sentinels), master, int(db), tls)
