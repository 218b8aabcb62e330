"""From a requested model to the target that answers: aliases, fallbacks, keys, retries, failover.

The order, for each target of the chain (the requested model or alias, then the request's `fallbacks`):

1. skip a target whose provider does not serve the operation, has no usable key, or whose circuit is open;
2. `admission.attempt(target)`: the provider's rate limits and budgets (a refusal skips the target);
3. pick a key by weight among those serving the model and not skipped; no key skips the target;
4. send. On 429, 5xx or no connection: back off exponentially with jitter (at least the provider's Retry-After,
   preferring another key) and retry, up to `max_retries`; a Retry-After longer than `backoff_max` ends this
   target's turn at once. On 401/403: cool the key down and go to the next key, without backoff. On 400/413/422:
   the request is at fault, so stop and answer it. Anything else ends this target's turn.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
from opentelemetry.trace import Span

from llm_proxy.catalog import ModelCatalog
from llm_proxy.errors import NoTargetAvailable, UnsupportedByProvider, UpstreamBadResponse, UpstreamError
from llm_proxy.health import Health
from llm_proxy.keys import KeyPool
from llm_proxy.providers.base import ProviderAdapter
from toolpolicy.errors import (
    GatewayError,
    InvalidRequest,
    LimitExceeded,
    ModelNotAllowed,
    NotFound,
    PermissionDenied,
)
from toolpolicy.governor import Admission
from toolpolicy.settings import GatewaySettings
from toolpolicy.telemetry.tracing import mark_error, nothing_to_trace, span_under
from toolpolicy.types import ModelTarget, Principal

logger = logging.getLogger(__name__)

T = TypeVar("T")
CHAIN_CACHE_SIZE = 1024
"""Chains `Router.targets` remembers for requests without `fallbacks`; names come from requests, so past this
many it works further ones out each time."""
Send = Callable[[ProviderAdapter, ModelTarget, str | None], Awaitable[T]]


class UnknownModel(NotFound):
    code = "model_not_found"


class AmbiguousModel(InvalidRequest):
    """A bare model name that several providers list: the caller must say which."""

    code = "ambiguous_model"


MAX_NAMED_CANDIDATES = 20
"""Candidates an ambiguous-name error names at most."""


@dataclass(slots=True)
class Trace:
    """What routing did for one request, for headers and the audit record."""

    attempts: int = 0
    route: str | None = None
    failures: list[str] = field(default_factory=list)
    span: Span | None = None
    """The request's span, parent of one span per upstream attempt."""
    operation: str = "chat"
    """`gen_ai.operation.name` of the request."""


class Router:
    def __init__(
        self,
        settings: GatewaySettings,
        adapters: dict[str, ProviderAdapter],
        *,
        health: Health | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings.llm
        self.adapters = adapters
        self.aliases = {name: [ModelTarget.parse(t) for t in alias.targets] for name, alias in settings.models.items()}
        self.pools = {
            name: KeyPool(name, settings.providers[name], needs_key=adapter.needs_key)
            for name, adapter in adapters.items()
        }
        configured = {name: tuple(settings.providers[name].models) for name in adapters}
        self.catalog = ModelCatalog(settings.llm, adapters, self.pools, configured)
        self.health = health or Health(settings.llm)
        self.rng = rng or random.Random()
        self._chains: dict[str, tuple[ModelTarget, ...]] = {}
        """The chain of each requested name without fallbacks: it depends on the config alone."""

    def targets(self, requested: str, fallbacks: list[str]) -> list[ModelTarget]:
        """The ordered, de-duplicated chain for a request; an unknown name is a 404 that names it."""
        if not fallbacks:
            known = self._chains.get(requested)
            if known is None:
                known = tuple(self._chain(requested, fallbacks))
                if len(self._chains) < CHAIN_CACHE_SIZE:
                    self._chains[requested] = known
            return list(known)
        return self._chain(requested, fallbacks)

    def _chain(self, requested: str, fallbacks: list[str]) -> list[ModelTarget]:
        chain: list[ModelTarget] = []
        for position, name in enumerate([requested, *fallbacks]):
            for target in self._expand(name, "model" if position == 0 else f"fallbacks[{position - 1}]"):
                if target not in chain:
                    chain.append(target)
        return chain

    def _expand(self, name: str, param: str) -> list[ModelTarget]:
        if name in self.aliases:
            return self.aliases[name]
        target = ModelTarget.parse(name)
        if target.provider in self.adapters and target.model:
            return [target]
        if target.provider:
            known = ", ".join(sorted(self.adapters)) or "none configured"
            message = f"unknown model {name!r}: no provider named {target.provider!r} (providers: {known})"
        else:
            message = f"unknown model {name!r}: name a model as 'provider/model' or use a configured alias"
        raise UnknownModel(message, param=param)

    def listed_models(self) -> list[tuple[str, str]]:
        """(model id, owner) for `GET /v1/models`: each provider's listed models, then the aliases. A provider
        without a usable key cannot answer: listing it would mislead."""
        return [*self.catalog.listed(), *((alias, "isthmus") for alias in self.aliases)]

    def resolve(self, name: str, principal: Principal, *, param: str = "model") -> str:
        """The name routing and the allowlist see for a requested `name`.

        An alias, or `provider/model` of a configured provider, stays as it is. Any other name that exactly one
        provider lists (configured `models:` or its fetched listing; the whole name, so `openai/gpt-4o` listed by
        an OpenRouter provider resolves too) becomes `provider/name`. Only candidates the key's allowlist admits
        count, so an allowlist entry of the bare name does not admit them, and an ambiguous name (a 400) names
        only usable candidates; when there are candidates but none usable, the bare name is refused (403) without
        naming any. A name nobody lists stays as it is, to be refused or reported unknown as before.
        """
        if name in self.aliases:
            return name
        target = ModelTarget.parse(name)
        if target.provider in self.adapters and target.model:
            return name
        candidates = [f"{owner}/{name}" for owner in self.catalog.owners(name)]
        if not candidates:
            return name
        usable = [candidate for candidate in candidates if principal.models.matches(candidate)]
        if len(usable) == 1:
            return usable[0]
        if not usable:
            raise ModelNotAllowed(f"key {principal.key_name!r} may not use model {name!r}", param=param)
        named = ", ".join(usable[:MAX_NAMED_CANDIDATES]) + (", ..." if len(usable) > MAX_NAMED_CANDIDATES else "")
        raise AmbiguousModel(
            f"model {name!r} is served by {len(usable)} providers; name one as 'provider/model': {named}", param=param
        )

    def backoff(self, retry: int, retry_after: float | None) -> float:
        delay: float = min(self.settings.backoff_max, self.settings.backoff_initial * 2.0**retry)
        delay *= self.rng.uniform(0.8, 1.2)
        return max(delay, retry_after or 0.0)

    async def run(
        self,
        targets: list[ModelTarget],
        admission: Admission,
        trace: Trace,
        send: Send[T],
        supports: Callable[[ProviderAdapter], bool],
    ) -> T:
        """The first success along the chain; otherwise the most telling error."""
        attempted: GatewayError | None = None
        skipped: list[GatewayError] = []
        for target in targets:
            adapter = self.adapters[target.provider]
            if not supports(adapter):
                skipped.append(UnsupportedByProvider(f"{target.name}: provider does not serve this endpoint"))
                continue
            if not self.health.available(target.provider):
                skipped.append(NoTargetAvailable(f"{target.name}: provider circuit open after repeated failures"))
                continue
            if self.pools[target.provider].problem:
                skipped.append(NoTargetAvailable(f"{target.name}: {self.pools[target.provider].problem}"))
                continue
            try:
                await admission.attempt(target)
            except (LimitExceeded, PermissionDenied) as exc:
                # This target's provider limits, budgets or price policy refuse it; another target may do.
                skipped.append(exc)
                continue
            try:
                return await self._target(target, adapter, trace, send)
            except (UpstreamError, UnsupportedByProvider) as exc:
                trace.failures.append(f"{target.name}: {exc.message}")
                if isinstance(exc, UpstreamError) and exc.final:
                    raise
                if isinstance(exc, NoTargetAvailable):
                    skipped.append(exc)
                else:
                    attempted = exc
        if attempted is not None:
            raise attempted
        if len(skipped) == 1:
            raise skipped[0]
        reasons = "; ".join(error.message for error in skipped)
        limited = [error for error in skipped if isinstance(error, LimitExceeded)]
        if limited and len(limited) == len(skipped):
            raise LimitExceeded(reasons, retry_after=min(e.retry_after or 0 for e in limited) or None)
        raise NoTargetAvailable(f"no target could be tried: {reasons}")

    async def _target(self, target: ModelTarget, adapter: ProviderAdapter, trace: Trace, send: Send[T]) -> T:
        pool = self.pools[target.provider]
        refused: set[str] = set()
        avoid: set[str] = set()
        retries = 0
        last: UpstreamError | None = None
        while True:
            key = pool.choose(target.model, self.health, self.rng, exclude=refused, avoid=avoid)
            if key is None:
                # After the provider refused every key, its refusal says more than "no key left".
                raise last or NoTargetAvailable(f"{target.name}: {pool.why_none(target.model)}")
            trace.attempts += 1
            try:
                if nothing_to_trace():
                    result = await send(adapter, target, key.secret)  # no span to make: skip building one
                else:
                    # The attempt's span is entered here rather than in a coroutine of its own: one frame less
                    # for every resumption of the upstream call.
                    with self._attempt_span(target, adapter, trace, key.name) as attempt:
                        try:
                            result = await send(adapter, target, key.secret)
                        except UpstreamError as exc:
                            mark_error(attempt, exc.message)  # the attempt failed; the handler below decides
                            raise
            except UpstreamError as exc:
                last = exc
                if exc.key_rejected:
                    logger.warning("%s refused key %s; cooling it down: %s", target.provider, key.name, exc.message)
                    self.health.cool(key.name, self.settings.key_cooldown)
                    refused.add(key.name)
                    continue
                if exc.retry_target or isinstance(exc, UpstreamBadResponse):
                    # Only failures of the provider count against it, not a request it rightly refused.
                    self.health.failed(target.provider, key.name)
                if exc.final or not exc.retry_target or retries >= self.settings.max_retries:
                    raise
                alternative = any(k.name not in refused | avoid | {key.name} for k in pool.keys)
                avoid.add(key.name)
                delay = self.backoff(retries, None if alternative else exc.retry_after)
                if delay > self.settings.backoff_max:
                    raise
                retries += 1
                logger.info("retrying %s in %.2fs after: %s", target.name, delay, exc.message)
                await anyio.sleep(delay)
                continue
            self.health.succeeded(target.provider, key.name)
            trace.route = target.name
            return result

    @staticmethod
    def _attempt_span(
        target: ModelTarget, adapter: ProviderAdapter, trace: Trace, name: str
    ) -> AbstractContextManager[Span]:
        """One attempt's client span (under the request's span), current while the attempt runs."""
        attributes = {
            "gen_ai.operation.name": trace.operation,
            "gen_ai.provider.name": adapter.kind,
            "gen_ai.request.model": target.model,
            "isthmus.attempt": trace.attempts,
            "isthmus.provider_key": name,
        }
        return span_under(trace.span, f"{trace.operation} {target.model}", attributes)
