"""Guardrails on what upstreams give: `tool_input` on a call's arguments before the upstream is called,
`tool_output` on what it returns before the caller sees it. Every edge (`/mcp`, its fast path, REST, Code Mode, agent
mode) calls tools through `ToolCalls`, which calls these; `resources/read` and `prompts/get` (on `/mcp`, both eras)
run their results through `tool_output` too.

A blocked input is a tool error naming the rule, and the upstream is not called; a blocked output replaces the
result with that error. Redaction covers text content, embedded text resources and structured content; a resource's
text contents; a prompt's message texts. Binary contents (blobs, images, audio) are passed on unscanned. A blocked
resource or prompt is a JSON-RPC error naming the rule (`GuardrailBlocked`, raised to the handler).
"""

from __future__ import annotations

from typing import Any

import mcp_types as types

from toolpolicy.guardrails import Guardrails, Scan
from toolpolicy.types import Principal


def tool_scan(
    guardrails: Guardrails, principal: Principal, surface: Any, *, request_id: str, server: str, target: str
) -> Scan | None:
    if not guardrails.active:
        return None
    return guardrails.scan(principal, surface, request_id=request_id, target=target, server=server)


async def check_arguments(scan: Scan, arguments: dict[str, Any] | None) -> dict[str, Any] | None:
    """The arguments, redacted in place, then shown to the webhook rules; raises `GuardrailBlocked`. Audits what it
    found either way."""
    try:
        if arguments:
            scan.values(arguments)
            await scan.remote(arguments, everything=True)
        return arguments
    finally:
        scan.report()


async def check_result(scan: Scan, result: types.CallToolResult) -> types.CallToolResult:
    """The result with its text redacted, then shown to the webhook rules; raises `GuardrailBlocked`. Audits what it
    found either way."""
    try:
        content = [_content(scan, item) for item in result.content]
        structured = scan.values(result.structured_content) if result.structured_content else result.structured_content
        texts = [item.text for item in content if isinstance(item, types.TextContent)]
        await scan.remote({"content": texts, "structured": structured}, everything=True)
        return result.model_copy(update={"content": content, "structured_content": structured})
    finally:
        scan.report()


def _content(scan: Scan, item: Any) -> Any:
    if isinstance(item, types.TextContent):
        return item.model_copy(update={"text": scan.text(item.text)})
    if isinstance(item, types.EmbeddedResource) and isinstance(item.resource, types.TextResourceContents):
        resource = item.resource.model_copy(update={"text": scan.text(item.resource.text)})
        return item.model_copy(update={"resource": resource})
    return item


async def check_resource(scan: Scan, result: types.ReadResourceResult) -> types.ReadResourceResult:
    """A resource read's text contents redacted, then shown to the webhook rules; raises `GuardrailBlocked`. Blobs
    pass unscanned. Audits what it found either way."""
    try:
        contents = [
            item.model_copy(update={"text": scan.text(item.text)})
            if isinstance(item, types.TextResourceContents)
            else item
            for item in result.contents
        ]
        texts = [item.text for item in contents if isinstance(item, types.TextResourceContents)]
        await scan.remote({"contents": texts}, everything=True)
        return result.model_copy(update={"contents": contents})
    finally:
        scan.report()


async def check_prompt(scan: Scan, result: types.GetPromptResult) -> types.GetPromptResult:
    """A prompt's message texts (and embedded text resources) redacted, then shown to the webhook rules; raises
    `GuardrailBlocked`. Its description is the server's own, listed text and is left alone. Audits either way."""
    try:
        messages = [
            message.model_copy(update={"content": _content(scan, message.content)}) for message in result.messages
        ]
        texts = [message.content.text for message in messages if isinstance(message.content, types.TextContent)]
        texts += [
            message.content.resource.text
            for message in messages
            if isinstance(message.content, types.EmbeddedResource)
            and isinstance(message.content.resource, types.TextResourceContents)
        ]
        await scan.remote({"messages": texts}, everything=True)
        return result.model_copy(update={"messages": messages})
    finally:
        scan.report()
