"""Check answers of the operators' API against huntgroup/admin/openapi.yaml.

A small validator for the part of JSON Schema the file uses (``type``, a list of
types for nullables, ``properties``, ``required``, ``additionalProperties:
false``, ``items``, ``enum``, ``minimum``, ``maxLength``, local ``$ref``): the
venv has no ``jsonschema``. Every answer a test receives goes through
:func:`check_answer`, which also fails on a route or status the file does not
describe.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from huntgroup.admin.api import SPEC

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    return loaded


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = document
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def _is(value: object, name: str) -> bool:
    if isinstance(value, bool) and name in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[name])


def validate(document: dict[str, Any], schema: dict[str, Any], value: object, where: str) -> None:
    """Raise AssertionError naming ``where`` when ``value`` breaks ``schema``."""
    schema = resolve(document, schema)
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        assert any(_is(value, k) for k in kinds), f"{where}: {value!r} is not {kinds}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if "minimum" in schema and _is(value, "number"):
        assert value >= schema["minimum"], f"{where}: {value!r} < {schema['minimum']}"  # type: ignore[operator]
    if "maxLength" in schema and isinstance(value, str):
        assert len(value) <= schema["maxLength"], f"{where}: longer than {schema['maxLength']}"
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            assert key in value, f"{where}: {key!r} missing from {sorted(value)}"
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            extra = set(value) - set(properties)
            assert not extra, f"{where}: unexpected {sorted(extra)}"
        for key, sub in properties.items():
            if key in value:
                validate(document, sub, value[key], f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            validate(document, schema["items"], item, f"{where}[{i}]")


def operation(document: dict[str, Any], method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The path template of ``document`` matching a concrete ``path``, and its operation."""
    for template, item in document["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return template, item[method.lower()]
    raise AssertionError(f"{method} {path} is not in openapi.yaml")


def check_answer(method: str, path: str, status: int, body: object) -> None:
    """The answer ``body`` of ``method path`` with ``status`` is described and valid."""
    document = spec()
    template, op = operation(document, method, path.split("?", 1)[0])
    responses = op["responses"]
    assert str(status) in responses, f"{method} {template}: status {status} is not described"
    response = resolve(document, responses[str(status)])
    content = response["content"]
    media = "application/json" if "application/json" in content else next(iter(content))
    validate(document, content[media]["schema"], body, f"{method} {template} {status}")
