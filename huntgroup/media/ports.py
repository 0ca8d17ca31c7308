"""RTP port allocation from the configured range.

Theory of operation
-------------------
Each media session needs an even RTP port and the odd port above it for RTCP
(RFC 3550 11). :class:`PortAllocator` owns the pairs inside ``LOW-HIGH``
(``server.media.rtp_ports``): an odd LOW starts at the next even port, and a
pair whose RTCP port would pass HIGH is left out.

Pairs are handed out in a random order, drawn from a generator the driver
injects (seeded in tests, so the order is reproducible there): the next call's
port cannot be guessed from the last one's, so an attacker cannot spray it
before the call starts (see docs/security.md, "RTP hijacking"). A released
pair first cools down in a FIFO queue holding up to half the range, and only
then rejoins the pool the draw is made from: stray packets of a finished call
are unlikely to reach the next one. When the pool is empty, the pair that has
cooled longest is handed out.

Invariants
----------
* ``allocate`` returns an even port ``p`` with ``LOW <= p`` and ``p + 1 <= HIGH``.
* A port is never handed out twice while in use.
* ``available + in_use == capacity`` at all times: no leak.
* The order depends only on the injected generator and the calls made.
"""

from __future__ import annotations

import random
import re
from collections import deque
from typing import Final

from huntgroup.errors import MediaError

__all__ = ["PortAllocator", "PortError", "PortsExhausted", "parse_port_range"]

_RANGE: Final = re.compile(r"\s*([0-9]{1,5})\s*-\s*([0-9]{1,5})\s*")


class PortError(MediaError):
    """A bad port range, or a port released that was not allocated."""


class PortsExhausted(PortError):
    """Every RTP port pair of the range is in use."""


def parse_port_range(text: str) -> tuple[int, int]:
    """``"LOW-HIGH"`` as two ints, checked to hold at least one even/odd pair."""
    m = _RANGE.fullmatch(text)
    if m is None:
        raise PortError(f"RTP port range {text!r} is not 'LOW-HIGH', e.g. '20000-20999'")
    low, high = int(m.group(1)), int(m.group(2))
    if not 1 <= low <= high <= 65535:
        raise PortError(f"RTP port range {text!r}: need 1 <= LOW <= HIGH <= 65535")
    first = low + (low % 2)
    if first + 1 > high:
        raise PortError(f"RTP port range {text!r} holds no even RTP port with its RTCP port")
    return low, high


class PortAllocator:
    """Even RTP ports (with RTCP on port + 1), handed out and taken back."""

    __slots__ = ("_cooling", "_cooling_max", "_in_use", "_pool", "_rng", "high", "low")

    def __init__(
        self, port_range: str | tuple[int, int], *, rng: random.Random | None = None
    ) -> None:
        if isinstance(port_range, str):
            low, high = parse_port_range(port_range)
        else:
            low, high = parse_port_range(f"{port_range[0]}-{port_range[1]}")
        self.low, self.high = low, high
        first = low + (low % 2)
        self._rng = rng if rng is not None else random.Random()
        self._pool: list[int] = list(range(first, high, 2))  # drawn from at random
        self._cooling: deque[int] = deque()  # released, oldest first
        self._cooling_max = len(self._pool) // 2
        self._in_use: set[int] = set()

    @property
    def capacity(self) -> int:
        """How many RTP/RTCP pairs the range holds."""
        return len(self._pool) + len(self._cooling) + len(self._in_use)

    @property
    def available(self) -> int:
        return len(self._pool) + len(self._cooling)

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def is_allocated(self, port: int) -> bool:
        return port in self._in_use

    def allocate(self) -> int:
        """An even RTP port; its RTCP port is the next one. Raises PortsExhausted."""
        pool = self._pool
        if pool:
            index = self._rng.randrange(len(pool))
            pool[index], pool[-1] = pool[-1], pool[index]
            port = pool.pop()
        elif self._cooling:
            port = self._cooling.popleft()
        else:
            raise PortsExhausted(
                f"all {self.capacity} RTP port pairs of {self.low}-{self.high} are in use; "
                "widen server.media.rtp_ports"
            )
        self._in_use.add(port)
        return port

    def release(self, port: int) -> None:
        """Give ``port`` (as returned by :meth:`allocate`) back to the range."""
        if port not in self._in_use:
            raise PortError(f"RTP port {port} is not allocated")
        self._in_use.remove(port)
        self._cooling.append(port)
        while len(self._cooling) > self._cooling_max:
            self._pool.append(self._cooling.popleft())
