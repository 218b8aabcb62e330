"""One request's way through the proxy: key, allowlist, admission, routing, settlement, audit.

The order is written once, here, with its reasons:

1. the virtual key (`authenticate`): nothing is parsed for a caller the gateway does not know;
2. the body; a bare model name one provider lists resolves to its `provider/model` (`Router.resolve`); then the
   requested name and every `fallbacks` entry against the allowlist (`authorized`);
3. `governor.admit`: the key's rate limits, then the reservations made per target by the router (the allowlist,
   its step 1, is not judged again);
4. routing with retries and failover (`routing.Router`);
5. `settle` with the provider's usage (counted with tiktoken when it gave none), or `release` on failure;
6. one audit record, emitted when the response is complete (for a stream: when it ends or the client leaves).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from llm_proxy import tokens
from llm_proxy.routing import Router, Trace
from toolpolicy import sanitize
from toolpolicy.audit import AuditRecord
from toolpolicy.credentials import presented_key
from toolpolicy.decide import authorize
from toolpolicy.errors import GatewayError, InvalidRequest
from toolpolicy.governor import Admission, Call, Usage
from toolpolicy.names import header_value
from toolpolicy.runtime import Governance
from toolpolicy.telemetry.tracing import add_attributes, mark_error, start_server_span
from toolpolicy.types import ModelTarget, Principal

logger = logging.getLogger(__name__)

Api = Literal["openai", "anthropic"]

MAX_CHOICES = 128
"""The most completions (`n`) one request may ask for: OpenAI's own limit."""


_route_header = functools.lru_cache(maxsize=1024)(header_value)
"""`x-isthmus-route` of a route: the few routes a gateway has are made header-safe once, not character by character
on every answer (names come from requests, hence the bound)."""


@functools.lru_cache(maxsize=1024)
def _route_pair(route: str) -> tuple[bytes, bytes]:
    """`x-isthmus-route` of a route as a raw header, made once per route as `_route_header` is."""
    return b"x-isthmus-route", _route_header(route).encode("latin-1")


@dataclass(slots=True)
class Exchange:
    """One client request, from its key to its audit record."""

    request_id: str
    api: Api
    endpoint: str
    started: float = field(default_factory=time.perf_counter)
    principal: Principal | None = None
    requested: str = ""
    stream: bool = False
    admission: Admission | None = None
    trace: Trace = field(default_factory=Trace)
    usage: Usage | None = None
    cost: Decimal | None = None
    ttfb: float | None = None
    status: int = 200
    error: GatewayError | None = None
    finished: bool = False
    ended: float | None = None
    """`perf_counter()` when the response was complete, for an exchange finished later (after it was sent)."""
    ended_ns: int | None = None
    """The same moment in `time_ns()`, when its span ends."""
    details: dict[str, Any] = field(default_factory=dict)
    """More for the audit record's details, e.g. agent mode's steps (`agent`)."""
    response_headers: dict[str, str] = field(default_factory=dict)
    """More response headers, e.g. the cache's `x-isthmus-cache`."""

    def headers(self) -> dict[str, str]:
        headers = {"x-request-id": self.request_id, **self.response_headers}
        if self.trace.attempts:
            headers["x-isthmus-attempts"] = str(self.trace.attempts)
        if self.trace.route:
            headers["x-isthmus-route"] = _route_header(self.trace.route)
        if self.admission is not None:
            headers.update(self.admission.headers)
        return headers

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """`headers()` as a response's raw headers (names lower-case, values latin-1), made directly when no header
        of the cache's could replace the three of the exchange's own (the governor's `x-ratelimit-*` follow them)."""
        if self.response_headers:
            return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers().items()]
        raw = [(b"x-request-id", self.request_id.encode("latin-1"))]
        if self.trace.attempts:
            raw.append((b"x-isthmus-attempts", b"%d" % self.trace.attempts))
        if self.trace.route:
            raw.append(_route_pair(self.trace.route))
        if self.admission is not None and self.admission.advertised:  # else none to add (an ungoverned key)
            raw += self.admission.raw_headers()
        return raw

    def mark_first_byte(self) -> None:
        if self.ttfb is None:
            self.ttfb = time.perf_counter() - self.started


@dataclass(slots=True)  # not frozen, as `Attempt`: one per request, never changed
class Plan:
    targets: list[ModelTarget]
    admission: Admission


class Pipeline:
    def __init__(self, governance: Governance, router: Router) -> None:
        self.governance = governance
        self.router = router

    def begin(self, headers: Mapping[str, str], api: Api, endpoint: str) -> Exchange:
        request_id = sanitize.request_id(headers.get("x-request-id"))
        exchange = Exchange(request_id, api, endpoint)  # by position: a class called with keywords builds a dict
        operation = "embeddings" if endpoint == "embeddings" else "chat"
        exchange.trace.operation = operation
        exchange.trace.span = start_server_span(
            operation, headers, {"gen_ai.operation.name": operation, "isthmus.request_id": exchange.request_id}
        )
        return exchange

    async def authenticate(self, exchange: Exchange, headers: Mapping[str, str]) -> Principal:
        exchange.principal = await self.governance.keys.resolve(presented_key(headers))
        return exchange.principal

    async def admit(
        self,
        exchange: Exchange,
        fallbacks: list[str],
        *,
        input_tokens: int,
        max_output_tokens: int | None,
        choices: int = 1,
    ) -> Plan:
        assert exchange.principal is not None
        exchange.requested, fallbacks = self.authorized(exchange.principal, exchange.requested, fallbacks)
        requested = ModelTarget.parse(exchange.requested)
        # Allowlist before existence, so a caller learns nothing about models it may not use; both before the
        # governor, so a refused or unknown name costs no rate limit.
        targets = self.router.targets(exchange.requested, fallbacks)
        # By position (request id, principal, target, input tokens, max output tokens, choices): one dict less.
        call = Call(exchange.request_id, exchange.principal, requested, input_tokens, max_output_tokens, choices)
        exchange.admission = await self.governance.governor.admit(call, authorized=True)  # judged just above
        return Plan(targets, exchange.admission)

    def authorized(self, principal: Principal, requested: str, fallbacks: list[str]) -> tuple[str, list[str]]:
        """The requested model and the fallbacks as routing names them, each judged by the key's allowlist (a
        denial raises, naming the refused `model` or `fallbacks[i]`)."""
        # A bare name one provider lists becomes its `provider/model`, among the names the key may use: the
        # allowlist then judges the name that routes, and an ambiguous name names only usable candidates.
        requested = self.router.resolve(requested, principal)
        if fallbacks:  # most requests have none: no list to build
            fallbacks = [
                self.router.resolve(name, principal, param=f"fallbacks[{index}]")
                for index, name in enumerate(fallbacks)
            ]
        authorize(principal, ModelTarget.parse(requested)).raise_if_denied()
        for index, name in enumerate(fallbacks):
            denial = authorize(principal, ModelTarget.parse(name)).denial
            if denial is not None:
                denial.param = f"fallbacks[{index}]"
                raise denial
        return requested, fallbacks

    async def settle(self, exchange: Exchange, usage: Usage) -> None:
        exchange.usage = usage
        if exchange.admission is not None:
            exchange.cost = await exchange.admission.settle(usage)

    async def release(self, exchange: Exchange) -> None:
        if exchange.admission is not None:
            await exchange.admission.release()

    def fail(self, exchange: Exchange, error: GatewayError, status: int) -> None:
        exchange.error = error
        exchange.status = status

    def end(self, exchange: Exchange) -> None:
        """Mark the request complete now, for a `finish` that runs later (after the response is sent)."""
        exchange.ended = time.perf_counter()
        exchange.ended_ns = time.time_ns()

    def finish(self, exchange: Exchange) -> None:
        """Emit the request's one audit record (idempotent)."""
        if exchange.finished:
            return
        exchange.finished = True
        principal = exchange.principal
        error = exchange.error
        self._end_span(exchange)
        if principal is None and error is None:
            return
        trace = exchange.trace
        details: dict[str, Any] = {
            "api": exchange.api,
            "endpoint": exchange.endpoint,
            "stream": exchange.stream,
            "route": trace.route,
            "attempts": trace.attempts,
        }
        if exchange.ttfb is not None:
            # Milliseconds to three places as `round(ms, 3)` gives them, from a whole number of microseconds: the
            # rounding to places goes through a decimal string (~2,900 instructions), the rounding to a whole number
            # and a division take ~1,200.
            details["ttfb_ms"] = round(exchange.ttfb * 1_000_000) / 1000
        if trace.failures:
            details["failures"] = trace.failures
        usage = exchange.usage
        if usage is not None and usage.cached_tokens:
            details["cached_tokens"] = usage.cached_tokens
        if exchange.details:
            details.update(exchange.details)
        # By position, in the record's field order (request id, kind, target, decision, status, latency, key id, key
        # name, team, customer, reason, tokens in, tokens out, cost, details): a class called with keywords builds a
        # dict of them, which with fifteen fields doubles what making the record costs.
        self.governance.audit.emit(
            AuditRecord(
                exchange.request_id,
                "llm",
                exchange.requested,
                "deny" if exchange.admission is None and "cache_saved_usd" not in details else "allow",
                exchange.status,
                round(((exchange.ended or time.perf_counter()) - exchange.started) * 1_000_000) / 1000,  # as ttfb_ms
                principal.key_id if principal else None,
                principal.key_name if principal else None,
                principal.team if principal else None,
                principal.customer if principal else None,
                error.reason if error is not None else None,
                usage.tokens_in if usage else None,
                usage.tokens_out if usage else None,
                exchange.cost,
                details,
            )
        )

    def _span_attributes(self, exchange: Exchange) -> dict[str, Any]:
        """The request span's attributes at its end, those with no value left out (the SDK would drop each with a
        warning). Set one by one in a fixed order rather than filtered out of a mapping with every key: this runs
        for every traced request."""
        principal, usage, route = exchange.principal, exchange.usage, exchange.trace.route
        provider, _, model = (route or "").partition("/")
        attributes: dict[str, Any] = {}
        if exchange.requested:
            attributes["gen_ai.request.model"] = exchange.requested
        adapter = self.router.adapters.get(provider)
        if adapter is not None:
            attributes["gen_ai.provider.name"] = adapter.kind
        if model:
            attributes["gen_ai.response.model"] = model
        if usage and usage.tokens_in is not None:
            attributes["gen_ai.usage.input_tokens"] = usage.tokens_in
        if usage and usage.tokens_out is not None:
            attributes["gen_ai.usage.output_tokens"] = usage.tokens_out
        attributes["http.response.status_code"] = exchange.status
        if route is not None:
            attributes["isthmus.route"] = route
        attributes["isthmus.attempts"] = exchange.trace.attempts
        if principal and principal.key_name is not None:
            attributes["isthmus.key.name"] = principal.key_name
        if principal and principal.team is not None:
            attributes["isthmus.team"] = principal.team
        if principal and principal.customer is not None:
            attributes["isthmus.customer"] = principal.customer
        if exchange.cost is not None:
            attributes["isthmus.cost_usd"] = float(exchange.cost)
        steps = (exchange.details.get("agent") or {}).get("steps")
        if steps is not None:
            attributes["isthmus.agent.steps"] = steps
        return attributes

    def _end_span(self, exchange: Exchange) -> None:
        span = exchange.trace.span
        if span is None:
            return
        exchange.trace.span = None
        if span.is_recording():
            add_attributes(span, self._span_attributes(exchange))
            if exchange.requested:
                span.update_name(f"{exchange.trace.operation} {exchange.requested}")
            if exchange.error is not None:
                mark_error(span, exchange.error.message)
        span.end(end_time=exchange.ended_ns)


def requested_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    name = model.strip() if isinstance(model, str) else ""
    if not name:
        raise InvalidRequest("'model' is required: name a model as 'provider/model' or an alias", param="model")
    return name


def fallbacks_of(body: dict[str, Any]) -> list[str]:
    value = body.get("fallbacks")
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise InvalidRequest("'fallbacks' must be an array of model names", param="fallbacks")
    return list(value)


def max_output_tokens(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidRequest(f"'{name}' must be a positive integer", param=name)
            return value
    return None


def choices_of(body: dict[str, Any]) -> int:
    """The completions the request asks for (`n`); each can use all of `max_tokens`, so each is reserved."""
    value = body.get("n")
    if value is None:
        return 1
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_CHOICES:
        raise InvalidRequest(f"'n' must be an integer from 1 to {MAX_CHOICES}", param="n")
    return value


async def counted_usage(model: str, messages: Any, output: list[str]) -> Usage:
    """Usage for a provider that reported none: the shipped tiktoken encodings."""
    return Usage(
        tokens_in=await tokens.count_chat_input(model, messages),
        tokens_out=await tokens.count_output(model, output),
    )
