"""The policy chain both halves run every request through: allowlist, rate limits, budget reservation, settlement.

The order is written here, once:

1. allowlist (`authorize`): cheapest, and a denied caller must not consume anyone's limits;
2. the key's rate limits (requests +1, tokens reserved at input + max output): per request, not per attempt;
3. per attempt target (`Admission.attempt`): that provider's rate limits, then every applicable budget reserved at
   the target's worst-case cost, so concurrent requests can never commit more than a budget allows;
4. `settle` trues the reservations up to the provider's reported usage; `release` returns them on failure.

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

from dataclasses import dataclass
from decimal import Decimal

from toolpolicy.decide import authorize
from toolpolicy.types import ModelTarget, Principal, Target, ToolTarget


@dataclass(frozen=True, slots=True)
class Call:
    """One request to govern."""

    request_id: str
    principal: Principal
    target: Target
    """What the caller asked for: `provider/model` or an alias name, or an MCP tool."""
    input_tokens: int = 0
    """Input tokens, counted or estimated (LLM calls)."""
    max_output_tokens: int | None = None
    """The request's `max_tokens`; None means the model's output limit (LLM calls)."""
    fixed_cost_usd: Decimal | None = None
    """A cost known before the call, e.g. an MCP server's `cost_per_call_usd`."""
    via: str | None = None
    """How the call arrived when not directly, e.g. `code_mode`."""


@dataclass(frozen=True, slots=True)
class Usage:
    """What a finished call consumed."""

    tokens_in: int = 0
    tokens_out: int = 0
    cached_tokens: int = 0
    cost_usd: Decimal | None = None
    """The cost when known; otherwise it is priced from the model and tokens."""


class Admission:
    """The reservations one admitted call holds until it settles or releases them."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.headers: dict[str, str] = {}
        """Response headers describing the limits (`x-ratelimit-*`)."""
        self.target: ModelTarget | ToolTarget | None = call.target if isinstance(call.target, ToolTarget) else None
        self.cost_usd = Decimal(0)
        self._done = False

    async def attempt(self, target: ModelTarget) -> None:
        """Reserve the provider-level limits and budgets for one attempt target (call again on failover)."""
        self.target = target

    async def settle(self, usage: Usage) -> Decimal:
        """Commit the actual usage; returns the cost charged."""
        self._done = True
        self.cost_usd = usage.cost_usd if usage.cost_usd is not None else Decimal(0)
        return self.cost_usd

    async def release(self) -> None:
        """Give back every reservation (the call failed or was not forwarded)."""
        self._done = True


class Governor:
    """Admits calls: the one place the policy order is applied."""

    async def admit(self, call: Call) -> Admission:
        """Raise a typed GatewayError denial, or return the call's Admission."""
        authorize(call.principal, call.target).raise_if_denied()
        return Admission(call)
