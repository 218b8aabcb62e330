"""A schema's verdicts remembered by the shape of what it checked.

Two checks on the MCP path take a value whose shape alone decides the verdict, once the values the schema takes
whatever they are have been blanked: a tool call's params (`fastpath/kernel.py`) and an upstream's tool result
(`upstreams/result_shapes.py`). Each blanks its own free values; both write the shape as text and remember the
shapes the schema accepted here. A refusal is never remembered: what the schema refuses is checked in full each time.
"""

from __future__ import annotations

from typing import Any


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


def shape_text(blanked: Any) -> str | None:
    """A blanked value as text: `repr` tells decoded JSON values apart (1, 1.0, True and "1" differ). None when it is
    nested deeper than `repr` goes: no shape, so the schema decides, in full."""
    try:
        return repr(blanked)
    except RecursionError:
        return None
