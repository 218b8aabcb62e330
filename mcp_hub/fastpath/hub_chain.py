"""The hub's server middleware run for one request without composing the chain, where every link only passes it on.

The SDK's kernel wraps each request's handler in `Server.middleware`, composed anew per request: a `partial` and a
coroutine frame per link. The hub's server has four links, outermost first (`server.build_server`), and for most
`tools/call` and `tools/list` requests each of them does nothing but call the next:

- `QuietTracing` (the SDK's OpenTelemetry middleware): tracing is off and `_meta` carries no trace context;
- `SessionRegistry`: the request is a 2026-07-28 one, or its session is registered already;
- `render_errors`: it always calls on, and turns a `GatewayError` raised within into its MCP error;
- the SDK's `RequestStateBoundary`: a method outside its set, or params without a `requestState` to open (it still
  seals the result: `seal_result`);
- with Redis (shared sessions), a fifth, innermost: `RecordSessions`, for any method but the two it records.

For a request all four pass on, `run_straight` calls the handler and does with its outcome what the links would
have done, in their order: the boundary's sealing of the result (with no round binding, as the boundary passes
when it opened nothing), inside the error translation of `render_errors`; the two outer links hand both on as they
are. Any other chain (a link added, removed or reordered), or a request a link would act on, is composed the SDK's
way by the caller.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.request_state import _MRTR_METHODS, RequestStateBoundary

from mcp_hub.listen import SessionRegistry
from mcp_hub.quiet_tracing import QuietTracing
from mcp_hub.server import as_mcp_error, render_errors
from toolpolicy.errors import GatewayError

if TYPE_CHECKING:
    from mcp_hub.shared_sessions.recorder import RecordSessions

Context = ServerRequestContext[Any, Any]


@dataclass(frozen=True, slots=True)
class HubChain:
    """The links of the hub's chain, in `build_server`'s order."""

    tracing: QuietTracing
    registry: SessionRegistry
    boundary: RequestStateBoundary
    recorder: RecordSessions | None
    """The shared sessions' recorder, innermost, where Redis is configured."""

    def passes_on(self, ctx: Context) -> bool:
        """Whether every link would call the next with `ctx` as it is (see the module doc)."""
        if not self.tracing.passes_on(ctx) or not self.registry.passes_on(ctx):
            return False
        if self.recorder is not None and not self.recorder.passes_on(ctx):
            return False
        return ctx.method not in _MRTR_METHODS or ctx.params is None or ctx.params.get("requestState") is None


_known: tuple[tuple[Any, ...], HubChain | None] = ((), None)
"""The middleware last recognised (as a tuple of its links), and its chain."""


def hub_chain(middleware: Sequence[Any]) -> HubChain | None:
    """The hub's chain if `middleware` is exactly it, else None; remembered for the last list of links seen."""
    global _known
    links = tuple(middleware)
    known_links, chain = _known
    if links == known_links:
        return chain
    chain = None
    recorder = links[4] if len(links) == 5 and _is_recorder(links[4]) else None
    if len(links) == 4 or recorder is not None:
        tracing, registry, errors, boundary = links[:4]
        if (
            type(tracing) is QuietTracing
            and type(registry) is SessionRegistry
            and errors is render_errors
            and type(boundary) is RequestStateBoundary
        ):
            chain = HubChain(tracing, registry, boundary, recorder)
    _known = (links, chain)
    return chain


def _is_recorder(link: Any) -> bool:
    """Whether `link` is a `RecordSessions`, without importing it (its module needs redis-py, which a gateway without
    `redis:` never loads): a link of that type exists only once its module is loaded."""
    module = sys.modules.get("mcp_hub.shared_sessions.recorder")
    return module is not None and type(link) is module.RecordSessions


async def run_straight(chain: HubChain, ctx: Context, inner: CallNext) -> HandlerResult:
    """What the composed chain gives for `ctx`, which `chain.passes_on` (see the module doc)."""
    try:
        result = await inner(ctx)
        if ctx.method in _MRTR_METHODS:
            result = chain.boundary._seal_result(ctx, result, None)
        return result
    except GatewayError as exc:
        raise as_mcp_error(exc) from None  # as `render_errors` does
