"""Call records: one :class:`CallRecord` for every call that reached the server.

Theory of operation
-------------------
:class:`CallRecords` is the builder. The B2BUA tells it, one line at each
hook, what happens to a call: taken in (:meth:`~CallRecords.arrived`), routed
to a pilot or a line (:meth:`~CallRecords.routed`, again at each forward to
one of our numbers: the record keeps the group that handled the call last),
out through the upstream (:meth:`~CallRecords.outgoing`), a member offered
the call and how that offer ended, connected, why it ended; when the call is
forgotten (:func:`~huntgroup.engine.b2bua.teardown.forget`, the one place
every call ends) :meth:`~CallRecords.ended` turns the track into a frozen
:class:`CallRecord` and appends a :class:`RecordOutput` to the outputs. The
track is popped then, so a call yields its record exactly once, whatever
ended it. An INVITE refused before it became a call (a 403, 404, 420, 503
…, not a digest challenge: the caller asks again) yields its record at once
(:meth:`~CallRecords.refused`).

Queue events: a group call also yields, as it happens, the Asterisk
``queue_log`` events of its stay in the group's queue (:class:`QueueEvent`, in
a :class:`RecordOutput`): ``ENTERQUEUE`` when the core takes it in (its first
``Ringback`` or ``Hold``; ``FULL`` or ``JOINEMPTY`` instead when the core turns
it away at once), ``RINGNOANSWER`` when an offer ends unanswered (its ring time
from the offer's start to its end), ``CONNECT`` on an answer, then
``COMPLETECALLER``/``COMPLETEAGENT`` at the end; or an exit (``ABANDON``,
``EXITWITHTIMEOUT``, ``EXITEMPTY``) when it leaves the queue unanswered, and
``RINGCANCELED`` for the offers still ringing when the caller hangs up; an
answered call sent on by its member ends its queue's part with
``BLINDTRANSFER`` or ``ATTENDEDTRANSFER`` instead of ``COMPLETE*``. Positions
are counted by :mod:`~huntgroup.engine.b2bua.queue_positions`.
docs/operations.md, "queue_log", gives every event's data.

The tracks are kept by call key, one dict lookup per hook: no work per
message; a queue event is one small object at a step of a call. The tracks,
and the waiting callers, are bounded by the calls in progress
(``server.limits.max_calls``). Times are wall-clock epoch seconds, from the
``now`` of the input plus the driver's wall-clock offset (the B2BUA reads no
clock).

Outcome, in this order: ``answered`` (a member, or for an outgoing call the
called party, answered, whatever came later: a transfer, a forward); else the
first cause noted: ``queue_full``, ``timeout`` (the queue's ``max_wait``),
``no_answer`` (every offer failed, busy, or nobody free), ``forwarded`` (out
of the server: 302, or a leg out), ``refused`` (by the server: before the
core, a number that is no group or line, a forward loop, a drain, an
internal error); else ``abandoned`` (the caller hung up first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from huntgroup.engine.b2bua.addressing import user_of
from huntgroup.engine.b2bua.queue_positions import QueuePositions
from huntgroup.engine.sip.message import Request
from huntgroup.queue.refusals import Refusal, refusal_of
from huntgroup.quick_init import quick_init

CallKind = Literal["group", "direct", "outgoing"]
SHUTDOWN_CODE = 503
"""The release code of a call left unanswered when the server stopped."""
Outcome = Literal[
    "answered", "abandoned", "timeout", "queue_full", "no_answer", "forwarded", "refused"
]
OfferResult = Literal["answered", "no_answer", "busy", "declined", "unreachable", "cancelled"]
ANSWERED_CODE = 200
"""The release code of a call a member (or the called party) answered."""
RELEASE_OUTCOMES: dict[str, Outcome] = {
    "queue_full": "queue_full",
    "max_wait": "timeout",
    "no_answer": "no_answer",
    "busy": "no_answer",
    "empty": "no_answer",
    "group_removed": "refused",
    "not_found": "refused",
}
"""The outcome of a core ``Release``, by its reason."""
REFUSALS: dict[Refusal, OfferResult] = {
    Refusal.BUSY: "busy",
    Refusal.DECLINED: "declined",
    Refusal.UNREACHABLE: "unreachable",
    Refusal.NO_ANSWER: "no_answer",
}
QUEUE_EXITS: dict[str, str] = {
    "max_wait": "EXITWITHTIMEOUT",
    "no_answer": "EXITWITHTIMEOUT",
    "no_answer_after": "EXITWITHTIMEOUT",
    "queue_full": "EXITWITHTIMEOUT",
    "busy": "EXITWITHTIMEOUT",
    "empty": "EXITEMPTY",
    "group_removed": "EXITEMPTY",
}
"""The queue_log exit of a caller the core took out of its group's queue, by the reason of
the core's ``Release`` or forward (else ``EXITWITHTIMEOUT``: Asterisk's queue timeout
sends a caller on alike)."""
ENDING_EXITS: dict[Outcome | None, str] = {
    None: "ABANDON",
    "abandoned": "ABANDON",
    "refused": "EXITEMPTY",
}
"""The exit of a caller still waiting when its call ends, by its cause (else
``EXITWITHTIMEOUT``): no cause, the caller hung up."""
TURNED_AWAY = {"queue_full": "FULL", "empty": "JOINEMPTY"}
"""What a caller the core turned away before it entered the queue writes, by reason."""
RETRIED_STATUSES = frozenset({401, 407, 422})
"""Refusals of a new INVITE that the caller answers with a new INVITE (digest challenges,
RFC 4028's Session Interval Too Small): no record, the retry is the call."""


class RecordSink(Protocol):
    """Where a record goes: the outputs of the input being handled."""

    def append(self, item: RecordOutput, /) -> None: ...


class Pilots(Protocol):
    """Which group a number is the pilot of (the group core)."""

    def group_of_pilot(self, number: str) -> str | None: ...


@dataclass(frozen=True, slots=True, init=False)
class OfferRecord:
    """One offer of a call to a member: when it started and ended (epoch seconds; ``end``
    None only in records made by hand) and its result."""

    member: str
    start: float
    result: str
    end: float | None = None

    def __init__(self, member: str, start: float, result: str, end: float | None = None) -> None:
        object.__setattr__(self, "member", member)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "result", result)
        object.__setattr__(self, "end", end)


quick_init(OfferRecord)


@dataclass(frozen=True, slots=True, init=False)
class CallRecord:
    """What one call was, once over (docs/operations.md, "Call records")."""

    call_id: str
    node: str
    kind: str
    group: str | None
    pilot: str | None
    caller: str
    callee: str
    identity: str
    arrival: float
    answer: float | None
    end: float
    wait: float
    talk: float
    member: str | None
    outcome: str
    release_code: int
    offers: tuple[OfferRecord, ...]
    hangup: str = "server"  # who hung up: caller | member | server (queue_log COMPLETE*)
    position: int | None = None  # the caller's position when it first entered a queue

    def __init__(
        self,
        call_id: str,
        node: str,
        kind: str,
        group: str | None,
        pilot: str | None,
        caller: str,
        callee: str,
        identity: str,
        arrival: float,
        answer: float | None,
        end: float,
        wait: float,
        talk: float,
        member: str | None,
        outcome: str,
        release_code: int,
        offers: tuple[OfferRecord, ...],
        hangup: str = "server",
        position: int | None = None,
    ) -> None:
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "node", node)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "pilot", pilot)
        object.__setattr__(self, "caller", caller)
        object.__setattr__(self, "callee", callee)
        object.__setattr__(self, "identity", identity)
        object.__setattr__(self, "arrival", arrival)
        object.__setattr__(self, "answer", answer)
        object.__setattr__(self, "end", end)
        object.__setattr__(self, "wait", wait)
        object.__setattr__(self, "talk", talk)
        object.__setattr__(self, "member", member)
        object.__setattr__(self, "outcome", outcome)
        object.__setattr__(self, "release_code", release_code)
        object.__setattr__(self, "offers", offers)
        object.__setattr__(self, "hangup", hangup)
        object.__setattr__(self, "position", position)


quick_init(CallRecord)


@dataclass(frozen=True, slots=True)
class MemberChange:
    """A member logged in or out, paused or unpaused (emitted by the control API)."""

    at: float  # wall-clock epoch seconds
    group: str
    member: str
    action: str  # login | logout | pause | unpause
    reason: str
    origin: str  # api | phone (*51/*52) | reload


@dataclass(frozen=True, slots=True, init=False)
class QueueEvent:
    """A queue_log event of a group call, when it happens (docs/operations.md, "queue_log"):
    ``agent`` is the member, ``NONE`` when none; ``data`` the event's fields."""

    at: float  # wall-clock epoch seconds
    call_id: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...]

    def __init__(
        self,
        at: float,
        call_id: str,
        queue: str,
        agent: str,
        event: str,
        data: tuple[str, ...],
    ) -> None:
        object.__setattr__(self, "at", at)
        object.__setattr__(self, "call_id", call_id)
        object.__setattr__(self, "queue", queue)
        object.__setattr__(self, "agent", agent)
        object.__setattr__(self, "event", event)
        object.__setattr__(self, "data", data)


quick_init(QueueEvent)


@dataclass(frozen=True, slots=True, init=False)
class RecordOutput:
    """Output: a call record, a member change or a queue event, for the report sinks."""

    record: CallRecord | MemberChange | QueueEvent

    def __init__(self, record: CallRecord | MemberChange | QueueEvent) -> None:
        object.__setattr__(self, "record", record)


quick_init(RecordOutput)


@dataclass(slots=True, init=False)
class _Offer:
    member: str
    start: float  # wall clock
    deadline: float  # the core's ``now`` its ring timeout runs out at
    result: OfferResult | None = None
    end: float = 0.0  # wall clock, once it has a result

    def __init__(
        self,
        member: str,
        start: float,
        deadline: float,
        result: OfferResult | None = None,
        end: float = 0.0,
    ) -> None:
        self.member = member
        self.start = start
        self.deadline = deadline
        self.result = result
        self.end = end


@dataclass(slots=True, init=False)
class _Track:
    call_id: str
    caller: str
    callee: str
    arrival: float
    kind: CallKind = "direct"
    group: str | None = None
    pilot: str | None = None
    identity: str = ""
    answer: float | None = None
    member: str | None = None
    cause: Outcome | None = None
    release_code: int = 0
    hangup: str = "server"
    offers: list[_Offer] = field(default_factory=list)
    joining: bool = False  # at a pilot, not yet taken in by the group core
    queue: str | None = None  # the group whose queue the caller waits in now
    entered: float = 0.0  # when it entered that queue (wall clock)
    opos: int = 0  # its position when it entered that queue
    position: int | None = None  # its position when it entered its first queue
    served: str | None = None  # the group whose queue it left answered (COMPLETE*)
    hold: int = 0  # seconds it waited in that queue

    def __init__(
        self,
        call_id: str,
        caller: str,
        callee: str,
        arrival: float,
        kind: CallKind = "direct",
        group: str | None = None,
        pilot: str | None = None,
        identity: str = "",
        answer: float | None = None,
        member: str | None = None,
        cause: Outcome | None = None,
        release_code: int = 0,
        hangup: str = "server",
        offers: list[_Offer] | None = None,
        joining: bool = False,
        queue: str | None = None,
        entered: float = 0.0,
        opos: int = 0,
        position: int | None = None,
        served: str | None = None,
        hold: int = 0,
    ) -> None:
        self.call_id = call_id
        self.caller = caller
        self.callee = callee
        self.arrival = arrival
        self.kind = kind
        self.group = group
        self.pilot = pilot
        self.identity = identity
        self.answer = answer
        self.member = member
        self.cause = cause
        self.release_code = release_code
        self.hangup = hangup
        self.offers = [] if offers is None else offers
        self.joining = joining
        self.queue = queue
        self.entered = entered
        self.opos = opos
        self.position = position
        self.served = served
        self.hold = hold


class CallRecords:
    """The tracks of the calls in progress, by call key (see the module docstring)."""

    def __init__(self, node: str, emit: Callable[[RecordOutput], None] | None = None) -> None:
        self.node = node
        self.tracks: dict[str, _Track] = {}
        self.waiting = QueuePositions()  # the callers waiting in each group's queue
        self.emit = emit  # where queue events go (None: nowhere)

    def arrived(self, key: str, request: Request, number: str, *, wall: float) -> None:
        """The call of ``request`` is taken in, at our ``number`` (the dialled one)."""
        caller = user_of(request.from_.uri) or "anonymous"
        self.tracks[key] = _Track(request.call_id, caller, number, wall)

    def routed(self, key: str, group: str | None, number: str) -> None:
        """The call is at our ``number`` now: the pilot of ``group``, else a line."""
        track = self.tracks.get(key)
        if track is not None:
            track.kind = "direct" if group is None else "group"
            track.group, track.pilot = group, None if group is None else number
            track.joining = group is not None

    def entered(self, key: str, *, wall: float) -> None:
        """The group core took the call in (it rings members, or holds the caller): it
        enters its group's queue, behind the callers waiting there (``ENTERQUEUE``)."""
        track = self.tracks.get(key)
        if track is None or not track.joining or track.group is None:
            return
        track.joining = False
        if track.queue is not None:  # still in another group's queue: it leaves it first
            self._exit(key, track, "EXITWITHTIMEOUT", wall)
        position = self.waiting.enter(track.group, key)
        track.queue, track.entered, track.opos = track.group, wall, position
        if track.position is None:
            track.position = position
        self._event(track, wall, "NONE", "ENTERQUEUE", "", track.caller, str(position))

    def left(self, key: str, reason: str, *, wall: float, target: str = "") -> None:
        """The core ends the call's stay in its group, for ``reason`` (a ``Release`` or
        forward reason; ``target``: where a forward goes): turned away before it entered
        (``FULL``, ``JOINEMPTY``), out of the queue unanswered (an exit, by
        :data:`QUEUE_EXITS`), or, answered, sent on by its member (``BLINDTRANSFER``)."""
        track = self.tracks.get(key)
        if track is None:
            return
        if track.joining and track.group is not None:
            track.joining = False
            event = TURNED_AWAY.get(reason)
            if event is not None:
                self._event(track, wall, "NONE", event, "")
        elif track.queue is not None:
            self._exit(key, track, QUEUE_EXITS.get(reason, "EXITWITHTIMEOUT"), wall)
        elif track.served is not None and reason == "transfer":
            self._served(track, wall, "BLINDTRANSFER", target, "")

    def outgoing(self, key: str) -> None:
        """The call goes out through the upstream (a line calling out)."""
        track = self.tracks.get(key)
        if track is not None:
            track.kind = "outgoing"

    def presented(self, key: str, number: str) -> None:
        """A leg went out showing ``number`` as the caller: the first one is kept."""
        track = self.tracks.get(key)
        if track is not None and not track.identity:
            track.identity = number

    def offered(self, key: str, member: str, *, wall: float, deadline: float) -> None:
        """The core offers the call to ``member`` until ``deadline`` (its own ``now``)."""
        track = self.tracks.get(key)
        if track is not None:
            track.offers.append(_Offer(member, wall, deadline))

    def offer_failed(self, key: str, member: str, status: int | None, *, wall: float) -> None:
        """``member`` did not take the call: its final SIP ``status`` (None: unreachable,
        no status could come back)."""
        offer = self._pending(key, member)
        if offer is not None:
            offer.result = "unreachable" if status is None else REFUSALS[refusal_of(status)]
            self._unanswered(key, offer, wall, "RINGNOANSWER")

    def offer_cancelled(self, key: str, member: str, *, now: float, wall: float) -> None:
        """The core stops offering the call to ``member``: its ring timeout ran out
        (``no_answer``), or the call went elsewhere (``cancelled``: no queue event, as in
        Asterisk when another member answers)."""
        offer = self._pending(key, member)
        if offer is None:
            return
        if now >= offer.deadline:
            offer.result = "no_answer"
            self._unanswered(key, offer, wall, "RINGNOANSWER")
        else:
            offer.result, offer.end = "cancelled", wall

    def connected(self, key: str, member: str, *, wall: float) -> None:
        """The caller talks to ``member`` now ("" a forward or outgoing target)."""
        track = self.tracks.get(key)
        if track is None:
            return
        if track.answer is None:
            track.answer = wall
        if member:
            if track.served is not None and member != track.member:  # joined to another
                self._served(track, wall, "ATTENDEDTRANSFER", "BRIDGE", "")
            track.member = member
            offer = self._pending(key, member)
            if offer is not None:
                offer.result, offer.end = "answered", wall
            group = track.queue
            if group is not None:  # answered out of the queue: CONNECT
                self.waiting.leave(group, key)
                track.queue, track.served = None, group
                track.hold = round(wall - track.entered)
                ring = 0 if offer is None else round(wall - offer.start)
                data = (str(track.hold), track.call_id, str(ring))
                self._event(track, wall, member, "CONNECT", *data, queue=group)
        elif track.kind == "outgoing":
            track.cause = "answered"

    def served(self, key: str, *, wall: float) -> None:
        """The server itself answered the call (a feature code): answered, no member."""
        track = self.tracks.get(key)
        if track is not None:
            track.answer, track.cause = wall, "answered"

    def caused(self, key: str, outcome: Outcome) -> None:
        """What ends the call, unless a cause was noted before (the first one counts)."""
        track = self.tracks.get(key)
        if track is not None and track.cause is None:
            track.cause = outcome

    def released(self, key: str, reason: str, *, wall: float) -> None:
        """The core released the call for ``reason`` (a ``Release`` reason)."""
        self.caused(key, RELEASE_OUTCOMES.get(reason, "refused"))
        self.left(key, reason, wall=wall)

    def hung_up(self, key: str, side: str) -> None:
        """``side`` (caller, member) hung up: the call ends now."""
        track = self.tracks.get(key)
        if track is not None:
            track.hangup = side

    def ending(self, key: str, status: int) -> None:
        """The call ends with ``status`` (the final response, or the reason of a BYE)."""
        track = self.tracks.get(key)
        if track is not None and not track.release_code:
            track.release_code = status

    def ended(self, out: RecordSink, key: str, *, wall: float) -> None:
        """The call is over: its record goes to ``out`` (once: the track is dropped)."""
        track = self.tracks.get(key)
        if track is None:
            return
        if track.queue is not None:  # still waiting: the offers ringing end, then its stay
            if track.hangup == "caller":
                for offer in track.offers:
                    if offer.result is None:
                        self._unanswered(key, offer, wall, "RINGCANCELED")
            self._exit(key, track, ENDING_EXITS.get(track.cause, "EXITWITHTIMEOUT"), wall)
        elif track.served is not None:
            event = "COMPLETECALLER" if track.hangup == "caller" else "COMPLETEAGENT"
            self._served(track, wall, event)
        del self.tracks[key]
        offers = tuple(
            OfferRecord(x.member, x.start, x.result or "cancelled", x.end or wall)
            for x in track.offers
        )
        answer = track.answer
        answered = track.member is not None or track.cause == "answered"
        outcome: Outcome = "answered" if answered else (track.cause or "abandoned")
        record = CallRecord(
            call_id=track.call_id,
            node=self.node,
            kind=track.kind,
            group=track.group,
            pilot=track.pilot,
            caller=track.caller,
            callee=track.callee,
            identity=track.identity or track.caller,
            arrival=track.arrival,
            answer=answer,
            end=wall,
            wait=max(0.0, (wall if answer is None else answer) - track.arrival),
            talk=0.0 if answer is None else max(0.0, wall - answer),
            member=track.member,
            outcome=outcome,
            release_code=ANSWERED_CODE if answered else (track.release_code or 480),
            offers=offers,
            hangup=track.hangup,
            position=track.position,
        )
        out.append(RecordOutput(record))

    def abandon_all(self, out: RecordSink, *, wall: float) -> None:
        """Shutdown is over with calls still up (a BYE unanswered): each one's record, as
        it stands, ending at ``wall``: an answered call answered (200), any other one
        ``refused`` with :data:`SHUTDOWN_CODE`, unless a cause or code was noted before."""
        for key in list(self.tracks):
            self.caused(key, "refused")
            self.ending(key, SHUTDOWN_CODE)
            self.ended(out, key, wall=wall)

    def refused(
        self, out: RecordSink, request: Request, status: int, pilots: Pilots, *, wall: float
    ) -> None:
        """A final ``status`` (300 or more) answers ``request`` outside any call: when it is
        a new INVITE that no retry follows, it was refused before it became a call, and its
        record goes to ``out`` at once."""
        if request.method != "INVITE" or request.to.tag is not None or status in RETRIED_STATUSES:
            return
        callee = user_of(request.uri)
        caller = user_of(request.from_.uri) or "anonymous"
        group = pilots.group_of_pilot(callee) if callee else None
        record = CallRecord(
            call_id=request.call_id,
            node=self.node,
            kind="direct" if group is None else "group",
            group=group,
            pilot=None if group is None else callee,
            caller=caller,
            callee=callee,
            identity=caller,
            arrival=wall,
            answer=None,
            end=wall,
            wait=0.0,
            talk=0.0,
            member=None,
            outcome="refused",
            release_code=status,
            offers=(),
        )
        out.append(RecordOutput(record))

    def _unanswered(self, key: str, offer: _Offer, wall: float, event: str) -> None:
        """``offer`` ends unanswered at ``wall``: ``event`` with its ring time (ms), when
        the caller waits in a queue."""
        offer.end = wall
        track = self.tracks[key]
        if track.queue is not None:
            ring = str(round(max(0.0, wall - offer.start) * 1000))
            self._event(track, wall, offer.member, event, ring)

    def _exit(self, key: str, track: _Track, event: str, wall: float) -> None:
        """The caller leaves its queue unanswered: ``event`` with its position then, its
        position when it entered, and its wait (seconds)."""
        assert track.queue is not None
        position = self.waiting.leave(track.queue, key)
        wait = str(round(wall - track.entered))
        self._event(track, wall, "NONE", event, str(position), str(track.opos), wait)
        track.queue = None

    def _served(self, track: _Track, wall: float, event: str, *how: str) -> None:
        """The part of an answered call that its queue reports is over: ``event`` with
        ``how`` (a transfer's), the caller's hold time, the talk time and its position."""
        assert track.served is not None and track.answer is not None
        data = (*how, str(track.hold), str(round(wall - track.answer)), str(track.opos))
        self._event(track, wall, track.member or "NONE", event, *data, queue=track.served)
        track.served = None

    def _event(
        self, track: _Track, wall: float, agent: str, event: str, *data: str, queue: str = ""
    ) -> None:
        if self.emit is not None:
            name = queue or track.queue or track.group or ""
            self.emit(RecordOutput(QueueEvent(wall, track.call_id, name, agent, event, data)))

    def _pending(self, key: str, member: str) -> _Offer | None:
        """The last offer of the call to ``member``, when it has no result yet."""
        track = self.tracks.get(key)
        if track is None:
            return None
        for offer in reversed(track.offers):
            if offer.member == member:
                return offer if offer.result is None else None
        return None
