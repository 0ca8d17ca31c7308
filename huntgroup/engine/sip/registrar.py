"""The location service: REGISTER processing (RFC 3261 §10.3) as a sans-I/O core.

Theory of operation
-------------------
The engine authenticates a REGISTER (see :mod:`huntgroup.engine.sip.digest`),
turns its To header into an address-of-record (AOR, canonicalized by the
caller, e.g. the line number) and its Contact header values into
:class:`~huntgroup.engine.sip.fields.ContactEntry` items with
:func:`~huntgroup.engine.sip.fields.parse_contact_values`, then calls
:meth:`Registrar.register` with the Call-ID, CSeq number, Expires header,
the source address and ``now``. The result carries the status to answer
(200, 400, 423 with ``Min-Expires``, 500 for an out-of-order request, 403 for
too many contacts) and, for a 200, the bindings to list in the response.

A **binding** maps an AOR to one contact URI until ``expires_at``. Bindings
are matched by ``+sip.instance`` when the contact carries one (RFC 5626: a
phone that moves keeps its binding), else by URI compared with the
case rules of RFC 3261 §19.1.4 (scheme and host part case-insensitive, user
part case-sensitive; simplified: parameters are compared as written, lower
case). Each binding keeps the transport address the REGISTER came from, so
the engine can send to that address when the contact is private (NAT), and
the event packages its last REGISTER advertised (``events``: what the caller
read from Allow-Events and chose to keep; a refresh replaces them), and the
``Path`` of that REGISTER (RFC 3327: the proxies the REGISTER crossed, which
requests to the contact must cross back; a refresh replaces it, a changed
Path counts as a change).

Processing is atomic, as §10.3 asks: the new state of the AOR is computed on
a copy and committed only when every contact passes. A contact whose binding
was last refreshed with the same Call-ID and a CSeq greater than or equal to
the request's fails the whole request (500): it is a delayed or replayed
REGISTER. ``Contact: *`` with ``Expires: 0`` removes every binding (same
Call-ID/CSeq rule); ``*`` with other contacts or another expiry is a 400.

Expiry: ``contacts(now=...)`` never returns a binding whose ``expires_at`` is
at or before ``now``, even when no timer ran. ``get_timer()`` gives the
earliest expiry; ``handle_timer(now=...)`` removes expired bindings and
reports, per AOR, what went away and how many bindings remain, so the engine
learns when a line has no contact any more.

Several nodes: :func:`binding_key` is how a phone is recognised on every node;
a result's ``removed_keys`` name what a request unbound (``*``: everything), and
:meth:`Registrar.discard` drops a binding that another node has since seen
registered again or removed (``engine/b2bua/line_contacts.py``).

Invariants:

- no AOR holds more than ``max_contacts`` bindings (the least recently
  refreshed bindings of other requests are evicted to make room, and
  reported);
- every binding satisfies ``min_expires <= expires_at - refreshed_at <= max_expires``;
- a refused request leaves the location service unchanged;
- the timer heap holds at most ``2 * bindings + 64`` entries (it is rebuilt
  when stale entries accumulate);
- the index by source address (:meth:`Registrar.aors_at`, which tells whether
  several lines registered from one transport address) holds one count per
  (source, AOR) of the stored bindings, never more entries than bindings.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from huntgroup.engine.sip.address import Peer, ip_of
from huntgroup.engine.sip.fields import ContactEntry
from huntgroup.engine.sip.uri import SipUri, parse_uri
from huntgroup.errors import ProtocolError

__all__ = [
    "Binding",
    "BindingsExpired",
    "RegisterResult",
    "Registrar",
    "binding_key",
    "contact_on_source",
]


@dataclass(frozen=True, slots=True)
class Binding:
    """A live registration of ``uri`` for ``aor``."""

    aor: str
    uri: str
    expires_at: float
    q: float
    call_id: str
    cseq: int
    registered_at: float  # when the binding was created or last refreshed
    source: Peer | None = None  # the transport address the REGISTER came from
    instance: str | None = None
    events: frozenset[str] = frozenset()  # event packages its last REGISTER said it notifies
    # RFC 3327: the Path values of its last REGISTER, in order (the first is the next hop
    # towards the phone): requests to the contact carry them as their Route set
    path: tuple[str, ...] = ()

    def expires_in(self, now: float) -> int:
        """Whole seconds left, for the ``expires`` parameter of a 200 response."""
        return max(0, int(self.expires_at - now + 0.5))

    def contact_value(self, now: float) -> str:
        """The Contact value to list in a 200 response."""
        value = f"<{self.uri}>;expires={self.expires_in(now)}"
        if self.q != 1.0:
            value += f";q={_format_q(self.q)}"
        if self.instance is not None:
            value += f';+sip.instance="<{self.instance}>"'
        return value


@dataclass(frozen=True, slots=True)
class RegisterResult:
    """What to answer to a REGISTER, and what changed."""

    status: int  # 200, 400, 403, 423 or 500
    reason: str
    bindings: tuple[Binding, ...] = ()  # the AOR's bindings after the request (200 only)
    contact_values: tuple[str, ...] = ()  # Contact values for the 200 response
    min_expires: int | None = None  # for a 423: the Min-Expires header value
    changed: bool = False  # bindings were added, moved or removed (not just refreshed)
    evicted: tuple[Binding, ...] = ()  # bindings dropped to honour max_contacts
    # binding keys the request removed (expires=0), whether bound here or not; "*" for a
    # wildcard: other nodes drop their own older bindings of them (shared_bindings)
    removed_keys: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass(frozen=True, slots=True)
class BindingsExpired:
    """Bindings of ``aor`` ran out; ``remaining`` live bindings are left."""

    aor: str
    removed: tuple[Binding, ...]
    remaining: int


# --------------------------------------------------------------------------- keys


def _uri_key(uri: str) -> str:
    """A comparison key after RFC 3261 §19.1.4 case rules (simplified)."""
    scheme, sep, rest = uri.partition(":")
    if not sep:
        return uri.lower()
    at = rest.find("@")
    if at >= 0:
        return f"{scheme.lower()}:{rest[: at + 1]}{rest[at + 1 :].lower()}"
    return f"{scheme.lower()}:{rest.lower()}"


def _binding_key(uri: str, instance: str | None) -> str:
    return f"instance:{instance.lower()}" if instance is not None else f"uri:{_uri_key(uri)}"


def binding_key(binding: Binding) -> str:
    """The key bindings are matched by: ``+sip.instance`` when it has one, else its URI
    (case rules of §19.1.4). One phone has one key on every node."""
    return _binding_key(binding.uri, binding.instance)


WILDCARD = "*"
"""The removed key of ``Contact: *``: every binding of the AOR."""


def _format_q(q: float) -> str:
    text = f"{q:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


# --------------------------------------------------------------------------- registrar


class Registrar:
    """Bindings of every AOR, with RFC 3261 §10.3 processing (see module doc)."""

    def __init__(
        self,
        max_expires: int = 3600,
        min_expires: int = 60,
        default_expires: int = 3600,
        max_contacts: int = 10,
    ) -> None:
        if not (0 < min_expires <= max_expires):
            raise ValueError("need 0 < min_expires <= max_expires")
        if not (min_expires <= default_expires <= max_expires):
            raise ValueError("need min_expires <= default_expires <= max_expires")
        if max_contacts < 1:
            raise ValueError("max_contacts must be at least 1")
        self.max_expires = max_expires
        self.min_expires = min_expires
        self.default_expires = default_expires
        self.max_contacts = max_contacts
        self._aors: dict[str, dict[str, Binding]] = {}
        self._heap: list[tuple[float, int, str, str]] = []  # (expires_at, seq, aor, key)
        self._seq = 0
        self._count = 0
        # transport address a REGISTER came from -> AOR -> bindings registered from it
        # (at most one entry per binding: bounded like the bindings themselves)
        self._by_source: dict[Peer, dict[str, int]] = {}
        # Bumped whenever get_timer's answer may change (a binding added, refreshed or
        # removed): a driver asking after every input asks again only then.
        self.changes = 0

    # -- queries

    def contacts(self, aor: str, *, now: float) -> list[Binding]:
        """Live bindings of ``aor``: highest q first, then most recently refreshed first."""
        live = [b for b in self._aors.get(aor, {}).values() if b.expires_at > now]
        live.sort(key=lambda b: (-b.q, -b.registered_at, b.uri))
        return live

    def aors_at(self, source: Peer, *, now: float) -> set[str]:
        """AORs with a live binding registered from exactly ``source`` (transport, host,
        port): one phone's address, or a NAT or proxy many phones share."""
        at = self._by_source.get(source, {})
        return {
            aor
            for aor in at
            if any(
                b.expires_at > now and b.source == source for b in self._aors.get(aor, {}).values()
            )
        }

    def aors(self) -> list[str]:
        """AORs that hold at least one binding (expired ones may linger until handle_timer)."""
        return sorted(self._aors)

    @property
    def binding_count(self) -> int:
        return self._count

    # -- REGISTER

    def register(
        self,
        aor: str,
        contacts: Sequence[ContactEntry],
        *,
        call_id: str,
        cseq: int,
        now: float,
        expires: int | None = None,
        source: Peer | None = None,
        events: frozenset[str] = frozenset(),
        path: tuple[str, ...] = (),
    ) -> RegisterResult:
        """Apply one REGISTER for ``aor`` (RFC 3261 §10.3 steps 6 to 8).

        ``contacts`` are the request's Contact entries (empty: a query),
        ``expires`` its Expires header (None when absent), ``source`` the
        address the request came from, ``events`` the event packages it
        advertised (Allow-Events, as far as the caller keeps them): every
        binding the request adds or refreshes takes them, a refresh without
        them forgets the old ones. ``path`` (the request's Path values, as the
        caller accepted them) is kept the same way.
        """
        if expires is not None and expires < 0:
            return RegisterResult(400, "Invalid Expires")
        stored = self._aors.get(aor, {})
        current = {k: b for k, b in stored.items() if b.expires_at > now}
        # Expired bindings not yet collected by handle_timer vanish on commit: that is a change.
        lapsed = len(current) != len(stored)
        if any(c.is_wildcard for c in contacts):
            return self._unregister_all(aor, contacts, stored, call_id, cseq, now, expires)
        if not contacts:
            return self._ok(aor, current, now, changed=False)

        # Step 6: the expiry of each contact, and the 423 check.
        wanted: list[tuple[ContactEntry, int]] = []
        for entry in contacts:
            asked = entry.expires if entry.expires is not None else expires
            if asked is None:
                asked = self.default_expires
            if asked < 0:
                return RegisterResult(400, "Invalid expires parameter")
            if not (0.0 <= entry.q <= 1.0):
                return RegisterResult(400, "Invalid q value")
            if 0 < asked < self.min_expires:
                return RegisterResult(423, "Interval Too Brief", min_expires=self.min_expires)
            wanted.append((entry, min(asked, self.max_expires)))

        # Step 7: compute the new state on a copy; any failure leaves the state unchanged.
        updated = dict(current)
        changed = lapsed
        touched: set[str] = set()
        for entry, seconds in wanted:
            key = _binding_key(entry.uri, entry.instance)
            existing = updated.get(key)
            # (A contact listed twice in one request: the last occurrence wins.)
            if (
                existing is not None
                and key not in touched
                and existing.call_id == call_id
                and cseq <= existing.cseq
            ):
                return RegisterResult(500, "Out of order REGISTER (CSeq not higher)")
            if seconds == 0:
                if existing is not None:
                    del updated[key]
                    changed = True
                touched.add(key)
                continue
            binding = Binding(
                aor=aor,
                uri=entry.uri,
                expires_at=now + seconds,
                q=entry.q,
                call_id=call_id,
                cseq=cseq,
                registered_at=now,
                source=source,
                instance=entry.instance,
                events=events,
                path=path,
            )
            if (
                existing is None
                or existing.uri != entry.uri
                or existing.q != entry.q
                or existing.path != path
            ):
                changed = True
            updated[key] = binding
            touched.add(key)

        fresh = [k for k in touched if k in updated]
        if len(fresh) > self.max_contacts:
            return RegisterResult(403, "Too Many Contacts")
        evicted: list[Binding] = []
        if len(updated) > self.max_contacts:
            others = sorted(
                (k for k in updated if k not in touched),
                key=lambda k: (updated[k].registered_at, updated[k].expires_at),
            )
            for key in others[: len(updated) - self.max_contacts]:
                evicted.append(updated.pop(key))
            changed = True

        self._commit(aor, updated, touched)
        removed = tuple(sorted(k for k in touched if k not in updated))
        return self._ok(
            aor, updated, now, changed=changed, evicted=tuple(evicted), removed_keys=removed
        )

    def _unregister_all(
        self,
        aor: str,
        contacts: Sequence[ContactEntry],
        stored: dict[str, Binding],
        call_id: str,
        cseq: int,
        now: float,
        expires: int | None,
    ) -> RegisterResult:
        if len(contacts) != 1:
            return RegisterResult(400, "Wildcard Contact with other contacts")
        wildcard_expires = contacts[0].expires if contacts[0].expires is not None else expires
        if wildcard_expires != 0:
            return RegisterResult(400, "Wildcard Contact needs Expires: 0")
        for binding in stored.values():
            if binding.expires_at > now and binding.call_id == call_id and cseq <= binding.cseq:
                return RegisterResult(500, "Out of order REGISTER (CSeq not higher)")
        changed = bool(stored)
        self._commit(aor, {}, set())
        return self._ok(aor, {}, now, changed=changed, removed_keys=(WILDCARD,))

    def _ok(
        self,
        aor: str,
        bindings: dict[str, Binding],
        now: float,
        *,
        changed: bool,
        evicted: tuple[Binding, ...] = (),
        removed_keys: tuple[str, ...] = (),
    ) -> RegisterResult:
        ordered = sorted(bindings.values(), key=lambda b: (-b.q, -b.registered_at, b.uri))
        return RegisterResult(
            200,
            "OK",
            bindings=tuple(ordered),
            contact_values=tuple(b.contact_value(now) for b in ordered),
            changed=changed,
            evicted=evicted,
            removed_keys=removed_keys,
        )

    def _commit(self, aor: str, updated: dict[str, Binding], touched: set[str]) -> None:
        self.changes += 1
        old = self._aors.pop(aor, {})
        self._count -= len(old)
        for gone in old.values():
            self._unindex(gone)
        if updated:
            self._aors[aor] = updated
            self._count += len(updated)
        for kept in updated.values():
            if kept.source is not None:
                at = self._by_source.setdefault(kept.source, {})
                at[aor] = at.get(aor, 0) + 1
        for key in touched:
            binding = updated.get(key)
            if binding is not None:
                self._seq += 1
                heapq.heappush(self._heap, (binding.expires_at, self._seq, aor, key))
        if len(self._heap) > 2 * self._count + 64:
            self._rebuild_heap()

    def _rebuild_heap(self) -> None:
        self._heap = []
        for aor, bindings in self._aors.items():
            for key, binding in bindings.items():
                self._seq += 1
                self._heap.append((binding.expires_at, self._seq, aor, key))
        heapq.heapify(self._heap)

    def drop(self, aor: str) -> tuple[Binding, ...]:
        """Remove every binding of ``aor`` (e.g. a line deleted by a reload)."""
        self.changes += 1
        removed = tuple(self._aors.pop(aor, {}).values())
        self._count -= len(removed)
        for binding in removed:
            self._unindex(binding)
        return removed

    def discard(self, aor: str, key: str, *, older_than: float) -> tuple[Binding, ...]:
        """Remove ``aor``'s binding of ``key`` (:func:`binding_key`; :data:`WILDCARD`: every
        binding) registered before ``older_than``: the phone registered or unregistered
        through another node since. The bindings removed."""
        self.changes += 1
        bindings = self._aors.get(aor)
        if not bindings:
            return ()
        keys = list(bindings) if key == WILDCARD else [key]
        removed = []
        for k in keys:
            binding = bindings.get(k)
            if binding is not None and binding.registered_at < older_than:
                del bindings[k]
                self._count -= 1
                self._unindex(binding)
                removed.append(binding)
        if not bindings:
            del self._aors[aor]
        return tuple(removed)

    def _unindex(self, binding: Binding) -> None:
        if binding.source is None:
            return
        key = binding.source
        at = self._by_source.get(key)
        if at is None or binding.aor not in at:
            return
        at[binding.aor] -= 1
        if at[binding.aor] <= 0:
            del at[binding.aor]
            if not at:
                del self._by_source[key]

    # -- timers

    def get_timer(self) -> float | None:
        """When the next binding expires, or None when there is none."""
        while self._heap:
            expires_at, _, aor, key = self._heap[0]
            binding = self._aors.get(aor, {}).get(key)
            if binding is not None and binding.expires_at == expires_at:
                return expires_at
            heapq.heappop(self._heap)  # stale entry: refreshed or removed since
        return None

    def handle_timer(self, *, now: float) -> list[BindingsExpired]:
        """Remove bindings expired at ``now``; report each AOR that lost some."""
        removed: dict[str, list[Binding]] = {}
        while self._heap and self._heap[0][0] <= now:
            expires_at, _, aor, key = heapq.heappop(self._heap)
            self.changes += 1
            bindings = self._aors.get(aor)
            binding = bindings.get(key) if bindings is not None else None
            if bindings is None or binding is None or binding.expires_at != expires_at:
                continue
            del bindings[key]
            self._count -= 1
            self._unindex(binding)
            if not bindings:
                del self._aors[aor]
            removed.setdefault(aor, []).append(binding)
        return [
            BindingsExpired(aor, tuple(gone), len(self._aors.get(aor, {})))
            for aor, gone in sorted(removed.items())
        ]


def contact_on_source(uri: str, source_host: str) -> bool:
    """A REGISTER from ``source_host`` may bind the contact ``uri``.

    RFC 3261 §10.3 leaves the registrar's policy open; ours is that a phone
    registers itself, not somebody else: the contact's host is the REGISTER's
    source address (any port: it is the phone's own host), or a private address
    announced from another address — a phone behind NAT, which the B2BUA then
    reaches at the source address, never at the announced one
    (:func:`huntgroup.media.nat.behind_nat`). A loopback address is never
    taken for NAT (on either side), a host name never matches an address
    (this core resolves no names), and a URI that is not ``sip:``/``sips:`` is
    refused. The caller exempts trusted peers (``server.trusted_peers``).
    """
    try:
        parsed = parse_uri(uri)
    except ProtocolError:
        return False
    if not isinstance(parsed, SipUri):
        return False
    announced, source = ip_of(parsed.host), ip_of(source_host)
    if announced is None or source is None:
        return announced is None and source is None and parsed.host.lower() == source_host.lower()
    if announced == source:
        return True
    return announced.is_private and not announced.is_loopback and not source.is_loopback
