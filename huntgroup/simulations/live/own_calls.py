"""Live mode: members' outgoing calls, and the upstream the server sends them to.

Theory of operation
-------------------
The virtual driver plays a member's outgoing call as ``OutgoingCallStarted``
then ``CallAnswered`` at its planned time, and ``CallHungUp`` after its talk
time; a member already ringing or on a call does not start one (the attempt
is dropped and counted). Live mode plays the same calls against the server:

- :class:`OutgoingCalls` dials each planned call at its scaled time from the
  member's own socket (a :class:`~huntgroup.simulations.live.dialer.LineDialer`
  call to an external number, digest-authenticated after the server's 407),
  unless the member is ringing or on a call then (``skipped``). The member
  is busy from the first INVITE; once the server's 200 comes back it hangs up
  with BYE after the call's talk time. The call is recorded as the driver's
  ``own_calls`` entry ``("outgoing", member, answered_at, ended_at)``.
- :class:`Upstream` is the far end: the server sends a line's call to
  ``server.upstream``, so the run binds a UDP user agent exactly there. It
  answers each INVITE 200 at once (a PCMU answer pointed at the discard
  socket), resends the 200 until the ACK, and answers the BYE 200. It
  recognises an outgoing call by the number dialled (Request-URI user) and
  notes it was reached and by which caller (From user); any other INVITE (a
  call the server forwarded to an external number) gets 480 and is counted.

Invariants: a member has at most one outgoing call at a time, and none while
it rings or talks; each planned call is finished exactly once (skipped,
failed, or over); the upstream only binds the address ``live.plan`` accepted.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from huntgroup.engine.sip import (
    CancelReceived,
    Peer,
    Request,
    RequestReceived,
    Response,
    TransactionKey,
    make_response,
    new_tag,
    response_destination,
)
from huntgroup.engine.sip.transaction import TransactionOutput
from huntgroup.simulations.live.context import LiveContext, user_of
from huntgroup.simulations.live.members import Member
from huntgroup.simulations.live.plan import OutgoingCall
from huntgroup.simulations.live.sip import LiveError

log = logging.getLogger("huntgroup.live")


# ------------------------------------------------------------------ upstream
class Upstream:
    """The played ``server.upstream``: answers the lines' outgoing calls at once."""

    def __init__(self, run: LiveContext) -> None:
        self.run = run
        self.endpoint = run.endpoint("upstream")
        self.endpoint.handler = self.handle
        self.by_number = {c.number: c for c in run.outgoing}
        self.calls: dict[str, OutgoingCall] = {}  # by Call-ID of the server's leg
        self.invites = 0  # new INVITEs that matched an outgoing call
        self.byes = 0
        self.unmatched = 0

    async def open(self, host: str, port: int) -> None:
        await self.endpoint.open(host, port)

    def close(self) -> None:
        self.endpoint.close()

    def stats(self) -> dict[str, Any]:
        me = self.endpoint.local
        return {
            "address": f"{me.host}:{me.port}",
            "invites": self.invites,
            "byes": self.byes,
            "unmatched": self.unmatched,
        }

    def handle(self, action: TransactionOutput) -> None:
        match action:
            case RequestReceived(None, request, _):
                self.endpoint.ack_received(request)
            case RequestReceived(key, request, source) if key is not None:
                self.on_request(key, request, source)
            case CancelReceived(key, request, _, _):
                # our 200 went out at once: nothing is left ringing to cancel
                self.endpoint.send_response(key, make_response(request, 200))

    def on_request(self, key: TransactionKey, request: Request, source: Peer) -> None:
        method = request.method
        if method == "INVITE" and request.to.tag is None:
            self.on_invite(key, request, source)
        elif method == "INVITE":  # a re-INVITE: keep the media as they are
            self.endpoint.send_response(key, self._answer(request, request.to.tag))
        elif method == "BYE":
            known = request.call_id in self.calls
            self.endpoint.send_response(key, make_response(request, 200 if known else 481))
            if known:
                self.byes += 1
        elif method == "OPTIONS":
            self.endpoint.send_response(key, make_response(request, 200))
        else:
            self.endpoint.send_response(key, make_response(request, 501))

    def on_invite(self, key: TransactionKey, invite: Request, source: Peer) -> None:
        call = self.by_number.get(user_of(invite.uri))
        if call is None or call.reached:
            log.warning("upstream: an INVITE to %s matches no outgoing call", invite.uri)
            self.unmatched += 1
            response = make_response(invite, 480, to_tag=new_tag(self.run.rng))
            self.endpoint.send_response(key, response)
            return
        call.reached = True
        call.from_user = user_of(invite.from_.uri)
        self.invites += 1
        self.calls[invite.call_id] = call
        response = self._answer(invite, new_tag(self.run.rng))
        if not self.endpoint.send_response(key, response):
            return
        destination = response_destination(invite.top_via, source)
        self.endpoint.retransmit_answer(response, destination, lambda: None)

    def _answer(self, request: Request, to_tag: str | None) -> Response:
        headers = (
            ("Contact", self.endpoint.local.contact("upstream")),
            ("Content-Type", "application/sdp"),
        )
        return make_response(request, 200, to_tag=to_tag, headers=headers, body=self.run.sdp())


# ------------------------------------------------------------ outgoing calls
class OutgoingCalls:
    """Places every planned outgoing call from its member's socket."""

    def __init__(self, run: LiveContext, members: dict[str, Member]) -> None:
        self.run = run
        self.members = members
        self._tasks: set[asyncio.Task[None]] = set()
        self._up: dict[str, tuple[Member, str]] = {}  # call -> (member, Call-ID) while up

    def start(self) -> None:
        """Schedule every planned call at its scaled time (after ``run.t0`` is set)."""
        for call in self.run.outgoing:
            self.run.call_at(call.planned, functools.partial(self.place, call))

    @property
    def dialling(self) -> bool:
        """True while a call is being placed or is up."""
        return bool(self._tasks or self._up)

    def place(self, call: OutgoingCall) -> None:
        run = self.run
        member = self.members.get(call.member)
        if run.stopping or member is None or member.dialer is None:
            call.status = "not placed"
            run.finished(None)
            return
        if member.busy():
            call.skipped = True  # a person ringing or on a call does not dial another
            run.finished(None)
            return
        member.dialling += 1
        task = run.loop.create_task(self._dial(call, member))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dial(self, call: OutgoingCall, member: Member) -> None:
        run, dialer = self.run, member.dialer
        assert dialer is not None
        answered = False

        def ended() -> None:
            self._up.pop(call.call, None)
            if call.ended_at is None and not run.stopping:
                call.ended_at = run.now()  # the server hung up first
            member.dialling -= 1
            run.finished(None)

        try:
            status, call_id = await dialer.call(call.number, on_end=ended)
            call.status = status
            answered = 200 <= status < 300
            if answered:
                call.answered_at = run.now()
                if dialer.owns(call_id):  # not hung up by the server already
                    self._up[call.call] = (member, call_id)
                    run.call_later(call.talk, lambda: self._hang_up(call, member, call_id))
        except TimeoutError:
            call.status = "timeout"
        except LiveError as err:
            call.status = str(err)
        except Exception as err:  # a bug in the dialer stops the run, loudly
            run.fail(err)
        finally:
            if not answered:
                member.dialling -= 1
                run.finished(None)
        if not answered:
            log.warning("member %s: outgoing call %s got %s", call.member, call.call, call.status)

    def _hang_up(self, call: OutgoingCall, member: Member, call_id: str) -> None:
        assert member.dialer is not None
        if member.dialer.hang_up(call_id) and not self.run.stopping:
            call.ended_at = self.run.now()

    def hang_up_all(self) -> None:
        """At the end of the run: BYE every outgoing call still up (not recorded as over)."""
        for member, call_id in list(self._up.values()):
            assert member.dialer is not None
            member.dialer.hang_up(call_id)
        for task in list(self._tasks):
            task.cancel()

    def records(self) -> list[tuple[str, str, float, float]]:
        """``("outgoing", member, start, end)`` of each call that was up, as the driver's."""
        return [
            ("outgoing", c.member, c.answered_at, c.ended_at)
            for c in self.run.outgoing
            if c.answered_at is not None and c.ended_at is not None
        ]

    def stats(self) -> dict[str, Any]:
        calls = self.run.outgoing
        failed: dict[str, int] = {}
        for c in calls:
            if not c.skipped and c.answered_at is None and c.status is not None:
                failed[str(c.status)] = failed.get(str(c.status), 0) + 1
        return {
            "planned": len(calls),
            "skipped": sum(c.skipped for c in calls),
            "answered": sum(c.answered_at is not None for c in calls),
            "reached_upstream": sum(c.reached for c in calls),
            "failed": dict(sorted(failed.items())),
        }
