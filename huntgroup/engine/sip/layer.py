"""The transaction layer: matches messages to transactions (RFC 3261 §17.1.3,
§17.2.3, §9.2) and drives all of their timers, sans-I/O.

Theory of operation: the driver hands every parsed message to
:meth:`TransactionLayer.receive` with its source and ``now``; the transaction
user (TU) calls :meth:`~TransactionLayer.send_request` and
:meth:`~TransactionLayer.send_response`. Every call returns a list of
actions (frozen dataclasses from :mod:`.transaction`) to carry out in order:
``SendMessage`` goes to the transport, the others are events for the TU.
After each call the driver re-arms one timer at :meth:`get_timer` and calls
:meth:`handle_timer` when it expires.

Matching:

- a request is keyed by its top Via branch and sent-by and its method, ACK
  counting as INVITE; retransmissions hit the existing server transaction,
  which resends its last response (or stays silent) instead of reaching the
  TU again. A branch without the ``z9hG4bK`` cookie (RFC 2543 peers) is keyed
  by a digest of Request-URI, From tag, Call-ID, CSeq number and top Via
  instead (the To tag is not compared).
- a CANCEL gets its own non-INVITE server transaction and is reported with the
  key of the INVITE server transaction it targets (same branch and sent-by).
- a response is keyed by its top Via branch and sent-by and its CSeq method.
- an ACK or a response that matches nothing goes to the TU with ``key=None``.

Invariants: a terminated transaction is forgotten at once; the timer heap
holds at most a few stale entries per live transaction; incoming requests are
Via-stamped (``received``/``rport``) before anyone sees them.
"""

from __future__ import annotations

import hashlib
import heapq

from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.fields import MAGIC_COOKIE, parse_via
from huntgroup.engine.sip.message import Message, Request, Response, make_response
from huntgroup.engine.sip.next_hop import response_destination, stamp_via
from huntgroup.engine.sip.transaction import (
    CancelReceived,
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    RequestReceived,
    ResponseReceived,
    SendFailed,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    State,
    TimerConfig,
    Transaction,
    TransactionKey,
    TransactionOutput,
)
from huntgroup.errors import LocalProtocolError, ProtocolError


def server_key(request: Request) -> TransactionKey:
    """The server transaction key of a received request (§17.2.3)."""
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch
    if branch is None or not branch.startswith(MAGIC_COOKIE):
        parts = (
            str(request.uri),
            request.from_.tag or "",
            request.call_id,
            str(request.cseq.number),
            str(via),
        )
        digest = hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogateescape"))
        branch = "rfc2543:" + digest.hexdigest()[:32]
    return TransactionKey(branch, via.sent_by.lower(), method, server=True)


def client_key(message: Message) -> TransactionKey:
    """The client transaction key of a request we send or a response to it."""
    via = message.top_via
    method = message.method if isinstance(message, Request) else message.cseq.method
    return TransactionKey(via.branch or "", via.sent_by.lower(), method, server=False)


def client_key_of_datagram(data: bytes) -> TransactionKey | None:
    """The client transaction of a request we sent, from its datagram, maybe truncated.

    An ICMP error quotes only the start of the datagram (about 500 bytes for
    IPv4), so the message cannot be parsed whole; its request line and first
    Via, which come first in everything we send, are enough. None for a
    response, an ACK (no transaction), or what cannot be read.
    """
    lines = data.split(b"\r\n")
    request_line = lines[0].decode("utf-8", "replace").split(" ")
    if len(request_line) != 3 or request_line[2] != "SIP/2.0" or request_line[0] == "ACK":
        return None
    for raw in lines[1:-1]:  # the last line may be cut short
        name, colon, value = raw.decode("utf-8", "replace").partition(":")
        if not colon or name.strip().lower() not in ("via", "v"):
            continue
        try:
            via = parse_via(value.split(",", 1)[0])
        except ProtocolError:
            return None
        return TransactionKey(via.branch or "", via.sent_by.lower(), request_line[0], server=False)
    return None


class TransactionLayer:
    """Every client and server transaction of one SIP endpoint."""

    __slots__ = ("_heap", "_scheduled", "_seq", "_transactions", "send_trying", "timers")

    def __init__(self, *, timers: TimerConfig | None = None, send_trying: bool = True) -> None:
        self.timers = timers or TimerConfig()
        self.send_trying = send_trying
        self._transactions: dict[TransactionKey, Transaction] = {}
        self._heap: list[tuple[float, int, TransactionKey]] = []
        self._scheduled: dict[TransactionKey, float] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._transactions)

    def __contains__(self, key: object) -> bool:
        return key in self._transactions

    def request_of(self, key: TransactionKey) -> Request:
        """The request of live transaction ``key`` (as stamped, for a server one)."""
        tx = self._transactions.get(key)
        if tx is None:
            raise LocalProtocolError("No such transaction")
        return tx.request

    # ---- inputs ----------------------------------------------------------

    def receive(self, message: Message, source: Peer, *, now: float) -> list[TransactionOutput]:
        """A parsed message arrived from ``source``."""
        if isinstance(message, Response):
            return self._receive_response(message, source, now=now)
        request = stamp_via(message, source)
        key = server_key(request)
        tx = self._transactions.get(key)
        if isinstance(tx, ServerInviteTransaction | ServerNonInviteTransaction):
            absorbed = tx.receive_request(request, source, now=now)
            self._after(tx)
            return absorbed
        if request.method == "ACK":
            return [RequestReceived(None, request, source)]
        destination = response_destination(request.top_via, source)
        if request.method == "INVITE":
            invite_tx = ServerInviteTransaction(key, request, destination, self.timers)
            self._transactions[key] = invite_tx
            actions: list[TransactionOutput] = []
            if self.send_trying:
                actions = invite_tx.send_response(make_response(request, 100), now=now)
            actions.append(RequestReceived(key, request, source))
            self._after(invite_tx)
            return actions
        self._transactions[key] = ServerNonInviteTransaction(key, request, destination, self.timers)
        if request.method == "CANCEL":
            invite_key = key._replace(method="INVITE")
            target = self._transactions.get(invite_key)
            found = invite_key if isinstance(target, ServerInviteTransaction) else None
            return [CancelReceived(key, request, source, found)]
        return [RequestReceived(key, request, source)]

    def _receive_response(
        self, response: Response, source: Peer, *, now: float
    ) -> list[TransactionOutput]:
        key = client_key(response)
        tx = self._transactions.get(key)
        if not isinstance(tx, ClientInviteTransaction | ClientNonInviteTransaction):
            return [ResponseReceived(None, response, source)]
        actions = tx.receive_response(response, source, now=now)
        self._after(tx)
        return actions

    def send_request(
        self, request: Request, destination: Peer, *, now: float
    ) -> tuple[TransactionKey, list[TransactionOutput]]:
        """Start a client transaction for ``request`` (never an ACK).

        The request's top Via must carry a fresh ``z9hG4bK`` branch.
        """
        if request.method == "ACK":
            raise LocalProtocolError("An ACK is not sent in a transaction")
        branch = request.top_via.branch
        if branch is None or not branch.startswith(MAGIC_COOKIE):
            raise LocalProtocolError("The top Via needs an RFC 3261 branch")
        key = client_key(request)
        if key in self._transactions:
            raise LocalProtocolError("A transaction with this branch already exists")
        tx: ClientInviteTransaction | ClientNonInviteTransaction
        if request.method == "INVITE":
            tx = ClientInviteTransaction(key, request, destination, self.timers)
        else:
            tx = ClientNonInviteTransaction(key, request, destination, self.timers)
        self._transactions[key] = tx
        actions = tx.start(now=now)
        self._after(tx)
        return key, actions

    def has_response(self, key: TransactionKey) -> bool:
        """True when server transaction ``key`` has sent a response, or is gone."""
        tx = self._transactions.get(key)
        if isinstance(tx, ServerInviteTransaction | ServerNonInviteTransaction):
            return tx.last_response is not None
        return True

    def awaits_final(self, key: TransactionKey) -> bool:
        """True when server transaction ``key`` is live and has sent no final response yet."""
        tx = self._transactions.get(key)
        return isinstance(tx, ServerInviteTransaction | ServerNonInviteTransaction) and (
            tx.state in (State.TRYING, State.PROCEEDING)
        )

    def abandon(self, key: TransactionKey) -> None:
        """Forget server transaction ``key``: the last resort for a request that could
        not be answered at all (it would otherwise wait for a final response forever)."""
        if isinstance(
            self._transactions.get(key), ServerInviteTransaction | ServerNonInviteTransaction
        ):
            del self._transactions[key]
            self._scheduled.pop(key, None)

    def send_response(
        self, key: TransactionKey, response: Response, *, now: float
    ) -> list[TransactionOutput]:
        """Send the TU's ``response`` in server transaction ``key``."""
        tx = self._transactions.get(key)
        if not isinstance(tx, ServerInviteTransaction | ServerNonInviteTransaction):
            raise LocalProtocolError("No such server transaction")
        actions = tx.send_response(response, now=now)
        self._after(tx)
        return actions

    def transport_error(self, error: SendFailed, *, now: float) -> list[TransactionOutput]:
        """The transport failed to send for ``error.key``."""
        tx = self._transactions.get(error.key)
        if tx is None:
            return []
        actions = tx.transport_error()
        self._after(tx)
        return actions

    # ---- timers ------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The earliest deadline of any transaction, or None."""
        heap = self._heap
        while heap:
            deadline, _, key = heap[0]
            if self._scheduled.get(key) == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    def handle_timer(self, *, now: float) -> list[TransactionOutput]:
        """Fire every timer due at ``now``."""
        actions: list[TransactionOutput] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, key = heapq.heappop(heap)
            if self._scheduled.get(key) != deadline:
                continue
            del self._scheduled[key]
            tx = self._transactions[key]
            actions.extend(tx.handle_timer(now=now))
            self._after(tx)
        return actions

    def _after(self, tx: Transaction) -> None:
        key = tx.key
        if tx.terminated:
            self._transactions.pop(key, None)
            self._scheduled.pop(key, None)
            return
        deadline = tx.next_deadline()
        if deadline is None:
            self._scheduled.pop(key, None)
        elif self._scheduled.get(key) != deadline:
            self._scheduled[key] = deadline
            self._seq += 1
            heapq.heappush(self._heap, (deadline, self._seq, key))
