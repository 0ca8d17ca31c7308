"""SIP user-agent plumbing for live simulations: sockets, digest answers, messages.

Theory of operation
-------------------
The live mode of ``huntgroup simulate`` plays callers and members as real SIP
user agents. It reuses the project's sans-I/O SIP core (parser, transaction
layer, dialogs, digest helpers); this module adds the thin asyncio layer a
user agent needs around it, in the same style as the server's driver:

- :class:`SipEndpoint` is one UDP socket with its own
  :class:`~huntgroup.engine.sip.TransactionLayer`. Every datagram is parsed
  and fed to the layer with ``now = loop.time()``; ``SendMessage`` actions go
  out on the socket, the other actions (requests, responses, timeouts) are
  handed to the owner's ``handler``. One ``loop.call_at`` is re-armed at the
  earliest of the layer's timer and the 2xx retransmitters the endpoint
  keeps for the INVITEs its owner answered.
- :func:`digest_authorization` picks the ``WWW-Authenticate`` /
  ``Proxy-Authenticate`` challenge a configured line can answer, and answers
  it with :func:`huntgroup.engine.sip.digest.authorization`, from the line's
  password or its stored HA1 (``ha1_sha256`` / ``ha1_md5``).
- :func:`audio_offer` is the SDP a simulated phone sends or answers with:
  one PCMU stream pointed at a discard socket (no RTP is sent); the tests'
  phones offer other codecs and telephone-event with it too.

Invariants: an endpoint only binds the address it is given (the live run
checks those are loopback or ``--bind`` addresses); a malformed datagram is
dropped with a log line, never raised; an exception in the owner's handler
is passed to ``on_error`` (the live run stops with it) instead of being lost
in the event loop's log.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence

from huntgroup.config.models import LineConfig
from huntgroup.engine.sip import (
    AckTimedOut,
    Message,
    Peer,
    Request,
    Response,
    SendMessage,
    SipParseError,
    TimerConfig,
    TransactionKey,
    TransactionLayer,
    TwoXXRetransmitter,
    parse_datagram,
)
from huntgroup.engine.sip.digest import (
    DigestChallenge,
    authorization,
    parse_challenge,
    stored_ha1,
    usable_algorithms,
)
from huntgroup.engine.sip.transaction import TransactionOutput
from huntgroup.errors import HuntgroupError, ProtocolError
from huntgroup.media.g711 import Codec
from huntgroup.media.sdp import make_offer

log = logging.getLogger("huntgroup.live")

Handler = Callable[[TransactionOutput], None]
ErrorSink = Callable[[BaseException], None]


class LiveError(HuntgroupError):
    """A live simulation cannot start or go on (unreachable server, unbindable member...)."""


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.endpoint.receive(data, Peer(str(addr[0]), int(str(addr[1])), "UDP"))

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error on %s: %s", self.endpoint.name, exc)


class SipEndpoint:
    """One UDP socket, its transaction layer and its 2xx retransmitters."""

    def __init__(
        self,
        name: str,
        *,
        loop: asyncio.AbstractEventLoop,
        timers: TimerConfig,
        on_error: ErrorSink,
    ) -> None:
        self.name = name
        self.loop = loop
        self.layer = TransactionLayer(timers=timers)
        self.timers = timers
        self.on_error = on_error
        self.handler: Handler = lambda action: None
        self.local = Peer("127.0.0.1", 0, "UDP")
        self.messages = 0  # SIP messages sent and received
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._answers: dict[str, tuple[TwoXXRetransmitter, Callable[[], None]]] = {}

    async def open(self, host: str, port: int) -> None:
        """Bind ``host:port`` (port 0: any free port); LiveError when that fails."""
        try:
            transport, _ = await self.loop.create_datagram_endpoint(
                lambda: _Protocol(self), local_addr=(host, port)
            )
        except OSError as err:
            raise LiveError(f"{self.name}: cannot bind udp {host}:{port}: {err}") from err
        self._transport = transport
        bound = self._transport.get_extra_info("sockname")
        self.local = Peer(host, int(bound[1]), "UDP")

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    # ------------------------------------------------------------------ I/O
    def receive(self, data: bytes, source: Peer) -> None:
        if not data.strip(b"\r\n"):
            return  # keep-alive
        try:
            message = parse_datagram(data)
        except SipParseError as err:
            log.info(
                "%s: malformed SIP from %s:%d dropped: %s", self.name, source.host, source.port, err
            )
            return
        self.messages += 1
        self._guarded(lambda: self.layer.receive(message, source, now=self.loop.time()))

    def send_request(self, request: Request, destination: Peer) -> TransactionKey:
        """Start a client transaction for ``request``."""
        key, actions = self.layer.send_request(request, destination, now=self.loop.time())
        self._carry(actions)
        self._rearm()
        return key

    def send_response(self, key: TransactionKey, response: Response) -> bool:
        """Answer in server transaction ``key``; False when it is already over."""
        try:
            actions = self.layer.send_response(key, response, now=self.loop.time())
        except ProtocolError as err:
            log.debug("%s: response %d not sent: %s", self.name, response.status, err)
            return False
        self._carry(actions)
        self._rearm()
        return True

    def send_raw(self, message: Message, destination: Peer) -> None:
        """Send outside any transaction (an ACK for a 2xx)."""
        if self._transport is None:
            return
        self.messages += 1
        self._transport.sendto(message.to_bytes(), (destination.host, destination.port))

    def retransmit_answer(
        self, response: Response, destination: Peer, on_timeout: Callable[[], None]
    ) -> None:
        """Resend our 2xx to an INVITE until :meth:`ack_received` (§13.3.1.4)."""
        retransmitter = TwoXXRetransmitter(
            response, destination, now=self.loop.time(), timers=self.timers
        )
        self._answers[response.call_id] = (retransmitter, on_timeout)
        self._rearm()

    def ack_received(self, ack: Request) -> bool:
        """Stop resending the 2xx ``ack`` acknowledges; True if it matched one."""
        found = self._answers.get(ack.call_id)
        if found is None or not found[0].matches(ack):
            return False
        del self._answers[ack.call_id]
        self._rearm()
        return True

    # -------------------------------------------------------------- plumbing
    def _guarded(self, step: Callable[[], list[TransactionOutput]]) -> None:
        try:
            actions = step()
        except ProtocolError as err:  # a message whose fields break a later layer
            log.info("%s: message dropped: %s", self.name, err)
            actions = []
        try:
            self._carry(actions)
        except Exception as err:  # a bug in a simulated agent stops the run, loudly
            self.on_error(err)
        self._rearm()

    def _carry(self, actions: Sequence[TransactionOutput]) -> None:
        for action in actions:
            if isinstance(action, SendMessage):
                self.send_raw(action.message, action.destination)
            else:
                self.handler(action)

    def _next_due(self) -> float | None:
        times = [self.layer.get_timer()]
        times += [r.get_timer() for r, _ in self._answers.values()]
        due = [t for t in times if t is not None]
        return min(due) if due else None

    def _rearm(self) -> None:
        due = self._next_due()
        if due == self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = due
        if due is not None and self._transport is not None:
            self._timer = self.loop.call_at(due, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        now = self.loop.time()
        for call_id, (retransmitter, on_timeout) in list(self._answers.items()):
            for item in retransmitter.handle_timer(now=now):
                if isinstance(item, SendMessage):
                    self.send_raw(item.message, item.destination)
                elif isinstance(item, AckTimedOut):
                    del self._answers[call_id]
                    try:
                        on_timeout()
                    except Exception as err:
                        self.on_error(err)
        self._guarded(lambda: self.layer.handle_timer(now=now))


# ------------------------------------------------------------------ digest
def digest_authorization(
    line: LineConfig,
    challenges: Sequence[str],
    *,
    method: str,
    uri: str,
    rng: random.Random,
    nc: int = 1,
) -> str:
    """An ``Authorization`` value answering the first challenge this line can answer.

    Challenges come in the server's order of preference (SHA-256 first); a
    line configured with only ``ha1_md5`` answers the MD5 one with that HA1.
    A challenge that is not a well-formed Digest one is skipped.
    """
    parsed: list[DigestChallenge] = []
    for value in challenges:
        try:
            parsed.append(parse_challenge(value))
        except ProtocolError:
            continue
    offered = [p.algorithm for p in parsed]
    usable = usable_algorithms(line, offered)
    if not usable:
        listed = ", ".join(offered) or "none"
        raise LiveError(f"line {line.number}: cannot answer the server's challenge ({listed})")
    challenge = next(p for p in parsed if p.algorithm.upper() == usable[0].upper())
    ha1 = stored_ha1(line, usable[0], line.number, challenge.realm)
    assert ha1 is not None  # usable_algorithms kept only those the line has a secret for
    cnonce = f"{rng.getrandbits(64):016x}" if "auth" in challenge.qop else ""
    return authorization(
        challenge, username=line.number, method=method, uri=uri, cnonce=cnonce, nc=nc, ha1=ha1
    )


# --------------------------------------------------------------------- SDP
def audio_offer(
    address: str,
    port: int,
    session_id: int,
    *,
    codecs: Sequence[Codec] = (Codec.PCMU,),
    telephone_event: int | None = None,
) -> bytes:
    """A one-stream SDP pointing RTP at ``address:port``: ``codecs`` in order of
    preference (PCMU alone by default), and ``telephone-event`` on that payload
    type when one is given."""
    sdp = make_offer(
        local_address=address,
        local_port=port,
        session_id=session_id,
        session_version=1,
        codecs=codecs,
        telephone_event=telephone_event,
        username="huntgroup-live",
    )
    return sdp.to_bytes()
