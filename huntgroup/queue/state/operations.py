"""The operations of the shared state: what one node tells the others.

Theory of operation
-------------------
Every change a node makes to the shared state is one small frozen *op*
(``SetJoined``, ``SetPaused``, ``AddTalk``, ``SetPointer`` ...). A node records its own ops
(:mod:`huntgroup.queue.state.journal`), numbers them in batches and ships them
(:mod:`huntgroup.queue.state.sync`); the other nodes merge them by the rules of
the journal. A :class:`Snapshot` is the state read back from the store of
record; :class:`NodeState` states one node's whole activity at once.

Membership, pause and pointer writes carry a Lamport :data:`Stamp`; talk time travels
as increments; activity and queue ops carry the node that owns the call.
:func:`compact` shrinks a backlog of ops to one per key without losing what
membership, pointers and talk time mean.

Invariants: ops are immutable values; ``compact`` keeps the last membership,
pause and pointer write per key and the sum of the talk increments after the last
join, and says when it had to drop activity or queue ops.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from typing import Protocol

from huntgroup.queue.state.store import Pointer

Stamp = tuple[int, str]
"""A Lamport stamp: (counter, node id); larger wins."""


# ---------------------------------------------------------------------- ops
@dataclass(frozen=True, slots=True)
class SetJoined:
    """A member joined (``since`` = when) or left (``since`` = None) a group."""

    group: str
    member: str
    since: float | None
    stamp: Stamp


@dataclass(frozen=True, slots=True)
class SetPaused:
    """A member was paused in a group (``since`` = when, ``reason``) or unpaused
    (``since`` = None)."""

    group: str
    member: str
    since: float | None
    reason: str
    stamp: Stamp


@dataclass(frozen=True, slots=True)
class AddTalk:
    """``seconds`` of completed talk time credited to a member of a group."""

    group: str
    member: str
    seconds: float


@dataclass(frozen=True, slots=True)
class SetPointer:
    """The round-robin pointer of a group moved to ``member`` (an ``int``: a position,
    from a node of a version before issue 11)."""

    group: str
    member: Pointer
    stamp: Stamp


@dataclass(frozen=True, slots=True)
class SetRinging:
    member: str
    call: str
    ringing: bool
    node: str


@dataclass(frozen=True, slots=True)
class SetActive:
    member: str
    call: str
    active: bool
    node: str


@dataclass(frozen=True, slots=True)
class SetWrapUp:
    member: str
    until: float
    node: str


@dataclass(frozen=True, slots=True)
class Enqueue:
    group: str
    call: str
    rank: tuple[float, int]
    node: str


class MemberCalls(Protocol):
    """The calls of one node that ring or talk with a member (a :class:`MemberActivity`,
    or the store's own mutable record of it, read without a copy)."""

    @property
    def ringing(self) -> Set[str]: ...

    @property
    def active(self) -> Set[str]: ...


@dataclass(frozen=True, slots=True)
class Dequeue:
    group: str
    call: str
    node: str


@dataclass(frozen=True, slots=True)
class MemberActivity:
    """One member's activity as seen by one node."""

    ringing: frozenset[str] = frozenset()
    active: frozenset[str] = frozenset()
    wrap_up_until: float = -math.inf

    @property
    def idle(self) -> bool:
        return not self.ringing and not self.active and self.wrap_up_until == -math.inf


@dataclass(frozen=True, slots=True)
class NodeState:
    """The whole activity and queues of one node; replaces what was known of it."""

    node: str
    activity: tuple[tuple[str, MemberActivity], ...]
    queues: tuple[tuple[str, str, tuple[float, int]], ...]  # (group, call, rank)


Op = (
    SetJoined
    | SetPaused
    | AddTalk
    | SetPointer
    | SetRinging
    | SetActive
    | SetWrapUp
    | Enqueue
    | Dequeue
    | NodeState
)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Shared state read back from a store of record (membership, pause, talk, pointers,
    activity)."""

    joined: Mapping[tuple[str, str], tuple[float | None, Stamp]] = field(default_factory=dict)
    paused: Mapping[tuple[str, str], tuple[float | None, str, Stamp]] = field(default_factory=dict)
    talk: Mapping[tuple[str, str], float] = field(default_factory=dict)
    pointers: Mapping[str, tuple[Pointer, Stamp]] = field(default_factory=dict)
    activity: Mapping[str, Mapping[str, MemberActivity]] = field(default_factory=dict)


def compact(ops: Iterable[Op]) -> tuple[list[Op], bool]:
    """Shrink a backlog of ops to one per key, keeping what they mean.

    Membership, pause and pointer writes keep the last one per key; talk increments
    are summed per key (those before a join are dropped: the join restarts
    the counter). Activity and queue ops cannot be shrunk by key: they are
    dropped, and the second result says so; the caller then sends a
    :class:`NodeState` of its current activity instead.
    """
    out: dict[tuple[str, ...], Op] = {}
    dropped = False
    for op in ops:
        match op:
            case SetJoined(group, member, since, _):
                out.pop(("j", group, member), None)
                if since is not None:
                    out.pop(("t", group, member), None)
                out[("j", group, member)] = op
            case SetPaused(group, member, _, _, _):
                out.pop(("u", group, member), None)
                out[("u", group, member)] = op
            case SetPointer(group, _, _):
                out.pop(("p", group), None)
                out[("p", group)] = op
            case AddTalk(group, member, seconds):
                prev = out.get(("t", group, member))
                if isinstance(prev, AddTalk):
                    op = AddTalk(group, member, prev.seconds + seconds)
                out[("t", group, member)] = op
            case _:
                dropped = True
    return list(out.values()), dropped


@dataclass(frozen=True, slots=True)
class Batch:
    """Ops one node flushed together, numbered ``seq`` (1, 2, ... per node)."""

    node: str
    seq: int
    ops: tuple[Op, ...]
