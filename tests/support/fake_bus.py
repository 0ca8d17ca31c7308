"""An in-memory store of record and channel, and nodes that run StateSync on it in virtual time.

``FakeRedis`` does what the Redis driver's two Lua scripts and its reads do,
on plain dicts, with the same hash layout: the sync objects under test cannot
tell it from Redis. Its channel keeps one inbox per node, so that a test can
take a message out, or deliver it late. ``Peer`` is a node: a RoutingCore on a
JournalingStore, a StateSync, and a small driver that carries out the sync
object's commands, as ``engine/aio/redis_state.py`` does, but with an explicit
clock (``wall = local + offset``).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Sequence

from huntgroup.config.models import Config
from huntgroup.queue.actions import Action
from huntgroup.queue.events import Event
from huntgroup.queue.state.codec import StoredState, decode_stamp
from huntgroup.queue.state.journal import JournalingStore
from huntgroup.queue.state.sync import (
    AbandonBatch,
    BatchFailed,
    BatchReceived,
    BatchWritten,
    Command,
    Connected,
    Fact,
    FlushDue,
    LoadSnapshot,
    NodesExpired,
    NotifyCore,
    PublishBatch,
    RestoreDone,
    RestoreImage,
    ResyncDue,
    ScheduleResync,
    SnapshotLoaded,
    StateSync,
    StoreUnreachable,
)
from tests.support.state_harness import Node

STATE = ("joined", "joined_stamps", "talk", "pointers", "pointer_stamps", "seqs")


class Unreachable(Exception):
    """The fake store is down."""


def _newer(stamp: str, current: str | None) -> bool:
    return current is None or decode_stamp(stamp) > decode_stamp(current)


class FakeRedis:
    """The store of record and the channel, in memory."""

    def __init__(self) -> None:
        self.up = True
        self.hashes: dict[str, dict[str, str]] = {name: {} for name in STATE}
        self.activity: dict[str, dict[str, str]] = {}
        self.queues: dict[str, dict[str, str]] = {}
        self.marker = False
        self.inboxes: dict[str, deque[str]] = {}
        self.before_restore: Callable[[], object] | None = None
        """Runs once, just before the next restore script (another node's race)."""

    def _check(self) -> None:
        if not self.up:
            raise Unreachable("the store is down")

    def lose_everything(self) -> None:
        """Restarted without persistence."""
        self.hashes = {name: {} for name in STATE}
        self.activity, self.queues, self.marker = {}, {}, False

    # ------------------------------------------------------------ channel
    def subscribe(self, node: str) -> None:
        self.inboxes.setdefault(node, deque())

    def publish(self, message: str) -> None:
        for inbox in self.inboxes.values():
            inbox.append(message)

    # ------------------------------------------------------------ scripts
    def run_batch(self, node: str, command: PublishBatch) -> int:
        """What the batch script does."""
        self._check()
        if not self.marker:
            return -1
        h = self.hashes
        if command.seq <= int(h["seqs"].get(node, "0")):
            return 0
        for w in json.loads(command.writes):
            match w[0]:
                case "j":
                    if _newer(w[3], h["joined_stamps"].get(w[1])):
                        h["joined"][w[1]], h["joined_stamps"][w[1]] = w[2], w[3]
                        if w[2] != "-":
                            h["talk"][w[1]] = "0"
                case "p":
                    if _newer(w[3], h["pointer_stamps"].get(w[1])):
                        h["pointers"][w[1]], h["pointer_stamps"][w[1]] = w[2], w[3]
                case "t":
                    h["talk"][w[1]] = repr(float(h["talk"].get(w[1], "0")) + float(w[2]))
                case "a" | "q":
                    hash_ = (self.activity if w[0] == "a" else self.queues).setdefault(node, {})
                    if w[2] == "":
                        hash_.pop(w[1], None)
                    else:
                        hash_[w[1]] = w[2]
                case "clear":
                    self.activity.pop(node, None)
                    self.queues.pop(node, None)
        h["seqs"][node] = str(command.seq)
        self.publish(command.message)
        return 1

    def run_restore(self, node: str, command: RestoreImage) -> bool:
        """What the restore script does."""
        self._check()
        hook, self.before_restore = self.before_restore, None
        if hook is not None:
            hook()
        if self.marker:
            return False
        image = json.loads(command.image)
        h = self.hashes
        for field, since, stamp in image["j"]:
            h["joined"][field], h["joined_stamps"][field] = since, stamp
        for field, seconds in image["t"]:
            h["talk"][field] = seconds
        for group, position, stamp in image["p"]:
            h["pointers"][group], h["pointer_stamps"][group] = position, stamp
        self.marker = True
        if command.seq > 0:
            h["seqs"][node] = str(command.seq)
        if command.message:
            self.publish(command.message)
        return True

    def read(self) -> StoredState:
        self._check()
        h = self.hashes
        activity = {node: dict(acts) for node, acts in self.activity.items()}
        return StoredState(
            dict(h["joined"]),
            dict(h["joined_stamps"]),
            dict(h["talk"]),
            dict(h["pointers"]),
            dict(h["pointer_stamps"]),
            dict(h["seqs"]),
            activity=activity,
        )


class Peer:
    """One node: a core on a journaling store, its sync object, and a driver in virtual time."""

    def __init__(self, name: str, redis: FakeRedis, *, offset: float) -> None:
        self.name = name
        self.redis = redis
        self.offset = offset  # wall = local + offset
        self.store = JournalingStore(name)
        self.sync = StateSync(self.store)
        self.node: Node | None = None
        self._clock = 0.0  # local time before the core exists
        self.notified = 0
        self.resync_scheduled = False

    # ------------------------------------------------------------ clocks
    @property
    def now(self) -> float:
        return self.node.now if self.node is not None else self._clock

    @property
    def core(self) -> Node:
        assert self.node is not None, "not started"
        return self.node

    def local(self, wall: float) -> float:
        return wall - self.offset

    # ---------------------------------------------------------- lifecycle
    def start(self, config: Config, *, wall: float) -> None:
        """Load (as the driver does at start), then build the core on the store."""
        self._clock = self.local(wall)
        self.redis.subscribe(self.name)
        self.execute(self.handle(Connected()))
        self.node = Node(config, self.store, now=self._clock)

    # --------------------------------------------------------- the driver
    def handle(self, fact: Fact) -> list[Command]:
        return self.sync.handle(fact, now=self.now, wall=self.now + self.offset)

    def execute(self, commands: Sequence[Command]) -> None:
        pending = deque(commands)
        while pending:
            command = pending.popleft()
            match command:
                case PublishBatch(seq):
                    result = self.redis.run_batch(self.name, command)
                    pending.extend(self.handle(BatchWritten(seq, result)))
                case RestoreImage():
                    pending.extend(
                        self.handle(RestoreDone(self.redis.run_restore(self.name, command)))
                    )
                case LoadSnapshot():
                    pending.extend(self.handle(SnapshotLoaded(self.redis.read())))
                case AbandonBatch(reason):
                    raise Unreachable(reason)
                case NotifyCore():
                    self.notified += 1
                    if self.node is not None:
                        got = self.node.core.state_changed(now=self.node.now)
                        self.node.log.extend((self.node.now, a) for a in got)
                case ScheduleResync():
                    self.resync_scheduled = True

    def flush(self) -> bool:
        """What the driver's flush does: False (ops kept) while the store is down."""
        commands = self.handle(FlushDue())
        if not commands:
            return True
        try:
            self.execute(commands)
        except Unreachable:
            self.handle(StoreUnreachable())
            self.handle(BatchFailed(refused=False))
            return False
        return True

    def resync(self) -> None:
        self.flush()
        self.execute(self.handle(ResyncDue()))

    def flusher(self) -> bool:
        """One turn of the driver's flusher: flush, then resync if asked to."""
        if not self.flush():
            return False
        if self.sync.needs_resync:
            self.sync.needs_resync = False
            self.resync()
        self.resync_scheduled = False
        return True

    def receive(self) -> int:
        """Apply every message waiting in this node's inbox; how many there were."""
        inbox = self.redis.inboxes[self.name]
        count = len(inbox)
        while inbox:
            self.execute(self.handle(BatchReceived(inbox.popleft())))
        return count

    def expired(self, *nodes: str) -> None:
        self.execute(self.handle(NodesExpired(nodes)))

    def ev(self, event: Event, *, wall: float | None = None) -> list[Action]:
        """``event`` at ``wall`` (after the timers due by then), else now."""
        out = self.advance(wall) if wall is not None else []
        return out + self.core.ev(event)

    # ------------------------------------------------------------ time
    def advance(self, wall: float) -> list[Action]:
        """Run the core's and the sync object's timers, in order, up to ``wall``."""
        node = self.core
        start = len(node.log)
        end = self.local(wall)
        while True:
            due = [t for t in (node.core.get_timer(), self.sync.get_timer()) if t is not None]
            if not due or min(due) > end:
                break
            node.at(min(due))
            self.execute(self.sync.handle_timer(now=node.now))
        node.at(end)
        return [a for _, a in node.log[start:]]
