"""Output schemas compiled for the fast path (`mcp_hub/upstreams/output_check.py`) never pass what the SDK's
`jsonschema` validation would refuse, and do pass the common valid results."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator, SchemaError

from mcp_hub.upstreams.output_check import compiled

RESULT = {"type": "object", "properties": {"result": {"type": "string"}}, "required": ["result"]}
NESTED = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "where"},
        "temps": {"type": "array", "items": {"type": "number"}},
        "meta": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
        "count": {"type": "integer"},
        "ok": {"type": "boolean"},
    },
    "required": ["city"],
    "additionalProperties": False,
}
SCHEMAS: list[dict[str, Any]] = [
    RESULT,
    NESTED,
    {},
    {"type": "object"},
    {"properties": {"a": {"type": "integer"}}},
    {"type": "object", "properties": {"a": {"enum": [1, 2]}}},
    {"type": "object", "properties": {"a": {"const": 1}}},
    {"type": "object", "properties": {"a": {"type": "string", "minLength": 3}}},
    {"type": "object", "properties": {"a": {"$ref": "#/$defs/x"}}, "$defs": {"x": {"type": "string"}}},
    {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"},
    {"type": "strng"},
    {"type": ["string", "string"]},
    {"type": "object", "required": "result"},
    {"type": "object", "required": ["a", "a"]},
    {"type": "object", "title": 5},
    {"type": "object", "properties": {"a": False}},
    {"type": "object", "additionalProperties": False},
    {"type": "array", "items": [{"type": "string"}]},
]
INSTANCES: list[Any] = [
    {"result": "ok"},
    {"result": 3},
    {},
    {"result": "ok", "extra": 1},
    {"city": "Oslo"},
    {"city": "Oslo", "temps": [1, 2.5], "meta": {"a": "x", "b": None}, "count": 3, "ok": True},
    {"city": "Oslo", "temps": [True]},
    {"city": "Oslo", "count": 1.0},
    {"city": "Oslo", "count": True},
    {"city": "Oslo", "meta": {"a": 1}},
    {"city": "Oslo", "other": 1},
    {"a": 1},
    {"a": "abcd"},
    {"a": "ab"},
    {"a": 1.0},
    {"a": True},
    [],
    "text",
    None,
]


def _sdk_accepts(schema: dict[str, Any], instance: Any) -> bool:
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError:
        return False
    return Draft202012Validator(schema).is_valid(instance)


@pytest.mark.parametrize("schema", SCHEMAS, ids=[str(i) for i in range(len(SCHEMAS))])
def test_what_the_check_passes_the_sdk_passes_too(schema: dict[str, Any]) -> None:
    check = compiled(schema)
    for instance in INSTANCES:
        if check is not None and check(instance):
            assert _sdk_accepts(schema, instance), (schema, instance)


def test_the_common_schemas_are_checked_without_the_sdk() -> None:
    result, nested = compiled(RESULT), compiled(NESTED)
    assert result is not None and nested is not None
    assert result({"result": "ok"}) and not result({"result": 3}) and not result({})
    assert nested({"city": "Oslo", "temps": [1, 2.5], "meta": {"a": "x", "b": None}, "count": 3, "ok": True})
    assert not nested({"city": "Oslo", "other": 1}) and not nested({"city": "Oslo", "count": True})


def test_a_schema_is_compiled_once_per_object() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "number"}}}
    assert compiled(schema) is compiled(schema)
    assert compiled(dict(schema)) is not compiled(schema)
