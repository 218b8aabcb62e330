"""The MCP server clients see: one low-level `Server` serving both eras, every answer filtered per caller.

The HTTP endpoint (`endpoint.py`) authenticates each request and leaves its `Caller` in the ASGI scope; every
handler reads it from there, so a 2025-era session and a 2026-07-28 single request are treated alike. Gateway
errors raised by a handler become JSON-RPC errors in one middleware (`render_errors`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import mcp_types as types
from mcp.server import NotificationOptions, Server, ServerRequestContext
from mcp.server.context import CallNext, HandlerResult
from mcp.server.models import InitializationOptions
from mcp.shared.exceptions import MCPError
from starlette.requests import Request

from mcp_hub.access import Caller
from mcp_hub.catalog import Catalog, Entry
from mcp_hub.errors import UnknownPrompt, UnknownResource, UpstreamRejected
from mcp_hub.fairness import KeySlots
from mcp_hub.guard import (
    check_completion,
    check_prompt,
    check_prompt_arguments,
    check_resource,
    masked,
    scanned_uri,
    tool_scan,
)
from mcp_hub.listen import SessionRegistry, listen
from mcp_hub.listen_resources import ResourceSubscriber
from mcp_hub.naming import hub_uri, split_hub_uri
from mcp_hub.notify import ChangeFeed
from mcp_hub.paging import page
from mcp_hub.param_headers import caller_input_schemas
from mcp_hub.polling import passed_on
from mcp_hub.quiet_tracing import quieten
from mcp_hub.relay import Relay
from mcp_hub.request_headers import request_headers
from mcp_hub.tools import HubTools
from mcp_hub.upstreams import Upstream
from mcp_hub.upstreams.oauth import acting_as
from toolpolicy import sanitize
from toolpolicy.errors import GatewayError, GuardrailBlocked, InvalidRequest
from toolpolicy.guardrails import Guardrails, Scan

Context = ServerRequestContext[Any, Any]
CALLER_SCOPE_KEY = "isthmus.mcp.caller"
SERVER_NAME = "isthmus"


def caller_of(ctx: Context) -> Caller:
    caller = ctx.request.scope.get(CALLER_SCOPE_KEY) if ctx.request is not None else None
    if not isinstance(caller, Caller):
        raise InvalidRequest("this MCP server is only served over HTTP, behind the gateway's key check")
    return caller


def as_mcp_error(error: GatewayError) -> MCPError:
    """The JSON-RPC error for a gateway error: an upstream's own rejection keeps its code and data."""
    if isinstance(error, UpstreamRejected):
        return MCPError(code=error.upstream_code, message=error.message, data=error.upstream_data)
    data: dict[str, Any] | None = None
    if isinstance(error, UnknownResource):
        data = {"uri": error.uri}
    elif isinstance(error, GuardrailBlocked):
        data = {"reason": error.reason, "rule": error.rule}
    return MCPError(code=error.jsonrpc_code, message=error.message, data=data)


async def render_errors(ctx: Context, call_next: CallNext) -> HandlerResult:
    try:
        return await call_next(ctx)
    except GatewayError as exc:
        raise as_mcp_error(exc) from None


class HubServer(Server[Any]):
    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        # The session manager passes no options, and 2025-era clients only listen for changes a server advertises.
        options = notification_options or NotificationOptions(
            prompts_changed=True, resources_changed=True, tools_changed=True
        )
        return super().create_initialization_options(options, experimental_capabilities, extensions)

    @property
    def server_info_stamp(self) -> dict[str, Any]:
        """The SDK's stamp, a fresh copy of its JSON dump per 2026-07-28 result, copied as the JSON it is: the same
        copy as the SDK's `copy.deepcopy`, for a fifth of the cost."""
        stamp: dict[str, Any] = json_copy(self._server_info_stamp_source)
        return stamp


_SCALARS = frozenset({str, int, float, bool, type(None)})
"""JSON's immutable values, which a copy shares (as `copy.deepcopy` does)."""


def json_copy(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists and immutable scalars), as `copy.deepcopy` makes it. A scalar inside a
    dict or list is taken as it is, without a call (the stamp is a flat dict of strings, copied per result)."""
    kind = type(value)
    if kind is dict:
        return {key: item if type(item) in _SCALARS else json_copy(item) for key, item in value.items()}
    if kind is list:
        return [item if type(item) in _SCALARS else json_copy(item) for item in value]
    return value


class Handlers:
    """Every request handler of the hub's server, over the shared catalog, upstreams and tools (direct, Code Mode)."""

    def __init__(
        self,
        catalog: Catalog,
        upstreams: dict[str, Upstream],
        tools: HubTools,
        feed: ChangeFeed,
        page_size: int | None,
        *,
        streams: KeySlots,
        relay: Relay,
        guardrails: Guardrails,
    ) -> None:
        self.catalog, self.upstreams, self.tools, self.feed = catalog, upstreams, tools, feed
        self.page_size = page_size
        self.streams = streams
        """The `subscriptions/listen` streams each key holds open."""
        self.relay = relay
        """Upstreams' requests and notices during a call, to the client that made it; subscriptions; log levels."""
        self.guardrails = guardrails
        """`tool_output` rules on what resource reads and prompts return (tool calls apply theirs in `ToolCalls`)."""

    async def list_tools(self, ctx: Context, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        tools, cursor = page(self.tools.list(caller_of(ctx)), _cursor(params), self.page_size)
        return types.ListToolsResult(tools=tools, next_cursor=cursor)

    async def call_tool(
        self, ctx: Context, params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        async def relay(progress: float, total: float | None, message: str | None) -> None:
            with contextlib.suppress(Exception):  # a 2026-07-28 held call outlives its first request's stream
                await ctx.session.report_progress(progress, total, message)

        meta: Mapping[str, Any] = ctx.meta or {}  # read only: not copied
        wants_progress = meta.get("progress_token", meta.get("progressToken")) is not None
        caller = caller_of(ctx)
        request_id = _request_id(ctx)

        async def work() -> types.CallToolResult:
            with passed_on(ctx):
                progress = relay if wants_progress else None
                return await self.tools.call(
                    caller, params.name, params.arguments, request_id=request_id, progress=progress
                )

        return await self.relay.served(ctx, caller, request_id, params, work)

    async def list_prompts(self, ctx: Context, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        caller = caller_of(ctx)
        prompts = [
            entry.item.model_copy(update={"name": caller.name_of(entry)})
            for entry in self.catalog.prompts()
            if caller.sees_prompt(entry.server, entry.name)
        ]
        items, cursor = page(prompts, _cursor(params), self.page_size)
        return types.ListPromptsResult(prompts=items, next_cursor=cursor)

    async def get_prompt(
        self, ctx: Context, params: types.GetPromptRequestParams
    ) -> types.GetPromptResult | types.InputRequiredResult:
        caller = caller_of(ctx)
        entry = self._prompt(caller, params.name)
        request_id = _request_id(ctx)

        def scan(surface: str) -> Scan | None:
            target = f"{entry.server}/{entry.name}"
            return tool_scan(
                self.guardrails, caller.principal, surface, request_id=request_id, server=entry.server, target=target
            )

        async def work() -> types.GetPromptResult:
            arguments = params.arguments
            inbound = scan("tool_input")
            if inbound is not None and arguments:
                arguments = await check_prompt_arguments(inbound, arguments)  # a block: the upstream is not asked
            with passed_on(ctx), acting_as(caller.principal):
                result = await self.upstreams[entry.server].get_prompt(entry.name, arguments)
            outbound = scan("tool_output")
            return result if outbound is None else await check_prompt(outbound, result)

        return await self.relay.served(ctx, caller, request_id, params, work)

    async def list_resources(
        self, ctx: Context, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        caller = caller_of(ctx)
        resources = [
            resource if caller.server else resource.model_copy(update={"uri": hub_uri(server, resource.uri)})
            for server, resource in self.catalog.resources()
            if caller.sees_resource(server, resource)
        ]
        items, cursor = page(resources, _cursor(params), self.page_size)
        return types.ListResourcesResult(resources=items, next_cursor=cursor)

    async def list_resource_templates(
        self, ctx: Context, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        caller = caller_of(ctx)
        templates = [
            template
            if caller.server
            else template.model_copy(update={"uri_template": hub_uri(server, template.uri_template)})
            for server, template in self.catalog.templates()
            if caller.sees_template(server, template)
        ]
        items, cursor = page(templates, _cursor(params), self.page_size)
        return types.ListResourceTemplatesResult(resource_templates=items, next_cursor=cursor)

    async def read_resource(
        self, ctx: Context, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        caller = caller_of(ctx)
        server, uri = self._locate(caller, params.uri)
        request_id = _request_id(ctx)

        async def work() -> types.ReadResourceResult:
            # A block: the upstream is not asked. Audit records name the URI with what the input rules find masked.
            sent, target = await self._scanned_uri(caller, request_id, server, uri)
            try:
                with passed_on(ctx), acting_as(caller.principal):
                    result = await self.upstreams[server].read_resource(sent)
            except UpstreamRejected as exc:
                if isinstance(exc.upstream_data, dict) and exc.upstream_data.get("uri") == sent:
                    exc.upstream_data = {**exc.upstream_data, "uri": params.uri}  # the URI the client knows
                raise
            scan = tool_scan(
                self.guardrails, caller.principal, "tool_output", request_id=request_id, server=server, target=target
            )
            if scan is not None:
                result = await check_resource(scan, result)
            if caller.server is None:
                result.contents = [c.model_copy(update={"uri": hub_uri(server, c.uri)}) for c in result.contents]
            return result

        return await self.relay.served(ctx, caller, request_id, params, work)

    async def subscribe_resource(self, ctx: Context, params: types.SubscribeRequestParams) -> types.EmptyResult:
        caller = caller_of(ctx)
        server, uri = self._locate(caller, params.uri)
        sent, _ = await self._scanned_uri(caller, _request_id(ctx), server, uri)  # as a read would send it
        return await self.relay.subscribe(ctx, server, sent, params.uri)

    async def unsubscribe_resource(self, ctx: Context, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        caller = caller_of(ctx)
        server, uri = self._locate(caller, params.uri)
        sent, _ = await self._scanned_uri(caller, _request_id(ctx), server, uri)  # what the subscribe sent
        return await self.relay.unsubscribe(ctx, server, sent)

    async def complete(self, ctx: Context, params: types.CompleteRequestParams) -> types.CompleteResult:
        caller = caller_of(ctx)
        ref = params.ref
        upstream_ref: types.PromptReference | types.ResourceTemplateReference
        if isinstance(ref, types.PromptReference):
            entry = self._prompt(caller, ref.name)
            server, named, upstream_ref = entry.server, entry.name, ref.model_copy(update={"name": entry.name})
        else:
            server, named = self._locate(caller, ref.uri)
            upstream_ref = ref.model_copy(update={"uri": named})
        argument, context = params.argument, params.context
        inbound = tool_scan(
            self.guardrails, caller.principal, "tool_input", request_id=_request_id(ctx), server=server, target=server
        )
        if inbound is not None:
            inbound.target = f"{server}/{masked(inbound, named)}"
            argument, context = await check_completion(inbound, argument, context)  # a block: the upstream is not asked
        return await self.upstreams[server].complete(upstream_ref, argument, context)

    async def subscriptions_listen(
        self, ctx: Context, params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        caller = caller_of(ctx)
        # Held until the stream ends, however it ends: the client closing it or going away cancels this handler.
        with self.streams.acquire(caller.principal):
            return await listen(self.feed, caller, ctx, params, ResourceSubscriber(self.relay, self._locate, self.feed))

    async def _scanned_uri(self, caller: Caller, request_id: str, server: str, uri: str) -> tuple[str, str]:
        """`uri` through `server`'s `tool_input` rules: the URI to send upstream and the audit target naming it."""
        return await scanned_uri(self.guardrails, caller.principal, request_id=request_id, server=server, uri=uri)

    def _prompt(self, caller: Caller, name: str) -> Entry[types.Prompt]:
        entry = self.catalog.prompt_of(caller.server, name) if caller.server else self.catalog.prompt(name)
        if entry is None or not caller.sees_prompt(entry.server, entry.name):
            raise UnknownPrompt(name)
        return entry

    def _locate(self, caller: Caller, uri: str) -> tuple[str, str]:
        """The server a (possibly `isthmus://`-prefixed) URI belongs to, and the URI that server knows."""
        if caller.server is not None:
            server, inner = caller.server, uri
        elif (split := split_hub_uri(uri)) is not None:
            server, inner = split
        else:
            owner = self.catalog.owner_of(uri, [s for s in self.upstreams if caller.sees_server(s)])
            if owner is None:
                raise UnknownResource(uri)
            server, inner = owner, uri
        if server not in self.upstreams or not caller.sees_uri(self.catalog, server, inner):
            raise UnknownResource(uri)
        return server, inner


def _request_id(ctx: Context) -> str:
    """The audit request id of a client request: its `x-request-id` if usable, else a fresh one."""
    request = ctx.request
    if isinstance(request, Request):  # an `/mcp` request: its headers as the endpoint read them once
        header = request_headers(request.scope).get("x-request-id")
    else:
        header = request.headers.get("x-request-id") if request is not None else None
    return sanitize.request_id(header)


def _cursor(params: types.PaginatedRequestParams | None) -> str | None:
    return params.cursor if params is not None else None


def build_server(handlers: Handlers, version: str) -> HubServer:
    server = HubServer(
        SERVER_NAME,
        version=version,
        title="Isthmus MCP hub",
        instructions=(
            "Tools of several MCP servers, named <server>__<tool>. Servers in Code Mode are used from Python: "
            "search_tools, get_tool_docs, then run_code."
        ),
        get_tool_input_schema=caller_input_schemas(handlers.catalog),
        on_list_tools=handlers.list_tools,
        on_call_tool=handlers.call_tool,
        on_list_prompts=handlers.list_prompts,
        on_get_prompt=handlers.get_prompt,
        on_list_resources=handlers.list_resources,
        on_list_resource_templates=handlers.list_resource_templates,
        on_read_resource=handlers.read_resource,
        on_subscribe_resource=handlers.subscribe_resource,
        on_unsubscribe_resource=handlers.unsubscribe_resource,
        on_completion=handlers.complete,
        on_subscriptions_listen=handlers.subscriptions_listen,
    )
    # Registered directly: the constructor argument warns that 2026-07-28 dropped the method, but 2025 clients use it.
    server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, handlers.relay.set_level)
    state = handlers.relay.state_boundary(lambda ctx: caller_of(ctx).principal.key_id, SERVER_NAME)
    quieten(server.middleware)  # the SDK's OpenTelemetry span, only where it can change something
    server.middleware.extend([SessionRegistry(handlers.feed, caller_of), render_errors, state])
    return server
