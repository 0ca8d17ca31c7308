"""Host names of SIP destinations, resolved without blocking the event loop.

Theory of operation
-------------------
A member URI or ``server.upstream`` may name a host (``sip:pbx.example.net``).
Resolving it with a plain ``sendto`` would block the whole server for as long
as DNS takes. :class:`HostResolver` resolves in the loop's executor
(``loop.getaddrinfo``) instead, one lookup per name at a time, and keeps the
answer for :data:`TTL` seconds (a failure for :data:`NEGATIVE_TTL`: a dead
name is not looked up for every datagram). Datagrams for a name being
resolved wait in a bounded queue; when the answer comes they leave in order,
or they are reported undeliverable (their request then fails with 503).

The address family is chosen among those the server has a socket for
(``families``), IPv4 first. RFC 3263 (NAPTR/SRV) is not used: the A/AAAA
records of the host are, with the URI's port.

Invariants: at most one lookup per name is in flight; at most
:data:`MAX_WAITING` datagrams wait per name; a cached answer is never older
than its TTL.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from huntgroup.memo import bounded_memo

log = logging.getLogger("huntgroup.resolver")

TTL = 60.0
NEGATIVE_TTL = 10.0
MAX_WAITING = 256
MAX_CACHED = 4096  # beyond, expired names are dropped

Deliver = Callable[[str], None]
"""Send the waiting datagram to this address."""
Fail = Callable[[], None]
"""Report the waiting datagram undeliverable."""


@bounded_memo()
def is_address(host: str) -> bool:
    """Whether ``host`` is an IP address (not a name). Memoized: asked for every
    datagram sent, about the same few peers."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(slots=True)
class _Entry:
    address: str | None  # None: the name does not resolve
    expires: float


@dataclass(slots=True)
class _Lookup:
    waiting: list[tuple[Deliver, Fail]] = field(default_factory=list)


class HostResolver:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        families: Iterable[socket.AddressFamily],
        *,
        ttl: float = TTL,
        negative_ttl: float = NEGATIVE_TTL,
    ) -> None:
        self.loop = loop
        self.families = tuple(dict.fromkeys(families)) or (socket.AF_INET,)
        self.ttl, self.negative_ttl = ttl, negative_ttl
        self._cache: dict[str, _Entry] = {}
        self._lookups: dict[str, _Lookup] = {}

    def resolve(self, host: str, deliver: Deliver, fail: Fail) -> None:
        """Call ``deliver(address)`` (at once when known) or ``fail()`` for ``host``."""
        entry = self._cache.get(host)
        if entry is not None and entry.expires > self.loop.time():
            if entry.address is None:
                fail()
            else:
                deliver(entry.address)
            return
        lookup = self._lookups.get(host)
        if lookup is None:
            lookup = self._lookups[host] = _Lookup()
            self.loop.create_task(self._lookup(host))
        if len(lookup.waiting) >= MAX_WAITING:
            fail()
            return
        lookup.waiting.append((deliver, fail))

    async def _lookup(self, host: str) -> None:
        address: str | None = None
        try:
            found = await self.loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
        except (OSError, UnicodeError) as err:
            log.warning("cannot resolve %s: %s", host, err)
        else:
            for family in self.families:
                address = next((str(a[4][0]) for a in found if a[0] == family), None)
                if address is not None:
                    break
            if address is None:
                log.warning("%s has no address of a family the server sends from", host)
        ttl = self.ttl if address is not None else self.negative_ttl
        now = self.loop.time()
        if len(self._cache) >= MAX_CACHED:
            self._cache = {h: e for h, e in self._cache.items() if e.expires > now}
        self._cache[host] = _Entry(address, now + ttl)
        lookup = self._lookups.pop(host)
        for deliver, fail in lookup.waiting:
            try:
                if address is None:
                    fail()
                else:
                    deliver(address)
            except Exception:  # one datagram's trouble must not strand the others
                log.exception("while sending to %s", host)
