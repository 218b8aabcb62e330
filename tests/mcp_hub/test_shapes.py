"""`AcceptedShapes` and `shape_text`: the memory both shape checks on the MCP path share."""

from __future__ import annotations

from typing import Any

from mcp_hub.shapes import AcceptedShapes, shape_text


def test_the_memory_holds_what_was_added_and_starts_over_past_its_size() -> None:
    shapes = AcceptedShapes(2)
    shapes.add("a")
    shapes.add("b")
    assert "a" in shapes and "b" in shapes and "c" not in shapes and len(shapes) == 2
    shapes.add("c")  # full: it starts over, and keeps the newest
    assert "c" in shapes and "a" not in shapes and "b" not in shapes and len(shapes) == 1


def test_json_values_of_different_types_have_different_shapes() -> None:
    texts = {shape_text({"v": value}) for value in (1, 1.0, True, "1", None, [1], {"1": 1})}
    assert len(texts) == 7


def test_a_value_nested_deeper_than_json_and_repr_go_has_no_shape() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert shape_text({"v": deep}) is None


def test_a_value_json_cannot_write_has_its_repr_for_shape() -> None:
    assert shape_text({"v": "\ud800"}) == repr({"v": "\ud800"})  # a lone surrogate: no UTF-8 JSON
    assert shape_text({"v": "\ud800"}) != shape_text({"v": "\\ud800"})
