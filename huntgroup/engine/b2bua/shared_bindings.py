"""The other nodes' registrations: a bounded table, its wire format, and the merge rule.

Theory of operation
-------------------
With several nodes behind a proxy, a phone's REGISTER lands on one node only
(the proxy spreads requests by Call-ID). That node keeps the binding in its
own :class:`~huntgroup.engine.sip.registrar.Registrar` (the *local*
bindings) and publishes its whole share of the AOR, every binding it holds
for it, through the driver (:class:`BindingsOutput`, JSON made by
:func:`encode_share`) after every accepted REGISTER, every expiry and every
drop. Every other node keeps what it hears in a :class:`SharedBindings`
table: per (AOR, node), the tuple of that node's bindings, replaced as a
whole by each new share, each entry with its own expiry in the heap.

Times cross nodes as wall-clock seconds (the B2BUA's ``now`` is the driver's
monotonic clock, different on every node): :func:`encode_share` adds the
node's ``wall_offset``, :func:`decode_share` takes the receiver's away.

:func:`~huntgroup.engine.b2bua.line_contacts.line_bindings` is the one answer
to "where is this line now": the live local bindings plus the other nodes'
bindings that this node can reach (:func:`reachable_remotely`: through a
Path, RFC 3327, or plain UDP; a TCP/TLS binding without Path lives on a
connection only its own node holds), one per binding key (``+sip.instance``,
else the URI: the most recently registered wins, :func:`merge`), ordered like
:meth:`Registrar.contacts` (highest q, then most recently registered first).
Authentication and the per-source protections look at the local registrar
only: a source address means something on the node that saw it.

A share also carries its node's *tombstones*: the binding keys removed
through that node (``expires=0`` or ``*``) and when, each kept by the sender
for as long as the removed binding could have lived (``max_expires``), so the
share's key stays in Redis and a node that missed the removal reads it on
its next reload. A tombstone hides, in :meth:`SharedBindings.of`, every
other node's binding of its key registered before it (whatever node shared
it, a dead one too), and the receiver drops its own older local binding of
that key (:meth:`Registrar.discard`), as it does for one with the key of a
newer binding of the share: a phone that re-registered or unregistered
through another node is not rung at its stale binding anywhere.

Bounds: only configured lines' AORs are kept (the caller checks); at most
``max_contacts`` bindings per (AOR, node) (the most recent); at most
``max_nodes`` nodes per AOR (a new node beyond is ignored, logged); a share
larger than :data:`MAX_SHARE_BYTES` is refused before it is parsed. Every
value decoded is checked field by field: a bad one is refused whole
(:class:`ShareError`), never half applied. The sender applies the same
limits (:func:`shareable`, :data:`MAX_SHARE_BYTES`) and leaves out what
would exceed them, so the rest of its share still travels.
"""

from __future__ import annotations

import heapq
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from huntgroup.engine.b2bua.addressing import peer_of
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.registrar import WILDCARD, Binding, binding_key
from huntgroup.engine.sip.uri import parse_uri
from huntgroup.errors import ProtocolError

__all__ = [
    "MAX_SHARE_BYTES",
    "BindingsOutput",
    "Share",
    "ShareError",
    "SharedBindings",
    "check_node_name",
    "decode_share",
    "encode_share",
    "merge",
    "reachable_remotely",
    "shareable",
]

MAX_SHARE_BYTES = 64 * 1024
"""The largest share accepted (10 bindings of a few hundred bytes each fit many times)."""
MAX_NODES = 64
"""The most nodes whose bindings of one AOR are kept."""
_MAX_TEXT = 2048  # the longest URI, Call-ID, instance or Path value taken
_MAX_HOPS = 8  # the most Path entries (and events) of one binding
_TRANSPORTS = frozenset(["UDP", "TCP", "TLS"])
OWN = ""
"""The table's name for this node's own tombstones (no share names an empty node)."""
_NODE_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")


def check_node_name(name: str) -> str:
    """``name`` when it can name a node in keys and shares (letters, digits, ``.``, ``_``,
    ``-``; at most 128): ``:`` would break the key, ``/`` and ``~`` the run and the
    previous-run names. ValueError otherwise."""
    if not _NODE_NAME.fullmatch(name):
        raise ValueError(
            f"node id {name!r}: use 1 to 128 letters, digits, '.', '_' or '-' "
            "(':', '/', '~' and spaces break the shared keys)"
        )
    return name


@dataclass(frozen=True, slots=True)
class BindingsOutput:
    """Output: this node's whole share of ``aor`` changed; ``value`` (JSON) is to be
    stored under this node's key of ``aor`` until ``expires_at`` (wall clock, the
    latest expiry), or the key deleted when ``live`` is 0, and published to the
    other nodes in either case."""

    aor: str
    value: str
    expires_at: float
    live: int
    removes: bool = False  # it names removed keys: never coalesced away unpublished
    tombstones: int = 0  # removed keys it carries: the key stays while it holds some


@dataclass(frozen=True, slots=True)
class Share:
    """One node's bindings of one AOR, as decoded (times on the receiver's clock)."""

    node: str
    aor: str
    bindings: tuple[Binding, ...]
    removed: tuple[tuple[str, float], ...]  # (binding key, when removed)
    run: str = ""  # the node's process that wrote it (a restart is a new run)


class ShareError(ValueError):
    """A share that cannot be used (too large, not JSON, a field of the wrong kind)."""


# --------------------------------------------------------------------------- wire


def shareable(binding: Binding) -> bool:
    """``binding`` passes the receivers' limits (:func:`decode_share`: every text at most
    2048 characters, at most 8 Path hops and events); the sender leaves out one that does
    not, so the rest of its share still travels."""
    texts = [binding.uri, binding.call_id, *binding.path, *binding.events]
    if binding.instance is not None:
        texts.append(binding.instance)
    if binding.source is not None:
        texts.append(binding.source.host)
    return (
        all(len(t) <= _MAX_TEXT for t in texts)
        and len(binding.path) <= _MAX_HOPS
        and len(binding.events) <= _MAX_HOPS
    )


def encode_share(
    node: str,
    aor: str,
    bindings: Iterable[Binding],
    *,
    removed: Iterable[tuple[str, float]] = (),
    wall_offset: float,
    run: str = "",
) -> str:
    """The JSON of ``node``'s share of ``aor`` (``run``: which process of that node);
    times (``now``-based) turned to wall clock."""
    return json.dumps(
        {
            "v": 1,
            "node": node,
            "run": run,
            "aor": aor,
            "bindings": [
                {
                    "uri": b.uri,
                    "expires": b.expires_at + wall_offset,
                    "registered": b.registered_at + wall_offset,
                    "q": b.q,
                    "call_id": b.call_id,
                    "cseq": b.cseq,
                    "source": (
                        [b.source.transport, b.source.host, b.source.port] if b.source else None
                    ),
                    "instance": b.instance,
                    "events": sorted(b.events),
                    "path": list(b.path),
                }
                for b in bindings
            ],
            "removed": [[key, at + wall_offset] for key, at in removed],
        },
        separators=(",", ":"),
    )


def decode_share(data: str | bytes, *, wall_offset: float, max_contacts: int) -> Share:
    """A share read from Redis (hostile-ish: checked field by field); times are moved to
    the receiver's clock. At most ``max_contacts`` bindings are kept (the most recent)."""
    if len(data) > MAX_SHARE_BYTES:
        raise ShareError(f"share of {len(data)} bytes")
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise ShareError(f"not JSON: {err}") from None
    if not isinstance(raw, dict) or raw.get("v") != 1:
        raise ShareError("not a share of version 1")
    node, aor, run = _text(raw.get("node")), _text(raw.get("aor")), _text(raw.get("run", ""))
    items, gone = raw.get("bindings"), raw.get("removed", [])
    if not node or not aor or not isinstance(items, list) or not isinstance(gone, list):
        raise ShareError("node, aor, bindings or removed missing")
    if len(items) > 4 * max_contacts or len(gone) > 4 * max_contacts:
        raise ShareError(f"{len(items)} bindings, {len(gone)} removed")
    bindings = [_binding(aor, item, wall_offset) for item in items]
    bindings.sort(key=lambda b: (-b.registered_at, b.uri))
    removed = []
    for item in gone:
        if not (isinstance(item, list) and len(item) == 2):
            raise ShareError("a removed entry is not [key, time]")
        removed.append((_text(item[0]), _number(item[1]) - wall_offset))
    return Share(node, aor, tuple(bindings[:max_contacts]), tuple(removed[:max_contacts]), run=run)


def _binding(aor: str, item: Any, wall_offset: float) -> Binding:
    if not isinstance(item, dict):
        raise ShareError("a binding is not an object")
    source = item.get("source")
    peer = None
    if source is not None:
        if not (isinstance(source, list) and len(source) == 3):
            raise ShareError("a source is not [transport, host, port]")
        transport, host, port = _text(source[0]).upper(), _text(source[1]), source[2]
        if transport not in _TRANSPORTS or not isinstance(port, int) or not 0 < port < 65536:
            raise ShareError("a source's transport or port is unusable")
        peer = Peer(host, port, transport)
    events, path = item.get("events", []), item.get("path", [])
    if not isinstance(events, list) or not isinstance(path, list) or len(path) > _MAX_HOPS:
        raise ShareError("events or path is not a list (of at most 8 hops)")
    instance = item.get("instance")
    q, cseq = _number(item.get("q")), item.get("cseq")
    if not 0.0 <= q <= 1.0 or not isinstance(cseq, int):
        raise ShareError("q or cseq out of range")
    return Binding(
        aor=aor,
        uri=_text(item.get("uri")),
        expires_at=_number(item.get("expires")) - wall_offset,
        q=q,
        call_id=_text(item.get("call_id")),
        cseq=cseq,
        registered_at=_number(item.get("registered")) - wall_offset,
        source=peer,
        instance=None if instance is None else _text(instance),
        events=frozenset(_text(e) for e in events[:_MAX_HOPS]),
        path=tuple(_text(p) for p in path),
    )


def _text(value: object) -> str:
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise ShareError("a text field is missing or too long")
    return value


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ShareError("a number field is missing or not finite")
    return float(value)


# --------------------------------------------------------------------------- table


class SharedBindings:
    """The other nodes' bindings, per AOR and node, each share with its expiry timer."""

    def __init__(self, *, max_contacts: int, max_nodes: int = MAX_NODES) -> None:
        self.max_contacts = max_contacts
        self.max_nodes = max_nodes
        self._aors: dict[str, dict[str, tuple[Binding, ...]]] = {}
        # tombstones per AOR and node (OWN: this node's): (binding key, when removed)
        self._tombs: dict[str, dict[str, tuple[tuple[str, float], ...]]] = {}
        self._heap: list[tuple[float, int, str, str]] = []  # (expires_at, seq, aor, node)
        self._seq = 0
        self._count = 0
        self.refused_nodes = 0  # shares ignored: too many nodes for one AOR
        self.bad_shares = 0  # shares refused by decode_share
        self.left_out = 0  # own bindings not shared: beyond the receivers' limits
        # the configured lines (only their AORs are kept), for line_contacts
        self.lines_of: object = None
        self.line_numbers: frozenset[str] = frozenset()
        self.changes = 0  # bumped whenever get_timer's answer may change

    def __len__(self) -> int:
        """Bindings held (expired ones may linger until :meth:`handle_timer`)."""
        return self._count

    def aors(self) -> list[str]:
        return sorted(self._aors)

    def of(self, aor: str, *, now: float) -> list[Binding]:
        """The live bindings of ``aor`` on every other node (not deduplicated), but those
        a tombstone of any node (or of this one) removed since they registered."""
        nodes = self._aors.get(aor)
        if not nodes:
            return []
        return [b for node in nodes for b in self.of_node(aor, node, now=now)]

    def of_node(self, aor: str, node: str, *, now: float) -> list[Binding]:
        """``node``'s live bindings of ``aor`` that no tombstone removed."""
        tombs = self.tombstones(aor)
        return [
            b
            for b in self._aors.get(aor, {}).get(node, ())
            if b.expires_at > now and not _removed(b, tombs)
        ]

    def tombstones(self, aor: str) -> list[tuple[str, float]]:
        """Every node's tombstones of ``aor`` (this node's included)."""
        return [t for tombs in self._tombs.get(aor, {}).values() for t in tombs]

    def own_tombstones(self, aor: str) -> tuple[tuple[str, float], ...]:
        return self._tombs.get(aor, {}).get(OWN, ())

    def set_own_tombstones(self, aor: str, tombs: Iterable[tuple[str, float]]) -> None:
        """This node's tombstones of ``aor`` (kept across :meth:`clear`: a reload)."""
        self._set_tombs(OWN, aor, tuple(tombs))

    def own_tombstone_aors(self) -> list[str]:
        return sorted(aor for aor, nodes in self._tombs.items() if nodes.get(OWN))

    def _set_tombs(self, node: str, aor: str, tombs: tuple[tuple[str, float], ...]) -> None:
        nodes = self._tombs.get(aor)
        if not tombs:
            if nodes is not None:
                nodes.pop(node, None)
                if not nodes:
                    del self._tombs[aor]
            return
        nodes = self._tombs.setdefault(aor, {})
        if node not in nodes and len(nodes) > self.max_nodes:  # OWN plus max_nodes others
            self.refused_nodes += 1
            return
        nodes[node] = tombs[: self.max_contacts]

    def nodes(self, aor: str) -> list[str]:
        return sorted(self._aors.get(aor, {}))

    def replace(
        self,
        node: str,
        aor: str,
        bindings: tuple[Binding, ...],
        *,
        now: float,
        removed: tuple[tuple[str, float], ...] | None = None,
    ) -> bool:
        """``node``'s share of ``aor`` is now ``bindings`` (the live ones, at most
        ``max_contacts``, most recent first) and, when given, its tombstones ``removed``
        (they hide older bindings of their key, whatever node holds them); False when
        the bindings did not change or the share is refused (``max_nodes`` other nodes
        hold bindings of ``aor`` already)."""
        self.changes += 1
        if removed is not None:
            self._set_tombs(node, aor, removed)
        live = sorted(
            (b for b in bindings if b.expires_at > now), key=lambda b: (-b.registered_at, b.uri)
        )
        kept = tuple(live[: self.max_contacts])
        nodes = self._aors.get(aor, {})
        before = nodes.get(node, ())
        if kept == before:
            return False
        if not kept:
            del nodes[node]
            self._count -= len(before)
            if not nodes:
                del self._aors[aor]
            return True
        if node not in nodes and len(nodes) >= self.max_nodes:
            self.refused_nodes += 1
            return False
        self._aors.setdefault(aor, {})[node] = kept
        self._count += len(kept) - len(before)
        for b in kept:
            self._seq += 1
            heapq.heappush(self._heap, (b.expires_at, self._seq, aor, node))
        if len(self._heap) > 2 * len(self) + 64:
            self._rebuild()
        return True

    def drop_aor(self, aor: str) -> bool:
        """Forget every node's bindings of ``aor`` (a line a reload removed)."""
        self.changes += 1
        self._tombs.pop(aor, None)
        nodes = self._aors.pop(aor, None)
        if nodes is None:
            return False
        self._count -= sum(len(b) for b in nodes.values())
        return True

    def clear(self) -> list[str]:
        """Forget the other nodes' bindings and tombstones (this node's tombstones stay);
        the AORs that had bindings."""
        self.changes += 1
        aors = sorted(self._aors)
        self._aors.clear()
        for aor in list(self._tombs):
            own = self._tombs[aor].get(OWN)
            self._tombs[aor] = {OWN: own} if own else {}
            if not own:
                del self._tombs[aor]
        self._heap.clear()
        self._count = 0
        return aors

    def get_timer(self) -> float | None:
        """The next expiry of a binding held."""
        while self._heap:
            due, _, aor, node = self._heap[0]
            shares = self._aors.get(aor, {}).get(node)
            if shares and any(b.expires_at == due for b in shares):
                return due
            heapq.heappop(self._heap)
        return None

    def handle_timer(self, *, now: float) -> list[str]:
        """Drop the bindings expired at ``now``; the AORs that lost some."""
        due: set[tuple[str, str]] = set()
        while self._heap and self._heap[0][0] <= now:
            _, _, aor, node = heapq.heappop(self._heap)
            self.changes += 1
            due.add((aor, node))
        changed: set[str] = set()
        for aor, node in due:
            nodes = self._aors.get(aor)
            shares = nodes.get(node) if nodes is not None else None
            if nodes is None or shares is None:
                continue
            live = tuple(b for b in shares if b.expires_at > now)
            if live == shares:
                continue
            changed.add(aor)
            self._count -= len(shares) - len(live)
            if live:
                nodes[node] = live
            else:
                del nodes[node]
                if not nodes:
                    del self._aors[aor]
        return sorted(changed)

    def _rebuild(self) -> None:
        self._heap = []
        for aor, nodes in self._aors.items():
            for node, shares in nodes.items():
                for b in shares:
                    self._seq += 1
                    self._heap.append((b.expires_at, self._seq, aor, node))
        heapq.heapify(self._heap)


def _removed(binding: Binding, tombs: list[tuple[str, float]]) -> bool:
    """A tombstone of ``binding``'s key (or of every key) is younger than it."""
    if not tombs:
        return False
    key = binding_key(binding)
    return any(at > binding.registered_at and k in (key, WILDCARD) for k, at in tombs)


# --------------------------------------------------------------------------- a line's contacts


def reachable_remotely(binding: Binding) -> bool:
    """Another node can reach ``binding``: through its Path (the proxy holds the
    connection or the NAT mapping), or over plain UDP (to the contact, or to the
    REGISTER's source when behind NAT: the NAT may refuse another node's address).
    A TCP/TLS binding without Path lives on a connection of its own node only."""
    if binding.path:
        return True
    if binding.source is not None and binding.source.transport != "UDP":
        return False
    try:
        peer = peer_of(parse_uri(binding.uri))
    except ProtocolError:
        return False
    return peer is not None and peer.transport == "UDP"


def merge(local: Iterable[Binding], remote: Iterable[Binding]) -> list[Binding]:
    """One binding per key (the most recently registered), ordered like
    :meth:`Registrar.contacts`: highest q first, then most recently registered."""
    best: dict[str, Binding] = {}
    for b in [*local, *(r for r in remote if reachable_remotely(r))]:
        key = binding_key(b)
        held = best.get(key)
        if held is None or b.registered_at > held.registered_at:
            best[key] = b
    out = list(best.values())
    out.sort(key=lambda b: (-b.q, -b.registered_at, b.uri))
    return out
