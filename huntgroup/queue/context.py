"""What every part of the group core works on: its calls, its tables, its timer heap.

Theory of operation
-------------------
:class:`RoutingContext` holds the state of one group core: the shared state
store, the calls it routes (:class:`RoutedCall`, by call id), the groups of
the configuration (:mod:`~huntgroup.queue.groups`), our pilots and lines,
which groups each member serves, the availability of the members
(:mod:`~huntgroup.queue.availability`), since when each member is in its state
and the control changes not taken yet (:mod:`~huntgroup.queue.member_status`),
the forwards to our own numbers still to follow
(:mod:`~huntgroup.queue.forwards`), the latest ``now``, and the one timer heap.
The parts of the core are functions over it, in modules by concern: who is free
and the offers (:mod:`~huntgroup.queue.offers`), how a
call leaves (:mod:`~huntgroup.queue.endings`), the hunt and the dispatch of
the queues (:mod:`~huntgroup.queue.hunting`), what becomes of offers and calls
(:mod:`~huntgroup.queue.outcomes`), arrivals (:mod:`~huntgroup.queue.arrivals`),
members coming and going (:mod:`~huntgroup.queue.membership`), talk time
(:mod:`~huntgroup.queue.talk_time`) and transfers
(:mod:`~huntgroup.queue.transfers`). The facade
:class:`~huntgroup.queue.core.RoutingCore` is a RoutingContext with the public
inputs, the timers and the inspection.

The attributes with a leading underscore are the core's own: only the modules
of the group core read or change them, never a driver.

The timer heap holds ``(due, seq, kind, key, token)`` entries: ``key`` is a
call id, or a member for ``WRAP_UP``, ``RETRY`` and ``CLAIM_RETRY``; ``token`` tells an offer
or a pass from the later ones of the same call. An entry is never removed: it
is skipped when it reaches the head or fires and no longer matches
(:meth:`RoutingCore._timer_valid <huntgroup.queue.core.RoutingCore._timer_valid>`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from heapq import heappush

from huntgroup.config.models import Config, GroupConfig, LineConfig
from huntgroup.distribution.hunt import Hunt
from huntgroup.queue.actions import Identity, Ring
from huntgroup.queue.availability import Availability
from huntgroup.queue.forwards import Reentry
from huntgroup.queue.member_status import MembershipChange, MemberStatus
from huntgroup.queue.roster import Roster, RosterCore
from huntgroup.queue.state.store import MemoryStore, StateStore


class CallKind(Enum):
    GROUP = "group"
    DIRECT = "direct"
    OUTGOING = "outgoing"


class CallState(Enum):
    QUEUED = "queued"
    HUNTING = "hunting"
    RINGING = "ringing"  # a direct call ringing its line
    DIALING = "dialing"  # an outgoing call not answered yet
    CONNECTED = "connected"


class TimerKind(Enum):
    OFFER = 1
    MAX_WAIT = 2
    AFTER = 3
    NEXT_PASS = 4
    WRAP_UP = 5
    RETRY = 6  # a member's back-off ends: it may be offered calls again
    CLAIM_RETRY = 7  # a member whose claim was refused may be claimed again


TimerEntry = tuple[float, int, TimerKind, str, int]
"""(due, seq, kind, key, token)."""


@dataclass(slots=True, init=False)
class RoutedCall:
    """One call as the group core knows it: where it is, who it was offered to."""

    id: str
    kind: CallKind
    state: CallState
    arrival: float
    rank: tuple[float, int]
    caller: Identity
    route: tuple[str, ...] = ()  # our numbers it went to: the one dialled, then forwards
    caller_internal: bool = False
    group: GroupConfig | None = None
    line: LineConfig | None = None
    hunt: Hunt | None = None
    offers: dict[str, int] = field(default_factory=dict)  # member -> offer token
    claiming: dict[str, Ring] = field(default_factory=dict)  # offers awaiting their claim
    member: str | None = None
    connected_at: float | None = None
    holding: bool = False
    pass_token: int = 0

    def __init__(
        self,
        id: str,
        kind: CallKind,
        state: CallState,
        arrival: float,
        rank: tuple[float, int],
        caller: Identity,
        route: tuple[str, ...] = (),
        caller_internal: bool = False,
        group: GroupConfig | None = None,
        line: LineConfig | None = None,
        hunt: Hunt | None = None,
        offers: dict[str, int] | None = None,
        claiming: dict[str, Ring] | None = None,
        member: str | None = None,
        connected_at: float | None = None,
        holding: bool = False,
        pass_token: int = 0,
    ) -> None:
        self.id = id
        self.kind = kind
        self.state = state
        self.arrival = arrival
        self.rank = rank
        self.caller = caller
        self.route = route
        self.caller_internal = caller_internal
        self.group = group
        self.line = line
        self.hunt = hunt
        self.offers = {} if offers is None else offers
        self.claiming = {} if claiming is None else claiming
        self.member = member
        self.connected_at = connected_at
        self.holding = holding
        self.pass_token = pass_token


class RoutingContext(RosterCore):
    """The state of one group core, shared by the modules that route its calls."""

    quick = True
    """A new call that finds a free member and nobody waiting, one member at a time,
    takes the fused path (:func:`~huntgroup.queue.hunting.ring_first`); off, the general
    path's steps one by one (the tests hold the two to the same actions and state)."""

    def __init__(self, config: Config, *, now: float, store: StateStore | None = None) -> None:
        self.store = store if store is not None else MemoryStore()
        self._calls: dict[str, RoutedCall] = {}
        self._timers: list[TimerEntry] = []
        self._seq = 1
        """The next sequence number (timer tie-breaks, tokens, ranks): a plain int, taken
        with ``n = core._seq; core._seq = n + 1`` (compiled, C integer ops; an
        ``itertools.count`` was a call through the C API each time)."""
        self._now = now
        self._groups = {}
        self._pilots: dict[str, str] = {}
        self._lines: dict[str, LineConfig] = {}
        self._groups_of = {}
        self._reentries: deque[Reentry] = deque()  # forwards to our numbers, to follow
        self.availability = Availability()
        self.roster = Roster()
        """Who is free in each group, kept up to date (:mod:`~huntgroup.queue.roster`)."""
        self.times = MemberStatus()
        self._touched = set()  # members whose state a timer may have changed
        self.observed = False
        """Operators look at this core (the live server): it stamps the time in state of
        its members and keeps its control changes. The simulator and the benchmarks do
        not pay for it."""
        self.changes: list[MembershipChange] | None = None
        """Control changes for the driver to take (None: not kept, e.g. the simulator)."""
        self.config = config
        self.claims = False
        """Offers claim their member first (``Claim``; several nodes share the state).
        Off (one node, the simulator, the benchmarks): members are rung at once."""
        self._claim_refused = {}
        """Members whose claim was refused → until when this node does not claim them again."""

    def _arm(self, when: float, kind: TimerKind, key: str, token: int = 0) -> None:
        seq = self._seq
        self._seq = seq + 1
        heappush(self._timers, (when, seq, kind, key, token))
