"""The members of a live run: one SIP user agent per member, answering per the scenario.

Theory of operation
-------------------
A :class:`Member` is one UDP socket. A line member REGISTERs its Contact
with digest authentication (and refreshes it, and removes it at the end). On
an INVITE the member finds the call (by the caller number in From, or in
arrival order when the group shows its pilot as caller id), records the
offer, sends 180 and draws, from the same keys as the virtual driver, whether
it answers and after which delay: 200 with SDP (then BYE after the call's talk
time), 603 when it declines, or nothing (it rings until the server cancels).
A CANCEL gets 200 and 487; the offer is ``no_answer`` when it rang for (about)
the no-answer timeout, else ``cancelled``. The member whose 200 came first
claims the call (``answered_by``, ``answered_at``); a later 200 (a lost race)
is marked ``cancelled`` and the server hangs it up. A direct call (a call to
a line's own number, recognised by its caller number) is answered with the
same keys, and its caller hangs up after the talk time; a line offered a
direct call while busy, or any other member offered one, means the server
hunted it to a group. A line member also carries a
:class:`~huntgroup.simulations.live.dialer.LineDialer` for its ``*51`` /
``*52`` calls and its outgoing calls; their responses and the server's BYE
go to it. A member is ``busy`` while an offer rings it, while it is on a call
it answered, and while it places an outgoing call.

Invariants: an offer gets one outcome; only the claiming member ends the call
as ``answered``; no reaction is sent for an offer that is no longer ringing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from huntgroup.config.models import LineConfig
from huntgroup.engine.sip import (
    CancelReceived,
    Headers,
    Peer,
    Request,
    RequestReceived,
    Response,
    ResponseReceived,
    TransactionKey,
    TransactionTimedOut,
    TransportFailed,
    make_response,
    new_call_id,
    new_tag,
    parse_uri,
    response_destination,
)
from huntgroup.engine.sip.dialogs import Dialog, uas_dialog
from huntgroup.engine.sip.transaction import TransactionOutput
from huntgroup.simulations.live.context import NEAR, LiveContext, user_of
from huntgroup.simulations.live.dialer import LineDialer
from huntgroup.simulations.live.sip import LiveError, digest_authorization
from huntgroup.simulations.model.distributions import Sampler, uniform
from huntgroup.simulations.virtual.driver import ANSWER, DELAY, CallRecord, Offer

REGISTER_EXPIRES = 3600

log = logging.getLogger("huntgroup.live")


# -------------------------------------------------------------------- members
@dataclass(slots=True)
class Offered:
    """One INVITE a member received."""

    key: TransactionKey
    invite: Request
    source: Peer
    to_tag: str
    rec: CallRecord
    offer: Offer
    state: str = "ringing"  # ringing | answered | ended
    claimed: bool = False
    dialog: Dialog | None = None
    timer: asyncio.TimerHandle | None = None

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class Member:
    """One simulated member: a UDP socket that answers per the scenario."""

    def __init__(self, run: LiveContext, key: str, line: LineConfig | None) -> None:
        self.run = run
        self.key = key
        self.line = line
        self.behaviour = run.sc.behaviours[key]
        self.delay = Sampler(self.behaviour.answer_delay)
        self.endpoint = run.endpoint(f"member {key}")
        self.endpoint.handler = self.handle
        self.offered: dict[str, Offered] = {}  # by Call-ID
        self.by_tx: dict[TransactionKey, Offered] = {}
        self.answers = 0  # 200s this UA sent that won the call
        self.declines = 0
        self._reg_call_id = ""
        self._reg_tag = ""
        self._reg_cseq = 0
        self._reg_auth_tries = 0
        self._reg_expires = 0
        self._reg_waiter: asyncio.Future[int] | None = None
        self._refresh: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # a line dials from its own socket: *51 / *52 for a 'joined:' schedule, own calls
        self.dialer = LineDialer(run, self.endpoint, line) if line is not None else None
        self.dialling = 0  # outgoing calls in progress (placed by live.own_calls)

    async def open(self, host: str, port: int) -> None:
        await self.endpoint.open(host, port)

    def busy(self) -> bool:
        """Ringing, on a call it answered, or on an outgoing call of its own."""
        return self.dialling > 0 or any(
            leg.state in ("ringing", "answered") for leg in self.offered.values()
        )

    @property
    def registered(self) -> bool:
        """True once this line member sent a REGISTER."""
        return self.line is not None and bool(self._reg_call_id)

    def stop_refresh(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            self._refresh = None

    def close(self) -> None:
        self.stop_refresh()
        for leg in self.offered.values():
            leg.stop_timer()
        self.endpoint.close()

    # -------------------------------------------------------- registration
    async def register(self, expires: int) -> int:
        """REGISTER the line's contact (0: remove it); the final status."""
        assert self.line is not None
        if not self._reg_call_id:
            self._reg_call_id = new_call_id(self.run.rng, self.endpoint.local.host)
            self._reg_tag = new_tag(self.run.rng)
        self._reg_auth_tries = 0
        self._reg_expires = expires
        self._reg_waiter = self.run.loop.create_future()
        self._send_register(None)
        status = await asyncio.wait_for(self._reg_waiter, 64 * self.run.timers.t1 + 1)
        if status < 300 and expires > 0:
            refresh = max(30.0, expires / 2)
            self._refresh = self.run.loop.call_later(refresh, self._start_refresh)
        return status

    def _start_refresh(self) -> None:
        task = self.run.loop.create_task(self._refresh_registration())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh_registration(self) -> None:
        try:
            status = await self.register(REGISTER_EXPIRES)
        except TimeoutError:
            status = 408
        if status >= 300:
            log.warning("member %s: registration refresh failed (%d)", self.key, status)

    def _send_register(self, authorization: str | None) -> None:
        assert self.line is not None
        run, me = self.run, self.endpoint.local
        self._reg_cseq += 1
        aor = f"<sip:{self.line.number}@{run.domain}>"
        headers = [
            ("Via", me.via(run.rng)),
            ("Max-Forwards", "70"),
            ("From", f"{aor};tag={self._reg_tag}"),
            ("To", aor),
            ("Call-ID", self._reg_call_id),
            ("CSeq", f"{self._reg_cseq} REGISTER"),
            ("Contact", me.contact(self.line.number)),
            ("Expires", str(self._reg_expires)),
        ]
        if authorization is not None:
            headers.append(("Authorization", authorization))
        request = Request("REGISTER", parse_uri(f"sip:{run.domain}"), Headers(headers))
        self.endpoint.send_request(request, run.target)

    def _on_register_response(self, response: Response) -> None:
        waiter = self._reg_waiter
        if waiter is None or waiter.done() or response.status < 200:
            return
        if response.status == 401 and self._reg_auth_tries < 2 and self.line is not None:
            self._reg_auth_tries += 1
            challenges = response.headers.get_all("WWW-Authenticate")
            try:
                authorization = digest_authorization(
                    self.line,
                    challenges,
                    method="REGISTER",
                    uri=f"sip:{self.run.domain}",
                    rng=self.run.rng,
                )
            except LiveError as err:
                waiter.set_exception(err)
                return
            self._send_register(authorization)
            return
        waiter.set_result(response.status)

    # --------------------------------------------------------------- input
    def handle(self, action: TransactionOutput) -> None:
        match action:
            case RequestReceived(None, request, _):
                self.on_ack(request)
            case RequestReceived(key, request, source) if key is not None:
                self.on_request(key, request, source)
            case CancelReceived(key, request, _, invite_key):
                self.on_cancel(key, request, invite_key)
            case ResponseReceived(_, response, _):
                if response.cseq.method == "REGISTER":
                    self._on_register_response(response)
                elif self.dialer is not None and self.dialer.owns(response.call_id):
                    self.dialer.on_response(response)
            case TransactionTimedOut(_, request, _) | TransportFailed(_, request):
                if self.dialer is not None:
                    self.dialer.on_failure(request)
                waiter = self._reg_waiter
                if request.method == "REGISTER" and waiter is not None and not waiter.done():
                    waiter.set_result(408)

    def on_request(self, key: TransactionKey, request: Request, source: Peer) -> None:
        method = request.method
        if method == "INVITE" and request.to.tag is None:
            self.on_invite(key, request, source)
        elif method == "BYE" and self.dialer is not None and self.dialer.owns(request.call_id):
            self.dialer.on_bye(key, request)
        elif method == "BYE":
            leg = self.offered.get(request.call_id)
            self.endpoint.send_response(key, make_response(request, 200 if leg else 481))
            if leg is not None:
                self.on_bye(leg)
        elif method == "OPTIONS":
            self.endpoint.send_response(key, make_response(request, 200))
        else:
            self.endpoint.send_response(key, make_response(request, 501))

    def on_invite(self, key: TransactionKey, invite: Request, source: Peer) -> None:
        run = self.run
        rec = run.match(user_of(invite.from_.uri), self.key)
        to_tag = new_tag(run.rng)
        if rec is None:
            log.warning("member %s: an INVITE from %s matches no call", self.key, invite.from_)
            run.unmatched += 1
            self.endpoint.send_response(key, make_response(invite, 480, to_tag=to_tag))
            return
        run.dequeue(rec)
        if rec.origin == "direct":
            run.direct_offered(rec, self.key, busy=self.busy())
        timeout = run.timeout_of(rec)
        attempt = sum(1 for o in rec.offers if o.member == self.key)
        offer = Offer(self.key, run.now(), timeout)
        rec.offers.append(offer)
        leg = Offered(key, invite, source, to_tag, rec, offer)
        self.offered[invite.call_id] = leg
        self.by_tx[key] = leg
        contact = (("Contact", self.endpoint.local.contact(self.key_user())),)
        self.endpoint.send_response(key, make_response(invite, 180, to_tag=to_tag, headers=contact))
        g, k = rec.keys
        mi = run.member_index.get(self.key, -1)
        answers = (
            uniform(ANSWER, run.seed, 0, g, k, mi, attempt) < self.behaviour.answer_probability
        )
        if not answers and self.behaviour.on_no_answer != "decline":
            return  # lets it ring until the server's no-answer timeout
        delay = self.delay.draw(uniform(DELAY, run.seed, 0, g, k, mi, attempt))
        if delay < timeout:
            leg.timer = run.call_later(delay, lambda: self.react(leg, answers))

    def key_user(self) -> str:
        return self.line.number if self.line is not None else "member"

    def react(self, leg: Offered, answers: bool) -> None:
        leg.timer = None
        if leg.state != "ringing":
            return
        run, rec = self.run, leg.rec
        if not answers:
            leg.state = "ended"
            leg.offer.outcome = "declined"
            self.declines += 1
            self.endpoint.send_response(leg.key, make_response(leg.invite, 603, to_tag=leg.to_tag))
            return
        headers = (
            ("Contact", self.endpoint.local.contact(self.key_user())),
            ("Content-Type", "application/sdp"),
        )
        response = make_response(
            leg.invite, 200, to_tag=leg.to_tag, headers=headers, body=run.sdp()
        )
        if not self.endpoint.send_response(leg.key, response):
            return
        leg.state = "answered"
        leg.dialog = uas_dialog(leg.invite, response, leg.source, self.endpoint.local)
        destination = response_destination(leg.invite.top_via, leg.source)
        self.endpoint.retransmit_answer(response, destination, lambda: self.hang_up(leg))
        if rec.answered_by is None and rec.outcome is None:
            leg.claimed = True
            self.answers += 1
            leg.offer.outcome = "answered"
            rec.answered_by = self.key
            rec.answered_at = run.now()
            if rec.origin == "direct":
                run.direct_answered(rec)  # its caller hangs up after the talk time
            else:
                leg.timer = run.call_later(rec.talk_planned, lambda: self.hang_up(leg))
        else:
            leg.offer.outcome = "cancelled"  # another member or the caller was first

    def hang_up(self, leg: Offered) -> None:
        leg.stop_timer()
        if leg.state != "answered" or leg.dialog is None:
            return
        leg.state = "ended"
        if leg.claimed:
            self.run.close(leg.rec, "answered")
        self.endpoint.send_request(leg.dialog.request("BYE", self.run.rng), leg.dialog.peer)

    def on_ack(self, ack: Request) -> None:
        self.endpoint.ack_received(ack)

    def on_bye(self, leg: Offered) -> None:
        leg.stop_timer()
        if leg.state == "answered" and leg.claimed:
            self.run.close(leg.rec, "answered")
        leg.state = "ended"

    def on_cancel(
        self, key: TransactionKey, cancel: Request, invite_key: TransactionKey | None
    ) -> None:
        leg = self.by_tx.get(invite_key) if invite_key is not None else None
        self.endpoint.send_response(key, make_response(cancel, 200 if leg else 481))
        if leg is None or leg.state != "ringing":
            return
        leg.stop_timer()
        leg.state = "ended"
        rang = self.run.now() - leg.offer.at
        leg.offer.outcome = "no_answer" if rang >= NEAR * leg.offer.timeout else "cancelled"
        self.endpoint.send_response(leg.key, make_response(leg.invite, 487, to_tag=leg.to_tag))

    def hang_up_all(self) -> None:
        for leg in list(self.offered.values()):
            if leg.state == "answered":
                self.hang_up(leg)
