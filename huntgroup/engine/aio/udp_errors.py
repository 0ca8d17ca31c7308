"""ICMP errors on the SIP UDP sockets: which datagram could not be delivered, and to whom.

Theory of operation
-------------------
A member whose phone is off answers an INVITE with an ICMP "port
unreachable" (or its router with "host unreachable"). RFC 3261 §8.1.3.1 and
§17.1.4 treat that as a transport error, which the transaction reports as a
503 at once, instead of retransmitting for 32 s (timer B).

On Linux an unconnected UDP socket only reports ICMP errors with
``IP_RECVERR`` (``IPV6_RECVERR``) set. Each error is then queued on the
socket's error queue with the destination and the payload of the datagram
that failed, read by ``recvmsg(MSG_ERRQUEUE)``: the payload names the SIP
transaction (its Via branch), so exactly that transaction fails.

The socket also keeps the last error pending, and the next ``recvfrom`` or
``sendto`` on it returns it, whatever that call's own datagram. So:

- the error queue is drained whenever the pending error shows up (on a
  receive, asyncio's ``error_received``; on a send, :func:`send`), or a
  level-triggered poller would wake up forever on a non-empty queue;
- :func:`send` retries a datagram once when its ``sendto`` only carried
  the error of an earlier datagram: no datagram is lost to another's error.

Invariants: at most :data:`MAX_DRAIN` errors are read per drain; a send is
tried at most twice.
"""

from __future__ import annotations

import errno
import socket
import struct
import sys
from dataclasses import dataclass

IP_RECVERR = 11  # <linux/in.h>; not exported by the socket module
IPV6_RECVERR = 25  # <linux/in6.h>
MAX_DRAIN = 256
DELIVERY_ERRORS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EHOSTDOWN,
        errno.ENETDOWN,
        errno.EPROTO,
    }
)
"""The errors an ICMP message turns into (destination/port/protocol unreachable)."""
_EXTENDED_ERR = struct.Struct("=IBBBxII")  # struct sock_extended_err


@dataclass(frozen=True, slots=True)
class Undelivered:
    """A datagram we sent that came back as an ICMP error."""

    data: bytes  # its payload (as much of it as the kernel kept)
    destination: tuple[str, int]
    error: int  # errno: ECONNREFUSED for "port unreachable"...


def enable(sock: socket.socket) -> bool:
    """Ask the kernel to queue ICMP errors on ``sock``; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    except OSError:
        return False
    return True


def drain(sock: socket.socket) -> list[Undelivered]:
    """Read every queued ICMP error of ``sock`` (never blocks)."""
    found: list[Undelivered] = []
    for _ in range(MAX_DRAIN):
        try:
            data, ancillary, _flags, address = sock.recvmsg(
                65535, 512, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT
            )
        except OSError:  # BlockingIOError included: the queue is empty
            break
        error = errno.EIO
        for level, _kind, cdata in ancillary:
            if level in (socket.IPPROTO_IP, socket.IPPROTO_IPV6) and len(cdata) >= 16:
                error = _EXTENDED_ERR.unpack_from(cdata)[0]
        if isinstance(address, tuple) and len(address) >= 2:
            found.append(Undelivered(data, (str(address[0]), int(address[1])), error))
    return found


def send(sock: socket.socket, data: bytes, destination: tuple[str, int]) -> list[Undelivered]:
    """``sendto`` that survives the pending error of an earlier datagram.

    Returns the ICMP errors read meanwhile. Raises ``BlockingIOError`` when the
    socket buffer is full (the caller queues the datagram), and ``OSError``
    when this datagram itself cannot be sent.
    """
    try:
        sock.sendto(data, destination)
        return []
    except OSError as err:
        if err.errno not in DELIVERY_ERRORS:
            raise
    earlier = drain(sock)  # the error was an earlier datagram's: read it, send again
    sock.sendto(data, destination)
    return earlier
