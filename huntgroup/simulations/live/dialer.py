"""Live mode: a line member placing calls through the server from its own socket.

Theory of operation
-------------------
A line member dials two kinds of calls: feature codes (``*51<pilot>`` /
``*52<pilot>``, for its ``joined:`` schedule) and its own outgoing calls (to
an external number, which the server sends to ``server.upstream``). Both are
the same exchange, which :class:`LineDialer` plays on the member's socket:

- INVITE ``sip:<user>@<domain>`` from the line, with a PCMU offer;
- the server answers 407 (or 401): the transaction layer ACKs it, and the
  line sends a new INVITE (new branch, next CSeq, §8.1.3.5) with the digest
  answer in ``Proxy-Authorization`` (or ``Authorization``), the same digest
  as its REGISTER, at most :data:`AUTH_TRIES` times;
- every 2xx is ACKed (retransmissions too); the first final status ends
  :meth:`LineDialer.call`;
- an answered call stays known until it ends: the server's BYE is answered
  200 (a feature call is hung up by the server right after its 200), and
  :meth:`LineDialer.hang_up` sends our BYE (an outgoing call, after its talk
  time); either way ``on_end`` is called once.

Invariants: a call is forgotten once its INVITE failed or its dialog ended;
``on_end`` runs at most once per call, and only for an answered call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from huntgroup.config.models import LineConfig
from huntgroup.engine.sip import (
    Headers,
    Request,
    Response,
    TransactionKey,
    make_response,
    new_call_id,
    new_tag,
    parse_uri,
)
from huntgroup.engine.sip.dialogs import Dialog, uac_dialog
from huntgroup.simulations.live.context import LiveContext
from huntgroup.simulations.live.sip import LiveError, SipEndpoint, digest_authorization

AUTH_TRIES = 2  # challenges answered per call before giving up

log = logging.getLogger("huntgroup.live")


@dataclass(slots=True)
class _Dial:
    user: str
    fixed: list[tuple[str, str]]  # the headers every INVITE of this call repeats
    body: bytes
    done: asyncio.Future[int]
    on_end: Callable[[], None] | None
    invite: Request | None = None
    tries: int = 0
    dialog: Dialog | None = None
    bye_sent: bool = False


class LineDialer:
    """A line placing calls through the server from its member's socket."""

    def __init__(self, run: LiveContext, endpoint: SipEndpoint, line: LineConfig) -> None:
        self.run = run
        self.endpoint = endpoint
        self.line = line
        self._calls: dict[str, _Dial] = {}  # by Call-ID, until the call is over

    def owns(self, call_id: str) -> bool:
        return call_id in self._calls

    async def dial(self, code: str) -> int:
        """Dial ``code`` (``*51<pilot>``...): the final status once authenticated.

        Raises TimeoutError when the server never answers, LiveError when the
        line cannot answer the server's challenge.
        """
        status, _ = await self.call(code)
        return status

    async def call(self, user: str, on_end: Callable[[], None] | None = None) -> tuple[int, str]:
        """Call ``user`` at the server: the final status and the Call-ID.

        An answered call stays up until the server's BYE or :meth:`hang_up`,
        then ``on_end`` runs. Raises like :meth:`dial`.
        """
        run, me = self.run, self.endpoint.local
        uri = f"sip:{user}@{run.domain}"
        fixed = [
            ("Max-Forwards", "70"),
            ("From", f"<sip:{self.line.number}@{run.domain}>;tag={new_tag(run.rng)}"),
            ("To", f"<{uri}>"),
            ("Call-ID", new_call_id(run.rng, me.host)),
            ("Contact", me.contact(self.line.number)),
            ("Content-Type", "application/sdp"),
        ]
        call = _Dial(user, fixed, run.sdp(), run.loop.create_future(), on_end)
        self._send(call, None)
        assert call.invite is not None
        call_id = call.invite.call_id
        self._calls[call_id] = call
        try:
            status = await asyncio.wait_for(asyncio.shield(call.done), 64 * run.timers.t1 + 1)
        finally:
            if call.dialog is None:
                self._calls.pop(call_id, None)
        return status, call_id

    def hang_up(self, call_id: str) -> bool:
        """BYE an answered call of ours; False when it is not (or no longer) up."""
        call = self._calls.get(call_id)
        if call is None or call.dialog is None or call.bye_sent:
            return False
        call.bye_sent = True
        self.endpoint.send_request(call.dialog.request("BYE", self.run.rng), call.dialog.peer)
        return True

    def _send(self, call: _Dial, authorization: tuple[str, str] | None) -> None:
        """An INVITE of ``call``: a new branch and CSeq each time (§8.1.3.5)."""
        run = self.run
        cseq = 1 if call.invite is None else call.invite.cseq.number + 1
        headers = [
            ("Via", self.endpoint.local.via(run.rng)),
            *call.fixed,
            ("CSeq", f"{cseq} INVITE"),
        ]
        if authorization is not None:
            headers.append(authorization)
        uri = parse_uri(f"sip:{call.user}@{run.domain}")
        call.invite = Request("INVITE", uri, Headers(headers), call.body)
        self.endpoint.send_request(call.invite, run.target)

    def on_response(self, response: Response) -> None:
        call = self._calls.get(response.call_id)
        if call is None or response.status < 200:
            return
        if response.cseq.method == "BYE":
            self._ended(response.call_id)
            return
        if response.cseq.method != "INVITE":
            return
        if 200 <= response.status < 300:
            self._ack(call, response)
        elif call.done.done():
            return
        elif response.status in (401, 407) and call.tries < AUTH_TRIES:
            call.tries += 1  # the transaction layer ACKed the challenge
            proxy = response.status == 407
            challenges = response.headers.get_all(
                "Proxy-Authenticate" if proxy else "WWW-Authenticate"
            )
            try:
                value = digest_authorization(
                    self.line,
                    challenges,
                    method="INVITE",
                    uri=f"sip:{call.user}@{self.run.domain}",
                    rng=self.run.rng,
                )
            except LiveError as err:
                call.done.set_exception(err)
                return
            self._send(call, ("Proxy-Authorization" if proxy else "Authorization", value))
        else:
            call.done.set_result(response.status)

    def _ack(self, call: _Dial, response: Response) -> None:
        """ACK every 2xx (retransmissions too); the first one ends :meth:`call`."""
        run, invite = self.run, call.invite
        assert invite is not None
        dialog = uac_dialog(invite, response, run.target, self.endpoint.local)
        self.endpoint.send_raw(dialog.ack_for_2xx(invite.cseq.number, run.rng), dialog.peer)
        if call.dialog is None:
            call.dialog = dialog  # kept until the call ends
        if not call.done.done():
            call.done.set_result(response.status)

    def on_bye(self, key: TransactionKey, request: Request) -> None:
        """The server hangs up (a feature call right after its 200): 200."""
        self.endpoint.send_response(key, make_response(request, 200))
        self._ended(request.call_id)

    def on_failure(self, request: Request) -> None:
        """No answer to a request of ours (timeout or transport error)."""
        call = self._calls.get(request.call_id)
        if call is None:
            return
        if request.method == "INVITE" and not call.done.done():
            call.done.set_result(408)
        elif request.method == "BYE":
            self._ended(request.call_id)

    def _ended(self, call_id: str) -> None:
        call = self._calls.pop(call_id, None)
        if call is not None and call.dialog is not None and call.on_end is not None:
            self.run.guard(call.on_end)()
