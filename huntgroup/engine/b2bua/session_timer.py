"""Session timers (RFC 4028): how the B2BUA notices a call whose other end is gone.

Theory of operation
-------------------
A call whose BYE was lost would otherwise last for ever: the member stays
"on a call" and its RTP ports stay taken. With session timers one side of
each dialog (the *refresher*) sends a re-INVITE or an UPDATE every half
interval; the other side ends the session when none came in time.

The B2BUA keeps one :class:`SessionTimer` per dialog (the caller's, and each
member or forwarding leg's): the legs are independent sessions. This module
holds the header logic, sans-I/O and stateless:

- :func:`uas_refusal` and :func:`negotiate_as_uas`: a request we answer with
  a 2xx (the caller's INVITE, any re-INVITE or UPDATE inside a dialog). Too
  short an interval from a peer that supports the extension gets 422 with
  our ``Min-SE``; otherwise the interval is the peer's, capped by
  ``server.calls.session_expires`` and raised to the floors. The refresher is
  the one the peer asked for, else the peer when it supports timers (it
  knows when it needs to), else us (RFC 4028 §9: a UAS may use session timers
  on its own, as the refresher).
- :func:`request_headers`: what every INVITE or UPDATE we send carries
  (``Supported`` with every option tag we understand, ``timer`` among them, see
  :mod:`huntgroup.engine.sip.extensions`; ``Session-Expires``, ``Min-SE``), and
  :func:`negotiate_as_uac` reads the 2xx that answers it; a 2xx without
  ``Session-Expires`` leaves us the refresher (§7.2: a UAC may use the timer
  alone). A peer's interval below 90 s (the RFC's floor) is raised to it, so no
  peer can make us refresh more often than every 45 s.

:meth:`SessionTimer.due` is when something must happen: the refresher's next
refresh at half the interval, or, when the peer refreshes, the moment to give
up on it, ``interval - min(32, interval / 3)`` after the last refresh (§10).
"""

from __future__ import annotations

from dataclasses import dataclass

from huntgroup.engine.sip.extensions import supported_value
from huntgroup.engine.sip.grammar import param_lookup, parse_params, parse_uint
from huntgroup.engine.sip.message import Message, Request, Response
from huntgroup.errors import ProtocolError
from huntgroup.quick_init import quick_init

MAX_INTERVAL = 86400 * 7
MIN_INTERVAL = 90
"""RFC 4028 §4: no session interval is shorter (a peer's smaller value is raised to it)."""


@dataclass(frozen=True, slots=True)
class SessionExpires:
    interval: int
    refresher: str | None  # "uac" | "uas" | None


@dataclass(slots=True, init=False)
class SessionTimer:
    """One dialog's session timer."""

    interval: int
    we_refresh: bool
    last: float  # when the session was last refreshed (or set up)
    use_update: bool = False  # refresh with UPDATE (the peer allows it) rather than re-INVITE
    refreshing: bool = False  # our refresh request is under way
    refreshing_invite: bool = False  # ... and it is a re-INVITE (one at a time per call)
    scheduled: float | None = None  # the time of its entry in the B2BUA's heap
    retry_at: float | None = None  # a refresh to try again then (491, re-INVITE pending)

    def __init__(
        self,
        interval: int,
        we_refresh: bool,
        last: float,
        use_update: bool = False,
        refreshing: bool = False,
        refreshing_invite: bool = False,
        scheduled: float | None = None,
        retry_at: float | None = None,
    ) -> None:
        self.interval = interval
        self.we_refresh = we_refresh
        self.last = last
        self.use_update = use_update
        self.refreshing = refreshing
        self.refreshing_invite = refreshing_invite
        self.scheduled = scheduled
        self.retry_at = retry_at

    def refreshed(
        self, now: float, *, interval: int | None = None, we_refresh: bool | None = None
    ) -> None:
        self.last = now
        self.retry_at = None
        if interval is not None:
            self.interval = interval
        if we_refresh is not None:
            self.we_refresh = we_refresh

    @property
    def due(self) -> float:
        if self.retry_at is not None:
            return self.retry_at
        if self.we_refresh:
            return self.last + self.interval / 2
        return self.last + self.interval - min(32.0, self.interval / 3)


def parse_session_expires(value: str) -> SessionExpires:
    """``delta-seconds *( ; se-params )``; raises ProtocolError (400) when malformed."""
    number, _, rest = value.partition(";")
    interval = parse_uint(number, what="Session-Expires", maximum=MAX_INTERVAL)
    params, _ = parse_params(";" + rest if rest else "", 0, what="Session-Expires")
    _, refresher = param_lookup(params, "refresher")
    refresher = refresher.lower() if refresher else None
    return SessionExpires(max(1, interval), refresher if refresher in ("uac", "uas") else None)


def session_expires_of(message: Message) -> SessionExpires | None:
    value = message.headers.get("Session-Expires")
    return parse_session_expires(value) if value is not None else None


def min_se_of(message: Message) -> int:
    value = message.headers.get("Min-SE")
    if value is None:
        return 0
    return parse_uint(value.split(";", 1)[0], what="Min-SE", maximum=MAX_INTERVAL)


def has_option(message: Message, header: str, option: str) -> bool:
    """``option`` is listed in one of the ``header`` fields (Supported, Require, Allow)."""
    return any(
        item.strip().lower() == option.lower()
        for value in message.headers.get_all(header)
        for item in value.split(",")
    )


def uas_refusal(request: Request, *, min_se: int) -> tuple[int, tuple[tuple[str, str], ...]] | None:
    """The 400 or 422 a request gets for its session-timer fields, or None when fine.

    422 only when the peer supports timers (it can retry); a request that does
    not is raised to our minimum instead (RFC 4028 erratum 1687).
    """
    try:
        se = session_expires_of(request)
        min_se_of(request)
    except ProtocolError:
        return 400, ()
    if se is not None and se.interval < min_se and has_option(request, "Supported", "timer"):
        return 422, (("Min-SE", str(min_se)),)
    return None


@dataclass(frozen=True, slots=True, init=False)
class Negotiated:
    interval: int
    we_refresh: bool
    headers: tuple[tuple[str, str], ...]  # for our 2xx

    def __init__(
        self,
        interval: int,
        we_refresh: bool,
        headers: tuple[tuple[str, str], ...],
    ) -> None:
        object.__setattr__(self, "interval", interval)
        object.__setattr__(self, "we_refresh", we_refresh)
        object.__setattr__(self, "headers", headers)


quick_init(Negotiated)


def negotiate_as_uas(request: Request, *, session_expires: int, min_se: int) -> Negotiated:
    """The session timer of a request we answer with a 2xx (after :func:`uas_refusal`)."""
    try:
        se = session_expires_of(request)
        floor = max(min_se, min(min_se_of(request), session_expires))  # never past ours
    except ProtocolError:
        se, floor = None, min_se
    supported = has_option(request, "Supported", "timer")
    wanted = se.interval if se is not None else session_expires
    interval = max(floor, min(wanted, session_expires))
    asked = se.refresher if se is not None else None
    if asked == "uas" or (asked == "uac" and supported):
        refresher = asked
    else:
        refresher = "uac" if supported and se is not None else "uas"
    headers: list[tuple[str, str]] = [
        ("Session-Expires", f"{interval};refresher={refresher}"),
        ("Supported", supported_value()),
    ]
    if supported:  # §9: MUST when the UAC refreshes, SHOULD otherwise
        headers.append(("Require", "timer"))
    return Negotiated(interval, refresher == "uas", tuple(headers))


def request_headers(
    interval: int, *, min_se: int, refresher: str | None = None
) -> tuple[tuple[str, str], ...]:
    """The session-timer fields of an INVITE or UPDATE we send; ``refresher`` None lets
    the peer pick, "uac" asks to stay the refresher (our own refreshes)."""
    param = f";refresher={refresher}" if refresher else ""
    return (
        ("Supported", supported_value()),
        ("Session-Expires", f"{interval}{param}"),
        ("Min-SE", str(min(min_se, interval))),
    )


def negotiate_as_uac(response: Response, *, interval: int) -> tuple[int, bool]:
    """(interval, we refresh) from the 2xx to our INVITE or UPDATE.

    No ``Session-Expires`` in it: the peer does not do session timers, we
    refresh on our own at ``interval``. A malformed one counts as absent. The
    peer may shorten the interval we asked for, never lengthen it (RFC 4028
    §9): a longer value is cut back to ``interval``, so no peer can stretch the
    time a dead call lasts.
    """
    try:
        se = session_expires_of(response)
    except ProtocolError:
        se = None
    if se is None:
        return interval, True
    return min(interval, max(MIN_INTERVAL, se.interval)), se.refresher != "uas"
