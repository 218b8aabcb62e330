"""Python stubs generated from tool schemas, tricky ones included, compared with golden strings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mcp_hub.codemode import ToolSpec
from mcp_hub.codemode.schema import TypeRenderer
from mcp_hub.codemode.stubs import docs, signature
from mcp_hub.codemode.toolbox import Toolbox


def one_signature(properties: dict[str, Any], required: tuple[str, ...] = (), **schema: Any) -> str:
    spec = ToolSpec(
        "svc", "act", None, {"type": "object", "properties": properties, "required": list(required), **schema}
    )
    (tool,) = Toolbox([spec]).tools
    return signature(tool, TypeRenderer())


@pytest.mark.parametrize(
    ("properties", "required", "expected"),
    [
        pytest.param(
            {"a": {"type": "string"}, "b": {"type": "integer"}, "c": {"type": "number"}, "d": {"type": "boolean"}},
            ("b", "d"),
            "act(b: int, d: bool, a: str | None = None, c: float | None = None) -> Any",
            id="scalars-required-first",
        ),
        pytest.param(
            {"level": {"type": "string", "enum": ["low", "high"], "default": "low"}, "n": {"enum": [1, 2, None]}},
            (),
            "act(level: Literal['low', 'high'] = 'low', n: Literal[1, 2] | None = None) -> Any",
            id="enums",
        ),
        pytest.param(
            {
                "x": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "y": {"oneOf": [{"type": "number"}, {"type": "null"}]},
                "z": {"type": ["string", "null"]},
            },
            ("x", "y", "z"),
            "act(x: str | int, y: float | None, z: str | None) -> Any",
            id="unions",
        ),
        pytest.param(
            {"rows": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}}}},
            ("rows",),
            "act(rows: list[ActRowsItem]) -> Any",
            id="array-of-objects",
        ),
        pytest.param(
            {"blob": {}, "items": {"items": {"type": "integer"}}, "bag": {"type": "object"}, "arr": {"type": "array"}},
            ("blob", "items", "bag", "arr"),
            "act(blob: Any, items: list[int], bag: dict[str, Any], arr: list[Any]) -> Any",
            id="missing-types",
        ),
        pytest.param(
            {"class": {"type": "string"}, "from": {"type": "integer"}, "x-id": {"type": "string"}, "2fa": {}},
            ("class",),
            "act(class_: str, from_: int | None = None, x_id: str | None = None, _2fa: Any = None) -> Any",
            id="keywords-and-non-identifiers",
        ),
        pytest.param(
            {"tags": {"type": "array", "items": {"type": "string"}, "default": ["a", "b"]}, "on": {"const": True}},
            (),
            "act(tags: list[str] = ['a', 'b'], on: Literal[True] | None = None) -> Any",
            id="defaults-and-const",
        ),
        pytest.param(
            {"scores": {"type": "object", "additionalProperties": {"type": "number"}}},
            ("scores",),
            "act(scores: dict[str, float]) -> Any",
            id="maps",
        ),
    ],
)
def test_signatures_render_each_kind_of_schema(
    properties: dict[str, Any], required: tuple[str, ...], expected: str
) -> None:
    assert one_signature(properties, required) == expected


def test_a_tool_without_properties_takes_any_keyword_arguments() -> None:
    assert one_signature({}) == "act(**kwargs: Any) -> Any"
    assert one_signature({}, additionalProperties=False) == "act() -> Any"


def test_required_names_missing_from_properties_become_untyped_parameters() -> None:
    assert one_signature({"a": {"type": "string"}}, ("ghost",)) == "act(ghost: Any, a: str | None = None) -> Any"


TRICKY = ToolSpec(
    server="my-crm",
    name="find-records",
    description="Find records.\n\nMatches every filter given.",
    input_schema={
        "type": "object",
        "properties": {
            "class": {"type": "string", "description": "Record class."},
            "range": {"$ref": "#/$defs/Range"},
            "owners": {
                "type": "array",
                "description": "Owners to match.",
                "items": {
                    "type": "object",
                    "properties": {"email": {"type": "string", "description": "Work address."}},
                    "required": ["email"],
                },
            },
            "tree": {"$ref": "#/$defs/Node"},
        },
        "required": ["class", "range"],
        "$defs": {
            "Range": {
                "type": "object",
                "properties": {"from": {"type": "integer"}, "to": {"type": "integer"}},
                "required": ["from"],
            },
            "Node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                },
            },
        },
    },
    output_schema={
        "type": "object",
        "description": "The matching records.",
        "properties": {"ids": {"type": "array", "items": {"type": "string"}}, "total": {"type": "integer"}},
        "required": ["ids", "total"],
    },
    annotations={"readOnlyHint": True, "openWorldHint": False},
)

GOLDEN = Path(__file__).parent / "golden"


def test_full_stub_of_a_tricky_tool_matches_the_golden_text() -> None:
    toolbox = Toolbox([TRICKY])
    assert docs(list(toolbox.tools), toolbox.modules) + "\n" == (GOLDEN / "find_records.txt").read_text()


def test_a_tool_without_output_schema_documents_what_it_returns() -> None:
    toolbox = Toolbox([ToolSpec("docs", "search", 'Say """hi""".', {"type": "object", "properties": {}})])
    text = docs(list(toolbox.tools), toolbox.modules)
    assert 'async def search(**kwargs: Any) -> Any:\n    """Say \\"\\"\\"hi\\"\\"\\".' in text
    assert "JSON text parsed into dicts and lists, other text as a str." in text


def test_identical_object_schemas_share_one_typed_dict_and_different_ones_get_distinct_names() -> None:
    shape = {"type": "object", "title": "Point", "properties": {"x": {"type": "number"}}}
    other = {"type": "object", "title": "Point", "properties": {"y": {"type": "number"}}}
    types = TypeRenderer()
    assert types.render(shape, root={}, hint="A") == "Point"
    assert types.render(dict(shape), root={}, hint="B") == "Point"
    assert types.render(other, root={}, hint="C") == "Point2"
    assert list(types.classes) == ["Point", "Point2"]


def test_compact_signatures_shorten_long_enums() -> None:
    schema = {"enum": ["a", "b", "c", "d", "e", "f"]}
    assert TypeRenderer(compact=True).render(schema, root={}, hint="X") == "Literal['a', 'b', 'c', 'd', ...]"
    assert TypeRenderer().render(schema, root={}, hint="X") == "Literal['a', 'b', 'c', 'd', 'e', 'f']"


def test_broken_references_and_odd_values_fall_back_to_any() -> None:
    types = TypeRenderer()
    assert types.render({"$ref": "#/$defs/Missing"}, root={}, hint="X") == "Any"
    assert types.render({"$ref": "https://example.com/schema"}, root={}, hint="X") == "Any"
    assert types.render({"enum": [{"a": 1}]}, root={}, hint="X") == "Any"
    assert types.render(True, root={}, hint="X") == "Any"
    assert types.render({"allOf": [{"type": "string"}]}, root={}, hint="X") == "str"
