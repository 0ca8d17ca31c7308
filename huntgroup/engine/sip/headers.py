"""An ordered, multi-valued, case-insensitive collection of SIP header fields.

Theory of operation: a :class:`Headers` object is an immutable tuple of
``(name, value)`` pairs in message order. Names are canonicalised on the way
in: compact forms (``v``, ``f``, ``i``...) become full names, and known names
take their usual spelling (``call-id`` -> ``Call-ID``); unknown names are kept
as written and compared case-insensitively. Values are single logical values:
the parser unfolds continuation lines and splits the comma-separated list
headers (Via, Contact, Route...) so that each element is its own entry, which
makes "the top Via" simply ``headers.get("Via")``.

Invariants:

- Order is preserved exactly; methods that "change" a collection return a new
  one and leave the original untouched.
- No name is empty, and no name or value holds CR or LF.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from huntgroup.errors import LocalProtocolError, RemoteProtocolError
from huntgroup.memo import bounded_memo

COMPACT_FORMS: dict[str, str] = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "u": "Allow-Events",
    "r": "Refer-To",
    "b": "Referred-By",
    "x": "Session-Expires",
    "y": "Identity",
}

_KNOWN_NAMES = (
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "Identity",
    "In-Reply-To",
    "Max-Forwards",
    "MIME-Version",
    "Min-Expires",
    "Min-SE",
    "Organization",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reply-To",
    "Require",
    "Retry-After",
    "Route",
    "RSeq",
    "RAck",
    "Server",
    "Service-Route",
    "Session-Expires",
    "Subject",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
)
_CANONICAL: dict[str, str] = {name.lower(): name for name in _KNOWN_NAMES}

LIST_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "alert-info",
        "allow",
        "allow-events",
        "call-info",
        "contact",
        "content-encoding",
        "content-language",
        "error-info",
        "in-reply-to",
        "p-asserted-identity",
        "p-preferred-identity",
        "path",
        "proxy-require",
        "reason",
        "record-route",
        "require",
        "route",
        "service-route",
        "supported",
        "unsupported",
        "via",
        "warning",
    }
)
"""Lower-case names of headers whose values are comma-separated lists."""


@bounded_memo(maxsize=1024)
def canonical_name(name: str) -> str:
    """The full, conventionally spelled name for ``name`` (compact forms expanded)."""
    lower = name.lower()
    if lower in COMPACT_FORMS:
        return COMPACT_FORMS[lower]
    return _CANONICAL.get(lower, name)


@bounded_memo(maxsize=1024)
def _key(name: str) -> str:
    """The lookup key of a header name: canonical, lower-case."""
    return canonical_name(name).lower()


_BAD_NAME = re.compile(r"[: \t\r\n]")


@bounded_memo(maxsize=1024)
def _checked_name(name: str) -> str:
    """``canonical_name(name)``, after refusing a name no header may have."""
    if not name or _BAD_NAME.search(name) is not None:
        raise LocalProtocolError(f"Invalid header name {name!r}")
    return canonical_name(name)


def check_field(name: str, value: str) -> str:
    """The canonical name of a ``name: value`` field about to be written;
    raises ``LocalProtocolError`` for a bad name or a value holding CR or LF."""
    canon = _checked_name(name)
    if "\r" in value or "\n" in value:
        raise LocalProtocolError(f"Header {name} holds a line break")
    return canon


class Headers:
    """Immutable ordered header fields; see the module docstring."""

    __slots__ = ("_index", "_items")

    _items: tuple[tuple[str, str], ...]
    # Lower-case name -> values, built on first lookup. Tuples of strings, not
    # lists: the garbage collector stops tracking them, and messages held by
    # transactions for 32 s would otherwise be most of what it scans.
    _index: dict[str, tuple[str, ...]] | None

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        # check_field inline (the builders make a few dozen fields per call): the name
        # first, then the value, as check_field does
        checked_name = _checked_name
        fields = []
        for name, value in items:
            canon = checked_name(name)
            if "\r" in value or "\n" in value:
                raise LocalProtocolError(f"Header {name} holds a line break")
            fields.append((canon, value))
        self._items = tuple(fields)
        self._index = None

    @classmethod
    def _trusted(
        cls, items: tuple[tuple[str, str], ...], index: dict[str, tuple[str, ...]] | None = None
    ) -> Headers:
        """Headers from ``items`` already checked and canonical (the parser's, or a
        copy of another collection's), with their lookup ``index`` when known.
        Package-internal: nothing here validates ``items`` again."""
        # ``cls.__new__(cls)`` written out crashes mypyc (docs/native.md); read through
        # the module's ``_new_headers`` it is the same allocation, __init__ not run
        obj = _new_headers(cls)
        obj._items = items
        obj._index = index
        return obj

    def _lookup(self) -> dict[str, tuple[str, ...]]:
        index = self._index
        if index is None:
            index = {}
            for n, v in self._items:
                key = n.lower()
                values = index.get(key)
                index[key] = (v,) if values is None else (*values, v)
            self._index = index
        return index

    def first_of_key(self, key: str) -> str | None:
        """The first value under the lookup ``key`` (lower case already: no
        canonicalisation), None when absent: the typed views' fast path."""
        values = (self._index or self._lookup()).get(key)
        return values[0] if values else None

    def required_of_key(self, key: str, name: str) -> str:
        """:meth:`first_of_key`, for a field the message must have: a missing one raises
        ``RemoteProtocolError`` (400, ``Missing <name> header``), as a received message
        without it would. The typed views' path: one frame per read."""
        values = (self._index or self._lookup()).get(key)
        if not values:
            raise RemoteProtocolError(f"Missing {name} header", status=400)
        return values[0]

    def values_of_key(self, key: str) -> tuple[str, ...]:
        """Every value under the lookup ``key`` (lower case already), in order: the
        builders' fast path, like :meth:`first_of_key`."""
        return (self._index or self._lookup()).get(key, ())

    def without_single(self, name: str, index: dict[str, tuple[str, ...]]) -> Headers:
        """These headers without the field ``name`` (as written, a header allowed once:
        the last such field goes), ``index`` being their lookup index without it.
        Package-internal, like :meth:`_trusted`."""
        items = self._items
        for i in range(len(items) - 1, -1, -1):  # usually the last field
            if items[i][0] == name:
                items = items[:i] + items[i + 1 :]
                break
        return Headers._trusted(items, index)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return _key(name) in (self._index or self._lookup())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._items == other._items

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"

    def get(self, name: str) -> str | None:
        """The first value of ``name``, or None."""
        values = (self._index or self._lookup()).get(_key(name))
        return values[0] if values else None

    def count(self, name: str) -> int:
        """How many ``name`` fields there are."""
        return len((self._index or self._lookup()).get(_key(name), ()))

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        return list((self._index or self._lookup()).get(_key(name), ()))

    def with_added(self, name: str, value: str) -> Headers:
        """A copy with ``name: value`` appended at the end."""
        return Headers._trusted((*self._items, (check_field(name, value), value)))

    def with_prepended(self, name: str, value: str) -> Headers:
        """A copy with ``name: value`` first (e.g. a new top Via)."""
        return Headers._trusted(((check_field(name, value), value), *self._items))

    def without(self, name: str) -> Headers:
        """A copy with every ``name`` field removed."""
        key = _key(name)
        return Headers._trusted(tuple((n, v) for n, v in self._items if n.lower() != key))

    def without_first(self, name: str) -> Headers:
        """A copy without the first ``name`` field (e.g. popping the top Via)."""
        key = _key(name)
        items = list(self._items)
        for i, (n, _) in enumerate(items):
            if n.lower() == key:
                del items[i]
                break
        return Headers._trusted(tuple(items))

    def with_first_replaced(self, name: str, value: str) -> Headers:
        """A copy where the first ``name`` field holds ``value`` (appended when absent)."""
        canon = check_field(canonical_name(name), value)
        key = canon.lower()
        items = list(self._items)
        for i, (n, _) in enumerate(items):
            if n.lower() == key:
                items[i] = (canon, value)
                return Headers._trusted(tuple(items))
        return Headers._trusted((*items, (canon, value)))

    def with_replaced(self, name: str, *values: str) -> Headers:
        """A copy where ``name`` holds ``values``, placed where ``name`` first was
        (at the end when absent). No values removes the field."""
        canon = canonical_name(name)
        for value in values:
            check_field(canon, value)
        key = canon.lower()
        out: list[tuple[str, str]] = []
        placed = False
        for n, v in self._items:
            if n.lower() == key:
                if not placed:
                    out.extend((canon, value) for value in values)
                    placed = True
            else:
                out.append((n, v))
        if not placed:
            out.extend((canon, value) for value in values)
        return Headers._trusted(tuple(out))


_new_headers = Headers.__new__
"""``Headers.__new__``: an empty, uninitialised collection (for :meth:`Headers._trusted`)."""
