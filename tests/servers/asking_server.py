"""The relay tests' upstream: tools that ask their client (sampling, elicitation, roots) and log while they run.

`python tests/servers/asking_server.py [--http PORT]`. It speaks the 2025-11-25 era (the hub is configured with
`protocol: legacy` for it): its requests to the client ride the tool call's stream (`related_request_id`);
`dual_llm` also samples in the 2026-07-28 era, through an `InputRequiredResult` round. Every
tool answers with what the client answered, as JSON, or with a tool error naming the JSON-RPC error it got back,
so a test sees exactly what crossed the hub in both directions. `seen_capabilities` and `needs_sampling` show which
client capabilities a request reached it with. `touch` announces a resource change in either era (2026-07-28: on
the listen streams that named the URI), and `upstream_state` reports what the hub subscribed to.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from typing import Annotated, Any

import anyio
import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Resolve, Sample
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp_hub.demo_server import serve

REQUESTED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "title": "Name", "default": "Ada", "minLength": 1},
        "age": {"type": "integer", "minimum": 0, "default": 36},
        "colour": {"type": "string", "enum": ["red", "green"], "enumNames": ["Red", "Green"]},
        "size": {
            "type": "string",
            "oneOf": [{"const": "s", "title": "Small"}, {"const": "l", "title": "Large"}],
            "default": "s",
        },
        "toppings": {
            "type": "array",
            "items": {"type": "string", "enum": ["ham", "egg"]},
            "minItems": 1,
            "default": ["egg"],
        },
        "ok": {"type": "boolean", "default": True, "description": "All good?"},
    },
    "required": ["name"],
}
"""A form using every schema feature the conformance suite checks arrives unchanged (defaults, enum, oneOf...)."""

SUBSCRIBED: set[str] = set()
LISTENED: Counter[str] = Counter()
"""The URIs named by the open `subscriptions/listen` streams (2026-07-28), one count per stream."""
LOG_LEVELS: list[str] = []


def _related(ctx: Context) -> ServerMessageMetadata:
    return ServerMessageMetadata(related_request_id=ctx.request_context.request_id)


async def _ask(ctx: Context, request: types.ServerRequest, result_type: type[types.Result]) -> str:
    try:
        result = await ctx.session.send_request(request, result_type, metadata=_related(ctx))
    except MCPError as exc:
        raise ToolError(f"client answered error {exc.code}: {exc.message}") from None
    return json.dumps(result.model_dump(by_alias=True, mode="json", exclude_none=True), sort_keys=True)


def sampling_of(prompt: str) -> Sample:
    """The resolver of `dual_llm`: module-level, since tool annotations are evaluated in the module's namespace."""
    message = types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))
    return Sample([message], max_tokens=50)


def build_asking() -> MCPServer:
    bus = InMemorySubscriptionBus()
    server = MCPServer("asking", version="0.1.0", subscriptions=bus)
    listening = ListenHandler(bus)

    @server.tool()
    async def ask_llm(prompt: str, ctx: Context) -> str:
        """Ask the client's model (sampling/createMessage) and return its answer."""
        message = types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))
        params = types.CreateMessageRequestParams(messages=[message], max_tokens=50)
        return await _ask(ctx, types.CreateMessageRequest(params=params), types.CreateMessageResult)

    @server.tool()
    def dual_llm(prompt: str, answer: Annotated[types.CreateMessageResult, Resolve(sampling_of)]) -> str:
        """Sample the client's model in either era (2026-07-28: an input round)."""
        return json.dumps(answer.model_dump(by_alias=True, mode="json", exclude_none=True), sort_keys=True)

    @server.tool()
    async def ask_user(ctx: Context) -> str:
        """Ask the user to fill in a form (elicitation/create, form mode)."""
        params = types.ElicitRequestFormParams(message="Who are you?", requested_schema=REQUESTED_SCHEMA)
        return await _ask(ctx, types.ElicitRequest(params=params), types.ElicitResult)

    @server.tool()
    async def ask_url(ctx: Context) -> str:
        """Send the user to a URL (elicitation/create, URL mode)."""
        params = types.ElicitRequestURLParams(
            message="Sign in, please", url="https://example.com/login", elicitation_id="login-1"
        )
        return await _ask(ctx, types.ElicitRequest(params=params), types.ElicitResult)

    @server.tool()
    async def ask_twice(ctx: Context) -> str:
        """Ask the user who they are (elicitation), then the client's model to greet them (sampling): two questions."""
        form = types.ElicitRequestFormParams(message="Who are you?", requested_schema=REQUESTED_SCHEMA)
        who = json.loads(await _ask(ctx, types.ElicitRequest(params=form), types.ElicitResult))
        message = types.SamplingMessage(role="user", content=types.TextContent(type="text", text=str(who["content"])))
        params = types.CreateMessageRequestParams(messages=[message], max_tokens=50)
        greeting = await _ask(ctx, types.CreateMessageRequest(params=params), types.CreateMessageResult)
        return json.dumps({"who": who, "greeting": json.loads(greeting)}, sort_keys=True)

    @server.tool()
    async def ask_then_stall(ctx: Context) -> str:
        """Ask the user who they are, then take a minute to answer (a client may go away meanwhile)."""
        form = types.ElicitRequestFormParams(message="Who are you?", requested_schema=REQUESTED_SCHEMA)
        who = await _ask(ctx, types.ElicitRequest(params=form), types.ElicitResult)
        await anyio.sleep(60)
        return who

    @server.tool()
    async def stall() -> str:
        """Take a minute to answer (long enough for a client to cancel it)."""
        await anyio.sleep(60)
        return "stalled"

    @server.tool()
    async def client_roots(ctx: Context) -> str:
        """List the client's roots (roots/list)."""
        return await _ask(ctx, types.ListRootsRequest(), types.ListRootsResult)

    @server.tool()
    async def chatty(ctx: Context, count: int = 3) -> str:
        """Log `count` info messages and one debug message during the call, then answer."""
        session = ctx.request_context.session
        related = ctx.request_context.request_id
        for level, text in [("debug", "debug detail")] + [("info", f"step {i}") for i in range(count)]:
            notice = types.LoggingMessageNotification(
                params=types.LoggingMessageNotificationParams(level=level, data=text, logger="chatty")
            )
            await session.send_notification(notice, related_request_id=related)
        return "done"

    @server.tool()
    async def busy(ctx: Context) -> str:
        """Log one notice and report progress once during the call (both on the call's own stream), then answer."""
        notice = types.LoggingMessageNotification(
            params=types.LoggingMessageNotificationParams(level="info", data="working", logger="busy")
        )
        await ctx.request_context.session.send_notification(notice, related_request_id=ctx.request_context.request_id)
        await ctx.report_progress(1, 2, "half way")
        return "busy done"

    @server.tool()
    async def touch(uri: str, ctx: Context) -> str:
        """Tell subscribers that a resource changed (2025 era: the session's stream; 2026-07-28: listen streams)."""
        if ctx.request_context.protocol_version in MODERN_PROTOCOL_VERSIONS:
            await ctx.notify_resource_updated(uri)
        else:
            notice = types.ResourceUpdatedNotification(params=types.ResourceUpdatedNotificationParams(uri=uri))
            await ctx.request_context.session.send_notification(notice)
        return "touched"

    @server.tool()
    def seen_capabilities(ctx: Context) -> str:
        """The client capabilities this request came with, as JSON (2026-07-28: the request's own `_meta`)."""
        capabilities = ctx.session.client_capabilities
        seen = capabilities.model_dump(by_alias=True, mode="json", exclude_none=True) if capabilities else None
        return json.dumps(seen, sort_keys=True)

    @server.tool()
    def needs_sampling(ctx: Context) -> str:
        """Refuse with -32021 unless the client declared sampling, as the conformance suite's test server does."""
        capabilities = ctx.session.client_capabilities
        if capabilities is None or capabilities.sampling is None:
            raise MCPError(
                code=types.MISSING_REQUIRED_CLIENT_CAPABILITY,
                message="This tool requires the client 'sampling' capability",
                data={"requiredCapabilities": {"sampling": {}}},
            )
        return "sampling declared"

    @server.tool()
    def crash() -> str:
        """Exit at once, as a crashing server does (the hub reconnects)."""
        os._exit(3)

    @server.tool()
    def upstream_state() -> str:
        """What the hub asked of this server: the URIs subscribed now (either era) and the log levels set, in order."""
        listened = {uri for uri, streams in LISTENED.items() if streams > 0}
        return json.dumps({"subscribed": sorted(SUBSCRIBED | listened), "levels": LOG_LEVELS})

    @server.resource("note://a", mime_type="text/plain")
    def note_a() -> str:
        return "a"

    @server.resource("note://b", mime_type="text/plain")
    def note_b() -> str:
        return "b"

    async def subscribe(ctx: Any, params: types.SubscribeRequestParams) -> types.EmptyResult:
        SUBSCRIBED.add(params.uri)
        return types.EmptyResult()

    async def unsubscribe(ctx: Any, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        SUBSCRIBED.discard(params.uri)
        return types.EmptyResult()

    async def set_level(ctx: Any, params: types.SetLevelRequestParams) -> types.EmptyResult:
        LOG_LEVELS.append(params.level)
        return types.EmptyResult()

    async def listen(ctx: Any, params: types.SubscriptionsListenRequestParams) -> types.SubscriptionsListenResult:
        uris = params.notifications.resource_subscriptions or []
        LISTENED.update(uris)
        try:
            return await listening(ctx, params)
        finally:
            LISTENED.subtract(uris)

    lowlevel = server._lowlevel_server  # MCPServer has no decorator for these
    lowlevel.add_request_handler("subscriptions/listen", types.SubscriptionsListenRequestParams, listen)
    lowlevel.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, unsubscribe)
    lowlevel.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)
    return server


if __name__ == "__main__":
    serve(build_asking(), sys.argv[1:])
