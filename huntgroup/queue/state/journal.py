"""A state store that records its mutations, so that several nodes can share them.

Theory of operation
-------------------
``JournalingStore`` is a :class:`MemoryStore` (the core reads it exactly as
it reads the in-memory store) that also records every mutation as a small
frozen *op*. The sync protocol (:mod:`huntgroup.queue.state.sync`)
``drain()``\\ s the ops, ships them to the other nodes and feeds the ops of the
other nodes back with ``apply_remote``, which changes the local image
without recording anything. Nothing here does I/O or reads a clock.

How the kinds of state merge:

- **membership**, **pause** and the **round-robin pointer** are
  last-writer-wins. Each
  write carries a Lamport stamp ``(counter, node)``: a node's counter is above
  every stamp it has seen, so a write made after seeing another wins over it,
  and two concurrent writes are ordered the same way everywhere (the node id
  breaks ties). A winning *join* restarts the talk-time counter at zero. A
  logout that ends a pause records the unpause as its own op, so that the two
  registers never disagree about it.
- **talk time** travels as increments (``AddTalk``), which commute: two nodes
  crediting the same member add up instead of overwriting each other.
- **member activity** (ringing, on a call, wrap-up end) is owned by the node
  that carries the call. Another node's calls are kept apart, per node, under
  ids that cannot collide with local call ids, so that they make the member
  busy here too and can be dropped at once when that node is declared dead
  (``forget_node``). A member's wrap-up end is the latest of all nodes'.
- **queues** belong to the node that holds the callers' dialogs: their ops are
  recorded (for monitoring) but another node's queue ops never enter the local
  queues, which the core only fills with its own calls.

Times in ops (``since``, ``until``, queue ranks) are in the local ``now`` of
the core; the codec (:mod:`huntgroup.queue.state.codec`) shifts them to
wall-clock seconds on the wire. The ops themselves are in
:mod:`huntgroup.queue.state.operations`.

Invariants: a recorded op, applied to a fresh store by ``apply_remote``,
reproduces the recorded change; ``apply_remote`` never records; a stamp
recorded here is above every stamp seen before; remote call ids in the
activity sets always contain ``REMOTE_SEP`` and local ones never do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field

from huntgroup.queue.state.operations import (
    AddTalk,
    Dequeue,
    Enqueue,
    MemberActivity,
    MemberCalls,
    NodeState,
    Op,
    SetActive,
    SetJoined,
    SetPaused,
    SetPointer,
    SetRinging,
    SetWrapUp,
    Snapshot,
    Stamp,
    compact,
)
from huntgroup.queue.state.store import MemoryStore, Pause, Pointer

REMOTE_SEP = "\x00"
"""Separates node and call id in the activity sets of another node's calls."""

DEFAULT_MAX_PENDING = 10_000
"""Ops kept before the journal is compacted (see :func:`compact`)."""


# -------------------------------------------------------------------- store
@dataclass(slots=True)
class _Mutable:
    ringing: set[str] = field(default_factory=set)
    active: set[str] = field(default_factory=set)
    wrap_up_until: float = -math.inf

    def frozen(self) -> MemberActivity:
        return MemberActivity(frozenset(self.ringing), frozenset(self.active), self.wrap_up_until)


class JournalingStore(MemoryStore):
    """A :class:`MemoryStore` that journals its mutations and merges other nodes' ops."""

    def __init__(self, node_id: str, *, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        if not node_id or REMOTE_SEP in node_id:
            raise ValueError(f"bad node id {node_id!r}")
        super().__init__()
        self.node_id = node_id
        self.max_pending = max_pending
        self.listener: Callable[[], None] | None = None
        """Called after an op is recorded (a driver wakes its flusher with it)."""
        self._journal: list[Op] = []
        self._clock = 0
        self._join_stamps: dict[tuple[str, str], Stamp] = {}
        self._pause_stamps: dict[tuple[str, str], Stamp] = {}
        self._pointer_stamps: dict[str, Stamp] = {}
        self._local: dict[str, _Mutable] = {}
        self._remote: dict[str, dict[str, _Mutable]] = {}
        self._ranks: dict[tuple[str, str], tuple[float, int]] = {}

    # ------------------------------------------------------------ journal
    @property
    def clock(self) -> int:
        """The Lamport counter: above every stamp recorded or seen."""
        return self._clock

    def drain(self) -> list[Op]:
        """The ops recorded since the last drain, oldest first."""
        ops, self._journal = self._journal, []
        return ops

    @property
    def pending(self) -> int:
        return len(self._journal)

    def _stamp(self) -> Stamp:
        self._clock += 1
        return (self._clock, self.node_id)

    def _seen(self, stamp: Stamp) -> None:
        self._clock = max(self._clock, stamp[0])

    def _record(self, op: Op) -> None:
        self._journal.append(op)
        if len(self._journal) > self.max_pending:
            kept, dropped = compact(self._journal)
            if dropped:
                kept.append(self.node_state())
            self._journal = kept
        if self.listener is not None:
            self.listener()

    # ------------------------------------------------------ local mutations
    def set_joined(self, group: str, member: str, joined: bool, *, now: float) -> None:
        key = (group, member)
        known = key in self._joined
        before = self._joined.get(key)
        was_paused = key in self._paused
        super().set_joined(group, member, joined, now=now)
        after = self._joined.get(key)
        if not known or (before is None) != (after is None):
            stamp = self._stamp()
            self._join_stamps[key] = stamp
            self._record(SetJoined(group, member, after, stamp))
        if was_paused and key not in self._paused:
            self._record_pause(key, None)

    def set_paused(
        self, group: str, member: str, paused: bool, *, reason: str = "", now: float
    ) -> None:
        key = (group, member)
        before = self._paused.get(key)
        super().set_paused(group, member, paused, reason=reason, now=now)
        after = self._paused.get(key)
        if (before is None) != (after is None):
            self._record_pause(key, after)

    def _record_pause(self, key: tuple[str, str], pause: Pause | None) -> None:
        stamp = self._stamp()
        self._pause_stamps[key] = stamp
        since, reason = (None, "") if pause is None else (pause.since, pause.reason)
        self._record(SetPaused(key[0], key[1], since, reason, stamp))

    def add_talk_time(self, group: str, member: str, seconds: float) -> None:
        super().add_talk_time(group, member, seconds)
        if seconds > 0:
            self._record(AddTalk(group, member, seconds))

    def set_last_answered(self, group: str, member: Pointer) -> None:
        if self._pointer.get(group) == member:
            return
        super().set_last_answered(group, member)
        stamp = self._stamp()
        self._pointer_stamps[group] = stamp
        self._record(SetPointer(group, member, stamp))

    def _mine(self, member: str) -> _Mutable:
        act = self._local.get(member)
        if act is None:
            act = self._local[member] = _Mutable()
        return act

    def set_ringing(self, member: str, call_id: str, ringing: bool) -> None:
        mine = self._mine(member).ringing
        if ringing == (call_id in mine):
            return
        (mine.add if ringing else mine.discard)(call_id)
        super().set_ringing(member, call_id, ringing)
        self._record(SetRinging(member, call_id, ringing, self.node_id))

    def set_ringing_many(
        self, members: Collection[str], call_id: str, *, touch: bool = True
    ) -> None:
        """Each member rung is its own op, as if rung alone: the journal, the listener
        and the other nodes see what ``set_ringing`` per member gives."""
        touched = self._touched
        fresh = () if touch else [m for m in members if m not in touched]
        for member in members:
            self.set_ringing(member, call_id, True)
        touched.difference_update(fresh)

    def set_active(self, member: str, call_id: str, active: bool) -> None:
        mine = self._mine(member).active
        if active == (call_id in mine):
            return
        (mine.add if active else mine.discard)(call_id)
        super().set_active(member, call_id, active)
        self._record(SetActive(member, call_id, active, self.node_id))

    def set_wrap_up_until(self, member: str, until: float) -> None:
        self._mine(member).wrap_up_until = until
        self._merge_wrap_up(member)
        self._record(SetWrapUp(member, until, self.node_id))

    def enqueue(self, group: str, call_id: str, rank: tuple[float, int]) -> None:
        if call_id in self.queue(group):
            return
        super().enqueue(group, call_id, rank)
        self._ranks[(group, call_id)] = rank
        self._record(Enqueue(group, call_id, rank, self.node_id))

    def dequeue(self, group: str, call_id: str) -> bool:
        removed = super().dequeue(group, call_id)
        if removed:
            self._ranks.pop((group, call_id), None)
            self._record(Dequeue(group, call_id, self.node_id))
        return removed

    # --------------------------------------------------------- local views
    def local_activity(self, member: str) -> MemberActivity:
        """What this node's own calls make of ``member``."""
        act = self._local.get(member)
        return act.frozen() if act is not None else MemberActivity()

    def local_calls(self) -> Iterator[tuple[str, MemberCalls]]:
        """The members this node's own calls ring or talk with, read in place (no copy:
        consume it before the store changes)."""
        return ((m, act) for m, act in self._local.items() if act.ringing or act.active)

    def local_ranks(self) -> Iterable[tuple[tuple[str, str], tuple[float, int]]]:
        """(group, call) → rank of this node's waiting callers, read in place."""
        return self._ranks.items()

    def node_state(self) -> NodeState:
        """This node's whole activity and queues, as one op."""
        activity = tuple(
            (member, act.frozen())
            for member, act in sorted(self._local.items())
            if not act.frozen().idle
        )
        queues = tuple((g, c, rank) for (g, c), rank in sorted(self._ranks.items()))
        return NodeState(self.node_id, activity, queues)

    def remote_nodes(self) -> set[str]:
        """Nodes whose calls currently make some member busy here."""
        return {node for node, members in self._remote.items() if members}

    def image(self) -> Snapshot:
        """Membership, talk time and pointers as this node sees them (to restore a store)."""
        joined = {
            key: (since, self._join_stamps.get(key, (0, self.node_id)))
            for key, since in self._joined.items()
        }
        talk = {(g, m): s for g, counters in self._talk.items() for m, s in counters.items()}
        pointers = {
            g: (p, self._pointer_stamps.get(g, (0, self.node_id))) for g, p in self._pointer.items()
        }
        paused: dict[tuple[str, str], tuple[float | None, str, Stamp]] = {
            key: (None, "", stamp) for key, stamp in self._pause_stamps.items()
        }
        for key, pause in self._paused.items():
            paused[key] = (pause.since, pause.reason, self._pause_stamps.get(key, (0, "")))
        return Snapshot(joined=joined, paused=paused, talk=talk, pointers=pointers)

    # ------------------------------------------------------- remote changes
    def apply_remote(self, op: Op) -> bool:
        """Apply another node's op without recording it; True when the image changed."""
        match op:
            case SetJoined(group, member, since, stamp):
                self._seen(stamp)
                key = (group, member)
                if stamp <= self._join_stamps.get(key, (0, "")):
                    return False
                self._join_stamps[key] = stamp
                self._joined[key] = since
                self._touched.add(member)
                if since is not None:
                    self._talk.setdefault(group, {})[member] = 0.0
                return True
            case SetPaused(group, member, since, reason, stamp):
                self._seen(stamp)
                key = (group, member)
                if stamp <= self._pause_stamps.get(key, (0, "")):
                    return False
                self._set_pause(key, since, reason, stamp)
                return True
            case AddTalk(group, member, seconds):
                if seconds <= 0:
                    return False
                super().add_talk_time(group, member, seconds)
                return True
            case SetPointer(group, member, stamp):
                self._seen(stamp)
                if stamp <= self._pointer_stamps.get(group, (0, "")):
                    return False
                self._pointer_stamps[group] = stamp
                self._pointer[group] = member
                return True
            case SetRinging(member, call, on, node) if node != self.node_id:
                return self._remote_call(node, member, call, on, ringing=True)
            case SetActive(member, call, on, node) if node != self.node_id:
                return self._remote_call(node, member, call, on, ringing=False)
            case SetWrapUp(member, until, node) if node != self.node_id:
                self._remote.setdefault(node, {}).setdefault(
                    member, _Mutable()
                ).wrap_up_until = until
                self._merge_wrap_up(member)
                return True
            case NodeState(node, activity, _) if node != self.node_id:
                self.forget_node(node)
                for member, act in activity:
                    for call in act.ringing:
                        self._remote_call(node, member, call, True, ringing=True)
                    for call in act.active:
                        self._remote_call(node, member, call, True, ringing=False)
                    if act.wrap_up_until != -math.inf:
                        self._remote.setdefault(node, {}).setdefault(
                            member, _Mutable()
                        ).wrap_up_until = act.wrap_up_until
                        self._merge_wrap_up(member)
                return True
            case _:
                return False  # our own echo, or another node's queue

    def _set_pause(
        self, key: tuple[str, str], since: float | None, reason: str, stamp: Stamp
    ) -> None:
        self._pause_stamps[key] = stamp
        self._touched.add(key[1])
        if since is None:
            self._paused.pop(key, None)
        else:
            self._paused[key] = Pause(since, reason)

    def _remote_call(self, node: str, member: str, call: str, on: bool, *, ringing: bool) -> bool:
        acts = self._remote.setdefault(node, {})
        act = acts.setdefault(member, _Mutable())
        calls = act.ringing if ringing else act.active
        if on == (call in calls):
            return False
        (calls.add if on else calls.discard)(call)
        tagged = f"{node}{REMOTE_SEP}{call}"
        if ringing:
            super().set_ringing(member, tagged, on)
        else:
            super().set_active(member, tagged, on)
        return True

    def _merge_wrap_up(self, member: str) -> None:
        until = self._local[member].wrap_up_until if member in self._local else -math.inf
        for acts in self._remote.values():
            act = acts.get(member)
            if act is not None:
                until = max(until, act.wrap_up_until)
        super().set_wrap_up_until(member, until)

    def forget_node(self, node: str) -> bool:
        """Drop every call of ``node`` (it is dead or restarted); True if any was known."""
        acts = self._remote.pop(node, None)
        if not acts:
            return False
        for member, act in acts.items():
            for call in act.ringing:
                super().set_ringing(member, f"{node}{REMOTE_SEP}{call}", False)
            for call in act.active:
                super().set_active(member, f"{node}{REMOTE_SEP}{call}", False)
            self._merge_wrap_up(member)
        return True

    def apply_snapshot(self, snap: Snapshot, *, unsent: Iterable[Op] = ()) -> None:
        """Merge state read back from the store of record.

        Membership, pause and pointers merge by stamp. Talk counters take the
        snapshot's value plus the increments the snapshot cannot hold: those
        recorded here and not drained yet, and the drained ones the driver has
        not sent (``unsent``); after such a local join, only the increments
        recorded after it. Other nodes' activity is replaced by the snapshot's.
        """
        for key, (since, stamp) in snap.joined.items():
            self._seen(stamp)
            if stamp > self._join_stamps.get(key, (0, "")):
                self._join_stamps[key] = stamp
                self._joined[key] = since
                self._touched.add(key[1])
        for key, (paused_since, reason, stamp) in snap.paused.items():
            self._seen(stamp)
            if stamp > self._pause_stamps.get(key, (0, "")):
                self._set_pause(key, paused_since, reason, stamp)
        for group, (member, stamp) in snap.pointers.items():
            self._seen(stamp)
            if stamp > self._pointer_stamps.get(group, (0, "")):
                self._pointer_stamps[group] = stamp
                self._pointer[group] = member
        pending: dict[tuple[str, str], float] = {}
        rejoined: set[tuple[str, str]] = set()
        for op in [*unsent, *self._journal]:
            if isinstance(op, SetJoined) and op.since is not None:
                key = (op.group, op.member)
                pending[key] = 0.0
                rejoined.add(key)
            elif isinstance(op, AddTalk):
                key = (op.group, op.member)
                pending[key] = pending.get(key, 0.0) + op.seconds
        for (group, member), seconds in snap.talk.items():
            if (group, member) in rejoined:
                continue
            extra = pending.get((group, member), 0.0)
            self._talk.setdefault(group, {})[member] = max(0.0, seconds) + extra
            self._touched.add(member)  # least talk time orders by it (queue.roster)
        for node in list(self._remote):
            if node not in snap.activity:
                self.forget_node(node)
        for node, members in snap.activity.items():
            if node == self.node_id:
                continue
            state = NodeState(node, tuple(members.items()), ())
            self.apply_remote(state)
