"""The policy chain both halves run every request through: allowlist, rate limits, budget reservation, settlement.

The order is written here, once:

1. allowlist (`authorize`): cheapest, and a denied caller must not consume anyone's limits;
2. the key's rate limits (requests +1 at once, tokens held at input + choices × max output; MCP: tool calls per
   key and per server), and for calls with a cost known up front (MCP `cost_per_call_usd`) every budget: once per
   request;
3. per attempt target (`Admission.attempt`, LLM calls): that provider's rate limits, then every applicable budget
   held at the target's worst-case cost, so concurrent requests can never commit more than a budget allows. When
   the requested model is a priced `provider/model` (not an alias) whose provider has no request-count limit, its
   reservation is taken by `admit` in the same counter-store step as step 2 (step 2 first, then this one against
   what step 2 left), and `attempt` on that target only reports the result: a denial there still skips the target
   only, and the holds of a target the router then skips are given back by the next `attempt` or `release`;
4. `settle` trues the holds up to the provider's reported usage and writes the spend ledger; `release` returns
   them when the call fails. The counter store may queue either off the request path (Redis sends them with the
   next reservation): they count once they land (`counters.flush()` forces that); until then the holds stand at
   the worst case, an over-count only.

A caller with no rate limit and no budget at any level (key, team, customer) is admitted after step 1 with nothing
planned (`Admission.ungoverned`): its attempts only price the target (the unpriced policy and its counter still
apply), and its settlement only writes the spend ledger.

Usage::

    admission = await governor.admit(Call(request_id, principal, target, input_tokens=..., max_output_tokens=...))
    try:
        await admission.attempt(ModelTarget("openai", "gpt-4o-mini"))  # before each attempt target
        ...forward...
        await admission.settle(Usage(tokens_in=..., tokens_out=...))
    except BaseException:
        await admission.release()
        raise
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from toolpolicy import sanitize
from toolpolicy.batching import BatchWriter, StoreUnavailable
from toolpolicy.counters.base import CounterStore, CounterStoreError, Limit
from toolpolicy.counters.journaled import seed_rate_buckets
from toolpolicy.decide import authorize
from toolpolicy.errors import LimitExceeded, PermissionDenied, ServiceUnavailable
from toolpolicy.plan import Planned, entity_budgets, from_nano, rate_limit, to_nano
from toolpolicy.plan_cache import Plan, PlanCache
from toolpolicy.pricing import DEFAULT_MAX_OUTPUT, ModelPrice, PriceTable
from toolpolicy.settings import GatewaySettings
from toolpolicy.store.ledger import SpendEntry, SpendLedger
from toolpolicy.store.rate_journal import RateJournal
from toolpolicy.telemetry.metrics import Metrics
from toolpolicy.types import ModelTarget, Principal, Target, ToolTarget

logger = logging.getLogger(__name__)
NOTHING: Plan = ((), [])
"""No limits: the plan of a stage that holds nothing (never changed)."""
NANO_PER_USD = 1e9
NO_COST = Decimal(0)
"""An admission's cost until it settles (one Decimal for all: they never change)."""
utc_now = functools.partial(datetime.now, UTC)
"""The governor's clock by default: a partial calls in C (a lambda is a Python frame), read twice per request."""


@dataclass(slots=True)  # not frozen: one per request, never changed (a frozen one costs 5x to make: 13k Ir, not 2.6k)
class Call:
    """One request to govern."""

    request_id: str
    principal: Principal
    target: Target
    """What the caller asked for: `provider/model` or an alias name, or an MCP tool."""
    input_tokens: int = 0
    """Input tokens, counted or estimated (LLM calls)."""
    max_output_tokens: int | None = None
    """The request's `max_tokens` per choice; None means the model's output limit, 0 a call that generates no
    output such as embeddings (LLM calls)."""
    choices: int = 1
    """Completions the call asks for (OpenAI `n`): each may produce `max_output_tokens`, while the input is billed
    once, so the worst case is input + choices × max output (LLM calls)."""
    fixed_cost_usd: Decimal | None = None
    """A cost known before the call, e.g. an MCP server's `cost_per_call_usd`."""
    via: str | None = None
    """How the call arrived when not directly, e.g. `code_mode`."""


@dataclass(slots=True)  # not frozen, as `Call`: made once per request, never changed
class Usage:
    """What a finished call consumed."""

    tokens_in: int = 0
    tokens_out: int = 0
    cached_tokens: int = 0
    cost_usd: Decimal | None = None
    """The cost when known; otherwise it is priced from the model and tokens."""
    reasoning_tokens: int = 0
    """Of `tokens_out`, those spent thinking, when the provider says (reported back to clients, priced as output)."""


class Governor:
    """Admits calls against the counter store; the one place the policy order is applied."""

    def __init__(
        self,
        settings: GatewaySettings,
        counters: CounterStore,
        ledger: SpendLedger,
        spend: BatchWriter[SpendEntry],
        *,
        fallback: CounterStore | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utc_now,
        journal: RateJournal | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.settings = settings
        self.counters = counters
        self.ledger = ledger
        self.spend = spend
        self.fallback = fallback
        self.clock = clock
        self.journal = journal
        """Where rate-limit buckets missing after a counter-store restart are re-seeded from."""
        self.prices = PriceTable.with_overrides(
            {name: price.model_dump(exclude_none=True) for name, price in settings.pricing.items()}
        )
        self.fallbacks_used = 0
        """Reservations served by the local fallback because the shared counter store failed."""
        self.unpriced_calls = 0
        self.unpriced_warned: set[str] = set()
        self.plans = PlanCache()
        """Each key's limits as counter Limits, built once per key and window."""
        self._budget_held: dict[tuple[str, str, str], tuple[int, int]] = {}
        """Each budget's limit and what it held after its last reservation, in nano-USD, by gauge labels."""

    def note_budget(self, item: Planned, held: int) -> None:
        """Note what a budget holds after a reservation (`held`: its usage plus the amount just taken).

        The `budget_remaining` gauge reads the note when scraped (`set_function`), so a reservation stores one
        tuple instead of computing and setting a gauge value under its lock per budget per request.
        """
        labels = (item.level, item.owner, item.period)
        new = labels not in self._budget_held
        self._budget_held[labels] = (item.limit.limit, held)
        if new:
            gauge = self.metrics.budget_remaining.labels(*labels)
            gauge.set_function(functools.partial(self._budget_remaining, labels))

    def _budget_remaining(self, labels: tuple[str, str, str]) -> float:
        limit, held = self._budget_held[labels]
        return (limit - held) / NANO_PER_USD

    def price(self, target: ModelTarget) -> ModelPrice | None:
        provider = self.settings.providers.get(target.provider)
        return self.prices.lookup(target, provider.kind if provider is not None else None)

    async def admit(self, call: Call, *, authorized: bool = False) -> Admission:
        """Raise a typed GatewayError denial, or return the call's Admission holding its reservations.

        `authorized`: the caller has judged `call.target` by the key's state and allowlist for this request already
        (the LLM pipeline does, before routing, so that an unknown name tells a refused caller nothing); step 1 is
        then not repeated.
        """
        if not authorized:
            authorize(call.principal, call.target).raise_if_denied()
        admission = Admission(self, call)
        principal, limits = call.principal, call.principal.limits
        if not principal.governed:  # no rate limit or budget anywhere (key, team, customer): nothing to plan
            admission.ungoverned = True
            return admission
        now = self.clock()
        seconds = now.timestamp()  # once: an aware datetime's timestamp costs a few timedelta operations
        if isinstance(call.target, ToolTarget):
            planned: Sequence[Planned] = []
            taking: list[Limit] = []
            if limits.get("mcp_rate_limit"):
                planned, taking = self.mcp_rate_limits(principal, call.target.server, now, seconds)
            if call.fixed_cost_usd:
                amount = to_nano(call.fixed_cost_usd, round_up=True)
                budgets, budget_limits = self.budgets(principal, amount, now, seconds, None)
                planned, taking = [*planned, *budgets], [*taking, *budget_limits]
        else:
            planned, taking = self.llm_rate_limits(call, None, now, seconds)
            early = self._early_attempt(call, now, seconds)
            if early is not None:
                await admission.reserve(planned, taking, stage="request", early=early, now=seconds)
                return admission
        await admission.reserve(planned, taking, stage="request", now=seconds)
        return admission

    def budgets(self, principal: Principal, amount: int, now: datetime, seconds: float, provider: str | None) -> Plan:
        """`entity_budgets`, built once per key and window (`PlanCache`); `seconds` is `now` in epoch seconds."""
        key = ("budgets", principal.key_id, provider)
        return self.plans.get(key, principal, seconds, entity_budgets, (amount,), principal, 0, now, provider)

    def mcp_rate_limits(self, principal: Principal, server: str, now: datetime, seconds: float) -> Plan:
        """The key's MCP rate limits on a call to `server`: tool calls per key, then per server, each +1 counted at
        once; built once per key, server and window (`PlanCache`)."""
        key = ("calls", principal.key_id, server)
        return self.plans.get(key, principal, seconds, mcp_rate_limits, (1,), principal, server, now)

    def llm_rate_limits(self, call: Call, provider: str | None, now: datetime, seconds: float) -> Plan:
        """The key's LLM rate limits (provider None: its own, advertised in the response headers; else its limits on
        that provider), built once per key and window: requests +1, counted at once; tokens the worst case, held
        until settled."""
        principal = call.principal
        limits = principal.limits
        rate = (
            limits.get("rate_limit") if provider is None else (limits.get("provider_rate_limits") or {}).get(provider)
        )
        if not rate:
            return NOTHING
        amounts: tuple[int, ...] = ()
        if rate.get("requests"):
            amounts += (1,)
        if rate.get("tokens"):
            max_output = DEFAULT_MAX_OUTPUT if call.max_output_tokens is None else call.max_output_tokens
            amounts += (call.input_tokens + call.choices * max_output,)
        if not amounts:
            return NOTHING
        key = ("rates", principal.key_id, provider)
        return self.plans.get(key, principal, seconds, key_rate_limits, amounts, principal, provider, rate, now)

    def attempt_limits(
        self, call: Call, target: ModelTarget, price: ModelPrice | None, now: datetime, seconds: float
    ) -> Plan:
        """One attempt target's reservations: the provider's rate limits, then every budget at the worst-case cost."""
        worst = 0
        if price is not None:
            worst = price.worst_case_nano(call.input_tokens, call.max_output_tokens, call.choices)
        budgets = self.budgets(call.principal, worst, now, seconds, target.provider)
        rates = self.llm_rate_limits(call, target.provider, now, seconds)
        if not rates[1]:  # the usual case: no rate limit on the provider, the budgets' plan as it is
            return budgets
        return [*rates[0], *budgets[0]], [*rates[1], *budgets[1]]

    def _early_attempt(self, call: Call, now: datetime, seconds: float) -> Early | None:
        """The requested model's attempt reservation, when it can be taken at admission (see the module's order).

        Not for an alias (the router expands it), an unpriced model (its policy is applied per attempt), or a
        provider with a request-count limit: that is counted at once, and must not be for a target the router
        then skips (circuit open, no usable key).
        """
        target = call.target
        if (
            not isinstance(target, ModelTarget)
            or target.provider not in self.settings.providers
            or target.name in self.settings.models
        ):
            return None
        price = self.price(target)
        if price is None:
            return None
        planned, taking = self.attempt_limits(call, target, price, now, seconds)
        for limit in taking:
            if limit.commit:
                return None
        return Early(target, price, planned, taking)


@dataclass(slots=True)
class Early:
    """The first attempt target's reservation, taken at admission together with the request's own."""

    target: ModelTarget
    price: ModelPrice
    planned: Sequence[Planned]
    limits: list[Limit]
    """`planned`'s limits with the request's amounts."""
    denied: tuple[Planned, int] | None = None
    """The limit that had no room, with its usage: raised when the router attempts this target."""


def mcp_rate_limits(principal: Principal, server: str, now: datetime) -> list[Planned]:
    """A key's MCP rate limits on a call to `server`, amounts left at 0 (a plan: see `Governor.mcp_rate_limits`)."""
    mcp_rate = principal.limits.get("mcp_rate_limit") or {}
    owner = f"key/{principal.key_name}"
    planned: list[Planned] = []
    if mcp_rate.get("calls"):
        planned.append(rate_limit(owner, principal.key_id, "calls", mcp_rate["calls"], 1, now, commit=True))
    server_rate = (mcp_rate.get("per_server") or {}).get(server)
    if server_rate:
        server_owner = f"{owner} {server}"
        planned.append(rate_limit(server_owner, principal.key_id, "calls", server_rate, 1, now, commit=True))
    return planned


def key_rate_limits(principal: Principal, provider: str | None, rate: dict[str, Any], now: datetime) -> list[Planned]:
    """A key's LLM rate limits (`provider` None: its own, advertised; else its limits on that provider): a plan."""
    owner = f"key/{principal.key_name}" if provider is None else f"key/{principal.key_name} {provider}"
    return llm_rate_limits(principal.key_id, owner, rate, now, advertised=provider is None)


def llm_rate_limits(
    key_id: str, owner: str, rate: dict[str, Any], now: datetime, *, advertised: bool = False
) -> list[Planned]:
    """A rate limit's requests and tokens, amounts left at 0 (a plan: see `Governor.llm_rate_limits`)."""
    planned: list[Planned] = []
    if rate.get("requests"):
        planned.append(
            rate_limit(owner, key_id, "requests", rate["requests"], 0, now, commit=True, advertised=advertised)
        )
    if rate.get("tokens"):
        planned.append(rate_limit(owner, key_id, "tokens", rate["tokens"], 0, now, commit=False, advertised=advertised))
    return planned


class Admission:
    """The reservations one admitted call holds until it settles or releases them."""

    def __init__(self, governor: Governor, call: Call) -> None:
        self.governor = governor
        self.call = call
        self.advertised: dict[str, tuple[Planned, int, float]] = {}
        """The key's own limits taken, by kind, with their usage including this request's amount and when: rendered
        as the `x-ratelimit-*` headers only when the response is (`headers`, `raw_headers`)."""
        self.target: ModelTarget | ToolTarget | None = call.target if isinstance(call.target, ToolTarget) else None
        self.cost_usd = NO_COST
        self._held: dict[str, Plan] = {"request": NOTHING, "attempt": NOTHING}
        self._store: CounterStore = governor.counters
        self._price: ModelPrice | None = None
        self._early: Early | None = None
        """The reservation `admit` took for the requested model, until the router attempts a target."""
        self._done = False
        self.ungoverned = False
        """The caller has no rate limit and no budget: nothing is reserved, held or settled in the counters."""

    @property
    def headers(self) -> dict[str, str]:
        """Response headers describing the key's limits (`x-ratelimit-*`)."""
        headers: dict[str, str] = {}
        for suffix, (item, taken, now) in self.advertised.items():
            item.add_headers(headers, taken, suffix, now)
        return headers

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """`headers` as a response's raw headers (names lower-case, values latin-1), in the same order."""
        raw: list[tuple[bytes, bytes]] = []
        for suffix, (item, taken, now) in self.advertised.items():
            raw += item.raw_headers(taken, suffix, now)
        return raw

    async def attempt(self, target: ModelTarget) -> None:
        """Take the provider-level limits and budgets for one attempt target; on failover, call again."""
        governor = self.governor
        early, self._early = self._early, None
        # Taken at admission: only its answer is left to give. The same object usually (`ModelTarget.parse` keeps
        # one per name), told without the dataclass's `__eq__` and its tuples.
        if early is not None and (early.target is target or early.target == target):
            self.target, self._price = target, early.price
            if early.denied is not None:
                raise self._denial(*early.denied)
            return
        await self._settle_stage("attempt")
        self.target, self._price = target, governor.price(target)
        ungoverned = self.ungoverned
        now = governor.clock()
        seconds = now.timestamp()
        planned, taking = (
            NOTHING if ungoverned else governor.attempt_limits(self.call, target, self._price, now, seconds)
        )
        if self._price is None:
            governor.unpriced_calls += 1
            governor.metrics.unpriced.inc()
            if governor.settings.unpriced == "deny" and any(item.kind == "usd" for item in planned):
                raise PermissionDenied(f"model {target.name!r} has no price and budgets apply (unpriced: deny)")
            if target.name not in governor.unpriced_warned:
                governor.unpriced_warned.add(target.name)
                logger.warning("no price for model %s: counted as $0 against budgets (warned once)", target.name)
        if not ungoverned:
            await self.reserve(planned, taking, stage="attempt", now=seconds)

    async def reserve(
        self,
        planned: Sequence[Planned],
        taking: list[Limit],
        *,
        stage: str,
        now: float,
        early: Early | None = None,
    ) -> None:
        """Take `planned` (planned at `now`, epoch seconds) for `stage`, its limits with the request's amounts in
        `taking`, then, in the same counter-store step, `early`'s attempt reservation. A try after a fallback or a
        seeding reads the clock again.

        A denial of `planned` raises LimitExceeded; a denial of `early` is kept for `attempt` to raise.
        """
        combined: Sequence[Planned]
        if early is not None:
            combined, limits = [*planned, *early.planned], [*taking, *early.limits]
        else:
            combined, limits = planned, taking
        if not limits:
            self._early = early
            return
        governor = self.governor
        now_seconds = now
        for _ in range(3):
            try:
                outcome = await self._store.reserve(
                    self.call.request_id,
                    limits,
                    now=now_seconds,
                    hold_seconds=governor.settings.reservation_ttl,
                    split=len(planned),
                )
            except CounterStoreError as exc:
                self._fall_back(exc)
                now_seconds = governor.clock().timestamp()
                continue
            if outcome.missing:
                await self._seed(combined, outcome.missing, now_seconds)
                now_seconds = governor.clock().timestamp()
                continue
            failed = outcome.failed
            if not outcome.ok:
                assert failed is not None
                if failed < len(planned):
                    raise self._denial(planned[failed], outcome.usage[failed])
            self._took(planned, taking, outcome.usage, stage, now_seconds)
            if early is not None:
                if failed is None:
                    self._took(early.planned, early.limits, outcome.usage[len(planned) :], "attempt", now_seconds)
                else:
                    early.denied = (combined[failed], outcome.usage[failed])
                self._early = early
            return
        raise ServiceUnavailable("could not reserve against the counter store; try again")

    def _took(
        self, planned: Sequence[Planned], taking: list[Limit], usage: tuple[int, ...], stage: str, now: float
    ) -> None:
        """Record what `stage` now holds (`taking`: `planned`'s limits with the request's amounts); `usage` is each
        limit's usage before it was taken."""
        self._held[stage] = (planned, taking)
        budget_held = self.governor._budget_held
        # By index, not `zip(..., strict=...)`: a call with a keyword argument builds a dict for it (~1.5k Ir a call).
        for index, item in enumerate(planned):
            limit, used = taking[index], usage[index]
            if item.advertised:
                self.advertised[item.kind] = (item, used + limit.amount, now)
            elif item.kind == "usd":  # a budget is never advertised
                labels = (item.level, item.owner, item.period)
                if labels in budget_held:  # `note_budget`'s usual case, written out: a call less per budget
                    budget_held[labels] = (limit.limit, used + limit.amount)
                else:
                    self.governor.note_budget(item, used + limit.amount)

    def _denial(self, failed: Planned, usage: int) -> LimitExceeded:
        self.governor.metrics.limit_denials.labels(failed.level, failed.kind).inc()
        return LimitExceeded(
            failed.describe(usage), retry_after=failed.window.resets_in(self.governor.clock().timestamp())
        )

    def _fall_back(self, exc: CounterStoreError) -> None:
        governor = self.governor
        if governor.settings.on_counter_store_error != "allow" or governor.fallback is None:
            logger.error("counter store unreachable, denying: %s", exc)
            raise ServiceUnavailable(
                "the shared rate-limit and budget counters (Redis) are unreachable; the gateway refuses requests "
                "until they are back (on_counter_store_error: deny)"
            ) from exc
        if self._store is governor.fallback:
            raise ServiceUnavailable("the local fallback counters failed") from exc
        governor.fallbacks_used += 1
        governor.metrics.counter_fallbacks.inc()
        logger.error("COUNTER STORE UNREACHABLE: limits are now per replica (on_counter_store_error: allow): %s", exc)
        self._store = governor.fallback

    async def _seed(self, planned: Sequence[Planned], missing: tuple[str, ...], now: float) -> None:
        try:
            await self._seed_from_ledger(planned, missing, now)
        except (StoreUnavailable, SQLAlchemyError, OSError) as exc:
            # Without the ledger a budget cannot know what was spent: refuse clearly rather than guess (or 500).
            logger.error("seeding budget counters from the spend ledger failed: %s", exc)
            raise ServiceUnavailable(
                "budgets cannot be checked: the spend ledger in the store is unreachable; try again"
            ) from exc

    async def _seed_from_ledger(self, planned: Sequence[Planned], missing: tuple[str, ...], now: float) -> None:
        governor = self.governor
        wanted = set(missing)
        rate_buckets = {
            key: item.limit.ttl
            for item in planned
            if item.limit.journaled
            for key in item.limit.used_keys
            if key in wanted
        }
        if rate_buckets:  # rate limits: from the rate journal; budgets (below): from the spend ledger
            await seed_rate_buckets(self._store, governor.journal, rate_buckets, now=now)
        await governor.spend.flush()  # this replica's unwritten spend belongs in the seed
        for item in planned:
            keys = [key for key in item.limit.used_keys if key in wanted]
            if not keys or item.scope is None:
                continue
            bucket_seconds = item.window.bucket_seconds
            if bucket_seconds is None:  # one calendar (or lifetime) bucket: the spend since the window began
                total = await governor.ledger.total(item.scope, item.window.start)
                await self._store.seed(keys[0], to_nano(total), item.limit.ttl, now=now)
                continue
            # Rolling: one query for every missing bucket (bucket id = epoch seconds // bucket_seconds).
            indexes = {key: int(key.rpartition("@")[2]) for key in keys}
            first = datetime.fromtimestamp(min(indexes.values()) * bucket_seconds, UTC)
            totals = await governor.ledger.by_bucket(item.scope, first, bucket_seconds)
            for key, index in indexes.items():
                await self._store.seed(key, to_nano(totals.get(index, Decimal(0))), item.limit.ttl, now=now)

    async def _settle_stage(
        self, *stages: str, actual: dict[str, int] | None = None, at: datetime | None = None
    ) -> None:
        """Settle (or, without `actual`, release) the holds of these stages in one counter-store round trip.

        `actual`: the usage to commit per kind of limit (`usd`, `tokens`; any other kind commits 0). `at`: the time
        of the settlement, when the caller has read the clock already.
        """
        settlements: list[tuple[Limit, int]] = []  # plain pairs, not Settlement: see its docstring
        held = self._held
        for stage in stages:
            planned, taking = held[stage]
            for index, item in enumerate(planned):  # by index: see `_took`
                limit = taking[index]
                amount = actual.get(item.kind, 0) if actual else 0
                # A counted limit (requests, tool calls) holds nothing and commits nothing more: nothing to send.
                if amount or not limit.commit:
                    settlements.append((limit, amount))
            held[stage] = NOTHING
        if not settlements:
            return
        try:
            now = (at or self.governor.clock()).timestamp()
            await self._store.settle(self.call.request_id, settlements, now=now)
        except CounterStoreError:
            # The holds expire on their own (reservation_ttl); the ledger still records the spend.
            logger.exception("could not settle request %s in the counter store", self.call.request_id)

    async def settle(self, usage: Usage) -> Decimal:
        """Commit the actual usage and record the spend; returns the cost charged in USD."""
        if self._done:
            return self.cost_usd
        self._done = True
        if usage.cost_usd is not None:
            cost = usage.cost_usd
        elif self.call.fixed_cost_usd is not None:
            cost = self.call.fixed_cost_usd
        elif self._price is not None:
            cost = self._price.cost(usage.tokens_in, usage.tokens_out, usage.cached_tokens)
        else:
            cost = Decimal(0)
        self.cost_usd = cost
        at: datetime | None = None
        held = self._held
        if held["request"][1] or held["attempt"][1]:  # else nothing to settle (an ungoverned caller holds nothing)
            actual = {"usd": to_nano(cost), "tokens": usage.tokens_in + usage.tokens_out}
            at = self.governor.clock()  # the clock the budget windows were computed on
            await self._settle_stage("request", "attempt", actual=actual, at=at)
        if cost:
            if at is None:
                at = self.governor.clock()
            principal, target = self.call.principal, self.target or self.call.target
            provider = target.provider if isinstance(target, ModelTarget) else None
            # By position (request id, target, cost, key, team, customer, provider, created at): one dict less.
            entry = SpendEntry(
                self.call.request_id,
                target.name,
                cost,
                principal.key_id,
                principal.team_id,
                principal.customer_id,
                provider,
                at,
            )
            entry = sanitize.spend_entry(entry)
            self.governor.spend.emit(entry)
        return cost

    async def release(self) -> None:
        """Give back every hold (the call failed or was not forwarded); request counts stay counted."""
        if self._done:
            return
        self._done = True
        await self._settle_stage("request", "attempt")


__all__ = ["Admission", "Call", "Governor", "Usage", "from_nano"]
