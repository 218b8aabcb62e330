"""The REST face of the hub, for agent frameworks that do not speak MCP, under the same governance.

- `GET /v1/mcp/tools`: the key's tools in OpenAI function-tool format (`x-isthmus-tools` narrows them too), with
  Code Mode's meta-tools in front of the servers the key uses through Code Mode, as on `/mcp`;
- `?bundle=<name>` on either route: the tools of `/mcp/<name>` (an unknown bundle is 404);
- `POST /v1/mcp/tools/call` with `{"name": ..., "arguments": {...}}`: the MCP `CallToolResult`, as JSON; a client
  that disconnects first cancels the call, upstream too, as on `/mcp`.

Errors use the OpenAI error envelope; a tool error is a 200 result with `"isError": true`, as over MCP.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_hub.access import Caller, narrowing
from mcp_hub.bundles import Bundle
from mcp_hub.disconnect import unless_disconnected
from mcp_hub.errors import UnknownBundle
from mcp_hub.tools import HubTools
from toolpolicy import sanitize
from toolpolicy.credentials import presented_key
from toolpolicy.errors import GatewayError, InvalidRequest
from toolpolicy.jsonbody import read_json_object
from toolpolicy.keys import KeyResolver
from toolpolicy.names import tool_name
from toolpolicy.telemetry.tracing import request_span

logger = logging.getLogger(__name__)


def error_response(error: GatewayError) -> JSONResponse:
    body = {"error": {"message": error.message, "type": error.openai_type, "param": error.param, "code": error.code}}
    headers = {"Retry-After": str(max(1, round(error.retry_after)))} if error.retry_after is not None else None
    return JSONResponse(body, status_code=error.status, headers=headers)


def _rendering(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    async def rendered(request: Request) -> Response:
        try:
            return await endpoint(request)
        except GatewayError as exc:
            logger.info("%s %s refused: %s (%s)", request.method, request.url.path, exc.reason, exc.message)
            return error_response(exc)

    rendered.__name__ = endpoint.__name__
    return rendered


class RestApi:
    def __init__(
        self,
        keys: KeyResolver,
        tools: HubTools,
        max_body_bytes: int,
        code_mode_servers: frozenset[str] = frozenset(),
        *,
        bundles: Mapping[str, Bundle] | None = None,
    ) -> None:
        self.keys, self.tools = keys, tools
        self.max_body_bytes = max_body_bytes
        self.code_mode_servers = code_mode_servers
        self.bundles: Mapping[str, Bundle] = bundles or {}

    def routes(self) -> list[Route]:
        return [
            Route("/v1/mcp/tools", _rendering(self.list_tools), methods=["GET"]),
            Route("/v1/mcp/tools/call", _rendering(self.call_tool), methods=["POST"]),
        ]

    async def _caller(self, request: Request) -> Caller:
        secret = presented_key(request.headers)
        principal = await self.keys.resolve(secret)
        assert secret is not None
        name = request.query_params.get("bundle")
        bundle = self.bundles.get(name) if name is not None else None
        if name is not None and bundle is None:
            raise UnknownBundle(name)
        return Caller(principal, secret, None, narrowing(request.headers), self.code_mode_servers, bundle)

    async def list_tools(self, request: Request) -> Response:
        caller = await self._caller(request)
        functions = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description or tool.title or "",
                    "parameters": tool.input_schema,
                },
            }
            for tool in self.tools.list(caller)
        ]
        return JSONResponse({"object": "list", "data": functions})

    async def call_tool(self, request: Request) -> Response:
        caller = await self._caller(request)
        body = await read_json_object(request, self.max_body_bytes)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest("'name' must be the tool's name, e.g. 'time__get_current_time'", param="name")
        tool_name(name)
        arguments = body.get("arguments")
        if arguments is not None and not isinstance(arguments, dict):
            raise InvalidRequest("'arguments' must be a JSON object", param="arguments")
        request_id = sanitize.request_id(request.headers.get("x-request-id"))
        # Continue the caller's trace from its `traceparent` header (MCP requests get theirs from `_meta`).
        with request_span("POST /v1/mcp/tools/call", request.headers, {"http.request.method": "POST"}):
            call = self.tools.call(caller, name, arguments, request_id=request_id)
            result = await unless_disconnected(request.receive, call)
        return JSONResponse(
            result.model_dump(mode="json", by_alias=True, exclude_none=True), headers={"x-request-id": request_id}
        )
