"""Plans built once per key and window instead of once per request.

What a key's rate limits and budgets turn into (counter keys, labels, windows) depends on the key as resolved (its
`Principal`, a new object whenever the key is reloaded: a new generation of its limits) and on the windows' current
buckets, not on the request. A plan is kept until a window of it rolls over, or the key is reloaded; a request
only puts its amounts in (`with_amount`: its own Limits, beside the plan's Planned), and the Limits of the last few
amounts are kept as well.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from toolpolicy.counters.base import Limit
from toolpolicy.plan import Planned, with_amount

Plan = tuple[Sequence[Planned], list[Limit]]
"""A plan's Planned (amounts 0: labels, windows, static fields) and, at the same positions, the Limits taking a
request's amounts. Neither is the caller's to change."""
MAX_PLANS = 4096
"""Plans kept; the cache starts over when full (keys come and go, windows roll over)."""
MAX_AMOUNTS = 16
"""Amounts kept per plan: requests often repeat their worst case (the same `max_tokens`, similar prompts)."""


@dataclass(slots=True)
class _Entry:
    source: object
    """What the plan was built from (the Principal): held, so its identity cannot be reused while cached."""
    since: float
    until: float
    templates: tuple[Planned, ...]
    by_amount: dict[tuple[int, ...], Plan] = field(default_factory=dict)


class PlanCache:
    def __init__(self) -> None:
        self._entries: dict[Hashable, _Entry] = {}

    def get(
        self,
        key: Hashable,
        source: object,
        now: float,
        build: Callable[..., list[Planned]],
        amounts: tuple[int, ...],
        *args: Any,
    ) -> Plan:
        """The plan `build(*args)` makes for `key`, with `amounts` (one per limit, or one for all) put in its Limits.

        `build` runs again when `source` is another object than the cached plan's or `now` (epoch seconds) is
        outside every one of its windows' current buckets. Its arguments come apart from it so that a caller makes
        no function per request for a plan that is usually found (a closure, with the cells of what it captures,
        costs more than the look-up).
        """
        entry = self._entries.get(key)
        if entry is None or entry.source is not source or not entry.since <= now < entry.until:
            templates = tuple(build(*args))
            since = max((item.window.since for item in templates), default=float("-inf"))
            until = min(
                (item.window.until for item in templates if item.window.until is not None), default=float("inf")
            )
            if len(self._entries) >= MAX_PLANS:
                self._entries.clear()
            entry = self._entries[key] = _Entry(source, since, until, templates)
        plan = entry.by_amount.get(amounts)
        if plan is None:
            templates = entry.templates
            if len(amounts) == 1:
                limits = [with_amount(item.limit, amounts[0]) for item in templates]
            else:
                limits = [with_amount(item.limit, amount) for item, amount in zip(templates, amounts, strict=True)]
            if len(entry.by_amount) >= MAX_AMOUNTS:
                entry.by_amount.clear()
            plan = entry.by_amount[amounts] = (templates, limits)
        return plan
