"""`hub_chain`: the hub's server middleware run straight through gives what the composed chain gives (results,
sealed states, errors), and is taken only for the hub's own chain and a request every link would pass on."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, cast

import pytest
from mcp.server import Server
from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server.connection import _NO_CHANNEL, Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity, _principal_matches
from mcp.shared.exceptions import MCPError
from starlette.requests import Request

import mcp_hub.quiet_tracing
from mcp_hub.errors import UnknownTool, UpstreamRejected
from mcp_hub.fastpath.hub_chain import HubChain, hub_chain, run_straight
from mcp_hub.listen import SessionRegistry
from mcp_hub.notify import ChangeFeed
from mcp_hub.quiet_tracing import QuietTracing
from mcp_hub.relay.state_keys import StateKeys
from mcp_hub.server import render_errors
from mcp_hub.shared_sessions.recorder import RecordSessions
from tests.tracing_support import without_tracer_provider

pytestmark = pytest.mark.anyio

MODERN, LEGACY = "2026-07-28", "2025-11-25"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
Context = ServerRequestContext[Any, Any]


def principal_of(ctx: Context) -> str:
    return "key-1"


def links() -> list[Any]:
    """The hub's chain as `build_server` makes it (the SDK's OpenTelemetry middleware quietened first)."""
    keys = StateKeys()
    security = RequestStateSecurity(codec=keys, ttl=60.0, bind_principal=principal_of)
    return [
        QuietTracing(OpenTelemetryMiddleware()),
        SessionRegistry(ChangeFeed(), cast(Any, lambda ctx: None)),
        render_errors,
        RequestStateBoundary(security, default_audience="isthmus"),
    ]


def with_recorder() -> list[Any]:
    """The hub's chain with Redis configured: the shared sessions' recorder appended (`McpComponent`)."""
    return [*links(), RecordSessions(cast(Any, None))]  # (nothing in these tests reaches the shared sessions)


class Session:
    """What `SessionRegistry` reads of a session: its connection."""

    def __init__(self, connection: Connection | None) -> None:
        self._connection = connection


def context(
    method: str = "tools/call",
    params: dict[str, Any] | None = None,
    *,
    version: str = MODERN,
    meta: dict[str, Any] | None = None,
    connection: Connection | None = None,
) -> Context:
    request = Request({"type": "http", "method": "POST", "headers": [], "path": "/mcp"}) if connection else None
    return ServerRequestContext(
        session=cast(Any, Session(connection)),
        lifespan_context=None,
        protocol_version=version,
        method=method,
        params={"name": "echo", "arguments": {"x": 1}} if params is None else params,
        request_id=7,
        meta=cast(Any, meta),
        request=request,
    )


def composed(middleware: list[Any], inner: CallNext) -> CallNext:
    call = inner
    for link in reversed(middleware):
        call = partial(link, call_next=call)
    return cast(CallNext, call)


Handler = Callable[[Context], Awaitable[HandlerResult]]


async def plain(ctx: Context) -> HandlerResult:
    return {"content": [{"type": "text", "text": "hi"}], "isError": False}


async def asks(ctx: Context) -> HandlerResult:
    return {"resultType": "input_required", "inputRequests": {"q": {"method": "ping"}}, "requestState": "round-1"}


async def unknown(ctx: Context) -> HandlerResult:
    raise UnknownTool("echo")


async def rejected(ctx: Context) -> HandlerResult:
    raise UpstreamRejected("srv", -32602, "bad arguments", {"field": "x"})


async def sdk_error(ctx: Context) -> HandlerResult:
    raise MCPError(code=-32603, message="Internal error", data="boom")


async def crash(ctx: Context) -> HandlerResult:
    raise ValueError("not ours")


async def outcome(call: Awaitable[HandlerResult]) -> Any:
    try:
        return ("result", await call)
    except MCPError as exc:
        return ("mcp", exc.error.code, exc.error.message, exc.error.data)
    except Exception as exc:
        return ("raised", type(exc), str(exc))


def opened(chain: HubChain, result: Any, method: str) -> Any:
    """`result` with its sealed `requestState` opened to the claims that depend neither on the clock nor the salt
    (only the boundary's methods' states are sealed)."""
    if method != "tools/call" or result[0] != "result" or "requestState" not in result[1]:
        return result
    claims = json.loads(chain.boundary._security.codec.unseal(result[1]["requestState"]))
    kept = {name: claims[name] for name in ("v", "m", "t", "a", "s", "aud") if name in claims}
    kept["p"] = _principal_matches(claims["p"], "key-1")  # salted per seal: bound to the same principal
    return ("result", {**result[1], "requestState": kept})


@pytest.fixture(autouse=True)
def tracing_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every link passes a plain request on only while no tracer provider is installed."""
    without_tracer_provider(monkeypatch)


@pytest.mark.parametrize("make", [links, with_recorder])
@pytest.mark.parametrize("handler", [plain, asks, unknown, rejected, sdk_error, crash])
@pytest.mark.parametrize("method", ["tools/call", "tools/list"])
async def test_straight_through_the_chain_gives_what_the_composed_chain_gives(
    handler: Handler, method: str, make: Callable[[], list[Any]]
) -> None:
    middleware = make()
    chain = hub_chain(middleware)
    assert chain is not None
    ctx = context(method, {} if method == "tools/list" else None)
    assert chain.passes_on(ctx)
    straight = await outcome(run_straight(chain, ctx, handler))
    expected = await outcome(composed(middleware, handler)(ctx))
    assert opened(chain, straight, method) == opened(chain, expected, method)
    if handler is asks and method == "tools/call":  # sealed, in both, to the same claims
        assert opened(chain, straight, method)[1]["requestState"]["s"] == "round-1"
    if handler in (unknown, rejected):
        assert straight[0] == "mcp"  # the gateway error rendered, as `render_errors` renders it


def test_only_the_hub_chain_in_its_order_is_recognised() -> None:
    middleware = links()
    chain = hub_chain(middleware)
    assert chain is not None and chain.tracing is middleware[0] and chain.boundary is middleware[3]
    assert hub_chain(middleware) is chain  # remembered for the same links
    assert hub_chain([*middleware, render_errors]) is None
    assert hub_chain(middleware[:3]) is None
    assert hub_chain([middleware[1], middleware[0], *middleware[2:]]) is None
    assert hub_chain([OpenTelemetryMiddleware(), *middleware[1:]]) is None
    assert hub_chain(Server("plain").middleware) is None
    recorded = with_recorder()
    chain = hub_chain(recorded)
    assert chain is not None and chain.recorder is recorded[4] and chain.boundary is recorded[3]
    without = hub_chain(middleware)
    assert without is not None and without.recorder is None
    assert hub_chain([*recorded[:3], recorded[4], recorded[3]]) is None
    assert hub_chain([*middleware, *recorded[4:], render_errors]) is None


async def test_a_request_some_link_acts_on_is_not_taken_straight(monkeypatch: pytest.MonkeyPatch) -> None:
    middleware = links()
    chain = hub_chain(middleware)
    assert chain is not None
    assert chain.passes_on(context())
    assert chain.passes_on(context("tools/call", {"name": "echo", "requestState": None}))
    assert not chain.passes_on(context("tools/call", {"name": "echo", "requestState": "sealed"}))
    assert chain.passes_on(context("tools/list", {"requestState": "not the boundary's method"}))
    assert not chain.passes_on(context(meta={"traceparent": TRACEPARENT}))
    connection = Connection(_NO_CHANNEL, protocol_version=LEGACY)
    legacy = context(version=LEGACY, connection=connection)
    assert not chain.passes_on(legacy)  # a session not registered yet
    await composed(middleware, plain)(legacy)  # registers it
    assert chain.passes_on(legacy)
    monkeypatch.setattr(mcp_hub.quiet_tracing, "tracing_on", lambda: True)
    assert not chain.passes_on(context())


@pytest.mark.parametrize("method", ["initialize", "logging/setLevel"])
def test_what_the_recorder_records_is_not_taken_straight(method: str) -> None:
    chain = hub_chain(with_recorder())
    assert chain is not None
    assert chain.passes_on(context())
    assert not chain.passes_on(context(method, {}))
    plain_chain = hub_chain(links())
    assert plain_chain is not None and plain_chain.passes_on(context(method, {}))
