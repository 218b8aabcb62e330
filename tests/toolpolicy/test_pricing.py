"""Price lookups: remembered per (target, provider kind), the same answers as looking each name up afresh."""

from __future__ import annotations

from decimal import Decimal

import pytest

from toolpolicy.plan import to_nano
from toolpolicy.pricing import ModelPrice, PriceTable, shipped_prices
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


def test_the_worst_case_in_nano_usd_is_the_decimal_worst_case_rounded_up() -> None:
    # Differential: integers where they are exact, `Decimal` elsewhere; either way what `to_nano` made of
    # `worst_case` before. Prices from the shipped table, sub-nano ones, huge ones; token counts small to huge.
    prices = [PriceTable(shipped_prices()).lookup(ModelTarget.parse(name)) for name in list(shipped_prices())[:40]]
    prices += [
        ModelPrice(Decimal("0.15"), Decimal("0.6"), Decimal("0.075"), 1024),
        ModelPrice(Decimal("0.0000000001"), Decimal("3")),  # input finer than a nano-USD per million: Decimal path
        ModelPrice(Decimal("12345678.9"), Decimal("0")),  # too large for the exact integers: Decimal path
        ModelPrice(Decimal("0"), Decimal("0")),
    ]
    tokens = [0, 1, 7, 999, 1_000_001, 123_456_789, 10**12 - 1, 10**12, 10**15]
    outputs: list[int | None] = [None, 0, 1, 4096, 10**11, 10**13]
    for price in prices:
        assert price is not None
        for tokens_in in tokens:
            for max_output in outputs:
                for choices in (1, 3):
                    expected = to_nano(price.worst_case(tokens_in, max_output, choices), round_up=True)
                    assert price.worst_case_nano(tokens_in, max_output, choices) == expected
