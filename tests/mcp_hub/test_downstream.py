"""`Downstream.holding`: the request with its held call, every other field as it was (`dataclasses.replace`)."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from mcp_hub.relay.calls import Downstream


def test_holding_keeps_every_field_but_the_held_call() -> None:
    values: dict[str, Any] = {field.name: object() for field in fields(Downstream)}
    downstream = Downstream(**{**values, "held": None})
    held: Any = object()
    ours, replaced = downstream.holding(held), replace(downstream, held=held)
    assert ours is not downstream and ours.held is held
    assert all(getattr(ours, field.name) is getattr(replaced, field.name) for field in fields(Downstream))
