"""MCP `sampling/createMessage` to an OpenAI chat completion and back, for gateway-served sampling.

What crosses, request side:
- `messages`: text and image content (several blocks per message become a content-part list); audio, tool use and
  tool results are refused (-32602), since the gateway serves sampling without tools;
- `systemPrompt` becomes the leading system message; `maxTokens` is lowered to the server's configured
  `max_tokens`; `temperature` and `stopSequences` (as `stop`) pass through;
- `modelPreferences` is ignored: the server's configured model answers, whatever the upstream hints at;
  `includeContext` and `metadata` are ignored too (the hub has no conversation of its own to include).

Answer side: the first choice's text, the model that answered (`provider/model`), and `stopReason` from
`finish_reason` (`stop` is `endTurn`, `length` is `maxTokens`, `tool_calls` is `toolUse`, anything else as it is).
"""

from __future__ import annotations

from typing import Any

import mcp_types as types

STOP_REASONS = {"stop": "endTurn", "length": "maxTokens", "tool_calls": "toolUse"}


class Untranslatable(ValueError):
    """A sampling request the gateway cannot put to a chat model; the message says what and where."""


def chat_body(params: types.CreateMessageRequestParams, max_tokens: int) -> dict[str, Any]:
    """The chat completion body (without `model`) asking what `params` asks, with at most `max_tokens` output."""
    if params.tools:
        raise Untranslatable("the gateway serves sampling without tools; this request carries tools")
    messages: list[dict[str, Any]] = []
    if params.system_prompt:
        messages.append({"role": "system", "content": params.system_prompt})
    for index, message in enumerate(params.messages):
        messages.append({"role": message.role, "content": _content(message.content, f"messages[{index}]")})
    if not messages:
        raise Untranslatable("the sampling request has no messages")
    body: dict[str, Any] = {"messages": messages, "max_tokens": min(params.max_tokens, max_tokens)}
    if params.temperature is not None:
        body["temperature"] = params.temperature
    if params.stop_sequences:
        body["stop"] = list(params.stop_sequences)
    return body


def _content(content: Any, where: str) -> str | list[dict[str, Any]]:
    blocks = content if isinstance(content, list) else [content]
    parts = [_part(block, f"{where}.content") for block in blocks]
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    return parts


def _part(block: Any, where: str) -> dict[str, Any]:
    if isinstance(block, types.TextContent):
        return {"type": "text", "text": block.text}
    if isinstance(block, types.ImageContent):
        return {"type": "image_url", "image_url": {"url": f"data:{block.mime_type};base64,{block.data}"}}
    kind = getattr(block, "type", type(block).__name__)
    raise Untranslatable(f"{where}: {kind} content is not served by the gateway's sampling (text and image are)")


def create_message_result(completion: dict[str, Any], model: str) -> types.CreateMessageResult:
    """The MCP result of a chat completion answered by `model` (`provider/model`)."""
    choices = completion.get("choices")
    first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = first.get("message") if isinstance(first.get("message"), dict) else {}
    text = message.get("content") if isinstance(message, dict) else None
    finish = first.get("finish_reason")
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=text if isinstance(text, str) else ""),
        model=model,
        stop_reason=STOP_REASONS.get(finish, finish) if isinstance(finish, str) else None,
    )
