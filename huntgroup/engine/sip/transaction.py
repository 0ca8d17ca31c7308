"""SIP transactions (RFC 3261 §17, with the RFC 6026 "Accepted" states), sans-I/O.

Theory of operation: each transaction is a small state machine that takes
inputs with an explicit ``now`` (a response or a retransmitted request from
the network, a response from the transaction user, a timer) and returns
actions: :class:`SendMessage` to put on the wire, and events for the
transaction user (:class:`ResponseReceived`, :class:`TransactionTimedOut`...).
Each one exposes ``next_deadline()``, the earliest time it must be woken with
``handle_timer(now=...)``. :class:`~.layer.TransactionLayer` owns many of them.

Timers (T1, T2, T4 from :class:`TimerConfig`):

=====  ======================  =============================================
timer  transaction             meaning
=====  ======================  =============================================
A      client INVITE           retransmit INVITE: T1, doubling (unreliable only)
B      client INVITE           give up waiting for any response: 64*T1
D      client INVITE           absorb final retransmissions: 32 s (0 if reliable)
M      client INVITE           accept more 2xx (forks, retransmissions): 64*T1
E      client non-INVITE       retransmit: T1 doubling to T2 (unreliable only)
F      client non-INVITE       give up: 64*T1
K      client non-INVITE       absorb retransmissions: T4 (0 if reliable)
G      server INVITE           retransmit final non-2xx: T1 doubling to T2
H      server INVITE           give up waiting for the ACK: 64*T1
I      server INVITE           absorb ACK retransmissions: T4 (0 if reliable)
L      server INVITE           absorb INVITE retransmissions after 2xx: 64*T1
J      server non-INVITE       absorb request retransmissions: 64*T1 (0 if reliable)
=====  ======================  =============================================

A 2xx to an INVITE is retransmitted by the transaction user, not by the
transaction (§13.3.1.4): :class:`TwoXXRetransmitter` does that.

Invariants:

- Retransmissions are only scheduled when the transaction's peer is reached
  over an unreliable transport.
- A terminated transaction never emits anything again.
- ``next_deadline()`` is None exactly when no timer is running.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.headers import Headers
from huntgroup.engine.sip.message import Request, Response
from huntgroup.errors import ConfigError, ConfigProblem, LocalProtocolError, ProtocolError
from huntgroup.quick_init import quick_init


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """RFC 3261 timer values in seconds (defaults: the RFC's)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_d: float = 32.0

    def __post_init__(self) -> None:
        problems = [
            ConfigProblem("<timers>", 0, 0, name, "must be a positive number of seconds")
            for name in ("t1", "t2", "t4", "timer_d")
            if not getattr(self, name) > 0
        ]
        if not problems and self.t2 < self.t1:
            problems.append(ConfigProblem("<timers>", 0, 0, "t2", "must not be below t1"))
        if problems:
            raise ConfigError(problems)

    @property
    def timeout(self) -> float:
        """64*T1: timers B, F, H, J, L, M."""
        return 64 * self.t1


class TransactionKey(NamedTuple):
    """Identifies a transaction: top-Via branch and sent-by, and the method
    (INVITE for an ACK to a non-2xx). ``server`` tells which side we are.

    A named tuple, not a dataclass: it is hashed and compared several times per
    message (every look-up of the transaction table), and a tuple does both in C."""

    branch: str
    sent_by: str
    method: str
    server: bool


# ---- actions and events ---------------------------------------------------


@dataclass(frozen=True, slots=True, init=False)
class SendMessage:
    """Action: put ``message`` on the wire towards ``destination``."""

    message: Request | Response
    destination: Peer
    key: TransactionKey | None = None

    def __init__(
        self,
        message: Request | Response,
        destination: Peer,
        key: TransactionKey | None = None,
    ) -> None:
        object.__setattr__(self, "message", message)
        object.__setattr__(self, "destination", destination)
        object.__setattr__(self, "key", key)


quick_init(SendMessage)


@dataclass(frozen=True, slots=True, init=False)
class RequestReceived:
    """Event: a new request for the transaction user. ``key`` is None for an
    ACK outside any transaction (the ACK of a 2xx, which the TU handles)."""

    key: TransactionKey | None
    request: Request
    source: Peer

    def __init__(self, key: TransactionKey | None, request: Request, source: Peer) -> None:
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "request", request)
        object.__setattr__(self, "source", source)


quick_init(RequestReceived)


@dataclass(frozen=True, slots=True, init=False)
class CancelReceived:
    """Event: a CANCEL arrived (its own transaction is ``key``). ``invite_key``
    is the INVITE server transaction it cancels, or None (answer 481 then)."""

    key: TransactionKey
    request: Request
    source: Peer
    invite_key: TransactionKey | None

    def __init__(
        self,
        key: TransactionKey,
        request: Request,
        source: Peer,
        invite_key: TransactionKey | None,
    ) -> None:
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "request", request)
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "invite_key", invite_key)


quick_init(CancelReceived)


@dataclass(frozen=True, slots=True, init=False)
class ResponseReceived:
    """Event: a response for the transaction user. ``key`` is None for a
    response that matched no transaction (e.g. a late 2xx retransmission)."""

    key: TransactionKey | None
    response: Response
    source: Peer

    def __init__(self, key: TransactionKey | None, response: Response, source: Peer) -> None:
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "response", response)
        object.__setattr__(self, "source", source)


quick_init(ResponseReceived)


@dataclass(frozen=True, slots=True, init=False)
class TransactionTimedOut:
    """Event: timer ``timer`` (B, F or H) fired. For a client transaction the
    TU must act as if it received 408 Request Timeout."""

    key: TransactionKey
    request: Request
    timer: str

    def __init__(self, key: TransactionKey, request: Request, timer: str) -> None:
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "request", request)
        object.__setattr__(self, "timer", timer)


quick_init(TransactionTimedOut)


@dataclass(frozen=True, slots=True, init=False)
class TransportFailed:
    """Event: the transport could not send for this transaction (§17.1.4, §17.2.4);
    the transaction is over. For a client transaction treat it as 503."""

    key: TransactionKey
    request: Request

    def __init__(self, key: TransactionKey, request: Request) -> None:
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "request", request)


quick_init(TransportFailed)


@dataclass(frozen=True, slots=True)
class SendFailed:
    """Input from the driver: the transport could not send a message of
    transaction ``key`` (the layer answers with :class:`TransportFailed`)."""

    key: TransactionKey


TransactionEvent = (
    RequestReceived | CancelReceived | ResponseReceived | TransactionTimedOut | TransportFailed
)
"""What transactions and the transaction layer tell the transaction user."""

TransactionOutput = SendMessage | TransactionEvent
"""What transactions and the transaction layer emit: the one command,
:class:`SendMessage`, and events for the transaction user."""


class State(enum.Enum):
    """Transaction states of RFC 3261 §17 and RFC 6026."""

    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"
    TERMINATED = "terminated"


def make_ack(invite: Request, response: Response) -> Request:
    """The ACK for a non-2xx final response to ``invite`` (§17.1.1.3)."""
    top_via = invite.headers.get("Via")
    if top_via is None:
        raise LocalProtocolError("INVITE has no Via")
    items: list[tuple[str, str]] = [("Via", top_via)]
    for name in ("From", "Call-ID"):
        value = invite.headers.get(name)
        if value is None:
            raise LocalProtocolError(f"INVITE has no {name} header")
        items.append((name, value))
    to = response.headers.get("To")
    if to is None:
        raise LocalProtocolError("Response has no To header")
    items.append(("To", to))
    items.append(("CSeq", f"{invite.cseq.number} ACK"))
    items.extend(("Route", v) for v in invite.headers.get_all("Route"))
    items.append(("Max-Forwards", "70"))
    return Request(method="ACK", uri=invite.uri, headers=Headers(items))


class Transaction:
    """Shared timer bookkeeping of the four transaction kinds."""

    __slots__ = ("_deadlines", "_intervals", "key", "peer", "request", "state", "timers")

    def __init__(
        self, key: TransactionKey, request: Request, peer: Peer, timers: TimerConfig, state: State
    ) -> None:
        self.key = key
        self.request = request
        self.peer = peer
        self.timers = timers
        self.state = state
        self._deadlines: dict[str, float] = {}
        self._intervals: dict[str, float] = {}

    @property
    def reliable(self) -> bool:
        """True when the peer is reached over a reliable transport."""
        return self.peer.reliable

    @property
    def terminated(self) -> bool:
        """True once the transaction is over."""
        return self.state is State.TERMINATED

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` must next be called, or None."""
        return min(self._deadlines.values(), default=None)

    def handle_timer(self, *, now: float) -> list[TransactionOutput]:
        """Fire every timer due at ``now``, earliest first."""
        actions: list[TransactionOutput] = []
        while self._deadlines and not self.terminated:
            name, deadline = min(self._deadlines.items(), key=lambda item: item[1])
            if deadline > now:
                break
            del self._deadlines[name]
            actions.extend(self._fire(name, deadline))
        return actions

    def transport_error(self) -> list[TransactionOutput]:
        """The transport failed: terminate and tell the TU."""
        if self.terminated:
            return []
        self._terminate()
        return [TransportFailed(self.key, self.request)]

    def _start(self, name: str, at: float, interval: float | None = None) -> None:
        self._deadlines[name] = at
        if interval is not None:
            self._intervals[name] = interval

    def _stop(self, *names: str) -> None:
        for name in names:
            self._deadlines.pop(name, None)

    def _terminate(self) -> None:
        self.state = State.TERMINATED
        self._deadlines.clear()

    def _send(self, message: Request | Response) -> SendMessage:
        return SendMessage(message, self.peer, self.key)

    def _fire(self, name: str, deadline: float) -> list[TransactionOutput]:
        raise LocalProtocolError(f"No timer {name} in {type(self).__name__}")


class ClientInviteTransaction(Transaction):
    """§17.1.1 plus RFC 6026: Calling -> Proceeding -> Completed/Accepted."""

    __slots__ = ("_ack",)

    def __init__(
        self, key: TransactionKey, request: Request, peer: Peer, timers: TimerConfig
    ) -> None:
        super().__init__(key, request, peer, timers, State.CALLING)
        self._ack: Request | None = None

    def start(self, *, now: float) -> list[TransactionOutput]:
        """Send the INVITE and start timers A and B."""
        if not self.reliable:
            self._start("A", now + self.timers.t1, self.timers.t1)
        self._start("B", now + self.timers.timeout)
        return [self._send(self.request)]

    def receive_response(
        self, response: Response, source: Peer, *, now: float
    ) -> list[TransactionOutput]:
        """A response matched this transaction."""
        event = ResponseReceived(self.key, response, source)
        if self.state in (State.CALLING, State.PROCEEDING):
            self._stop("A", "B")
            if response.status < 200:
                self.state = State.PROCEEDING
                return [event]
            if response.status < 300:
                self.state = State.ACCEPTED
                self._start("M", now + self.timers.timeout)
                return [event]
            self._ack = make_ack(self.request, response)
            send_ack = self._send(self._ack)
            if self.reliable:
                self._terminate()
            else:
                self.state = State.COMPLETED
                self._start("D", now + self.timers.timer_d)
            return [event, send_ack]
        if self.state is State.ACCEPTED and 200 <= response.status < 300:
            return [event]
        if self.state is State.COMPLETED and response.status >= 300 and self._ack is not None:
            return [self._send(self._ack)]
        return []

    def _fire(self, name: str, deadline: float) -> list[TransactionOutput]:
        if name == "A":
            interval = self._intervals["A"] * 2
            self._start("A", deadline + interval, interval)
            return [self._send(self.request)]
        if name == "B":
            self._terminate()
            return [TransactionTimedOut(self.key, self.request, "B")]
        self._terminate()  # D or M
        return []


class ClientNonInviteTransaction(Transaction):
    """§17.1.2: Trying -> Proceeding -> Completed."""

    __slots__ = ()

    def __init__(
        self, key: TransactionKey, request: Request, peer: Peer, timers: TimerConfig
    ) -> None:
        super().__init__(key, request, peer, timers, State.TRYING)

    def start(self, *, now: float) -> list[TransactionOutput]:
        """Send the request and start timers E and F."""
        if not self.reliable:
            self._start("E", now + self.timers.t1, self.timers.t1)
        self._start("F", now + self.timers.timeout)
        return [self._send(self.request)]

    def receive_response(
        self, response: Response, source: Peer, *, now: float
    ) -> list[TransactionOutput]:
        """A response matched this transaction."""
        if self.state not in (State.TRYING, State.PROCEEDING):
            return []
        if response.status < 200:
            self.state = State.PROCEEDING
        else:
            self._stop("E", "F")
            if self.reliable:
                self._terminate()
            else:
                self.state = State.COMPLETED
                self._start("K", now + self.timers.t4)
        return [ResponseReceived(self.key, response, source)]

    def _fire(self, name: str, deadline: float) -> list[TransactionOutput]:
        if name == "E":
            if self.state is State.PROCEEDING:
                interval = self.timers.t2
            else:
                interval = min(self._intervals["E"] * 2, self.timers.t2)
            self._start("E", deadline + interval, interval)
            return [self._send(self.request)]
        if name == "F":
            self._terminate()
            return [TransactionTimedOut(self.key, self.request, "F")]
        self._terminate()  # K
        return []


class _ServerTransaction(Transaction):
    """What both server transactions keep: the last response they sent."""

    __slots__ = ("_last",)

    def __init__(
        self,
        key: TransactionKey,
        request: Request,
        peer: Peer,
        timers: TimerConfig,
        state: State,
    ) -> None:
        super().__init__(key, request, peer, timers, state)
        self._last: Response | None = None

    @property
    def last_response(self) -> Response | None:
        """The last response sent in this transaction, or None."""
        return self._last


class ServerInviteTransaction(_ServerTransaction):
    """§17.2.1 plus RFC 6026: Proceeding -> Completed -> Confirmed, or Accepted."""

    __slots__ = ()

    def __init__(
        self, key: TransactionKey, request: Request, peer: Peer, timers: TimerConfig
    ) -> None:
        super().__init__(key, request, peer, timers, State.PROCEEDING)

    def receive_request(
        self, request: Request, source: Peer, *, now: float
    ) -> list[TransactionOutput]:
        """A retransmitted INVITE, or the ACK of our non-2xx final response."""
        if request.method == "ACK":
            if self.state is State.COMPLETED:
                self._stop("G", "H")
                if self.reliable:
                    self._terminate()
                else:
                    self.state = State.CONFIRMED
                    self._start("I", now + self.timers.t4)
            elif self.state is State.ACCEPTED:
                return [RequestReceived(None, request, source)]
            return []
        if self.state in (State.PROCEEDING, State.COMPLETED) and self._last is not None:
            return [self._send(self._last)]
        return []

    def send_response(self, response: Response, *, now: float) -> list[TransactionOutput]:
        """The TU answers the INVITE."""
        if self.state is State.ACCEPTED and 200 <= response.status < 300:
            return [self._send(response)]
        if self.state is not State.PROCEEDING:
            raise LocalProtocolError(f"INVITE transaction is {self.state.value}")
        self._last = response
        if 200 <= response.status < 300:
            self.state = State.ACCEPTED
            self._start("L", now + self.timers.timeout)
        elif response.status >= 300:
            self.state = State.COMPLETED
            if not self.reliable:
                self._start("G", now + self.timers.t1, self.timers.t1)
            self._start("H", now + self.timers.timeout)
        return [self._send(response)]

    def _fire(self, name: str, deadline: float) -> list[TransactionOutput]:
        if name == "G":
            interval = min(self._intervals["G"] * 2, self.timers.t2)
            self._start("G", deadline + interval, interval)
            assert self._last is not None
            return [self._send(self._last)]
        if name == "H":
            self._terminate()
            return [TransactionTimedOut(self.key, self.request, "H")]
        self._terminate()  # I or L
        return []


class ServerNonInviteTransaction(_ServerTransaction):
    """§17.2.2: Trying -> Proceeding -> Completed."""

    __slots__ = ()

    def __init__(
        self, key: TransactionKey, request: Request, peer: Peer, timers: TimerConfig
    ) -> None:
        super().__init__(key, request, peer, timers, State.TRYING)

    def receive_request(
        self, request: Request, source: Peer, *, now: float
    ) -> list[TransactionOutput]:
        """A retransmission of the request: resend the last response, if any."""
        if self._last is not None and not self.terminated:
            return [self._send(self._last)]
        return []

    def send_response(self, response: Response, *, now: float) -> list[TransactionOutput]:
        """The TU answers the request."""
        if self.state not in (State.TRYING, State.PROCEEDING):
            raise LocalProtocolError(f"{self.request.method} transaction is {self.state.value}")
        self._last = response
        if response.status < 200:
            self.state = State.PROCEEDING
        elif self.reliable:
            self._terminate()
        else:
            self.state = State.COMPLETED
            self._start("J", now + self.timers.timeout)
        return [self._send(response)]

    def _fire(self, name: str, deadline: float) -> list[TransactionOutput]:
        self._terminate()  # J
        return []


ClientTransaction = ClientInviteTransaction | ClientNonInviteTransaction
ServerTransaction = ServerInviteTransaction | ServerNonInviteTransaction


@dataclass(frozen=True, slots=True)
class AckTimedOut:
    """Event: no ACK came for a 2xx within 64*T1; the TU should send BYE."""

    response: Response


class TwoXXRetransmitter:
    """Retransmits a 2xx to an INVITE until its ACK arrives (§13.3.1.4).

    Created by the TU right after it sent the 2xx (the first transmission is
    not repeated here). Over an unreliable transport it resends at T1, 2*T1,
    4*T1... capped at T2; in any case it gives up at 64*T1 with
    :class:`AckTimedOut`. Call :meth:`ack_received` when a matching ACK
    (:meth:`matches`) arrives.
    """

    __slots__ = ("_deadline", "_give_up", "_interval", "_t2", "destination", "done", "response")

    def __init__(
        self,
        response: Response,
        destination: Peer,
        *,
        now: float,
        timers: TimerConfig | None = None,
    ) -> None:
        timers = timers or TimerConfig()
        self.response = response
        self.destination = destination
        self.done = False
        self._give_up = now + timers.timeout
        self._interval = timers.t1
        self._t2 = timers.t2
        self._deadline: float | None = None if destination.reliable else now + timers.t1

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next be called, or None when done."""
        if self.done:
            return None
        if self._deadline is None:
            return self._give_up
        return min(self._deadline, self._give_up)

    def handle_timer(self, *, now: float) -> list[SendMessage | AckTimedOut]:
        """Resend the 2xx if due; give up at 64*T1."""
        actions: list[SendMessage | AckTimedOut] = []
        while not self.done:
            if now >= self._give_up and (self._deadline is None or self._give_up <= self._deadline):
                self.done = True
                actions.append(AckTimedOut(self.response))
                break
            if self._deadline is None or self._deadline > now:
                break
            actions.append(SendMessage(self.response, self.destination))
            self._interval = min(self._interval * 2, self._t2)
            self._deadline += self._interval
        return actions

    def matches(self, ack: Request) -> bool:
        """True when ``ack`` acknowledges this 2xx (Call-ID, CSeq number, tags)."""
        if ack.method != "ACK":
            return False
        try:
            return (
                ack.call_id == self.response.call_id
                and ack.cseq.number == self.response.cseq.number
                and ack.from_.tag == self.response.from_.tag
                and ack.to.tag == self.response.to.tag
            )
        except ProtocolError:
            return False

    def ack_received(self) -> None:
        """Stop: the ACK arrived."""
        self.done = True
