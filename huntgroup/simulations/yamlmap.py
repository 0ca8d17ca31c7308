"""YAML documents with a map from field paths to file positions.

Theory of operation
-------------------
``load_yaml(path)`` composes the document into PyYAML's node tree, which keeps
the line and column of every key and value, and builds the plain Python value
from the same tree. Mapping keys are kept as the text written in the file (a
member keyed ``0102030405`` stays that string instead of becoming an octal
integer). ``Located.where(loc)`` turns a pydantic error location into
``(line, column, dotted path)``: it walks the index as far as the location
matches and skips the parts of a location that name no key of the document
(union tags, model names), so that an error always points at the innermost
key or value that exists.

Invariants: every mapping key and sequence item of the document has an entry
in the index; lines and columns are 1-based; duplicate keys are reported as
problems, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from huntgroup.errors import ConfigError, ConfigProblem

Loc = tuple[str | int, ...]


@dataclass(slots=True)
class Located:
    """A parsed document, its file name, and the position of each field path."""

    file: str
    data: Any
    index: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def where(self, loc: Sequence[str | int]) -> tuple[int, int, str]:
        """(line, column, dotted path) of the innermost part of ``loc`` in the file."""
        matched: list[str | int] = []
        line, col = self.index.get((), (1, 1))
        last_missing: str | int | None = None
        for part in loc:
            key = (*matched, part)
            if key in self.index:
                matched.append(part)
                line, col = self.index[key]
                last_missing = None
            else:
                last_missing = part
        shown = [*matched] if last_missing is None else [*matched, last_missing]
        return line, col, ".".join(str(p) for p in shown)

    def problem(self, loc: Sequence[str | int], message: str) -> ConfigProblem:
        line, col, path = self.where(loc)
        return ConfigProblem(self.file, line, col, path, message)

    def validation_problems(
        self, error: ValidationError, prefix: Sequence[str | int] = ()
    ) -> list[ConfigProblem]:
        """One problem per pydantic error, placed at its line in this file."""
        problems = []
        for err in error.errors(include_url=False):
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(self.problem((*prefix, *err["loc"]), message))
        return problems


class _Loader(yaml.SafeLoader):
    """SafeLoader whose mapping keys are the text written in the file."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    out: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            key: Any = key_node.value
        else:
            key = repr(loader.construct_object(key_node, deep=True))
        out[key] = loader.construct_object(value_node, deep=True)
    return out


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _index(
    node: yaml.Node, loc: Loc, out: dict[Loc, tuple[int, int]], dups: list[tuple[Loc, str]]
) -> None:
    out.setdefault(loc, _mark(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else repr(key_node)
            if key in seen:
                dups.append(((*loc, key), f"duplicate key {key!r}"))
                out[(*loc, key)] = _mark(key_node)
                continue
            seen.add(key)
            scalar = isinstance(value_node, yaml.ScalarNode)
            out[(*loc, key)] = _mark(value_node if scalar else key_node)
            _index(value_node, (*loc, key), out, dups)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*loc, i), out, dups)


def parse_yaml(text: str, file: str) -> Located:
    """Parse ``text`` (named ``file`` in messages); raise ConfigError on bad YAML."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise ConfigError(
            [ConfigProblem(file, line, col, "", f"invalid YAML: {exc.problem or exc}")]
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(file, 0, 0, "", f"invalid YAML: {exc}")]) from exc
    finally:
        loader.dispose()
    located = Located(file, data)
    if node is not None:
        dups: list[tuple[Loc, str]] = []
        _index(node, (), located.index, dups)
        if dups:
            raise ConfigError([located.problem(loc, msg) for loc, msg in dups])
    return located


def load_yaml(path: Path) -> Located:
    """Read and parse a YAML file; raise ConfigError when it cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(str(path), 0, 0, "", f"cannot read: {exc}")]) from exc
    return parse_yaml(text, str(path))
