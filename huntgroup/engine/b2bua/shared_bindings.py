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

A share also names the binding keys its REGISTER removed (``expires=0`` or
``*``) and when: the receiver drops its own local binding with such a key,
and any local binding with the key of one of the share's bindings, when
older (:meth:`Registrar.discard`): a phone that re-registered or
unregistered through another node is not rung at its stale binding here.

Bounds: only configured lines' AORs are kept (the caller checks); at most
``max_contacts`` bindings per (AOR, node) (the most recent); at most
``max_nodes`` nodes per AOR (a new node beyond is ignored, logged); a share
larger than :data:`MAX_SHARE_BYTES` is refused before it is parsed. Every
value decoded is checked field by field: a bad one is refused whole
(:class:`ShareError`), never half applied.
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from huntgroup.engine.b2bua.addressing import peer_of
from huntgroup.engine.sip.address import Peer
from huntgroup.engine.sip.registrar import Binding, binding_key
from huntgroup.engine.sip.uri import parse_uri
from huntgroup.errors import ProtocolError

__all__ = [
    "MAX_SHARE_BYTES",
    "BindingsOutput",
    "Share",
    "ShareError",
    "SharedBindings",
    "decode_share",
    "encode_share",
    "merge",
    "reachable_remotely",
]

MAX_SHARE_BYTES = 64 * 1024
"""The largest share accepted (10 bindings of a few hundred bytes each fit many times)."""
MAX_NODES = 64
"""The most nodes whose bindings of one AOR are kept."""
_MAX_TEXT = 2048  # the longest URI, Call-ID, instance or Path value taken
_TRANSPORTS = frozenset(["UDP", "TCP", "TLS"])


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
    if not isinstance(events, list) or not isinstance(path, list) or len(path) > 8:
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
        events=frozenset(_text(e) for e in events[:8]),
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
        self._heap: list[tuple[float, int, str, str]] = []  # (expires_at, seq, aor, node)
        self._seq = 0
        self._count = 0
        self.refused_nodes = 0  # shares ignored: too many nodes for one AOR
        self.bad_shares = 0  # shares refused by decode_share
        # the configured lines (only their AORs are kept), for line_contacts
        self.lines_of: object = None
        self.line_numbers: frozenset[str] = frozenset()

    def __len__(self) -> int:
        """Bindings held (expired ones may linger until :meth:`handle_timer`)."""
        return self._count

    def aors(self) -> list[str]:
        return sorted(self._aors)

    def of(self, aor: str, *, now: float) -> list[Binding]:
        """The live bindings of ``aor`` on every other node (not deduplicated)."""
        return [
            b for shares in self._aors.get(aor, {}).values() for b in shares if b.expires_at > now
        ]

    def nodes(self, aor: str) -> list[str]:
        return sorted(self._aors.get(aor, {}))

    def replace(self, node: str, aor: str, bindings: tuple[Binding, ...], *, now: float) -> bool:
        """``node``'s share of ``aor`` is now ``bindings`` (the live ones, at most
        ``max_contacts``, most recent first); False when nothing changed or the share is
        refused (``max_nodes`` other nodes hold bindings of ``aor`` already)."""
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
        nodes = self._aors.pop(aor, None)
        if nodes is None:
            return False
        self._count -= sum(len(b) for b in nodes.values())
        return True

    def clear(self) -> list[str]:
        """Forget everything; the AORs that had bindings."""
        aors = sorted(self._aors)
        self._aors.clear()
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
