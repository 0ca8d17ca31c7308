"""Reading untrusted YAML into plain data, with the position of every node.

Theory of operation: we never call a YAML *constructor* on the whole
document. PyYAML's event parser (``yaml.parse`` with the safe loader's
scanner, parser and resolver) yields a flat stream of events; a small
iterative builder turns them into ``dict`` / ``list`` / scalars and, on the
side, records where each value and each mapping key sits in the text
(:class:`Locations`). Building it ourselves, instead of ``yaml.safe_load``,
is what lets us enforce the limits below and remember line numbers.

Invariants (each violation is a :class:`~huntgroup.errors.ConfigError`, never
another exception):

- the text is at most :data:`MAX_BYTES` bytes of UTF-8;
- exactly one document, whose top level is a mapping;
- only the standard scalar and collection tags (``str``, ``int``, ``float``,
  ``bool``, ``null``, ``map``, ``seq``; an implicit timestamp stays a
  string): no object tags (``!!python/...``), no custom tags (``!x``);
- at most :data:`MAX_NODES` nodes once aliases are expanded (an alias counts
  as the whole subtree it names), which defeats "billion laughs" bombs;
- nesting depth at most :data:`MAX_DEPTH` (the builder is iterative, so deep
  input cannot exhaust the Python stack);
- mapping keys are plain scalars, each key at most once per mapping; an alias
  may not name a node that is still open (no recursive structures).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from huntgroup.errors import ConfigError, ConfigProblem

MAX_BYTES = 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64

Path = tuple[str | int, ...]

_YAML = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_YAML + t for t in ("str", "int", "float", "bool", "null", "timestamp")}
_MAP_TAG = _YAML + "map"
_SEQ_TAG = _YAML + "seq"
_NON_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


@dataclass(frozen=True, slots=True)
class Position:
    """1-based line and column in the source text."""

    line: int
    column: int


@dataclass(slots=True)
class Locations:
    """Where each value (by field path) and each mapping key sits in the text."""

    values: dict[Path, Position] = field(default_factory=dict)
    keys: dict[Path, Position] = field(default_factory=dict)
    plain_scalars: dict[Path, str] = field(default_factory=dict)

    def of_value(self, path: Path) -> Position:
        """The node at ``path``, or the nearest enclosing node that has a position."""
        for n in range(len(path), -1, -1):
            pos = self.values.get(path[:n])
            if pos is not None:
                return pos
        return Position(1, 1)

    def of_key(self, path: Path) -> Position:
        """The key that introduces ``path`` in its mapping, else the value's node."""
        return self.keys.get(path) or self.of_value(path)


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed document: plain data and the positions of its nodes.

    ``problems`` are the non-fatal ones (duplicate keys, disallowed tags), at
    ``problem_paths``: the first value of a duplicate key is kept and a value
    with a disallowed tag is read as null, so that validation can go on and
    report the rest of the file; the caller must still fail.
    """

    data: dict[str, Any]
    locations: Locations
    problems: tuple[ConfigProblem, ...] = ()
    problem_paths: tuple[Path, ...] = ()

    def subdocument(self, prefix: Path) -> Document:
        """The mapping at ``prefix`` as a document of its own, keeping its positions.

        Field paths lose ``prefix``; positions stay those of the whole text (so
        that an inline part of a larger file is reported at its line there).
        The caller must have checked that the value at ``prefix`` is a mapping
        and handled ``problems`` of the whole document.
        """
        data: Any = self.data
        for part in prefix:
            data = data[part]
        assert isinstance(data, dict)
        n = len(prefix)

        def cut(table: dict[Path, Any]) -> dict[Path, Any]:
            return {p[n:]: v for p, v in table.items() if p[:n] == prefix}

        loc = self.locations
        return Document(data, Locations(cut(loc.values), cut(loc.keys), cut(loc.plain_scalars)))


class _Fatal(Exception):
    """Stops the builder at once: the text cannot be read any further."""

    def __init__(self, position: Position, message: str) -> None:
        super().__init__(message)
        self.position = position
        self.message = message


@dataclass(slots=True)
class _Frame:
    container: dict[str, Any] | list[Any]
    path: Path
    anchor: str | None
    nodes_at_start: int
    key: str | None = None  # mapping only: the key waiting for its value


def _pos(mark: Any) -> Position:
    if mark is None:
        return Position(1, 1)
    return Position(int(mark.line) + 1, int(mark.column) + 1)


def _pos_of_index(text: str, index: int) -> Position:
    line = text.count("\n", 0, index) + 1
    return Position(line, index - (text.rfind("\n", 0, index) + 1) + 1)


def _describe_tag(tag: str) -> str:
    return "!!" + tag[len(_YAML) :] if tag.startswith(_YAML) else tag


class _Builder:
    """Turns parser events into plain data; see the module docstring."""

    def __init__(self) -> None:
        self.locations = Locations()
        self.problems: list[tuple[Position, str, Path]] = []
        self.nodes = 0
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.stack: list[_Frame] = []
        self.root: Any = None
        self.documents = 0
        self._resolver = yaml.resolver.Resolver()
        self._constructor = SafeConstructor()

    def _resolve(self, kind: type[Node], value: str | None, implicit: Any) -> str:
        tag: str = self._resolver.resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        return tag

    # -- counting -----------------------------------------------------------

    def _count(self, n: int, mark: Any) -> None:
        self.nodes += n
        if self.nodes > MAX_NODES:
            raise _Fatal(
                _pos(mark),
                f"the document is too large: more than {MAX_NODES} nodes once aliases are expanded",
            )

    # -- where the next value goes -------------------------------------------

    def _next_path(self) -> Path:
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.container, list):
            return (*top.path, len(top.container))
        assert top.key is not None
        return (*top.path, top.key)

    def _expects_key(self) -> bool:
        return bool(self.stack) and isinstance(self.stack[-1].container, dict)

    def _attach(self, value: Any) -> None:
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        if isinstance(top.container, list):
            top.container.append(value)
        else:
            assert top.key is not None
            if top.key not in top.container:  # a duplicate key keeps the first value
                top.container[top.key] = value
            top.key = None

    # -- events -------------------------------------------------------------

    def feed(self, event: Event) -> None:
        if isinstance(event, DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise _Fatal(
                    _pos(event.start_mark),
                    "only one YAML document is allowed (found a second '---')",
                )
            return
        if isinstance(event, MappingEndEvent | SequenceEndEvent):
            self._close(event)
            return
        if not isinstance(event, ScalarEvent | AliasEvent | CollectionStartEvent):
            return  # stream and document boundaries
        if self._expects_key() and self.stack[-1].key is None:
            self._key(event)
            return
        if len(self.stack) >= MAX_DEPTH and isinstance(event, CollectionStartEvent):
            raise _Fatal(_pos(event.start_mark), f"nesting deeper than {MAX_DEPTH} levels")
        path = self._next_path()
        self.locations.values[path] = _pos(event.start_mark)
        if isinstance(event, AliasEvent):
            self._alias(event, path)
        elif isinstance(event, ScalarEvent):
            self._count(1, event.start_mark)
            value = self._scalar(event, path)
            if event.anchor is not None:
                self.anchors[event.anchor] = (value, 1)
            self._attach(value)
        elif isinstance(event, MappingStartEvent):
            self._open(event, path, {}, MappingNode, _MAP_TAG)
        elif isinstance(event, SequenceStartEvent):
            self._open(event, path, [], SequenceNode, _SEQ_TAG)

    def _key(self, event: Event) -> None:
        top = self.stack[-1]
        if not isinstance(event, ScalarEvent):
            what = "an alias" if isinstance(event, AliasEvent) else "a list or mapping"
            raise _Fatal(_pos(event.start_mark), f"a key must be plain text, not {what}")
        self._count(1, event.start_mark)
        tag = event.tag
        if tag is not None and tag != "!" and tag not in _SCALAR_TAGS:
            self._problem(event, f"tag {_describe_tag(tag)} is not allowed here", top.path)
        key = event.value
        path = (*top.path, key)
        assert isinstance(top.container, dict)
        if key in top.container or path in self.locations.keys:
            first = self.locations.keys.get(path)
            where = f" (first at line {first.line})" if first else ""
            self._problem(event, f"duplicate key {key!r}{where}", path)
        else:
            self.locations.keys[path] = _pos(event.start_mark)
        top.key = key

    def _problem(self, event: Event, message: str, path: Path) -> None:
        self.problems.append((_pos(event.start_mark), message, path))

    def _alias(self, event: AliasEvent, path: Path) -> None:
        anchor = event.anchor
        if anchor is None or anchor not in self.anchors:
            raise _Fatal(
                _pos(event.start_mark),
                f"alias *{anchor} names no complete anchor above it",
            )
        value, size = self.anchors[anchor]
        self._count(size, event.start_mark)
        self._attach(value)

    def _scalar(self, event: ScalarEvent, path: Path) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self._resolve(ScalarNode, event.value, event.implicit)
        if tag not in _SCALAR_TAGS:
            self._problem(event, f"tag {_describe_tag(tag)} is not allowed", path)
            return None
        if event.style is None:
            self.locations.plain_scalars[path] = event.value
        if tag in (_YAML + "str", _YAML + "timestamp"):
            return event.value
        node = ScalarNode(tag, event.value, style=event.style)
        try:
            return self._constructor.yaml_constructors[tag](self._constructor, node)
        except Exception:  # untyped third-party code on untrusted text: any failure
            # means "this scalar cannot be read as that type" (int(''), bool_values[...]...)
            shown = event.value if len(event.value) <= 40 else event.value[:37] + "..."
            self._problem(event, f"{shown!r} is not a valid {tag[len(_YAML) :]}", path)
            return None

    def _open(
        self,
        event: MappingStartEvent | SequenceStartEvent,
        path: Path,
        container: dict[str, Any] | list[Any],
        kind: type[MappingNode] | type[SequenceNode],
        standard: str,
    ) -> None:
        self._count(1, event.start_mark)
        tag = event.tag
        if tag is None or tag == "!":
            tag = self._resolve(kind, None, event.implicit)
        if tag != standard:
            self._problem(event, f"tag {_describe_tag(tag)} is not allowed", path)
        self.stack.append(_Frame(container, path, event.anchor, self.nodes))

    def _close(self, event: Event) -> None:
        frame = self.stack.pop()
        if frame.anchor is not None:
            self.anchors[frame.anchor] = (frame.container, self.nodes - frame.nodes_at_start + 1)
        self._attach(frame.container)


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "text"


_EMPTY = "empty configuration: expected a mapping with server, lines, groups"
_TOP_LEVEL = "the top level must be a mapping (server, lines, groups)"


def parse_yaml(
    text: str, filename: str, *, empty: str = _EMPTY, top_level: str = _TOP_LEVEL
) -> Document:
    """Parse one configuration (or scenario) document.

    ``empty`` is the message for an empty text and ``top_level`` the start of
    the one for a top level that is not a mapping (", not a list" follows).

    Raises ``ConfigError`` when the text cannot be read as one mapping; other
    problems are returned in ``Document.problems``.
    """

    def fail(position: Position, message: str, path: Path = ()) -> ConfigError:
        dotted = ".".join(str(p) for p in path)
        return ConfigError(
            [ConfigProblem(filename, position.line, position.column, dotted, message)]
        )

    if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise fail(
            Position(1, 1), f"the file is larger than {MAX_BYTES // 1024} KiB; refusing to read it"
        )
    bad = _NON_PRINTABLE.search(text)
    if bad is not None:
        raise fail(
            _pos_of_index(text, bad.start()),
            f"unexpected control or binary character U+{ord(bad.group()):04X}: "
            "is this a text file?",
        )
    builder = _Builder()
    events: Iterable[Event] = yaml.parse(text, Loader=yaml.SafeLoader)
    try:
        for event in events:
            builder.feed(event)
    except _Fatal as exc:
        raise fail(exc.position, exc.message) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        parts = [p for p in (exc.context, exc.problem) if p]
        raise fail(_pos(mark), "invalid YAML: " + ", ".join(parts)) from None
    except yaml.YAMLError as exc:
        position = getattr(exc, "position", None)
        where = _pos_of_index(text, position) if isinstance(position, int) else Position(1, 1)
        raise fail(where, f"invalid YAML: {exc}") from None
    problems = tuple(
        ConfigProblem(filename, p.line, p.column, ".".join(str(s) for s in path), msg)
        for p, msg, path in builder.problems
    )
    root = builder.root
    if problems and not isinstance(root, dict):
        raise ConfigError(list(problems))
    if root is None or root == "":
        raise fail(Position(1, 1), empty)
    if not isinstance(root, dict):
        raise fail(
            builder.locations.of_value(()),
            f"{top_level}, not {_describe(root)}",
        )
    return Document(root, builder.locations, problems, tuple(p for _, _, p in builder.problems))
