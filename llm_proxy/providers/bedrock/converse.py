"""OpenAI chat completions <-> Bedrock Converse, through the Anthropic Messages shapes the proxy already speaks.

Converse is Anthropic's Messages API in other words (content blocks, `toolUse`/`toolResult`, the same stop reasons),
so a chat request becomes a Messages request (`wire.anthropic`: roles merged, tools, tool choice, JSON mode as a
forced tool), then Converse; and a Converse answer becomes an Anthropic message, then a chat completion. Converse
fields in the chat body (`additionalModelRequestFields`, `guardrailConfig`, ...) pass through; any other field the
chat API does not know goes into `additionalModelRequestFields`, where model-specific parameters (`top_k`) belong.
"""

from __future__ import annotations

import uuid
from typing import Any

from llm_proxy.errors import UnsupportedByProvider
from llm_proxy.wire import anthropic
from toolpolicy.errors import InvalidRequest

CONVERSE_FIELDS = frozenset(
    {
        "additionalModelRequestFields",
        "additionalModelResponseFieldPaths",
        "guardrailConfig",
        "performanceConfig",
        "promptVariables",
        "requestMetadata",
    }
)
_TRANSLATED = frozenset(
    {"model", "max_tokens", "messages", "system", "stop_sequences", "temperature", "top_p", "thinking"}
)
_DROPPED = frozenset({"tools", "tool_choice", "metadata", "stream"})
IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
DOCUMENT_FORMATS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
}
STOP_REASONS = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "model_context_window_exceeded": "model_context_window_exceeded",
    "guardrail_intervened": "refusal",
    "content_filtered": "refusal",
}
"""Converse `stopReason` -> Anthropic `stop_reason` (which `wire.anthropic` maps to OpenAI's `finish_reason`)."""


def chat_to_converse(body: dict[str, Any], model: str) -> tuple[dict[str, Any], str | None]:
    """A Converse request for an OpenAI chat request (the model goes in the URL); also the JSON-mode tool's name."""
    if body.get("n") not in (None, 1):
        raise UnsupportedByProvider("Bedrock's Converse API returns one choice: n must be 1", param="n")
    # Claude's extended thinking for `reasoning_effort` (`wire.reasoning`); other models take no such field.
    request, json_tool = anthropic.chat_to_messages(body, model, thinks=is_claude(model))
    out: dict[str, Any] = {"messages": [_message(m, f"messages[{i}]") for i, m in enumerate(request["messages"])]}
    system = request.get("system")
    if system:
        out["system"] = _system(system)
    config: dict[str, Any] = {}
    # With thinking, Messages' max_tokens leaves the answer room above the budget when the client set no limit.
    max_tokens = (
        request["max_tokens"] if "thinking" in request else body.get("max_completion_tokens") or body.get("max_tokens")
    )
    if max_tokens:
        config["maxTokens"] = max_tokens
    for name, converse in (("temperature", "temperature"), ("top_p", "topP"), ("stop_sequences", "stopSequences")):
        if request.get(name) is not None:
            config[converse] = request[name]
    if config:
        out["inferenceConfig"] = config
    tool_config = _tool_config(request.get("tools") or [], request.get("tool_choice"), out["messages"])
    if tool_config:
        out["toolConfig"] = tool_config
    extra: dict[str, Any] = {}
    for name, value in request.items():
        if name in CONVERSE_FIELDS:
            out[name] = value
        elif name not in _TRANSLATED and name not in _DROPPED:
            extra[name] = value
    if "thinking" in request:
        extra["thinking"] = request["thinking"]
    if extra:
        out["additionalModelRequestFields"] = {**extra, **(out.get("additionalModelRequestFields") or {})}
    return out, json_tool


def _system(system: Any) -> list[dict[str, Any]]:
    if isinstance(system, str):
        return [{"text": system}]
    blocks: list[dict[str, Any]] = []
    for block in system:
        blocks.append({"text": block["text"]})
        if "cache_control" in block:
            blocks.append({"cachePoint": {"type": "default"}})
    return blocks


def _message(message: dict[str, Any], where: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for index, block in enumerate(message["content"]):
        content += _block(block, f"{where}.content[{index}]")
    if not content:
        raise InvalidRequest(f"{where}: Bedrock needs content in every message", param=where)
    return {"role": message["role"], "content": content}


def _block(block: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """One Anthropic content block as Converse blocks: a `cache_control` mark becomes a cache point after it."""
    kind = block.get("type")
    if kind == "text":
        if not block.get("text"):
            return []  # Converse refuses blank text blocks
        converted: dict[str, Any] = {"text": block["text"]}
    elif kind in ("image", "document"):
        converted = _media(block, where)
    elif kind == "tool_use":
        tool_use = {"toolUseId": block.get("id"), "name": block.get("name"), "input": block.get("input") or {}}
        converted = {"toolUse": tool_use}
    elif kind == "tool_result":
        converted = {"toolResult": _tool_result(block, where)}
    else:
        raise UnsupportedByProvider(f"{where}: content of type {kind!r} cannot be sent to Bedrock", param=where)
    return [converted, {"cachePoint": {"type": "default"}}] if "cache_control" in block else [converted]


def _media(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source") or {}
    if source.get("type") != "base64":
        raise UnsupportedByProvider(
            f"{where}: Bedrock takes images and documents inline: send a data URL (data:<type>;base64,...)",
            param=where,
        )
    media_type = str(source.get("media_type")).lower()
    if block["type"] == "image":
        image_format = IMAGE_FORMATS.get(media_type)
        if image_format is None:
            raise UnsupportedByProvider(f"{where}: Bedrock takes png, jpeg, gif or webp images, not {media_type}")
        return {"image": {"format": image_format, "source": {"bytes": source.get("data")}}}
    document_format = DOCUMENT_FORMATS.get(media_type)
    if document_format is None:
        raise UnsupportedByProvider(f"{where}: Bedrock cannot read documents of type {media_type}", param=where)
    # Converse requires a name per document; it is shown to the model, so a neutral one.
    name = f"document-{where.replace('.', '-').replace('[', '-').replace(']', '')}"
    return {"document": {"format": document_format, "name": name, "source": {"bytes": source.get("data")}}}


def _tool_result(block: dict[str, Any], where: str) -> dict[str, Any]:
    content = block.get("content")
    if isinstance(content, str):
        parts = [{"text": content or " "}]
    else:
        parts = [part for index, inner in enumerate(content or ()) for part in _block(inner, f"{where}[{index}]")]
    result: dict[str, Any] = {"toolUseId": block.get("tool_use_id"), "content": parts or [{"text": " "}]}
    if block.get("is_error"):
        result["status"] = "error"
    return result


def _tool_config(
    tools: list[dict[str, Any]], choice: dict[str, Any] | None, messages: list[dict[str, Any]]
) -> dict[str, Any] | None:
    specs = [{"toolSpec": _spec(tool)} for tool in tools]
    kind = (choice or {}).get("type")
    if kind == "none":
        # Converse has no "none": leave the tools out, unless the conversation already used them (Bedrock then
        # requires the tool config), in which case the model may still choose.
        used = any("toolUse" in block or "toolResult" in block for m in messages for block in m["content"])
        return {"tools": specs} if specs and used else None
    if not specs:
        return None
    config: dict[str, Any] = {"tools": specs}
    if kind == "any":
        config["toolChoice"] = {"any": {}}
    elif kind == "tool":
        config["toolChoice"] = {"tool": {"name": choice.get("name") if choice else None}}
    elif kind == "auto":
        config["toolChoice"] = {"auto": {}}
    return config


def _spec(tool: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": tool["name"], "inputSchema": {"json": tool["input_schema"]}}
    if tool.get("description"):
        spec["description"] = tool["description"]
    return spec


def is_claude(model: str) -> bool:
    """Whether a Bedrock model id (or inference profile, or ARN naming one) is an Anthropic Claude model."""
    return "anthropic.claude" in model


def converse_to_message(response: dict[str, Any], model: str) -> dict[str, Any]:
    """An Anthropic message for a Converse answer."""
    message = (response.get("output") or {}).get("message") or {}
    content: list[dict[str, Any]] = []
    for block in message.get("content") or ():
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            content.append({"type": "text", "text": block["text"]})
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            content.append(
                {"type": "tool_use", "id": use.get("toolUseId"), "name": use.get("name"), "input": use.get("input")}
            )
        elif isinstance(block.get("reasoningContent"), dict):
            text = (block["reasoningContent"].get("reasoningText") or {}).get("text")
            if isinstance(text, str):
                content.append({"type": "thinking", "thinking": text})
    return {
        "id": f"msg_bdrk_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS.get(str(response.get("stopReason")), "end_turn"),
        "usage": usage(response.get("usage")),
    }


def usage(converse: Any) -> dict[str, Any] | None:
    """Converse `usage` as an Anthropic one (input tokens exclude cache reads and writes in both)."""
    if not isinstance(converse, dict) or not isinstance(converse.get("inputTokens"), int):
        return None
    return {
        "input_tokens": converse["inputTokens"],
        "output_tokens": converse.get("outputTokens") or 0,
        "cache_read_input_tokens": converse.get("cacheReadInputTokens") or 0,
        "cache_creation_input_tokens": converse.get("cacheWriteInputTokens") or 0,
    }
