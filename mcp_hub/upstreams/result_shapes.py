"""An upstream's `tools/call` results checked against their version's result schema, once per shape.

`FastCalls` checks each result as the SDK's client does: against the version's result schema (the surface, whose
dump it throws away), then into the result model it hands on. The surface's verdict on a result depends on its
shape only, apart from two kinds of values it takes whatever they are: a content item's `text` string (the one arm
with a `text` field, `TextContent`, wants any string; the other arms ignore it) and a `structuredContent` object
with string keys (`dict[str, Any]` in 2025, any value in 2026-07-28). `SurfaceCheck` blanks those, and remembers
each shape the schema accepted: an upstream answers in few shapes (its tools' results, differing in text). A shape
not seen yet, or one the schema refused, is checked in full, and a refusal raises as before.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import TypeAdapter

from mcp_hub.shapes import AcceptedShapes, Shape, shape_text, string_keys

KEPT: Final = 256
"""Accepted shapes remembered per upstream connection; beyond that the memory starts over."""


class SurfaceCheck:
    """`surface.validate_python(raw, by_name=False)`, skipped for a shape it accepted before (see the module doc)."""

    def __init__(self, surface: TypeAdapter[Any]) -> None:
        self.surface = surface
        self._accepted = AcceptedShapes(KEPT)

    def check(self, raw: dict[str, Any]) -> None:
        """Raise pydantic's `ValidationError` if the surface refuses `raw`."""
        shape = result_shape(raw)
        if shape is not None and shape in self._accepted:
            return
        self.surface.validate_python(raw, by_name=False)
        if shape is not None:
            self._accepted.add(shape)


def result_shape(raw: dict[str, Any]) -> Shape | None:
    """`raw` with its free values blanked, as text (`shape_text` tells decoded JSON values apart); None: not a dict, or
    too deeply nested to write."""
    if type(raw) is not dict:
        return None
    shape = dict(raw)
    content = raw.get("content")
    if type(content) is list:
        shape["content"] = [
            {**item, "text": ""} if type(item) is dict and type(item.get("text")) is str else item for item in content
        ]
    structured = raw.get("structuredContent")
    if type(structured) is dict and string_keys(structured):
        shape["structuredContent"] = {}
    return shape_text(shape)
