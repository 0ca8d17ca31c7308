"""The JSON Schema is serialisable, documented and describes the real format."""

from __future__ import annotations

import json
import re
from typing import Any

from huntgroup.config.models import ALGORITHMS
from huntgroup.config.schema import FIELD_DESCRIPTIONS, MODELS, json_schema


def test_schema_is_json_serialisable_and_round_trips() -> None:
    schema = json_schema()
    assert json.loads(json.dumps(schema)) == schema
    assert schema["$schema"].endswith("2020-12/schema")
    assert schema["title"] == "huntgroup configuration"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False


def test_schema_describes_groups_members_and_algorithms() -> None:
    schema = json_schema()
    defs = schema["$defs"]
    assert schema["properties"]["groups"]["items"] == {"$ref": "#/$defs/GroupConfig"}
    group = defs["GroupConfig"]
    assert group["required"] == ["name", "pilot"]
    assert group["properties"]["members"]["items"] == {"$ref": "#/$defs/MemberConfig"}
    assert group["properties"]["algorithm"]["enum"] == list(ALGORITHMS)
    assert group["properties"]["algorithm"]["default"] == "round_robin"
    member = defs["MemberConfig"]
    assert set(member["properties"]) == {"line", "uri", "position", "joined"}
    assert member["properties"]["position"]["minimum"] == 1
    assert defs["QueueConfig"]["properties"]["max_length"]["minimum"] == 0


def test_every_field_and_model_has_a_description() -> None:
    schema = json_schema()
    for model in MODELS:
        name = model.__name__
        assert set(FIELD_DESCRIPTIONS[name]) == set(model.model_fields), name
        node: dict[str, Any] = schema if name == "Config" else schema["$defs"][name]
        assert node["description"]
        for field, prop in node["properties"].items():
            assert prop.get("description"), f"{name}.{field}"


def test_number_patterns_match_the_loader() -> None:
    pattern = json_schema()["$defs"]["GroupConfig"]["properties"]["pilot"]["pattern"]
    assert re.match(pattern, "0140000001")
    assert not re.match(pattern, "01-40")
