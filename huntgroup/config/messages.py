"""Admin-facing wording for pydantic validation errors.

pydantic's messages are written for programmers ("Input should be a valid
integer"); an administrator editing a YAML file wants to know what the key
expects, which values are valid, and which keys exist. :func:`explain` turns
one pydantic error (its type, location, input and context) into such a
sentence, using the models to list allowed keys and valid values.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from huntgroup.config.models import Config

Path = tuple[str | int, ...]


def _unwrap(annotation: Any) -> Any:
    """Strip ``X | None`` and ``tuple[X, ...]`` down to ``X`` (one level each)."""
    while True:
        origin = get_origin(annotation)
        if origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        elif origin in (tuple, list) or origin is typing.Annotated:
            annotation = get_args(annotation)[0]
        else:
            return annotation


def annotation_at(path: Path) -> Any:
    """The type expected at ``path`` in the file, or None when the path leaves the models."""
    current: Any = Config
    for part in path:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = current.model_fields.get(part)
        if info is None:
            return None
        current = _unwrap(info.annotation)
    return current


def allowed_keys(path: Path) -> list[str]:
    """The keys allowed in the mapping at ``path``."""
    model = annotation_at(path)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _field_name(path: Path) -> str:
    for part in reversed(path):
        if isinstance(part, str):
            return part
    return "value"


def _bound(ctx: Mapping[str, Any], key: str) -> str:
    value = ctx.get(key)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def explain(
    kind: str, path: Path, value: Any, ctx: Mapping[str, Any], raw: str | None, fallback: str
) -> str:
    """An admin-facing message for one pydantic error.

    ``raw`` is the plain scalar as written in the file, when there is one (used
    to suggest quoting numbers that YAML read as integers).
    """
    name = _field_name(path)
    if kind == "missing":
        return f"required key {name!r} is missing"
    if kind == "extra_forbidden":
        keys = allowed_keys(path[:-1])
        return f"unknown key {name!r}; allowed keys: {', '.join(keys)}"
    if kind == "literal_error":
        expected = get_args(annotation_at(path)) or ()
        if get_origin(annotation_at(path)) is Literal and expected:
            valid = ", ".join(str(e) for e in expected)
            what = "algorithms" if name == "algorithm" else "values"
            return f"unknown {name} {value!r}; valid {what}: {valid}"
    if kind == "string_type":
        if isinstance(value, int | float) and not isinstance(value, bool) and raw is not None:
            return (
                f"expected text, got the number {raw}; "
                f'write numbers that must stay as typed in quotes: "{raw}"'
            )
        return f"expected text, got {_kind(value)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {_kind(value)}"
    if kind in ("float_type", "float_parsing", "finite_number"):
        return f"expected a number, got {_kind(value)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {_kind(value)}"
    if kind in ("tuple_type", "list_type", "iterable_type"):
        return f"expected a list, got {_kind(value)}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        keys = allowed_keys(path)
        listing = f" (keys: {', '.join(keys)})" if keys else ""
        return f"expected a mapping{listing}, got {_kind(value)}"
    if kind == "greater_than_equal":
        return f"must be at least {_bound(ctx, 'ge')}, got {value!r}"
    if kind == "greater_than":
        return f"must be greater than {_bound(ctx, 'gt')}, got {value!r}"
    if kind == "less_than_equal":
        return f"must be at most {_bound(ctx, 'le')}, got {value!r}"
    if kind == "less_than":
        return f"must be less than {_bound(ctx, 'lt')}, got {value!r}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters long"
    if kind == "value_error":
        error = ctx.get("error")
        if error is not None:
            return str(error)
    return fallback
