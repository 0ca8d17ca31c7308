"""The one codec of the shared state: ops and batches on the wire, state in the store of record.

Theory of operation
-------------------
Ops carry times in the core's local clock (``now``); every form written here
carries wall-clock seconds, so that nodes with different monotonic clocks
agree: ``offset`` is ``wall - local``, added on encoding and taken off on
decoding.

Two forms, one module:

- **the wire**: a batch of ops as one JSON object
  (``{"node":..,"seq":..,"ops":[[kind, ...], ...]}``), published to the other
  nodes; :func:`encode_batch` and :func:`decode_batch`.
- **the store of record**: the hashes a store keeps (membership, pauses,
  stamps, talk time, pointers, per-node sequence numbers, one activity hash per node).
  :func:`encode_writes` turns a batch into the writes the store's batch script
  makes, :func:`encode_image` turns a node's image into the payload of the
  restore script, and :func:`decode_stored` reads the hashes back into a
  :class:`Snapshot`. A hash field naming a (group, member) or (group, call)
  pair is a compact JSON list; a stamp is ``counter|node``; a time that is
  unset is ``-`` (membership, pause) or JSON ``null`` (wrap-up end); a pause
  is the JSON list ``[since, reason]``.

Invariants: ``decode_batch(encode_batch(b, offset=o), offset=o) == b`` (up to
float rounding of the shifted times); decoding raises :class:`StateError` on
malformed input and never another exception; :func:`decode_stored` skips
malformed entries with a warning instead of failing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from huntgroup.errors import StateError
from huntgroup.queue.state.journal import JournalingStore
from huntgroup.queue.state.operations import (
    AddTalk,
    Batch,
    Dequeue,
    Enqueue,
    MemberActivity,
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
)
from huntgroup.queue.state.store import Pointer

log = logging.getLogger("huntgroup.state")


# -------------------------------------------------------------------- wire
def _wall(t: float, offset: float) -> float | None:
    return None if math.isinf(t) else t + offset


def _local(t: float | None, offset: float) -> float:
    return -math.inf if t is None else t - offset


def _activity_list(act: MemberActivity, offset: float) -> list[Any]:
    return [sorted(act.ringing), sorted(act.active), _wall(act.wrap_up_until, offset)]


def encode_op(op: Op, *, offset: float) -> list[Any]:
    """A JSON-ready list for ``op``; times shifted by ``offset`` (local + offset = wall)."""
    match op:
        case SetJoined(g, m, since, (counter, node)):
            return ["j", g, m, None if since is None else since + offset, counter, node]
        case SetPaused(g, m, since, reason, (counter, node)):
            return ["u", g, m, None if since is None else since + offset, reason, counter, node]
        case AddTalk(g, m, seconds):
            return ["t", g, m, seconds]
        case SetPointer(g, member, (counter, node)):
            return ["p", g, member, counter, node]
        case SetRinging(m, call, on, node):
            return ["r", m, call, on, node]
        case SetActive(m, call, on, node):
            return ["a", m, call, on, node]
        case SetWrapUp(m, until, node):
            return ["w", m, _wall(until, offset), node]
        case Enqueue(g, call, (t, seq), node):
            return ["e", g, call, t + offset, seq, node]
        case Dequeue(g, call, node):
            return ["d", g, call, node]
        case NodeState(node, activity, queues):
            return [
                "s",
                node,
                [[m, *_activity_list(a, offset)] for m, a in activity],
                [[g, c, t + offset, seq] for g, c, (t, seq) in queues],
            ]
    raise TypeError(f"not an op: {op!r}")


def _str(v: object) -> str:
    if not isinstance(v, str):
        raise StateError(f"expected a string, got {v!r}")
    return v


def _num(v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v):
        raise StateError(f"expected a number, got {v!r}")
    return float(v)


def _opt_num(v: object) -> float | None:
    return None if v is None else _num(v)


def _int(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise StateError(f"expected an integer, got {v!r}")
    return v


def _bool(v: object) -> bool:
    if not isinstance(v, bool):
        raise StateError(f"expected true or false, got {v!r}")
    return v


def _pointer(v: object) -> Pointer:
    """A member key, or the position an older node wrote (an integer)."""
    return v if isinstance(v, str) else _int(v)


def _list(v: object) -> list[Any]:
    if not isinstance(v, list):
        raise StateError(f"expected a list, got {v!r}")
    return v


def decode_activity(v: object, *, offset: float) -> MemberActivity:
    """The inverse of the activity lists written by :func:`encode_op`."""
    ringing, active, until = _fields(v, 3)
    return MemberActivity(
        frozenset(_str(c) for c in _list(ringing)),
        frozenset(_str(c) for c in _list(active)),
        _local(_opt_num(until), offset),
    )


def encode_activity(act: MemberActivity, *, offset: float) -> list[Any]:
    return _activity_list(act, offset)


def _fields(v: object, n: int) -> list[Any]:
    items = _list(v)
    if len(items) != n:
        raise StateError(f"expected {n} fields, got {len(items)}")
    return items


def decode_op(data: object, *, offset: float) -> Op:
    """The op written by :func:`encode_op`; :class:`StateError` when malformed."""
    items = _list(data)
    if not items:
        raise StateError("empty op")
    kind, args = items[0], items[1:]
    n = len(args)
    match kind:
        case "j" if n == 5:
            since = _opt_num(args[2])
            return SetJoined(
                _str(args[0]),
                _str(args[1]),
                None if since is None else since - offset,
                (_int(args[3]), _str(args[4])),
            )
        case "u" if n == 6:
            since = _opt_num(args[2])
            return SetPaused(
                _str(args[0]),
                _str(args[1]),
                None if since is None else since - offset,
                _str(args[3]),
                (_int(args[4]), _str(args[5])),
            )
        case "t" if n == 3:
            return AddTalk(_str(args[0]), _str(args[1]), _num(args[2]))
        case "p" if n == 4:
            return SetPointer(_str(args[0]), _pointer(args[1]), (_int(args[2]), _str(args[3])))
        case "r" if n == 4:
            return SetRinging(_str(args[0]), _str(args[1]), _bool(args[2]), _str(args[3]))
        case "a" if n == 4:
            return SetActive(_str(args[0]), _str(args[1]), _bool(args[2]), _str(args[3]))
        case "w" if n == 3:
            return SetWrapUp(_str(args[0]), _local(_opt_num(args[1]), offset), _str(args[2]))
        case "e" if n == 5:
            rank = (_num(args[2]) - offset, _int(args[3]))
            return Enqueue(_str(args[0]), _str(args[1]), rank, _str(args[4]))
        case "d" if n == 3:
            return Dequeue(_str(args[0]), _str(args[1]), _str(args[2]))
        case "s" if n == 3:
            activity = []
            for entry in _list(args[1]):
                fields = _fields(entry, 4)
                activity.append((_str(fields[0]), decode_activity(fields[1:], offset=offset)))
            queues = []
            for entry in _list(args[2]):
                g, c, t, seq = _fields(entry, 4)
                queues.append((_str(g), _str(c), (_num(t) - offset, _int(seq))))
            return NodeState(_str(args[0]), tuple(activity), tuple(queues))
    raise StateError(f"unknown op {kind!r} with {n} fields")


def encode_batch(batch: Batch, *, offset: float) -> str:
    return json.dumps(
        {
            "node": batch.node,
            "seq": batch.seq,
            "ops": [encode_op(o, offset=offset) for o in batch.ops],
        },
        separators=(",", ":"),
    )


def batch_prefix(node: str) -> str:
    """How every message :func:`encode_batch` makes for ``node`` begins (a node hears its
    own batches on the channel: it can tell them without decoding them)."""
    return json.dumps({"node": node}, separators=(",", ":"))[:-1] + ","


def decode_batch(text: str | bytes, *, offset: float) -> Batch:
    """Parse a batch; :class:`StateError` for anything malformed (never another exception)."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as err:
        raise StateError(f"a state message is not JSON: {err}") from None
    if not isinstance(data, dict):
        raise StateError("a state message is not a JSON object")
    ops: Sequence[object] = _list(data.get("ops"))
    return Batch(
        _str(data.get("node")),
        _int(data.get("seq")),
        tuple(decode_op(o, offset=offset) for o in ops),
    )


# ------------------------------------------------------ the store of record
def hash_field(*parts: str) -> str:
    """The hash field naming ``parts`` (a (group, member) or (group, call) pair)."""
    return json.dumps(list(parts), separators=(",", ":"))


def _pair(text: str) -> tuple[str, str]:
    value = json.loads(text)
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise ValueError(f"bad field {text!r}")
    return (value[0], value[1])


def encode_stamp(stamp: Stamp) -> str:
    return f"{stamp[0]}|{stamp[1]}"


def decode_stamp(text: str) -> Stamp:
    counter, sep, node = text.partition("|")
    if not sep:
        raise ValueError(f"bad stamp {text!r}")
    return (int(counter), node)


def _stored_since(since: float | None, offset: float) -> str:
    return "-" if since is None else repr(since + offset)


def _stored_pause(since: float | None, reason: str, offset: float) -> str:
    return "-" if since is None else json.dumps([since + offset, reason])


def _read_pause(text: str, offset: float) -> tuple[float | None, str]:
    if text == "-":
        return None, ""
    value = json.loads(text)
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], str)):
        raise ValueError(f"bad pause {text!r}")
    return _num(value[0]) - offset, value[1]


def _stored_rank(rank: tuple[float, int], offset: float) -> str:
    return json.dumps([rank[0] + offset, rank[1]])


def _stored_pointer(member: Pointer) -> str:
    """A pointer as stored: a JSON string (the member's key); older versions stored the
    position, a bare integer, which :func:`_read_pointer` still reads."""
    return json.dumps(member)


def _read_pointer(text: str) -> Pointer:
    value = json.loads(text)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"bad pointer {text!r}")
    return value


def _stored_activity(act: MemberActivity, offset: float) -> str:
    return json.dumps(encode_activity(act, offset=offset))


def encode_writes(ops: Sequence[Op], store: JournalingStore, *, offset: float) -> str:
    """The writes (JSON) the batch script makes for ``ops`` of ``store``'s node.

    Membership and pointers are stamped writes, talk time an increment; the
    activity of every member touched is written whole (empty: deleted), as
    this node sees it now. A batch holding a :class:`NodeState` clears the
    node's activity and queue hashes and writes them whole. Of a group's
    pointer moves only the last is written: this node's stamps grow, so where
    the last loses to another node's stamp the earlier ones lose too, and
    where it wins it overwrites them (three commands in Redis saved per move).
    """
    writes: list[list[str]] = []
    pointers: dict[str, list[str]] = {}
    touched: set[str] = set()
    queued: dict[str, str] = {}
    full = any(isinstance(op, NodeState) for op in ops)
    for op in ops:
        match op:
            case SetJoined(g, m, since, stamp):
                writes.append(
                    ["j", hash_field(g, m), _stored_since(since, offset), encode_stamp(stamp)]
                )
            case SetPaused(g, m, since, reason, stamp):
                writes.append(
                    [
                        "u",
                        hash_field(g, m),
                        _stored_pause(since, reason, offset),
                        encode_stamp(stamp),
                    ]
                )
            case SetPointer(g, member, stamp):
                pointers.pop(g, None)  # the last move of the group, in order
                pointers[g] = ["p", g, _stored_pointer(member), encode_stamp(stamp)]
            case AddTalk(g, m, seconds):
                writes.append(["t", hash_field(g, m), repr(seconds)])
            case SetRinging(member=m) | SetActive(member=m) | SetWrapUp(member=m):
                touched.add(m)
            case Enqueue(g, call, rank, _):
                queued[hash_field(g, call)] = _stored_rank(rank, offset)
            case Dequeue(g, call, _):
                queued[hash_field(g, call)] = ""
    writes.extend(pointers.values())
    if full:
        state = store.node_state()
        writes.append(["clear"])
        for member, act in state.activity:
            writes.append(["a", member, _stored_activity(act, offset)])
        for g, call, rank in state.queues:
            writes.append(["q", hash_field(g, call), _stored_rank(rank, offset)])
    else:
        for member in sorted(touched):
            act = store.local_activity(member)
            writes.append(["a", member, "" if act.idle else _stored_activity(act, offset)])
        writes.extend(["q", f, v] for f, v in queued.items())
    return json.dumps(writes, separators=(",", ":"))


def encode_image(image: Snapshot, *, offset: float) -> str:
    """The payload (JSON) of the restore script: membership, pauses, talk time and
    pointers."""
    payload = {
        "j": [
            [hash_field(g, m), _stored_since(since, offset), encode_stamp(stamp)]
            for (g, m), (since, stamp) in image.joined.items()
        ],
        "u": [
            [hash_field(g, m), _stored_pause(since, reason, offset), encode_stamp(stamp)]
            for (g, m), (since, reason, stamp) in image.paused.items()
        ],
        "t": [[hash_field(g, m), repr(s)] for (g, m), s in image.talk.items()],
        "p": [
            [g, _stored_pointer(p), encode_stamp(stamp)] for g, (p, stamp) in image.pointers.items()
        ],
    }
    return json.dumps(payload, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class StoredState:
    """The hashes of the store of record, as read (field -> value)."""

    joined: Mapping[str, str] = field(default_factory=dict)
    joined_stamps: Mapping[str, str] = field(default_factory=dict)
    talk: Mapping[str, str] = field(default_factory=dict)
    pointers: Mapping[str, str] = field(default_factory=dict)
    pointer_stamps: Mapping[str, str] = field(default_factory=dict)
    seqs: Mapping[str, str] = field(default_factory=dict)
    activity: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Per node: member -> activity."""
    paused: Mapping[str, str] = field(default_factory=dict)
    paused_stamps: Mapping[str, str] = field(default_factory=dict)


def decode_stored(stored: StoredState, *, offset: float) -> tuple[Snapshot, dict[str, int]]:
    """The snapshot and the last batch number of every node; bad entries are skipped."""
    joined: dict[tuple[str, str], tuple[float | None, Stamp]] = {}
    paused: dict[tuple[str, str], tuple[float | None, str, Stamp]] = {}
    talk: dict[tuple[str, str], float] = {}
    pointers: dict[str, tuple[Pointer, Stamp]] = {}
    activity: dict[str, dict[str, MemberActivity]] = {}
    seqs: dict[str, int] = {}
    for f, value in stored.joined.items():
        try:
            since = None if value == "-" else float(value) - offset
            joined[_pair(f)] = (since, decode_stamp(stored.joined_stamps.get(f, "0|")))
        except (ValueError, StateError) as err:
            log.warning("ignored a bad membership entry in Redis: %s", err)
    for f, value in stored.paused.items():
        try:
            since, reason = _read_pause(value, offset)
            stamp = decode_stamp(stored.paused_stamps.get(f, "0|"))
            paused[_pair(f)] = (since, reason, stamp)
        except (ValueError, StateError) as err:
            log.warning("ignored a bad pause entry in Redis: %s", err)
    for f, value in stored.talk.items():
        try:
            talk[_pair(f)] = float(value)
        except ValueError as err:
            log.warning("ignored a bad talk-time entry in Redis: %s", err)
    for g, value in stored.pointers.items():
        try:
            pointers[g] = (_read_pointer(value), decode_stamp(stored.pointer_stamps.get(g, "0|")))
        except ValueError as err:
            log.warning("ignored a bad pointer entry in Redis: %s", err)
    for node, value in stored.seqs.items():
        with contextlib.suppress(ValueError):
            seqs[node] = int(value)
    for node, members in stored.activity.items():
        acts: dict[str, MemberActivity] = {}
        for member, value in members.items():
            try:
                acts[member] = decode_activity(json.loads(value), offset=offset)
            except (ValueError, StateError) as err:
                log.warning("ignored bad activity of node %s in Redis: %s", node, err)
        activity[node] = acts
    snap = Snapshot(joined=joined, paused=paused, talk=talk, pointers=pointers, activity=activity)
    return snap, seqs
