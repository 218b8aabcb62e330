"""Which limits apply to a call: turning a principal's budgets and rate limits into counter Limits.

Units: requests and tokens count as themselves; money is counted in nano-USD, so every counter is an integer.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any

from toolpolicy.counters.base import Limit
from toolpolicy.limits import BudgetPeriod, Rate, parse_rate
from toolpolicy.pricing import NANO
from toolpolicy.store.ledger import SpendScope
from toolpolicy.types import Principal
from toolpolicy.windows import Window, budget_window, format_reset, format_reset_raw, rate_window


def to_nano(usd: Decimal, *, round_up: bool = False) -> int:
    return int((usd * NANO).to_integral_value(ROUND_CEILING if round_up else ROUND_HALF_UP))


def from_nano(nano: int) -> Decimal:
    return Decimal(nano) / NANO


def usd(amount: Decimal) -> str:
    """`$0.50`, or as many decimals as a sub-cent amount needs (`$0.045`), up to six."""
    cents = amount.quantize(Decimal("0.01"))
    if cents == amount:
        return f"${cents}"
    return "$" + format(amount.quantize(Decimal("0.000001")).normalize(), "f")


@dataclass(slots=True)  # not frozen, as `Limit`: made once per key and window (`plan_cache`), never changed
class Planned:
    """A Limit with what is needed to explain a denial and to seed it."""

    limit: Limit
    """The plan's own limit: its amount is the plan's (0), a request's are in the Limits it reserves with
    (`with_amount`), so only its static fields count here."""
    label: str
    """e.g. `budget team/support 1M` or `rate limit key/bot requests 600/1m`."""
    kind: str
    """`requests`, `tokens`, `calls` or `usd`."""
    window: Window
    scope: SpendScope | None = None
    """For budgets: whose spend in the ledger rebuilds a missing counter bucket (rate limits: the rate journal)."""
    advertised: bool = False
    """Reported in the `x-ratelimit-*` response headers (the key's own LLM limits)."""
    level: str = "key"
    """`customer`, `team` or `key` (metrics label)."""
    owner: str = ""
    """The entity's name (metrics label)."""
    period: str = ""
    """The budget's period (metrics label)."""

    def describe(self, usage: int) -> str:
        if self.kind == "usd":
            return f"{self.label}: {usd(from_nano(usage))} spent of {usd(from_nano(self.limit.limit))}"
        return f"{self.label}: {usage} of {self.limit.limit} used"

    def add_headers(self, headers: dict[str, str], taken: int, suffix: str, now: float) -> None:
        """Put the `x-ratelimit-*` headers in `headers` (`taken`: the limit's usage with this request's amount)."""
        limit_name, remaining_name, reset_name = _header_names(suffix)
        limit = self.limit.limit
        headers[limit_name] = str(limit)
        headers[remaining_name] = str(max(0, limit - taken))
        headers[reset_name] = format_reset(self._resets_in(now))

    def raw_headers(self, taken: int, suffix: str, now: float) -> list[tuple[bytes, bytes]]:
        """`add_headers` as a response's raw headers (names made once per suffix), in the same order."""
        limit_name, remaining_name, reset_name = _raw_header_names(suffix)
        limit = self.limit.limit
        until = self.window.until  # `_resets_in`, inline
        return [
            (limit_name, b"%d" % limit),
            (remaining_name, b"%d" % max(0, limit - taken)),
            (reset_name, format_reset_raw(0 if until is None else until - now)),
        ]

    def _resets_in(self, now: float) -> float:
        until = self.window.until  # `Window.resets_in`, inline: twice per admitted request
        return 0 if until is None else until - now


def with_amount(limit: Limit, amount: int) -> Limit:
    """The same limit taking `amount` (a plan is built once per key and window, amounts come per request).

    Every field copied by hand onto a new object: a request whose amounts differ from the recent ones' makes one
    per limit, and a class call with its `__init__` frame costs a fifth more. Only the Limit is copied, not its
    Planned (the governor keeps the plan's Planned beside the request's Limits): a Planned copy cost as much again.
    `test_plan_amounts` checks that no field is left out."""
    if amount == limit.amount:
        return limit
    new_limit = _new(Limit)
    new_limit.hold_key = limit.hold_key
    new_limit.used_keys = limit.used_keys
    new_limit.add_key = limit.add_key
    new_limit.limit = limit.limit
    new_limit.amount = amount
    new_limit.commit = limit.commit
    new_limit.ttl = limit.ttl
    new_limit.seeded = limit.seeded
    new_limit.window_start = limit.window_start
    new_limit.journaled = limit.journaled
    new_limit.used_prefix = limit.used_prefix
    new_limit.origin = limit.origin or limit
    return new_limit


_new = object.__new__


@functools.lru_cache(maxsize=64)
def _header_names(suffix: str) -> tuple[str, str, str]:
    return f"x-ratelimit-limit-{suffix}", f"x-ratelimit-remaining-{suffix}", f"x-ratelimit-reset-{suffix}"


@functools.lru_cache(maxsize=64)
def _raw_header_names(suffix: str) -> tuple[bytes, bytes, bytes]:
    names = _header_names(suffix)
    return names[0].encode("latin-1"), names[1].encode("latin-1"), names[2].encode("latin-1")


def rate_limit(
    owner: str,
    key_id: str,
    name: str,
    rate_text: str,
    amount: int,
    now: datetime,
    *,
    commit: bool,
    advertised: bool = False,
) -> Planned:
    """`owner` labels the denial (`key/bot`, `key/bot anthropic`); `name` is requests, tokens or calls."""
    rate = _parse_rate(rate_text)
    window = rate_window(rate, now)
    base = f"rl:{key_id}:{owner.partition(' ')[2] or '-'}:{name}:{rate.window_seconds}"
    limit = Limit(
        hold_key=base,
        used_keys=tuple(f"{base}:{bucket}" for bucket in window.used_ids),
        add_key=f"{base}:{window.add_id}",
        limit=rate.limit,
        amount=amount,
        commit=commit,
        ttl=window.ttl,
        seeded=True,
        window_start=window.start.timestamp(),
        journaled=True,
    )
    return Planned(limit, f"rate limit {owner} {name} {rate_text}", name, window, advertised=advertised)


def budget_limits(
    level: str, name: str, scope_id: str, scope: SpendScope, budgets: list[dict[str, Any]], amount: int, now: datetime
) -> list[Planned]:
    """One Limit per distinct (period, rolling) of an entity: budgets sharing a window share usage, so the
    strictest cap stands for them."""
    strictest: dict[tuple[BudgetPeriod | None, bool], dict[str, Any]] = {}
    for budget in budgets:
        window_id = (budget.get("period"), bool(budget.get("rolling")))
        if window_id not in strictest or budget["max_usd"] < strictest[window_id]["max_usd"]:
            strictest[window_id] = budget
    planned: list[Planned] = []
    for (period, rolling), budget in strictest.items():
        window = budget_window(period, rolling, now)
        base = f"b:{level}:{scope_id}:{scope.provider or '-'}"
        limit = Limit(
            hold_key=f"{base}:{period or 'life'}{'r' if rolling else ''}",
            used_keys=_bucket_keys(base, window.used_ids),
            add_key=f"{base}:{window.add_id}",
            limit=_usd_limit(budget["max_usd"]),
            amount=amount,
            ttl=window.ttl,
            seeded=True,
            used_prefix=f"{base}:{window.id_prefix}" if window.id_prefix is not None else None,
        )
        label = f"budget {level}/{name} {period or 'lifetime'}{' rolling' if rolling else ''}"
        period_label = f"{period or 'lifetime'}{'-rolling' if rolling else ''}"
        planned.append(Planned(limit, label, "usd", window, scope, level=level, owner=name, period=period_label))
    return planned


@functools.lru_cache(maxsize=1024)
def _parse_rate(text: str) -> Rate:
    return parse_rate(text)


@functools.lru_cache(maxsize=1024)
def _usd_limit(max_usd: float) -> int:
    return to_nano(Decimal(str(max_usd)))


@functools.lru_cache(maxsize=1024)
def _bucket_keys(base: str, ids: tuple[str, ...]) -> tuple[str, ...]:
    """A window's bucket keys (a rolling window has 61, the same for every request in its current bucket)."""
    return tuple(f"{base}:{bucket}" for bucket in ids)


def entity_budgets(principal: Principal, amount: int, now: datetime, provider: str | None) -> list[Planned]:
    """Every budget that applies: customer, team, key, and the key's budgets on `provider`."""
    limits = principal.limits
    planned: list[Planned] = []
    if principal.customer_id and principal.customer:
        scope = SpendScope(customer_id=principal.customer_id)
        budgets = limits.get("customer_budgets") or []
        planned += budget_limits("customer", principal.customer, principal.customer_id, scope, budgets, amount, now)
    if principal.team_id and principal.team:
        scope = SpendScope(team_id=principal.team_id)
        budgets = limits.get("team_budgets") or []
        planned += budget_limits("team", principal.team, principal.team_id, scope, budgets, amount, now)
    key_scope = SpendScope(key_id=principal.key_id)
    budgets = limits.get("budgets") or []
    planned += budget_limits("key", principal.key_name, principal.key_id, key_scope, budgets, amount, now)
    provider_budgets = (limits.get("provider_budgets") or {}).get(provider) if provider else None
    if provider and provider_budgets:
        scope = SpendScope(key_id=principal.key_id, provider=provider)
        owner = f"{principal.key_name} {provider}"
        planned += budget_limits("key", owner, principal.key_id, scope, provider_budgets, amount, now)
    return planned
