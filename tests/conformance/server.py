"""The conformance suite's upstream: every tool, resource, prompt and handler its server scenarios call, at both eras.

`python -m tests.conformance.server --port PORT` serves Streamable HTTP on 127.0.0.1:PORT/mcp. The names and
answers are the suite's (`@modelcontextprotocol/conformance`, `src/scenarios/server/`); the layout follows the
MCP Python SDK's own conformance server (examples/servers/everything-server, MIT). One server answers both eras:
2025-11-25 sessions get server-to-client requests on the POST's stream, 2026-07-28 requests get
`InputRequiredResult` rounds (tests/conformance/input_required.py).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
from typing import Annotated, Any

import uvicorn
from mcp.server import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer, RequestStateSecurity
from mcp.server.mcpserver.prompts.base import Prompt, UserMessage
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp.shared.exceptions import MCPError
from mcp.types import (
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    AudioContent,
    Completion,
    CompletionArgument,
    CompletionContext,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    JSONRPCMessage,
    PromptReference,
    ResourceTemplateReference,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, Field, JsonValue

from tests.conformance.input_required import register_input_required_tools

SERVER_NAME = "mcp-conformance-test-server"
# The suite's fixtures: a 1x1 PNG and a two-sample WAV.
IMAGE_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
AUDIO_WAV = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="
# Request state is sealed with this; a fixed fixture key (RequestStateSecurity wants at least 32 bytes).
REQUEST_STATE_KEY = b"isthmus-conformance-fixture-request-state-key"

# `json-schema-2020-12` checks that these keywords reach the client untouched.
JSON_SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


class MemoryEventStore(EventStore):
    """Keeps every SSE event so `server-sse-polling` can resume a closed stream with `Last-Event-ID`."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, JSONRPCMessage | None]] = []

    async def store_event(self, stream_id: str, message: JSONRPCMessage | None) -> str:
        event_id = str(len(self.events) + 1)
        self.events.append((stream_id, event_id, message))
        return event_id

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        stream = next((stream for stream, event_id, _ in self.events if event_id == last_event_id), None)
        if stream is None:
            return None
        for stream_id, event_id, message in self.events:
            # Priming events carry no message.
            if stream_id == stream and int(event_id) > int(last_event_id) and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream


class UserResponse(BaseModel):
    response: str = Field(description="User's response")


class DefaultsForm(BaseModel):
    """SEP-1034: a default for every primitive type."""

    name: str = Field(default="John Doe", description="User name")
    age: int = Field(default=30, description="User age")
    score: float = Field(default=95.5, description="User score")
    status: str = Field(
        default="active", description="User status", json_schema_extra={"enum": ["active", "inactive", "pending"]}
    )
    verified: bool = Field(default=True, description="Verification status")


def _titled(*options: tuple[str, str]) -> list[JsonValue]:
    return [{"const": value, "title": title} for value, title in options]


class EnumsForm(BaseModel):
    """SEP-1330: every way of writing an enum in an elicitation schema."""

    untitledSingle: str = Field(
        description="Simple enum without titles", json_schema_extra={"enum": ["active", "inactive", "pending"]}
    )
    titledSingle: str = Field(
        description="Enum with titled options (oneOf)",
        json_schema_extra={
            "oneOf": _titled(("low", "Low Priority"), ("medium", "Medium Priority"), ("high", "High Priority"))
        },
    )
    untitledMulti: list[str] = Field(
        description="Multi-select without titles",
        json_schema_extra={"items": {"type": "string", "enum": ["read", "write", "execute"]}},
    )
    titledMulti: list[str] = Field(
        description="Multi-select with titled options",
        json_schema_extra={
            "items": {"anyOf": _titled(("feature", "New Feature"), ("bug", "Bug Fix"), ("docs", "Documentation"))}
        },
    )
    legacyEnum: str = Field(
        description="Legacy enum with enumNames",
        json_schema_extra={
            "enum": ["small", "medium", "large"],
            "enumNames": ["Small Size", "Medium Size", "Large Size"],
        },
    )


async def _elicited(ctx: Context, message: str, schema: type[BaseModel], label: str) -> str:
    try:
        result = await ctx.elicit(message=message, schema=schema)
    except Exception as exc:  # the scenario reads the error from the tool's text
        return f"Elicitation not supported or error: {exc}"
    content = result.data.model_dump_json() if result.action == "accept" else "{}"
    return f"{label}: action={result.action}, content={content}"


def build_server() -> MCPServer:
    mcp = MCPServer(
        name=SERVER_NAME, version="0.1.0", request_state_security=RequestStateSecurity(keys=[REQUEST_STATE_KEY])
    )
    _content_tools(mcp)
    _client_tools(mcp)
    _schema_tools(mcp)
    register_input_required_tools(mcp)
    _resources(mcp)
    _prompts(mcp)
    _handlers(mcp)
    return mcp


def _content_tools(mcp: MCPServer) -> None:
    @mcp.tool()
    def test_simple_text() -> str:
        """Tests simple text content response"""
        return "This is a simple text response for testing."

    @mcp.tool()
    def test_image_content() -> list[ImageContent]:
        """Tests image content response"""
        return [ImageContent(type="image", data=IMAGE_PNG, mime_type="image/png")]

    @mcp.tool()
    def test_audio_content() -> list[AudioContent]:
        """Tests audio content response"""
        return [AudioContent(type="audio", data=AUDIO_WAV, mime_type="audio/wav")]

    @mcp.tool()
    def test_embedded_resource() -> list[EmbeddedResource]:
        """Tests embedded resource content response"""
        text = "This is an embedded resource content."
        resource = TextResourceContents(uri="test://embedded-resource", mime_type="text/plain", text=text)
        return [EmbeddedResource(type="resource", resource=resource)]

    @mcp.tool()
    def test_multiple_content_types() -> list[TextContent | ImageContent | EmbeddedResource]:
        """Tests response with multiple content types (text, image, resource)"""
        resource = TextResourceContents(
            uri="test://mixed-content-resource", mime_type="application/json", text='{"test": "data", "value": 123}'
        )
        return [
            TextContent(type="text", text="Multiple content types test:"),
            ImageContent(type="image", data=IMAGE_PNG, mime_type="image/png"),
            EmbeddedResource(type="resource", resource=resource),
        ]

    @mcp.tool()
    def test_error_handling() -> str:
        """Tests error response handling"""
        raise RuntimeError("This tool intentionally returns an error for testing")

    @mcp.tool()
    async def test_tool_with_progress(ctx: Context) -> str:
        """Tests tool that reports progress notifications"""
        for step in (0, 50, 100):
            await ctx.report_progress(progress=step, total=100, message=f"Completed step {step} of 100")
            if step < 100:
                await asyncio.sleep(0.05)
        meta = ctx.request_context.meta if ctx.request_context else None
        return str(meta.get("progress_token") if meta else 0)


def _client_tools(mcp: MCPServer) -> None:
    """2025-era tools that talk back to the client: logging, sampling, elicitation, a dropped stream."""

    @mcp.tool()
    async def test_tool_with_logging(ctx: Context) -> str:
        """Tests tool that emits log messages during execution"""
        for message in ("Tool execution started", "Tool processing data", "Tool execution completed"):
            await ctx.info(message)
            if message != "Tool execution completed":
                await asyncio.sleep(0.05)
        return "Tool with logging executed successfully"

    @mcp.tool()
    async def test_sampling(prompt: str, ctx: Context) -> str:
        """Tests server-initiated sampling (LLM completion request)"""
        try:
            # The related id puts the request on this POST's stream; the GET stream may not be open.
            result = await ctx.session.create_message(
                messages=[SamplingMessage(role="user", content=TextContent(type="text", text=prompt))],
                max_tokens=100,
                related_request_id=ctx.request_id,
            )
        except Exception as exc:  # the scenario reads the error from the tool's text
            return f"Sampling not supported or error: {exc}"
        return f"LLM response: {result.content.text if result.content.type == 'text' else 'No response'}"

    @mcp.tool()
    async def test_elicitation(message: str, ctx: Context) -> str:
        """Tests server-initiated elicitation (user input request)"""
        return await _elicited(ctx, message, UserResponse, "User response")

    @mcp.tool()
    async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
        """Tests elicitation with default values for all primitive types (SEP-1034)"""
        return await _elicited(ctx, "Please provide user information", DefaultsForm, "Elicitation result")

    @mcp.tool()
    async def test_elicitation_sep1330_enums(ctx: Context) -> str:
        """Tests elicitation with enum schema variations per SEP-1330"""
        message = "Please select values using different enum schema types"
        return await _elicited(ctx, message, EnumsForm, "Elicitation completed")

    @mcp.tool()
    async def test_streaming_elicitation(ctx: Context) -> str:
        """Diagnostic tool validating response progress streams: notifications only, never a request"""
        await ctx.report_progress(progress=50, total=100)
        return "Streaming complete"

    @mcp.tool()
    async def test_logging_tool(ctx: Context) -> str:
        """Diagnostic logging validator tool: a 2026-07-28 request without a logLevel must hear no log"""
        await ctx.info("Diagnostic trace logging activated")
        return "Logging evaluated"

    @mcp.tool()
    async def test_reconnection(ctx: Context) -> str:
        """Tests SSE polling by closing stream mid-call (SEP-1699)"""
        await ctx.info("Before disconnect")
        await ctx.close_sse_stream()
        await asyncio.sleep(0.2)  # the client reconnects with Last-Event-ID meanwhile
        await ctx.info("After reconnect")
        return "Reconnection test completed"

    @mcp.tool()
    async def test_missing_capability(ctx: Context) -> str:
        """Tests that a handler-raised MISSING_REQUIRED_CLIENT_CAPABILITY surfaces as a top-level JSON-RPC error"""
        capabilities = ctx.session.client_capabilities
        if capabilities is None or capabilities.sampling is None:
            raise MCPError(
                code=MISSING_REQUIRED_CLIENT_CAPABILITY,
                message="This tool requires the client 'sampling' capability",
                data={"requiredCapabilities": {"sampling": {}}},
            )
        return "Client declared sampling capability; proceeding."

    @mcp.tool()
    async def test_trigger_tool_change(ctx: Context) -> str:
        """Mutates the tool list and announces it to subscriptions/listen streams (SEP-2575)"""
        mcp.add_tool(_dynamic, name="test_dynamic_tool")
        mcp.remove_tool("test_dynamic_tool")
        await ctx.notify_tools_changed()
        if _legacy(ctx):  # a 2025-era client (such as the hub's upstream connection) hears on its session instead
            await ctx.session.send_tool_list_changed()
        return "tool list changed"

    @mcp.tool()
    async def test_trigger_prompt_change(ctx: Context) -> str:
        """Mutates the prompt list and announces it to subscriptions/listen streams (SEP-2575)"""
        mcp.add_prompt(Prompt.from_function(_dynamic, name="test_dynamic_prompt", description="dynamic"))
        mcp.remove_prompt("test_dynamic_prompt")
        await ctx.notify_prompts_changed()
        if _legacy(ctx):
            await ctx.session.send_prompt_list_changed()
        return "prompt list changed"


def _legacy(ctx: Context) -> bool:
    return ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS


def _dynamic() -> str:
    """A tool (or prompt) that exists only for a moment."""
    return "dynamic"


def _schema_tools(mcp: MCPServer) -> None:
    @mcp.tool()
    def test_x_mcp_header(
        region: Annotated[
            str,
            Field(
                description="Mirrored into the Mcp-Param-Region header", json_schema_extra={"x-mcp-header": "Region"}
            ),
        ] = "<none>",
    ) -> str:
        """Tests SEP-2243 Mcp-Param-* server-side validation."""
        return f"region={region}"

    @mcp.tool(name="json_schema_2020_12_tool")
    def json_schema_2020_12_tool() -> str:
        """Tests JSON Schema 2020-12 keyword preservation in tools/list."""
        return "json_schema_2020_12_tool"

    # MCPServer derives a tool's inputSchema from its signature and has no public override; this one is the
    # suite's literal schema.
    mcp._tool_manager._tools["json_schema_2020_12_tool"].parameters = JSON_SCHEMA_2020_12


def _resources(mcp: MCPServer) -> None:
    @mcp.resource("test://static-text")
    def static_text_resource() -> str:
        """A static text resource for testing"""
        return "This is the content of the static text resource."

    @mcp.resource("test://static-binary")
    def static_binary_resource() -> bytes:
        """A static binary resource (image) for testing"""
        return base64.b64decode(IMAGE_PNG)

    @mcp.resource("test://template/{id}/data")
    def template_resource(id: str) -> str:
        """A resource template with parameter substitution"""
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})

    @mcp.resource("test://watched-resource")
    def watched_resource() -> str:
        """A resource that can be subscribed to for updates"""
        return "Watched resource content"


def _prompts(mcp: MCPServer) -> None:
    def text(value: str) -> UserMessage:
        return UserMessage(role="user", content=TextContent(type="text", text=value))

    @mcp.prompt()
    def test_simple_prompt() -> list[UserMessage]:
        """A simple prompt without arguments"""
        return [text("This is a simple prompt for testing.")]

    @mcp.prompt()
    def test_prompt_with_arguments(arg1: str, arg2: str) -> list[UserMessage]:
        """A prompt with required arguments"""
        return [text(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")]

    @mcp.prompt()
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:
        """A prompt that includes an embedded resource"""
        resource = TextResourceContents(
            uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."
        )
        return [
            UserMessage(role="user", content=EmbeddedResource(type="resource", resource=resource)),
            text("Please process the embedded resource above."),
        ]

    @mcp.prompt()
    def test_prompt_with_image() -> list[UserMessage]:
        """A prompt that includes image content"""
        return [
            UserMessage(role="user", content=ImageContent(type="image", data=IMAGE_PNG, mime_type="image/png")),
            text("Please analyze the image above."),
        ]

    @mcp.completion()
    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion:
        """`completion-complete` checks the shape of the answer only."""
        return Completion(values=[], total=0, has_more=False)


def _handlers(mcp: MCPServer) -> None:
    """2025-era requests MCPServer has no decorator for: they only have to succeed."""
    subscribed: set[str] = set()

    async def set_level(ctx: ServerRequestContext, params: SetLevelRequestParams) -> EmptyResult:
        return EmptyResult()

    async def subscribe(ctx: ServerRequestContext, params: SubscribeRequestParams) -> EmptyResult:
        subscribed.add(str(params.uri))
        return EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext, params: UnsubscribeRequestParams) -> EmptyResult:
        subscribed.discard(str(params.uri))
        return EmptyResult()

    lowlevel = mcp._lowlevel_server
    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # retry_interval: `server-sse-polling` waits for the client to come back after the server closes a stream.
    app = build_server().streamable_http_app(event_store=MemoryEventStore(), retry_interval=100)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
