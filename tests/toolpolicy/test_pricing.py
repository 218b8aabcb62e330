"""Price lookups: remembered per (target, provider kind), the same answers as looking each name up afresh."""

from __future__ import annotations

import pytest

from toolpolicy.pricing import PriceTable
from toolpolicy.types import ModelTarget

TABLE = {
    "openai/gpt-4o": {"input": "2.5", "output": "10"},
    "work/gpt-4o": {"input": "1", "output": "1"},
    "echo/*": {"input": "0.1", "output": "0.1"},
}


@pytest.mark.parametrize("first_kind", [None, "openai", "echo"])
def test_a_remembered_answer_is_the_one_for_its_kind(first_kind: str | None) -> None:
    table, fresh = PriceTable(TABLE), PriceTable(TABLE)
    table.lookup(ModelTarget.parse("mine/gpt-4o"), first_kind)  # remembered first, under one kind
    for name in ["mine/gpt-4o", "work/gpt-4o", "echo/x", "mine/other", "gpt-4o"]:
        for kind in [None, "openai", "echo"]:
            target = ModelTarget.parse(name)
            assert table.lookup(target, kind) == fresh._lookup(target, kind), (name, kind)
    assert table.lookup(ModelTarget.parse("mine/gpt-4o"), "echo") == PriceTable(TABLE).lookup(
        ModelTarget.parse("echo/gpt-4o")
    )


def test_the_remembered_answers_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("toolpolicy.pricing.LOOKUP_CACHE_SIZE", 4)
    table = PriceTable(TABLE)
    for index in range(20):
        assert table.lookup(ModelTarget.parse(f"echo/m{index}")) is not None
    assert len(table._answers) == 4
    assert table.lookup(ModelTarget.parse("echo/m19")) == table._lookup(ModelTarget.parse("echo/m19"), None)
