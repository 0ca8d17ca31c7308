"""Free loopback ports for the servers and peers the tests start.

Theory of operation: a port is "free" when this process can bind it on
127.0.0.1 right now (for UDP, and for TCP where asked); nothing holds it
afterwards, so the process the test starts binds it a moment later.

- :func:`free_port`: one port free for UDP and TCP, picked at random below the
  kernel's ephemeral ports (see below);
- :func:`free_port_range`: ``count`` consecutive UDP ports, the first even (an
  RTP range: RTP on even ports, RTCP on the next), picked at random below the
  kernel's ephemeral ports (32768 and up on Linux), which any socket may take
  between our check and the server's bind;
- :class:`PortAllocator`: both, never handing out the same port twice;
- :func:`udp_port_refuses`: whether a datagram to a port gets ICMP port unreachable.

What is bound, and what waits in a socket's queue, is read from the kernel's
socket tables (``/proc/net/udp``, ``/proc/net/tcp``, Linux): probing a port by
binding it ourselves could make the very process we wait for fail its own bind.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Collection, Sequence
from pathlib import Path

HOST = "127.0.0.1"
UDP_AND_TCP = (socket.SOCK_DGRAM, socket.SOCK_STREAM)
RANGE_LOW, RANGE_HIGH = 10000, 32000  # below the ephemeral ports


class NoFreePort(AssertionError):
    """No port (or block of ports) is free on loopback: the test cannot set up."""


def bindable(port: int, kinds: Sequence[int] = (socket.SOCK_DGRAM,)) -> bool:
    """True when ``127.0.0.1:port`` can be bound now, for every socket type of ``kinds``."""
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                return False
    return True


def free_port(*, taken: Collection[int] = ()) -> int:
    """A port free for both UDP and TCP on 127.0.0.1, not in ``taken``: picked at random
    below the kernel's ephemeral ports, which an outgoing connection of any process (a
    Redis client, a proxy) may take between our check and the server's bind."""
    rng = secrets.SystemRandom()
    for _ in range(200):
        port = rng.randrange(RANGE_LOW, RANGE_HIGH)
        if port not in taken and bindable(port, UDP_AND_TCP):
            return port
    raise NoFreePort("no loopback port free for both UDP and TCP")


def free_port_range(
    count: int, *, taken: Collection[int] = (), low: int = RANGE_LOW, high: int = RANGE_HIGH
) -> tuple[int, int]:
    """``(first, last)``: ``count`` consecutive UDP ports, first even, all free now."""
    rng = secrets.SystemRandom()
    for _ in range(200):
        first = rng.randrange(low, high - count) & ~1
        ports = range(first, first + count)
        if not any(p in taken for p in ports) and all(bindable(p) for p in ports):
            return first, first + count - 1
    raise NoFreePort(f"no {count} consecutive free UDP ports on loopback")


class PortAllocator:
    """Free loopback ports, each handed out once per allocator."""

    def __init__(self, low: int = RANGE_LOW, high: int = RANGE_HIGH) -> None:
        self._low, self._high = low, high
        self._given: set[int] = set()

    def port(self) -> int:
        """A port free for both UDP and TCP on 127.0.0.1 (see :func:`free_port`)."""
        port = free_port(taken=self._given)
        self._given.add(port)
        return port

    def block(self, count: int) -> int:
        """The first of ``count`` consecutive ports free for UDP (an RTP range)."""
        first, last = free_port_range(count, taken=self._given, low=self._low, high=self._high)
        self._given.update(range(first, last + 1))
        return first

    def unreachable(self) -> int:
        """A UDP port that nothing listens on: datagrams to it get ICMP port unreachable."""
        port = self.port()
        if not udp_port_refuses(port):
            raise NoFreePort(f"port {port} was expected to be closed")
        return port


def udp_port_refuses(port: int, *, wait: float = 1.0) -> bool:
    """True when a datagram to ``127.0.0.1:port`` is refused (ICMP port unreachable)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((HOST, port))
        s.settimeout(wait)
        try:
            s.send(b"\r\n\r\n")
            s.recv(1)
        except ConnectionRefusedError:
            return True
        except TimeoutError:
            return False
    return False


# ------------------------------------------------------------ socket tables
_LISTEN, _ESTABLISHED, _CLOSE_WAIT = "0A", "01", "08"  # the st column of /proc/net/tcp


def _table(name: str) -> list[list[str]]:
    """The rows of ``/proc/net/NAME`` (udp or tcp), split in fields."""
    rows = (Path("/proc/net") / name).read_text().splitlines()[1:]
    return [fields for fields in (row.split() for row in rows) if len(fields) > 4]


def _on_loopback(port: int) -> set[str]:
    """The local addresses of a socket on ``port`` of 127.0.0.1 or the wildcard, as listed."""
    return {f"0100007F:{port:04X}", f"00000000:{port:04X}"}


def _queued(fields: list[str]) -> int:
    """The rx_queue column of a row: bytes (or, listening, connections) not read yet."""
    return int(fields[4].split(":")[1], 16)


def udp_port_bound(port: int) -> bool:
    """True when some socket is bound to UDP ``port`` on 127.0.0.1 (or the wildcard)."""
    if not Path("/proc/net/udp").exists():
        return not bindable(port)
    wanted = _on_loopback(port)
    return any(fields[1] in wanted for fields in _table("udp"))


def datagrams_waiting(port: int) -> bool:
    """True while datagrams wait, unread, on the UDP socket bound to ``127.0.0.1:port``.

    Once that queue is empty the server has read, and so handled, everything
    sent to that port.
    """
    local = f"0100007F:{port:04X}"
    return any(_queued(fields) > 0 for fields in _table("udp") if fields[1] == local)


def tcp_port_listening(port: int) -> bool:
    """True when some socket listens on TCP ``port`` on 127.0.0.1 (or the wildcard), read
    from ``/proc/net/tcp`` where it exists (else by connecting to it)."""
    if not Path("/proc/net/tcp").exists():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(1)
            return probe.connect_ex((HOST, port)) == 0
    wanted = _on_loopback(port)
    return any(fields[1] in wanted and fields[3] == _LISTEN for fields in _table("tcp"))


def tcp_accept_backlog(port: int) -> int:
    """Connections waiting, not yet accepted, on the socket listening on TCP ``port``."""
    wanted = _on_loopback(port)
    return sum(
        _queued(fields)  # of a listening socket: its accept queue
        for fields in _table("tcp")
        if fields[1] in wanted and fields[3] == _LISTEN
    )


def tcp_server_side_open(port: int, peer: tuple[str, int]) -> bool:
    """True while the server on TCP ``port`` has not closed its side of the connection
    from ``peer`` (the entry is ESTABLISHED or CLOSE_WAIT: the peer's FIN not acted on)."""
    host = socket.inet_aton(peer[0])[::-1].hex().upper()
    remote = f"{host}:{peer[1]:04X}"
    return any(
        fields[2] == remote
        and fields[1].endswith(f":{port:04X}")
        and fields[3] in (_ESTABLISHED, _CLOSE_WAIT)
        for fields in _table("tcp")
    )
