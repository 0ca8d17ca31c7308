"""The sync protocol of the shared state, sans-I/O: outbox, batch numbers, resync, wrap-up timers.

Theory of operation
-------------------
``StateSync`` keeps one node's :class:`JournalingStore` in step with a store of
record (Redis) and with the other nodes, without doing any I/O. A driver
(:mod:`huntgroup.engine.aio.redis_state`) hands it *facts* with an explicit,
keyword-only ``now`` (the core's clock) and ``wall`` (wall-clock seconds, for
the codec), and carries out the *commands* it returns:

- ``FlushDue``: the journal is drained into the **outbox** and sent as one
  numbered batch (``PublishBatch``: 1, 2, ... per node). The first batch, and
  the first after an outage or a compaction that dropped activity, also states
  this node's whole activity (a :class:`NodeState`). The outbox is emptied only
  when the store has answered (``BatchWritten``, or ``BatchFailed`` refused);
  while the store is away (``StoreUnreachable``) it keeps growing, and beyond
  ``max_outbox`` ops it is compacted.
- ``BatchWritten(result=-1)`` means the store lost its data: the node offers
  its image (``RestoreImage``, which also records and publishes the batch);
  if another node restored first, it reads the snapshot (``LoadSnapshot``)
  with the batch counted as unsent, then writes the batch again. A second
  ``-1`` gives up (``AbandonBatch``): the driver treats it as an outage.
- ``BatchReceived``: another node's batch is applied once, in order (this
  node's own, echoed by the channel, is told by its first bytes and never
  decoded). A gap in
  a node's numbers asks for a resync (``ScheduleResync``); so does the first
  successful batch after an outage (:attr:`needs_resync`).
- ``SnapshotLoaded``: the shared state read back is merged, then the recent
  batches it did not hold yet are applied again.
- another node's wrap-up end is a **timer** of this object
  (``get_timer()``/``handle_timer(now=...)``): when it passes, the member may
  be free here, so the core is told (``NotifyCore``), as after every change.

Invariants: a batch number is used once (a retry after a lost reply reuses it
and the store ignores it); ops leave the outbox only once the store has
answered; a remote batch is applied at most once; ``get_timer()`` is the
earliest remote wrap-up end still ahead, or None.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import Enum

from huntgroup.errors import StateError
from huntgroup.queue.state.codec import (
    StoredState,
    batch_prefix,
    decode_batch,
    decode_stored,
    encode_batch,
    encode_image,
    encode_writes,
)
from huntgroup.queue.state.journal import JournalingStore
from huntgroup.queue.state.operations import Batch, NodeState, Op, SetWrapUp, compact

log = logging.getLogger("huntgroup.state")

RECENT_BATCHES = 1024
"""Remote batches kept, to apply again those a snapshot read later does not hold yet."""


# -------------------------------------------------------------------- facts
@dataclass(frozen=True, slots=True)
class Connected:
    """The driver reached the store and subscribed to the other nodes' batches (at start)."""


@dataclass(frozen=True, slots=True)
class FlushDue:
    """Time to send what the journal recorded (the store may be away)."""


@dataclass(frozen=True, slots=True)
class ResyncDue:
    """Time to read the shared state again (periodically, after an outage or a gap)."""


@dataclass(frozen=True, slots=True)
class BatchReceived:
    """A message of the channel (normally another node's batch; anything is accepted)."""

    data: str


@dataclass(frozen=True, slots=True)
class BatchWritten:
    """The store ran the batch script: 1 applied, 0 already applied, -1 state lost."""

    seq: int
    result: int


@dataclass(frozen=True, slots=True)
class RestoreDone:
    """The store ran the restore script: True if this node's image was written."""

    restored: bool


@dataclass(frozen=True, slots=True)
class SnapshotLoaded:
    """The store's hashes, as read."""

    stored: StoredState


@dataclass(frozen=True, slots=True)
class BatchFailed:
    """The batch got no answer: ``refused`` by the store (its ops are dropped), or the
    store went away (its ops are kept for the next flush)."""

    refused: bool


@dataclass(frozen=True, slots=True)
class StoreUnreachable:
    """The store did not answer: routing goes on, the ops are kept."""


@dataclass(frozen=True, slots=True)
class NodesExpired:
    """These nodes stopped refreshing their liveness: they are dead."""

    nodes: tuple[str, ...]


Fact = (
    Connected
    | FlushDue
    | ResyncDue
    | BatchReceived
    | BatchWritten
    | RestoreDone
    | SnapshotLoaded
    | BatchFailed
    | StoreUnreachable
    | NodesExpired
)


# ----------------------------------------------------------------- commands
@dataclass(frozen=True, slots=True)
class PublishBatch:
    """Run the batch script: apply ``writes`` unless ``seq`` was seen, then publish ``message``.

    Answer with :class:`BatchWritten` (or :class:`BatchFailed`).
    """

    seq: int
    message: str
    writes: str
    ops: int
    """How many ops the batch carries (for messages)."""


@dataclass(frozen=True, slots=True)
class RestoreImage:
    """Run the restore script: if the store lost its state, write ``image``, record ``seq``
    as applied and publish ``message`` (none when empty). Answer with :class:`RestoreDone`."""

    seq: int
    message: str
    image: str
    has_state: bool
    """The image holds membership, talk time or pointers."""


@dataclass(frozen=True, slots=True)
class LoadSnapshot:
    """Read the store's hashes; answer with :class:`SnapshotLoaded`."""


@dataclass(frozen=True, slots=True)
class NotifyCore:
    """Shared state changed behind the core: members may have become free."""


@dataclass(frozen=True, slots=True)
class ScheduleResync:
    """Resync after the next flush (:attr:`StateSync.needs_resync` is set)."""


@dataclass(frozen=True, slots=True)
class AbandonBatch:
    """The batch cannot be written now: treat it as an outage (the ops are kept)."""

    reason: str


Command = PublishBatch | RestoreImage | LoadSnapshot | NotifyCore | ScheduleResync | AbandonBatch


# ------------------------------------------------------------------ protocol
class _Stage(Enum):
    WRITTEN = 1  # first attempt sent
    RESTORING = 2  # the state was lost: our image offered
    RESYNCING = 3  # another node restored it: reading the snapshot
    RETRIED = 4  # written again: a second loss gives up


@dataclass(frozen=True, slots=True)
class _Flight:
    """The batch between its ``PublishBatch`` and the store's last answer."""

    seq: int
    ops: tuple[Op, ...]
    command: PublishBatch
    offset: float
    from_outbox: bool
    stage: _Stage = _Stage.WRITTEN


class StateSync:
    """One node's side of the shared state: facts in, commands out."""

    def __init__(
        self,
        store: JournalingStore,
        *,
        max_outbox: int = 10_000,
        channel: str = "huntgroup:ops",
    ) -> None:
        self.store = store
        self.node_id = store.node_id
        self.max_outbox = max_outbox
        self.channel = channel
        """The channel's name, for messages."""
        self.seq = 0
        """The number of this node's last batch the store applied."""
        self.connected = False
        """False while the store is away (routing goes on from the local image)."""
        self.needs_resync = False
        """A resync is due after the next successful flush (the driver clears it)."""
        self._outbox: list[Op] = []
        self._resend_state = True  # the first batch states this node's whole activity
        self._seen: dict[str, int] = {}
        self._recent: deque[Batch] = deque(maxlen=RECENT_BATCHES)
        self._flight: _Flight | None = None
        self._wrap_ups: list[float] = []  # remote wrap-up ends, a heap
        self._own = batch_prefix(self.node_id)  # this node's batches, echoed by the channel

    # ------------------------------------------------------------ queries
    @property
    def outbox(self) -> int:
        """Ops drained from the store and not yet accepted by the store of record."""
        return len(self._outbox)

    def get_timer(self) -> float | None:
        """The earliest remote wrap-up end ahead, in the core's clock."""
        return self._wrap_ups[0] if self._wrap_ups else None

    def handle_timer(self, *, now: float) -> list[Command]:
        """Remote wrap-ups ended: their members may be free here."""
        due = False
        while self._wrap_ups and self._wrap_ups[0] <= now:
            heapq.heappop(self._wrap_ups)
            due = True
        return [NotifyCore()] if due else []

    # -------------------------------------------------------------- facts
    def handle(self, fact: Fact, *, now: float, wall: float) -> list[Command]:
        """Take one fact; ``now`` is the core's clock and ``wall`` wall-clock seconds."""
        offset = wall - now
        match fact:
            case Connected():
                self.connected = True
                return [self._restore_command(0, "", offset), LoadSnapshot()]
            case FlushDue():
                return self._flush(offset)
            case ResyncDue():
                self._flight = None  # never part of a batch's flight (the driver serialises them)
                return [LoadSnapshot()]
            case BatchReceived(data):
                return self._received(data, now=now, offset=offset)
            case BatchWritten(seq, result):
                return self._written(seq, result, offset)
            case RestoreDone(restored):
                return self._restore_done(restored)
            case SnapshotLoaded(stored):
                return self._snapshot_loaded(stored, now=now, offset=offset)
            case BatchFailed(refused):
                self._flight = None
                if refused:
                    self._settle()
                return []
            case StoreUnreachable():
                self.connected = False
                self._resend_state = True
                return []
            case NodesExpired(nodes):
                return self._expired(nodes)

    def publish(self, ops: Sequence[Op], *, now: float, wall: float) -> list[Command]:
        """Send ``ops`` as the next batch, apart from the outbox (the driver's replay)."""
        return [self._publish(tuple(ops), wall - now, from_outbox=False)]

    # ---------------------------------------------------------- outgoing
    def _flush(self, offset: float) -> list[Command]:
        self._outbox.extend(self.store.drain())
        if len(self._outbox) > self.max_outbox:
            self._outbox, dropped = compact(self._outbox)
            self._resend_state = self._resend_state or dropped
        if not self._outbox and not self._resend_state:
            return []
        ops = list(self._outbox)
        if self._resend_state:
            ops.append(self.store.node_state())
        return [self._publish(tuple(ops), offset, from_outbox=True)]

    def _publish(self, ops: tuple[Op, ...], offset: float, *, from_outbox: bool) -> PublishBatch:
        seq = self.seq + 1
        command = self._batch_command(seq, ops, offset)
        self._flight = _Flight(seq, ops, command, offset, from_outbox)
        return command

    def _batch_command(self, seq: int, ops: tuple[Op, ...], offset: float) -> PublishBatch:
        message = encode_batch(Batch(self.node_id, seq, ops), offset=offset)
        writes = encode_writes(ops, self.store, offset=offset)
        return PublishBatch(seq, message, writes, len(ops))

    def _restore_command(self, seq: int, message: str, offset: float) -> RestoreImage:
        image = self.store.image()
        has_state = bool(image.joined or image.talk or image.pointers)
        return RestoreImage(seq, message, encode_image(image, offset=offset), has_state)

    def _written(self, seq: int, result: int, offset: float) -> list[Command]:
        flight = self._flight
        if flight is None or seq != flight.command.seq:
            return []
        if result == -1:  # the store lost its data: the first node to notice restores it
            if flight.stage is _Stage.WRITTEN:
                self._flight = replace(flight, stage=_Stage.RESTORING)
                return [self._restore_command(flight.seq, flight.command.message, offset)]
            self._flight = None
            return [AbandonBatch("the state marker vanished again")]
        self.seq = seq
        self._flight = None
        if flight.from_outbox:
            self._settle()
        return []

    def _restore_done(self, restored: bool) -> list[Command]:
        flight = self._flight
        if flight is None or flight.stage is not _Stage.RESTORING:
            return []  # the restore at start: nothing follows
        if not restored:
            self._flight = replace(flight, stage=_Stage.RESYNCING)
            return [LoadSnapshot()]
        # the image holds this batch and it was published with it; what the
        # store still lacks is this node's activity and queues
        self.seq = flight.seq
        command = self._batch_command(flight.seq + 1, (self.store.node_state(),), flight.offset)
        self._flight = replace(flight, command=command, stage=_Stage.RETRIED)
        return [command]

    def _settle(self) -> None:
        """The outbox was answered for: empty it; the first answer after an outage resyncs."""
        self._outbox.clear()
        self._resend_state = False
        if not self.connected:
            self.connected = True
            self.needs_resync = True

    # ----------------------------------------------------------- incoming
    def _received(self, data: str, *, now: float, offset: float) -> list[Command]:
        if data.startswith(self._own):  # our own batch, back from the channel
            return []
        try:
            batch = decode_batch(data, offset=offset)
        except StateError as err:
            log.warning("ignored a bad message on %s: %s", self.channel, err)
            return []
        if batch.node == self.node_id:
            return []
        last = self._seen.get(batch.node)
        if last is not None and batch.seq <= last:
            return []
        commands: list[Command] = []
        if last is not None and batch.seq > last + 1:
            log.info("missed batches %d..%d of node %s", last + 1, batch.seq - 1, batch.node)
            self.needs_resync = True
            commands.append(ScheduleResync())
        self._seen[batch.node] = batch.seq
        self._recent.append(batch)
        changed = False
        for op in batch.ops:
            changed = self.store.apply_remote(op) or changed
        self._watch_wrap_ups(batch.ops, now=now)
        if changed:
            commands.append(NotifyCore())
        return commands

    def _snapshot_loaded(self, stored: StoredState, *, now: float, offset: float) -> list[Command]:
        others = {n: a for n, a in stored.activity.items() if n != self.node_id}
        snap, seqs = decode_stored(replace(stored, activity=others), offset=offset)
        flight = self._flight
        resyncing = flight is not None and flight.stage is _Stage.RESYNCING
        unsent = flight.ops if flight is not None and resyncing else self._outbox
        self.store.apply_snapshot(snap, unsent=unsent)
        self.seq = max(self.seq, seqs.get(self.node_id, 0))
        for node, seq in seqs.items():
            self._seen[node] = max(self._seen.get(node, 0), seq)
        for batch in self._recent:
            if batch.seq > seqs.get(batch.node, 0):
                for op in batch.ops:
                    self.store.apply_remote(op)
        self._watch_wrap_ups(
            [NodeState(n, tuple(a.items()), ()) for n, a in snap.activity.items()], now=now
        )
        commands: list[Command] = [NotifyCore()]
        if flight is not None and resyncing:
            self._flight = replace(flight, stage=_Stage.RETRIED)
            commands.append(flight.command)
        return commands

    def _expired(self, nodes: Iterable[str]) -> list[Command]:
        forgot = False
        for node in nodes:
            log.warning("node %s stopped refreshing its state: its calls are forgotten", node)
            forgot = self.store.forget_node(node) or forgot
        return [NotifyCore()] if forgot else []

    def _watch_wrap_ups(self, ops: Iterable[Op], *, now: float) -> None:
        """Wake the core when another node's wrap-up ends (its member becomes free)."""
        for op in ops:
            ends: list[float] = []
            if isinstance(op, SetWrapUp) and op.node != self.node_id:
                ends.append(op.until)
            elif isinstance(op, NodeState) and op.node != self.node_id:
                ends.extend(a.wrap_up_until for _, a in op.activity)
            for until in ends:
                if until > now and math.isfinite(until):
                    heapq.heappush(self._wrap_ups, until)
