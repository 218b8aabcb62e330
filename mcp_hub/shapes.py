"""A schema's verdicts remembered by the shape of what it checked.

Two checks on the MCP path take a value whose shape alone decides the verdict, once the values the schema takes
whatever they are have been blanked: a tool call's params (`fastpath/kernel.py`) and an upstream's tool result
(`upstreams/result_shapes.py`). Each blanks its own free values; both write the shape as text and remember the
shapes the schema accepted here. A refusal is never remembered: what the schema refuses is checked in full each time.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import pydantic_core

Shape: TypeAlias = str | bytes
"""A shape's text: JSON, or a `repr` (see `shape_text`)."""


class AcceptedShapes:
    """Shapes the schema accepted, at most `kept` of them; past that the memory starts over (a caller's values can
    make new shapes without end, and a full check is only slower)."""

    __slots__ = ("kept", "_shapes")

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self._shapes: set[Any] = set()

    def __contains__(self, shape: object) -> bool:
        return shape in self._shapes

    def __len__(self) -> int:
        return len(self._shapes)

    def add(self, shape: Any) -> None:
        if len(self._shapes) >= self.kept:
            self._shapes.clear()
        self._shapes.add(shape)


def shape_text(blanked: Any) -> Shape | None:
    """A blanked value as text that tells decoded JSON values apart (1, 1.0, True and "1" differ): its JSON, by
    pydantic-core, a third of `repr`'s cost; where that cannot write it (a lone surrogate, nesting too deep), its
    `repr` (a `str`, never equal to JSON's `bytes`). None when nested deeper than `repr` goes too: no shape, so the
    schema decides, in full.

    Decoded JSON has no tuples and no keys but strings, the values `repr` tells apart from lists and string keys
    and JSON writes alike: the two texts tell the same values apart."""
    try:
        return pydantic_core.to_json(blanked, inf_nan_mode="constants")
    except ValueError:  # pydantic-core's serialization error is one
        pass
    try:
        return repr(blanked)
    except RecursionError:
        return None


def string_keys(value: dict[Any, Any]) -> bool:
    """Whether every key of `value` is a `str`: whether a blanker may write it as `{}` (a loop: `all` over a generator
    costs more than the check, and it runs on every call)."""
    for key in value:
        if type(key) is not str:
            return False
    return True
