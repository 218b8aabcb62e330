"""Model prices: a table shipped with the package, overridden or extended by the config's `pricing:` block."""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from importlib import resources
from typing import Any

from toolpolicy.types import ModelTarget

MILLION = Decimal(1_000_000)
NANO = Decimal(1_000_000_000)
EXACT_BELOW = 10**12
"""Token counts and prices in nano-USD per million tokens below this make the worst case's products at most 25
digits: `Decimal` computes them exactly (28 digits), so integers give the same answer (`worst_case_nano`)."""
LOOKUP_CACHE_SIZE = 4096
"""Answers `PriceTable.lookup` remembers; the model part of a name comes from requests, so past this many it
looks further names up without remembering them."""
DEFAULT_MAX_OUTPUT = 4096
"""Output tokens assumed for the worst case when neither the request nor the table gives a limit."""


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    max_output: int | None = None
    _nano: tuple[int, int] | None = field(default=None, init=False, repr=False, compare=False)
    """Input and output prices in nano-USD per million tokens, when both are whole numbers below `EXACT_BELOW`."""

    def __post_init__(self) -> None:
        input_nano, output_nano = self.input * NANO, self.output * NANO
        if all(value == value.to_integral_value() and abs(value) < EXACT_BELOW for value in (input_nano, output_nano)):
            object.__setattr__(self, "_nano", (int(input_nano), int(output_nano)))

    def cost(self, tokens_in: int, tokens_out: int, cached_tokens: int = 0) -> Decimal:
        cached = min(cached_tokens, tokens_in)
        cached_rate = self.cached_input if self.cached_input is not None else self.input
        total = (tokens_in - cached) * self.input + cached * cached_rate + tokens_out * self.output
        return total / MILLION

    def worst_case(self, tokens_in: int, max_output_tokens: int | None, choices: int = 1) -> Decimal:
        """The most a request can cost: its input (billed once) plus, for each of its `choices`, `max_tokens` (or
        the model's output limit) of output."""
        return self.cost(tokens_in, self._worst_output(max_output_tokens, choices))

    def worst_case_nano(self, tokens_in: int, max_output_tokens: int | None, choices: int = 1) -> int:
        """`worst_case` in nano-USD, rounded up: what a budget holds for the request. In integers when that is
        exact (every admitted LLM request computes it; `Decimal` arithmetic costs several times more)."""
        tokens_out = self._worst_output(max_output_tokens, choices)
        nano = self._nano
        if nano is not None and 0 <= tokens_in < EXACT_BELOW and 0 <= tokens_out < EXACT_BELOW:
            # Nothing cached is assumed, so the cached-input price plays no part (as in `cost`, where it adds 0).
            return -(-(tokens_in * nano[0] + tokens_out * nano[1]) // 1_000_000)
        worst = self.cost(tokens_in, tokens_out) * NANO
        return int(worst.to_integral_value(ROUND_CEILING))

    def _worst_output(self, max_output_tokens: int | None, choices: int) -> int:
        """The output a request may be billed for: `max_tokens` (or the model's output limit) for each choice."""
        limit = max_output_tokens if max_output_tokens is not None else self.max_output
        return choices * (limit if limit is not None else DEFAULT_MAX_OUTPUT)


def _price(entry: dict[str, Any]) -> ModelPrice:
    def usd(name: str) -> Decimal | None:
        value = entry.get(name)
        return Decimal(str(value)) if value is not None else None

    return ModelPrice(
        input=usd("input") or Decimal(0),
        output=usd("output") or Decimal(0),
        cached_input=usd("cached_input"),
        max_output=entry.get("max_output"),
    )


def shipped_prices() -> dict[str, dict[str, Any]]:
    raw = json.loads(resources.files("toolpolicy").joinpath("data/prices.json").read_text())
    return {name: entry for name, entry in raw.items() if not name.startswith("_")}


class PriceTable:
    """Lookups by `provider/model`, then `kind/model` (a provider named `work` of kind `openai` finds
    `openai/gpt-4o`), then the bare model name; exact entries before globs (`echo/*`)."""

    def __init__(self, entries: dict[str, dict[str, Any]]) -> None:
        self._exact = {name: _price(entry) for name, entry in entries.items() if not _is_glob(name)}
        self._globs = [(name, _price(entry)) for name, entry in entries.items() if _is_glob(name)]
        self._bare: dict[str, ModelPrice] = {}
        for name, price in self._exact.items():
            self._bare.setdefault(name.partition("/")[2] or name, price)
        self._answers: dict[tuple[str, str, str | None], ModelPrice | None] = {}
        """`lookup`'s answers: the table does not change once built."""

    @classmethod
    def with_overrides(cls, overrides: dict[str, dict[str, Any]]) -> PriceTable:
        return cls({**shipped_prices(), **overrides})

    def lookup(self, target: ModelTarget, kind: str | None = None) -> ModelPrice | None:
        key = (target.provider, target.model, kind)
        try:
            return self._answers[key]
        except KeyError:
            pass
        price = self._lookup(target, kind)
        if len(self._answers) < LOOKUP_CACHE_SIZE:
            self._answers[key] = price
        return price

    def _lookup(self, target: ModelTarget, kind: str | None) -> ModelPrice | None:
        names = [target.name] + ([f"{kind}/{target.model}"] if kind and target.provider else [])
        for name in names:
            if name in self._exact:
                return self._exact[name]
        for name in names:
            for pattern, price in self._globs:
                if fnmatch.fnmatchcase(name, pattern):
                    return price
        return self._bare.get(target.model)


def _is_glob(name: str) -> bool:
    return any(char in name for char in "*?[")
