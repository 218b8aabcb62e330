"""Guardrails on what upstreams give: `tool_input` on a call's arguments before the upstream is called,
`tool_output` on what it returns before the caller sees it. Every edge (`/mcp`, its fast path, REST, Code Mode, agent
mode) calls tools through `ToolCalls`, which calls these; `resources/read` and `prompts/get` (on `/mcp`, both eras)
run what the client sends (the URI, the prompt's arguments) through `tool_input` and their results through
`tool_output` too, and so do `resources/subscribe` and `resources/unsubscribe` (the URI) and `completion/complete`
(the argument's value and the context's arguments) on the way in.

A blocked input is a tool error naming the rule, and the upstream is not called; a blocked output replaces the
result with that error. Redaction covers text content, embedded resources and structured content; a resource's
contents; a prompt's messages. A blob whose media type is textual (`toolpolicy.guardrails.blobs`) is decoded,
scanned and, when redacted, encoded back; other blobs, images and audio are passed on unscanned. A blocked resource
or prompt, on the way in or out, is a JSON-RPC error naming the rule (`GuardrailBlocked`, raised to the handler).
"""

from __future__ import annotations

from typing import Any

import mcp_types as types

from toolpolicy.errors import GuardrailBlocked
from toolpolicy.guardrails import Guardrails, Scan
from toolpolicy.guardrails.blobs import rewrite_blob
from toolpolicy.guardrails.rules import rewrite
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


async def check_uri(scan: Scan, uri: str) -> str:
    """A resource URI the client asked for, redacted, then shown to the webhook rules; raises `GuardrailBlocked`
    naming the URI. Audits what it found either way."""
    try:
        redacted = scan.text(uri)
        await scan.remote({"uri": redacted}, everything=True)
        return redacted
    except GuardrailBlocked as exc:
        raise GuardrailBlocked(f"guardrail {exc.rule!r} blocked the resource URI", rule=exc.rule) from None
    finally:
        scan.report()


async def check_prompt_arguments(scan: Scan, arguments: dict[str, str]) -> dict[str, str]:
    """A prompt's arguments (a copy), redacted, then shown to the webhook rules; raises `GuardrailBlocked` naming
    the prompt's arguments. Audits what it found either way."""
    return await _named_arguments(scan, dict(arguments), "the prompt's arguments")


async def scanned_uri(
    guardrails: Guardrails, principal: Principal, *, request_id: str, server: str, uri: str
) -> tuple[str, str]:
    """The URI a client names (to read, subscribe or unsubscribe) through `server`'s `tool_input` rules: the URI to
    send upstream (redacted) and the audit target naming it (what any rule finds in it masked, whatever its action).
    Raises `GuardrailBlocked`: the upstream is not to be asked."""
    inbound = tool_scan(guardrails, principal, "tool_input", request_id=request_id, server=server, target=server)
    target = f"{server}/{masked(inbound, uri)}"
    if inbound is None:
        return uri, target
    inbound.target = target
    return await check_uri(inbound, uri), target


async def check_completion(
    scan: Scan, argument: types.CompletionArgument, context: types.CompletionContext | None
) -> tuple[types.CompletionArgument, types.CompletionContext | None]:
    """A completion request's argument value and its context's arguments (copies), redacted, then shown to the
    webhook rules, as a prompt's arguments are; raises `GuardrailBlocked` naming the completion. Names are not
    scanned (they are the prompt's or template's own). Audits what it found either way."""
    resolved = dict(context.arguments or {}) if context is not None else {}
    sent = {"argument": {argument.name: argument.value}, "context": resolved}
    checked = await _named_arguments(scan, sent, "the completion's arguments")
    argument = argument.model_copy(update={"value": checked["argument"][argument.name]})
    if context is not None and context.arguments is not None:
        context = context.model_copy(update={"arguments": checked["context"]})
    return argument, context


async def _named_arguments(scan: Scan, arguments: dict[str, Any], what: str) -> dict[str, Any]:
    """`check_arguments` on a copy the caller made; a block names `what` it refused."""
    try:
        return await check_arguments(scan, arguments) or {}
    except GuardrailBlocked as exc:
        raise GuardrailBlocked(f"guardrail {exc.rule!r} blocked {what}", rule=exc.rule) from None


def masked(scan: Scan | None, text: str) -> str:
    """`text` with whatever `scan`'s rules find in it replaced, whatever their action: what an audit record may name
    (a `log` rule leaves a URI as it is, but its record must not carry the match)."""
    if scan is None:
        return text
    return rewrite(text, scan.rules.find(text), every=True)


async def check_result(scan: Scan, result: types.CallToolResult) -> types.CallToolResult:
    """The result with its text redacted, then shown to the webhook rules; raises `GuardrailBlocked`. Audits what it
    found either way."""
    try:
        texts: list[str] = []
        content = [_content(scan, item, texts) for item in result.content]
        structured = scan.values(result.structured_content) if result.structured_content else result.structured_content
        await scan.remote({"content": texts, "structured": structured}, everything=True)
        return result.model_copy(update={"content": content, "structured_content": structured})
    finally:
        scan.report()


def _content(scan: Scan, item: Any, texts: list[str]) -> Any:
    """A content item with its text redacted (`texts` gathers what the webhook rules are shown)."""
    if isinstance(item, types.TextContent):
        return item.model_copy(update={"text": _text(scan, item.text, texts)})
    if isinstance(item, types.EmbeddedResource):
        return item.model_copy(update={"resource": _resource(scan, item.resource, texts)})
    return item  # images, audio, resource links: no text


def _resource(scan: Scan, item: Any, texts: list[str]) -> Any:
    """Resource contents with their text redacted: a text, or a blob of a textual media type."""
    if isinstance(item, types.TextResourceContents):
        return item.model_copy(update={"text": _text(scan, item.text, texts)})
    if isinstance(item, types.BlobResourceContents):
        blob = rewrite_blob(item.blob, item.mime_type, lambda text: _text(scan, text, texts))
        return item if blob is item.blob else item.model_copy(update={"blob": blob})
    return item


def _text(scan: Scan, text: str, texts: list[str]) -> str:
    scanned = scan.text(text)
    texts.append(scanned)
    return scanned


async def check_resource(scan: Scan, result: types.ReadResourceResult) -> types.ReadResourceResult:
    """A resource read's contents redacted (texts, and blobs of a textual media type), then shown to the webhook
    rules; raises `GuardrailBlocked`. Other blobs pass unscanned. Audits what it found either way."""
    try:
        texts: list[str] = []
        contents = [_resource(scan, item, texts) for item in result.contents]
        await scan.remote({"contents": texts}, everything=True)
        return result.model_copy(update={"contents": contents})
    finally:
        scan.report()


async def check_prompt(scan: Scan, result: types.GetPromptResult) -> types.GetPromptResult:
    """A prompt's message texts (and embedded resources) redacted, then shown to the webhook rules; raises
    `GuardrailBlocked`. Its description is the server's own, listed text and is left alone. Audits either way."""
    try:
        texts: list[str] = []
        messages = [
            message.model_copy(update={"content": _content(scan, message.content, texts)})
            for message in result.messages
        ]
        await scan.remote({"messages": texts}, everything=True)
        return result.model_copy(update={"messages": messages})
    finally:
        scan.report()
