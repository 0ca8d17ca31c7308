"""The back-to-back user agent: SIP calls in, group-core decisions, SIP calls out.

Theory of operation
-------------------
``B2BUA`` is sans-I/O like the rest of the engine. The asyncio driver
(:mod:`huntgroup.engine.aio.server`) hands it every datagram or framed message
with its source and ``now``, re-arms one timer at :meth:`B2BUA.get_timer`, and
carries out the outputs: :class:`Transmit` (bytes to a peer) and the media
commands of :mod:`huntgroup.media.commands`.

Inside, four sans-I/O parts are chained: the transaction layer (RFC 3261
§17), the registrar with digest authentication, the :class:`RoutingCore` of
the groups, and the calls kept here, one :class:`~huntgroup.engine.b2bua.calls.Call`
object per call, found through one index (:mod:`index`). A caller's INVITE to
a pilot or a line becomes a core event; the core's actions become SIP:

- ``Ringback`` → 180 to the caller; ``Hold`` → 200 (or 183) with our SDP and
  hold music; ``Ring`` → an INVITE per registered contact of the member (or to
  its fixed URI); ``Cancel`` → CANCEL (or ACK+BYE for a leg that answered too
  late); ``Bridge`` → ACK the member, 200 to the caller if not answered yet,
  media relayed between the two; ``Release`` → final response or BYE;
  ``Forward`` (a target outside the server) → 302 (caller not answered) or a
  new leg to the target (caller answered). A forward to one of our own numbers
  is followed by the core itself: ``Reroute`` is only noted (logged, and the
  number the call is at now), ``RefuseForward`` ends the call (482/483).

Every member leg is its own dialog (own Call-ID and tags). Media is anchored:
the caller always talks to the port we answered with, so switching from music
to a member needs no re-INVITE toward the caller.

This class is the facade: the inputs, the dispatch of what the transaction
layer reports, and the one timer heap. The work is done by functions over
the shared :class:`~huntgroup.engine.b2bua.context.Context` in sibling
modules, by concern: :mod:`shedding` (overload, floods), :mod:`inbound` (new
requests), :mod:`lines` (REGISTER, digest, feature codes), :mod:`caller_leg`,
:mod:`member_legs`, :mod:`core_actions`, :mod:`relay` (in-dialog requests,
responses), :mod:`direct_media`, :mod:`session_refresh`, :mod:`teardown`.

Dead calls end on their own: every dialog (the caller's, each confirmed
leg's) has a session timer (RFC 4028, :mod:`session_timer`): the refresher
side refreshes at half the interval (we send an UPDATE or a re-INVITE), the
other side gives up when no refresh came, and a failed refresh (408, 481,
no answer) or an expired session ends the call like a BYE; an optional
``server.calls.max_duration`` caps any answered call. Their due times live
in the one timer heap, with the 2xx retransmissions, the direct-media retries
and the end of a shutdown (:class:`~huntgroup.engine.b2bua.context.TimerKind`).

Overload: a new INVITE or REGISTER is refused before it takes any state when
its source is over its rate or the node is saturated (:mod:`admission`,
:mod:`shedding`); over UDP the decision is taken on the datagram's bytes,
before the parser, and the 503 is stateless. Requests inside a dialog,
retransmissions, ACK, CANCEL and responses always go through.

Invariants: each caller leg ends exactly once (final response, or BYE once
answered); every member leg we started ends with a final response, a CANCEL
or a BYE; no state outlives its call (the index forgets a call in one step,
:meth:`CallIndex.forget`); whatever raises while one message is handled stays
with it: a request gets 400 or 500 and its call is ended
(:meth:`B2BUA._request_failed`), nothing escapes.
"""

from __future__ import annotations

import heapq
import logging
from typing import Any

from huntgroup.config.models import Config
from huntgroup.engine.b2bua.admission import PASS
from huntgroup.engine.b2bua.announcements import announcement_due
from huntgroup.engine.b2bua.call_hold import move_to_music
from huntgroup.engine.b2bua.call_log import about
from huntgroup.engine.b2bua.caller_leg import retransmit_2xx
from huntgroup.engine.b2bua.calls import CallState
from huntgroup.engine.b2bua.context import Context, Output, TimerKind
from huntgroup.engine.b2bua.control import ControlResult
from huntgroup.engine.b2bua.control import prepare as prepare_control
from huntgroup.engine.b2bua.core_actions import carry_out
from huntgroup.engine.b2bua.direct_media import update_media
from huntgroup.engine.b2bua.inbound import dispatch_request
from huntgroup.engine.b2bua.line_contacts import (
    forget_lines,
    line_bindings,
    publish_all,
    publish_share,
    receive_share,
    reload_shares,
    report_contacts,
    shares_expired,
)
from huntgroup.engine.b2bua.lines import report_all_contacts
from huntgroup.engine.b2bua.phone_watch import look_at_registrations, reconcile, watches_due
from huntgroup.engine.b2bua.relay import on_ack, on_cancel, on_failure, on_response
from huntgroup.engine.b2bua.session_refresh import session_due
from huntgroup.engine.b2bua.shedding import quick_shed, shed
from huntgroup.engine.b2bua.subscriptions import (
    end_all,
    end_unknown,
    expire,
    publish,
    subscription_failed,
    subscription_response,
)
from huntgroup.engine.b2bua.teardown import end_call, forget
from huntgroup.engine.b2bua.transfer import transfer_expired
from huntgroup.engine.b2bua.views import calls as calls_view
from huntgroup.engine.b2bua.views import members as members_view
from huntgroup.engine.b2bua.views import queues as queues_view
from huntgroup.engine.b2bua.views import status as status_view
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.layer import client_key_of_datagram
from huntgroup.engine.sip.message import Message, Request, make_response, new_tag
from huntgroup.engine.sip.next_hop import response_destination
from huntgroup.engine.sip.parser import SipParseError, error_response, parse_datagram
from huntgroup.engine.sip.transaction import (
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    SendFailed,
    SendMessage,
    TransactionKey,
    TransactionOutput,
    TransactionTimedOut,
    TransportFailed,
)
from huntgroup.errors import LocalProtocolError, ProtocolError
from huntgroup.media.commands import RtpTimedOut
from huntgroup.queue.events import ClaimGranted, ClaimRefused

log = logging.getLogger("huntgroup.calls")


class B2BUA(Context):
    """Routes SIP calls for one configuration (see module docstring)."""

    # ================================================================ inputs
    def receive_datagram(self, data: bytes, source: Peer, *, now: float) -> list[Output]:
        if not data.strip(b"\r\n"):
            return []  # keep-alive
        self.now = max(self.now, now)
        quick = quick_shed(self, data, source)
        if quick is not None and quick != PASS:  # an INVITE, REGISTER or ACK refused
            self.counters.messages_in += 1
            self.traffic.request_in(data[: data.find(b" ")].decode("ascii"))
            return self.flush()
        try:
            message = parse_datagram(data)
        except SipParseError as err:
            self._parse_failed(err, source)
            return self.flush()
        except Exception as err:  # a parser bug: the datagram is dropped, nothing else
            self.counters.malformed += 1
            self.internal_error("parsing a datagram", source, err)
            return self.flush()
        return self._receive(message, source, now=now, checked=quick == PASS)

    def receive_message(self, message: Message, source: Peer, *, now: float) -> list[Output]:
        """One message in. Whatever fails while handling it stays with it: a request
        gets its final response (see :meth:`_request_failed`), nothing escapes."""
        return self._receive(message, source, now=now, checked=False)

    def _receive(
        self, message: Message, source: Peer, *, now: float, checked: bool
    ) -> list[Output]:
        self.now = max(self.now, now)
        self.counters.messages_in += 1
        if isinstance(message, Request):
            self.traffic.request_in(message.method)
            if not checked and shed(self, message, source):
                return self.flush()
        else:
            self.traffic.response_in(message.status)
        try:
            self.tx_actions(self.layer.receive(message, source, now=self.now))
        except ProtocolError as err:  # a message whose fields break a later layer
            log.info("dropped a message from %s:%s: %s", source.host, source.port, err)
        except Exception as err:
            self.internal_error(f"handling a {_kind(message)}", source, err)
        try:
            self._drain()
            self._trying()
        except Exception as err:
            self.events.clear()
            self.untried.clear()
            self.internal_error(f"handling a {_kind(message)}", source, err)
        return self.flush()

    def _trying(self) -> None:
        """100 Trying for the INVITEs of this input that got no other answer yet."""
        for key, request in self.untried:
            if not self.layer.has_response(key):
                self.respond(key, request, 100)
        self.untried.clear()

    def send_failed(self, data: bytes, destination: Peer, *, now: float) -> list[Output]:
        """``data``, sent to ``destination``, could not be delivered (an ICMP error, a
        refused TCP connection): its client transaction fails at once with 503
        (§8.1.3.1), e.g. a member whose phone is off counts as unreachable now
        rather than after timer B. ``data`` may be cut short (ICMP quotes only
        the start of a datagram). Responses and ACKs are left to their timers.
        """
        self.now = max(self.now, now)
        key = client_key_of_datagram(data)
        if key is not None and key in self.layer:
            self.counters.undeliverable += 1
            log.info("%s to %s:%d undeliverable", key.method, destination.host, destination.port)
            self.tx_actions(self.layer.transport_error(SendFailed(key), now=self.now))
            self._drain()
        return self.flush()

    def parse_failed(self, err: SipParseError, source: Peer) -> list[Output]:
        self._parse_failed(err, source)
        return self.flush()

    def _parse_failed(self, err: SipParseError, source: Peer) -> None:
        self.counters.malformed += 1
        log.info("malformed SIP from %s:%s: %s", source.host, source.port, err)
        try:
            response = error_response(err)
            if response is not None:
                self.send(response, response_destination(response.top_via, source))
        except ProtocolError:
            pass

    def flush(self) -> list[Output]:
        """The outputs of this input, after the one observer of state changes: members'
        phones that registered or went are watched or not (:func:`look_at_registrations`),
        and the supervision keys watching a line or pilot whose dialogs changed are
        notified (:func:`publish`)."""
        try:
            look_at_registrations(self)
            self._drain()
            publish(self)
        except Exception as err:  # a bug there costs the NOTIFYs, never the input
            self.internal_error("notifying dialog state", self.locals[0], err)
        return super().flush()

    # ================================================================ timers
    def get_timer(self) -> float | None:
        """The earliest due time of every timer source (the driver asks after every input).

        The transaction layer, the core and this object's own heap change with almost
        every input: they are asked each time. The five others (the registrar, the
        other nodes' bindings, the authentication guard, the subscriptions we serve,
        our watches of phones) change only on REGISTER, SUBSCRIBE, failed digests and
        their timers: each bumps its ``changes`` counter whenever its answer may
        change, and their earliest due time is kept until one of the counters moves
        (counters only grow, so their sum moves exactly when one of them does).
        """
        stamp = (
            self.registrar.changes
            + self.shared.changes
            + self.guard.changes
            + self.subscriptions.changes
            + self.watches.changes
        )
        if stamp != self.quiet_stamp:
            self.quiet_due = _earliest(
                self.registrar.get_timer(),
                self.shared.get_timer(),
                self.guard.get_timer(),
                self.subscriptions.get_timer(),
                self.watches.get_timer(),
            )
            self.quiet_stamp = stamp
        best = self.quiet_due
        due = self.layer.get_timer()
        if due is not None and (best is None or due < best):
            best = due
        due = self.core.get_timer()
        if due is not None and (best is None or due < best):
            best = due
        due = self.next_timer()
        if due is not None and (best is None or due < best):
            best = due
        return best

    def handle_timer(self, *, now: float) -> list[Output]:
        self.now = max(self.now, now)
        self.tx_actions(self.layer.handle_timer(now=self.now))
        carry_out(self, self.core.handle_timer(now=self.now))
        self.guard.handle_timer(now=self.now)
        expire(self)
        watches_due(self)
        for expired in self.registrar.handle_timer(now=self.now):
            log.info("line %s: %d contact(s) expired", expired.aor, len(expired.removed))
            publish_share(self, expired.aor)
            if not line_bindings(self, expired.aor):
                report_contacts(self, expired.aor)
        shares_expired(self)
        heap = self.timer_heap
        while heap and heap[0][0] <= self.now:
            entry = heapq.heappop(heap)
            if self.timer_live(entry):
                self._fire(entry[0], entry[2], entry[3], entry[4])
                heap = self.timer_heap  # a compaction may have replaced it
        self._drain()
        return self.flush()

    def _fire(self, due: float, kind: TimerKind, key: str, which: str) -> None:
        """Run one live timer entry."""
        if kind is TimerKind.SHUTDOWN:
            self.shutdown_at = None
            for call in list(self.index.calls.values()):
                self.records.caused(call.key, "refused")  # drained
                end_call(self, call, bye_caller=True, status=503)
            return
        call = self.index.calls[key]  # timer_live checked it
        if kind is TimerKind.RETRANSMIT_2XX:
            retransmit_2xx(self, call)
        elif kind is TimerKind.SESSION:
            session_due(self, call, which, due)
        elif kind is TimerKind.MAX_DURATION:
            log.info(
                "call %s: longer than server.calls.max_duration, hanging up",
                call.key,
                extra=about(self, call, "max_duration"),
            )
            self.counters.max_duration_ended += 1
            end_call(self, call, bye_caller=True)
        elif kind is TimerKind.MEDIA_RETRY:
            update_media(self, call, "caller" if which == "caller" else "member")
        elif kind is TimerKind.ANNOUNCE:
            announcement_due(self, call)
        elif kind is TimerKind.TRANSFER:
            transfer_expired(self, call, due)
        elif kind is TimerKind.HOLD_RETRY:
            move_to_music(self, call, "caller" if which == "caller" else "member")

    # ========================================================== other inputs
    def media_timed_out(self, fact: RtpTimedOut, *, now: float) -> list[Output]:
        """The relay heard no RTP from a side of a bridged call for ``fact.after`` seconds
        (``server.media.rtp_timeout``): the call is dead, its BYE lost. It ends as a BYE
        from the far side would end it, on both sides: BYE to the caller and to the
        member, the member freed in the core, the ports released."""
        self.now = max(self.now, now)
        # A linear scan: timeouts are rare, and a media session index would be one more
        # table to keep in step with every call's end.
        call = next((c for c in self.index.calls.values() if c.media.session == fact.session), None)
        if call is not None and call.state is not CallState.ENDED:
            log.info(
                "call %s: no RTP from the %s for %.0f s (server.media.rtp_timeout): "
                "ended, BYE to both sides",
                call.key,
                " and the ".join(fact.silent),
                fact.after,
                extra=about(self, call, "rtp_timeout"),
            )
            end_call(self, call, bye_caller=True)
        self._drain()
        return self.flush()

    def claim_answered(
        self, call_id: str, member: str, granted: bool, *, now: float
    ) -> list[Output]:
        """The shared state answered a ``Claim`` of the core (``call_id``: its core id):
        the member is rung, or the offer ends (another node holds the member)."""
        self.now = max(self.now, now)
        event = ClaimGranted(call_id, member) if granted else ClaimRefused(call_id, member)
        carry_out(self, self.core.handle(event, now=self.now))
        self._drain()
        return self.flush()

    def reload(self, config: Config, *, now: float) -> list[Output]:
        """Apply a new configuration; calls in progress go on (see RoutingCore.reload)."""
        self.now = max(self.now, now)
        if config.server != self.config.server:
            log.warning("reload: changes under 'server' take effect at the next restart")
            config = config.model_copy(update={"server": self.config.server})
        self.config = config
        carry_out(self, self.core.reload(config, now=self.now))
        forget_lines(self)  # bindings of lines the reload removed
        report_all_contacts(self)
        end_unknown(self)  # subscriptions of lines or to numbers the reload removed
        reconcile(self)  # the phones watched follow the groups' members
        self._drain()
        log.info("reload: %d group(s), %d line(s)", len(config.groups), len(config.lines))
        return self.flush()

    def wall_clock_read(self, wall: float, *, now: float) -> None:
        """The driver read the wall clock: ``wall`` seconds since the epoch at ``now``.

        Digest nonces carry wall-clock time (several nodes judge each other's);
        this object never reads a clock itself, so the driver hands it the
        reading now and then, and wall time is ``now`` plus the last offset.
        """
        self.now = max(self.now, now)
        self.wall_offset = wall - now

    def bindings_received(self, value: str | bytes, *, now: float) -> list[Output]:
        """Another node's share of an AOR's registrations (published or read from Redis):
        its bindings count for that line here (:mod:`shared_bindings`)."""
        self.now = max(self.now, now)
        receive_share(self, value)
        self._drain()
        return self.flush()

    def bindings_reloaded(self, values: list[str | bytes], *, now: float) -> list[Output]:
        """Every node's shares, read from Redis after a (re)connection: they replace what
        was heard (messages were lost meanwhile); this node's own shares go out again
        (Redis may have lost them)."""
        self.now = max(self.now, now)
        reload_shares(self, values)
        publish_all(self)
        self._drain()
        return self.flush()

    def state_changed(self, *, now: float) -> list[Output]:
        """Another node changed the shared state: members may have become free."""
        self.now = max(self.now, now)
        carry_out(self, self.core.state_changed(now=self.now))
        self._drain()
        return self.flush()

    def begin_shutdown(self, *, now: float, grace: float) -> list[Output]:
        """Refuse new calls (503) and end the remaining ones after ``grace`` seconds."""
        self.now = max(self.now, now)
        self.accepting = False
        self.shutdown_at = self.now + grace
        self.arm(self.shutdown_at, TimerKind.SHUTDOWN)
        end_all(self, "deactivated")  # RFC 6665: subscribe again (to another node)
        return self.flush()

    def abandon_all(self, *, now: float) -> list[Output]:
        """The driver stops with calls still up (shutdown's grace over, a BYE unanswered):
        the records of those calls, as they stand (:meth:`CallRecords.abandon_all
        <huntgroup.engine.b2bua.call_records.CallRecords.abandon_all>`)."""
        self.now = max(self.now, now)
        self.records.abandon_all(self.out, wall=self.wall())
        return self.flush()

    # ====================================================== operators' API
    def control(
        self, op: str, group: str, member: str, *, reason: str = "", now: float
    ) -> tuple[ControlResult, list[Output]]:
        """Log a member of ``group`` in or out, pause or unpause it (``op``); see
        :mod:`~huntgroup.engine.b2bua.control`. The outputs carry out the change (offers
        withdrawn, queued callers served) and hold its :class:`MemberChange` record."""
        self.now = max(self.now, now)
        result, event = prepare_control(self, op, group, member, reason)
        if event is not None:
            self.tell_core(event)
            self._drain()
        return result, self.flush()

    def view_queues(self, *, now: float) -> list[dict[str, Any]]:
        """Per group: its waiting callers and free members (:mod:`views`)."""
        return queues_view(self, now=max(self.now, now))

    def view_members(self, group: str, *, now: float) -> list[dict[str, Any]] | None:
        """The members of ``group`` and their states (None: no such group)."""
        return members_view(self, group, now=max(self.now, now))

    def view_calls(self, *, now: float) -> list[dict[str, Any]]:
        """The calls in progress."""
        return calls_view(self, now=max(self.now, now))

    def view_status(self, *, now: float) -> dict[str, Any]:
        """The node, whether it drains, and the gauges."""
        return status_view(self, self.gauges(), now=max(self.now, now))

    @property
    def active_calls(self) -> int:
        return len(self.index.calls)

    def gauges(self) -> dict[str, int]:
        """What is in progress now: calls, queued callers, contacts, transactions, RTP ports."""
        queued = sum(len(self.core.store.queue(g.name)) for g in self.config.groups)
        return {
            "calls_active": len(self.index.calls),
            "queued": queued,
            "contacts": self.registrar.binding_count,
            "transactions": len(self.layer),
            "auth_tracked": len(self.guard),
            "subscriptions": len(self.subscriptions),
            "phones_watched": len(self.watches.watches),
            "rtp_ports_in_use": self.media.ports.in_use,
        }

    # ============================================================ dispatch
    def tx_actions(self, actions: list[TransactionOutput]) -> None:
        for action in actions:
            match action:
                case SendMessage(message, destination):
                    self.send(message, destination)
                case RequestReceived(key, request, source):
                    self._on_request(key, request, source)
                case CancelReceived(key, request, source, invite_key):
                    self._on_cancel(key, request, source, invite_key)
                case ResponseReceived(key, response, source):
                    if not subscription_response(self, key, response):
                        on_response(self, key, response, source)
                case TransactionTimedOut(key, request, _timer):
                    if not subscription_failed(self, key, request, 408):
                        on_failure(self, key, request, 408)
                case TransportFailed(key, request):
                    if not subscription_failed(self, key, request, 503):
                        on_failure(self, key, request, 503)

    def _drain(self) -> None:
        events = self.events
        while events:
            event = events.pop(0)
            carry_out(self, self.core.handle(event, now=self.now))

    def _on_request(self, key: TransactionKey | None, request: Request, source: Peer) -> None:
        """Handle one request, and everything the core decides about it at once: any
        exception on the way ends with :meth:`_request_failed`, never escapes."""
        try:
            if key is None:  # an ACK outside any transaction: the ACK of one of our 2xx
                on_ack(self, request)
            else:
                dispatch_request(self, key, request, source)
            self._drain()
        except Exception as err:
            self.events.clear()
            self._request_failed(key, request, source, err)

    def _on_cancel(
        self,
        key: TransactionKey,
        request: Request,
        source: Peer,
        invite_key: TransactionKey | None,
    ) -> None:
        try:
            on_cancel(self, key, request, invite_key)
            self._drain()
        except Exception as err:  # like any request (_on_request): answered, nothing kept
            self.events.clear()
            self._request_failed(key, request, source, err)

    def _request_failed(
        self, key: TransactionKey | None, request: Request, source: Peer, err: Exception
    ) -> None:
        """The handling of ``request`` raised ``err``: answer it and leave no state.

        400 (or the error's own status) when the message is at fault (a
        ProtocolError raised by a remote's fields), 500 otherwise; a call the
        request had started is ended; the server transaction then ends on its
        normal timers, or is dropped when not even an answer can be built.
        """
        status = 500
        if isinstance(err, ProtocolError) and not isinstance(err, LocalProtocolError):
            status = err.status if 400 <= err.status < 600 else 400
        self.counters.request_errors += 1
        if status == 500:
            self.internal_error(f"handling {request.method}", source, err)
        else:
            log.info(
                "%s from %s:%s refused (%d): %s",
                request.method,
                source.host,
                source.port,
                status,
                err,
            )
        if key is None:
            return
        call = self.index.by_invite.get(key)
        if call is not None:
            self.records.caused(call.key, "refused")
            try:
                end_call(self, call, bye_caller=True, status=status)
                self._drain()  # the core forgets it too
            except Exception as again:
                self.events.clear()
                log.debug("ending the call of a failed request failed too", exc_info=again)
                call.state = CallState.ENDED
                try:
                    forget(self, call)
                except Exception as third:
                    log.debug("forgetting it failed as well", exc_info=third)
                    self.index.drop(call)
                    self.records.ended(self.out, call.key, wall=self.wall())
        if self.layer.awaits_final(key):
            try:
                response = make_response(request, status, to_tag=new_tag(self.rng))
                if call is None:  # an INVITE that never became a call: its record
                    self.records.refused(self.out, request, status, self.core, wall=self.wall())
                self.tx_actions(self.layer.send_response(key, response, now=self.now))
            except Exception as again:
                log.debug("no answer could be built for a failed request", exc_info=again)
        if self.layer.awaits_final(key):
            self.layer.abandon(key)
        self.untried = [(k, r) for k, r in self.untried if k != key]


def _earliest(*dues: float | None) -> float | None:
    """The smallest of ``dues`` that is not None (None when all are)."""
    best: float | None = None
    for due in dues:
        if due is not None and (best is None or due < best):
            best = due
    return best


def _kind(message: Message) -> str:
    return f"{message.method} request" if isinstance(message, Request) else "response"
