"""The callers of a live run: INVITEs to the pilots from one UDP socket.

Theory of operation
-------------------
:class:`Callers` places each planned call at its arrival time: an INVITE to
the group's pilot (or, for a direct call, to the line's own number) with a
PCMU offer, from the call's own caller number. It
plays the caller's side of RFC 3261: ACK for every 2xx, CANCEL before an
answer (sent only after a provisional response, §9.1), BYE after one, 200 to
the server's BYE. When the patience runs out and no member answered yet the
caller hangs up and the call is ``abandoned``. Outcomes come from what the
caller sees: 487 after our CANCEL, 486 = ``rejected_full``, 302 =
``forwarded`` (``rejected_full`` when it points at ``overflow_to`` before any
offer), 480 or a BYE before a member answered = ``no_answer``, or
``timed_out`` when ``max_wait`` had (nearly) run out. A 200 or 183 before any
member answered means the queue holds the caller (for a direct call: the
server hunted it to a group of the line, and queued it). A direct call ends
like the virtual driver ends it: the caller hangs up (BYE) the call's talk
time after its member answered; a direct call no group took that gets 486
was refused because the line was busy (``no_answer``, as in the driver).

Invariants: each caller leg ends once (``finished`` is called once per call);
a 200 that crosses our CANCEL is ACKed and hung up at once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from huntgroup.engine.sip import (
    CancelReceived,
    Headers,
    Request,
    RequestReceived,
    Response,
    ResponseReceived,
    TransactionKey,
    TransactionTimedOut,
    TransportFailed,
    make_cancel,
    make_response,
    new_call_id,
    new_tag,
    parse_uri,
)
from huntgroup.engine.sip.address import bracket
from huntgroup.engine.sip.dialogs import Dialog, uac_dialog
from huntgroup.engine.sip.transaction import TransactionOutput
from huntgroup.simulations.live.context import NEAR, LiveContext, user_of
from huntgroup.simulations.live.plan import caller_number
from huntgroup.simulations.live.sip import LiveError
from huntgroup.simulations.virtual.driver import CallRecord

log = logging.getLogger("huntgroup.live")


# -------------------------------------------------------------------- callers
@dataclass(slots=True)
class CallerLeg:
    rec: CallRecord
    invite: Request
    state: str = "calling"  # calling | early | confirmed | cancelling | bye_sent | ended
    provisional: bool = False
    cancel_pending: bool = False
    dialog: Dialog | None = None


class Callers:
    """The callers' socket: places every call and plays the callers' side."""

    def __init__(self, run: LiveContext) -> None:
        self.run = run
        self.endpoint = run.endpoint("callers")
        self.endpoint.handler = self.handle
        run.direct_answered = self.direct_answered
        self.legs: dict[str, CallerLeg] = {}
        self.by_record: dict[str, CallerLeg] = {}
        self.probe: asyncio.Future[int] | None = None

    async def open(self) -> None:
        await self.endpoint.open(self.run.opt.bind, 0)

    def _request(self, method: str, uri: str, from_user: str, to: str) -> list[tuple[str, str]]:
        me = self.endpoint.local
        host = bracket(me.host)
        return [
            ("Via", me.via(self.run.rng)),
            ("Max-Forwards", "70"),
            ("From", f"<sip:{from_user}@{host}>;tag={new_tag(self.run.rng)}"),
            ("To", f"<{to}>"),
            ("Call-ID", new_call_id(self.run.rng, me.host)),
            ("CSeq", f"1 {method}"),
        ]

    async def check_server(self) -> None:
        """OPTIONS to the target; LiveError when no SIP server answers."""
        uri = f"sip:{self.run.domain}"
        headers = self._request("OPTIONS", uri, "huntgroup-live", uri)
        request = Request("OPTIONS", parse_uri(uri), Headers(headers))
        self.probe = self.run.loop.create_future()
        self.endpoint.send_request(request, self.run.target)
        host, port = self.run.opt.target
        try:
            await asyncio.wait_for(self.probe, self.run.opt.probe_timeout)
        except TimeoutError:
            raise LiveError(
                f"no SIP server answered OPTIONS at udp {host}:{port} within "
                f"{self.run.opt.probe_timeout:g} s: is 'huntgroup serve' running there?"
            ) from None

    def place(self, rec: CallRecord) -> None:
        run = self.run
        line = run.direct_line.get(rec.call)
        dialled = line if line is not None else run.config.group(rec.group or "").pilot
        number = caller_number(rec)
        to = f"sip:{dialled}@{run.domain}"
        headers = self._request("INVITE", to, number, to)
        headers += [
            ("Contact", self.endpoint.local.contact(number)),
            ("Content-Type", "application/sdp"),
        ]
        invite = Request("INVITE", parse_uri(to), Headers(headers), run.sdp())
        leg = CallerLeg(rec, invite)
        self.legs[invite.call_id] = leg
        self.by_record[rec.call] = leg
        run.placed.append(rec)
        self.endpoint.send_request(invite, run.target)
        if rec.patience is not None:
            run.call_at(rec.arrival + rec.patience, lambda: self.give_up(leg))

    def give_up(self, leg: CallerLeg) -> None:
        rec = leg.rec
        if rec.outcome is not None or rec.answered_at is not None or leg.state == "ended":
            return
        self.run.close(rec, "abandoned")
        self.hang_up(leg)

    def direct_answered(self, rec: CallRecord) -> None:
        """A member took direct call ``rec``: its caller hangs up after the talk time."""
        leg = self.by_record.get(rec.call)
        if leg is not None:
            self.run.call_later(rec.talk_planned, lambda: self.talk_over(leg))

    def talk_over(self, leg: CallerLeg) -> None:
        if leg.state in ("ended", "bye_sent"):
            return
        self.run.close(leg.rec, "answered")
        self.hang_up(leg)

    def hang_up(self, leg: CallerLeg) -> None:
        if leg.state == "calling":
            leg.cancel_pending = True
        elif leg.state == "early":
            leg.state = "cancelling"
            self.endpoint.send_request(make_cancel(leg.invite), self.run.target)
        elif leg.state == "confirmed" and leg.dialog is not None:
            leg.state = "bye_sent"
            self.endpoint.send_request(leg.dialog.request("BYE", self.run.rng), leg.dialog.peer)

    def end(self, leg: CallerLeg) -> None:
        if leg.state != "ended":
            leg.state = "ended"
            self.run.finished(leg.rec)

    # --------------------------------------------------------------- input
    def handle(self, action: TransactionOutput) -> None:
        match action:
            case ResponseReceived(_, response, _):
                self.on_response(response)
            case RequestReceived(key, request, _) if key is not None:
                self.on_request(key, request)
            case CancelReceived(key, request, _, _):
                self.endpoint.send_response(key, make_response(request, 481))
            case TransactionTimedOut(_, request, _) | TransportFailed(_, request):
                self.on_no_response(request)

    def on_response(self, response: Response) -> None:
        method = response.cseq.method
        if method == "OPTIONS":
            if self.probe is not None and not self.probe.done():
                self.probe.set_result(response.status)
            return
        leg = self.legs.get(response.call_id)
        if leg is None:
            return
        if method == "BYE" and response.status >= 200:
            self.end(leg)
        elif method == "INVITE":
            self.on_invite_response(leg, response)

    def on_invite_response(self, leg: CallerLeg, response: Response) -> None:
        run, rec, status = self.run, leg.rec, response.status
        if status < 200:
            leg.provisional = True
            if leg.state == "calling":
                leg.state = "early"
            if leg.cancel_pending:
                leg.cancel_pending = False
                self.hang_up(leg)
            elif status == 183 and rec.answered_at is None and leg.state == "early":
                run.held_by_queue(rec)  # held in early media: queue.answer is false
            return
        if status < 300:
            first = leg.dialog is None
            if leg.dialog is None:
                leg.dialog = uac_dialog(leg.invite, response, run.target, self.endpoint.local)
            self.endpoint.send_raw(
                leg.dialog.ack_for_2xx(leg.invite.cseq.number, run.rng), leg.dialog.peer
            )
            if not first:
                return
            if leg.state == "cancelling" or leg.cancel_pending:
                leg.state = "confirmed"  # our CANCEL crossed the 200: hang up now
                leg.cancel_pending = False
                self.hang_up(leg)
                return
            leg.state = "confirmed"
            if rec.answered_at is None:
                run.held_by_queue(rec)  # answered by the queue, with music
            return
        self.on_final_failure(leg, response)

    def on_final_failure(self, leg: CallerLeg, response: Response) -> None:
        run, rec, status = self.run, leg.rec, response.status
        elapsed = run.now() - rec.arrival
        max_wait = run.max_wait_of(rec)
        late = max_wait is not None and elapsed >= NEAR * max_wait
        if status == 487:
            run.close(rec, "abandoned")
        elif status in (486, 600) and rec.origin == "direct" and rec.group is None:
            run.close(rec, "no_answer")  # the line was busy
        elif status in (486, 600):
            run.close(rec, "rejected_full")
        elif status in (301, 302):
            contacts = response.contacts
            target = user_of(contacts[0].uri) or str(contacts[0].uri) if contacts else None
            group = run.config.group(rec.group) if rec.group else None
            overflow = group.queue.overflow_to if group else None
            if overflow is not None and target == overflow and not rec.offers:
                run.close(rec, "rejected_full", target)
            else:
                run.close(rec, "timed_out" if late else "forwarded", target)
        elif status == 480:
            run.close(rec, "timed_out" if late else "no_answer")
        else:
            log.warning("call %s: unexpected final response %d", rec.call, status)
            run.unexpected_status(status)
            run.close(rec, "no_answer")
        self.end(leg)

    def on_request(self, key: TransactionKey, request: Request) -> None:
        leg = self.legs.get(request.call_id)
        if request.method == "BYE" and leg is not None:
            self.endpoint.send_response(key, make_response(request, 200))
            rec = leg.rec
            if rec.answered_at is None:
                elapsed = self.run.now() - rec.arrival
                max_wait = self.run.max_wait_of(rec)
                late = max_wait is not None and elapsed >= NEAR * max_wait
                self.run.close(rec, "timed_out" if late else "no_answer")
            else:
                self.run.close(rec, "answered")
            self.end(leg)
        elif request.method == "OPTIONS":
            self.endpoint.send_response(key, make_response(request, 200))
        elif request.method == "BYE":
            self.endpoint.send_response(key, make_response(request, 481))
        else:
            self.endpoint.send_response(key, make_response(request, 501))

    def on_no_response(self, request: Request) -> None:
        leg = self.legs.get(request.call_id)
        if request.method == "OPTIONS" or leg is None:
            return
        if request.method == "INVITE":
            log.warning("call %s: the server never answered the INVITE", leg.rec.call)
            self.run.unexpected_status("timeout")
            self.run.close(leg.rec, "no_answer")
            self.end(leg)
        elif request.method == "BYE":
            self.end(leg)
