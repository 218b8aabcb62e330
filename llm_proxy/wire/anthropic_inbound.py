"""Anthropic Messages -> OpenAI chat completions, and back: `/v1/messages` served by providers that speak chat.

Anthropic fields with no OpenAI counterpart (`top_k`, server tools' settings) are dropped; `thinking` becomes the
nearest `reasoning_effort`, and reasoning content comes back as thinking blocks (without signatures) when the
request asked for thinking. Fields neither API knows are passed on. Thinking blocks of earlier assistant turns are
dropped: other providers cannot verify their signatures.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from llm_proxy.errors import UnsupportedByProvider, UpstreamBadResponse
from llm_proxy.wire import openai, reasoning
from llm_proxy.wire.anthropic import FINISH_TO_STOP, require_list, usage_body
from toolpolicy.errors import InvalidRequest
from toolpolicy.governor import Usage

# Anthropic fields translated below, or with no OpenAI counterpart.
_MESSAGES_FIELDS = frozenset(
    "model messages system max_tokens stop_sequences temperature top_p top_k tools tool_choice metadata stream "
    "thinking service_tier container mcp_servers context_management fallbacks".split()
)


def _text(block: dict[str, Any], where: str) -> str:
    text = block.get("text", "")
    if not isinstance(text, str):
        raise InvalidRequest(f"{where}.text must be a string", param=f"{where}.text")
    return text


def _block_to_part(block: Any, where: str) -> dict[str, Any]:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        return {"type": "text", "text": _text(block, where)}
    if kind in ("image", "document"):
        source = block.get("source")
        if not isinstance(source, dict):
            raise InvalidRequest(f"{where}.source must be an object", param=f"{where}.source")
        if source.get("type") == "base64":
            url = f"data:{source.get('media_type')};base64,{source.get('data')}"
            if kind == "image":
                return {"type": "image_url", "image_url": {"url": url}}
            return {"type": "file", "file": {"file_data": url, "filename": block.get("title") or "document"}}
        if source.get("type") == "url" and kind == "image":
            return {"type": "image_url", "image_url": {"url": source.get("url")}}
    raise UnsupportedByProvider(f"{where}: a {kind!r} block cannot be sent to this provider", param=where)


def _parts(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}: content must be a string or an array of blocks", param=where)
    parts = [_block_to_part(block, f"{where}[{index}]") for index, block in enumerate(content)]
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    return parts


def messages_to_chat(body: dict[str, Any], model: str) -> dict[str, Any]:
    """An OpenAI chat request for an Anthropic Messages request."""
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _parts(system, "system")})
    for index, message in enumerate(require_list(body, "messages")):
        where = f"messages[{index}]"
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise InvalidRequest(f"{where}: role must be 'user' or 'assistant'", param=f"{where}.role")
        content = message.get("content")
        if not isinstance(content, str | list):
            raise InvalidRequest(f"{where}.content must be a string or an array of blocks", param=f"{where}.content")
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
        if message["role"] == "assistant":
            messages.append(_assistant_message(blocks, where))
            continue
        rest: list[Any] = []
        for number, block in enumerate(blocks):
            if isinstance(block, dict) and block.get("type") == "tool_result":
                result = block.get("content")
                text = _parts(result, f"{where}.content[{number}].content") if result is not None else ""
                if block.get("is_error") and isinstance(text, str):
                    text = f"Error: {text}"
                messages.append({"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text})
            else:
                rest.append(block)
        if rest:
            messages.append({"role": "user", "content": _parts(rest, f"{where}.content")})
    out: dict[str, Any] = {"model": model, "messages": messages}
    if body.get("max_tokens") is not None:
        out["max_tokens"] = body["max_tokens"]
    if body.get("stop_sequences"):
        out["stop"] = body["stop_sequences"]
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    metadata = body.get("metadata")
    user = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user, str):
        out["user"] = user
    if body.get("tools"):
        out["tools"] = [_function(tool, index) for index, tool in enumerate(body["tools"])]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        mapping = {"auto": "auto", "any": "required", "none": "none"}
        kind = str(choice.get("type"))
        out["tool_choice"] = (
            {"type": "function", "function": {"name": choice.get("name")}}
            if kind == "tool"
            else mapping.get(kind, "auto")
        )
        if choice.get("disable_parallel_tool_use"):
            out["parallel_tool_calls"] = False
    effort = reasoning.effort_for_budget(body.get("thinking"))
    if effort is not None:
        out["reasoning_effort"] = effort
    if body.get("stream"):
        out["stream"] = True
    out.update({name: value for name, value in body.items() if name not in _MESSAGES_FIELDS})
    return out


def wants_thinking(body: dict[str, Any]) -> bool:
    """Whether a Messages request enabled extended thinking."""
    return reasoning.effort_for_budget(body.get("thinking")) not in (None, "none")


def _assistant_message(blocks: list[Any], where: str) -> dict[str, Any]:
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for number, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            text.append(_text(block, f"{where}.content[{number}]"))
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
        elif kind not in ("thinking", "redacted_thinking"):
            raise UnsupportedByProvider(f"{where}: a {kind!r} block cannot be sent to this provider", param=where)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _function(tool: Any, index: int) -> dict[str, Any]:
    if not isinstance(tool, dict) or not tool.get("name") or "input_schema" not in tool:
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise UnsupportedByProvider(f"tools[{index}]: only custom tools with an input_schema work here ({kind!r})")
    function: dict[str, Any] = {"name": tool["name"], "parameters": tool["input_schema"]}
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def completion_to_message(completion: dict[str, Any], model: str, *, thinking: bool = False) -> dict[str, Any]:
    """An Anthropic message for an OpenAI chat completion (its first choice); its reasoning content as a thinking
    block when the request asked for `thinking`."""
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamBadResponse("the provider answered a completion without choices")
    choice = choices[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if thinking and message.get("reasoning_content"):
        content.append({"type": "thinking", "thinking": message["reasoning_content"], "signature": ""})
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except ValueError:
            arguments = {"_raw_arguments": function.get("arguments")}
        content.append({"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": arguments})
    usage = openai.usage_of(completion.get("usage")) or Usage()
    raw_id = str(completion.get("id") or uuid.uuid4().hex)
    return {
        "id": raw_id if raw_id.startswith("msg_") else f"msg_{raw_id}",
        "type": "message",
        "role": "assistant",
        "model": completion.get("model") or model,
        "content": content,
        "stop_reason": FINISH_TO_STOP.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": usage_body(usage),
    }
