"""OpenAI chat completions -> Anthropic Messages, and back: the `anthropic` provider serving OpenAI clients.

Also the Messages helpers both directions share (usage, stop reasons, data URLs). Fields of one API that the other
has no place for are dropped; fields neither API knows are passed on, so provider extensions survive. The opposite
direction is `anthropic_inbound`, streams are `anthropic_stream`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from llm_proxy.errors import UnsupportedByProvider
from llm_proxy.wire import openai, reasoning
from toolpolicy.errors import InvalidRequest
from toolpolicy.governor import Usage

DEFAULT_MAX_TOKENS = 4096
"""Anthropic requires `max_tokens`; OpenAI clients often omit it."""
JSON_TOOL = "json_response"
"""The tool forced to carry a JSON-mode answer on models without structured outputs."""
STRUCTURED_OUTPUTS_BETA = "structured-outputs-2025-11-13"
"""The `anthropic-beta` value that enables `output_format` (structured outputs)."""
_STRUCTURED_OUTPUT_MODELS = ("claude-sonnet-4-5", "claude-opus-4-1", "claude-opus-4-5", "claude-haiku-4-5")

STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# OpenAI fields translated below, or with no Anthropic counterpart; every other field is passed on as is.
_CHAT_FIELDS = frozenset(
    "model messages max_tokens max_completion_tokens stop temperature top_p tools tool_choice parallel_tool_calls "
    "user response_format stream stream_options n seed frequency_penalty presence_penalty logit_bias logprobs "
    "top_logprobs store metadata service_tier modalities audio prediction reasoning_effort web_search_options "
    "functions function_call verbosity prompt_cache_key safety_identifier fallbacks".split()
)


def usage_of(usage: Any) -> Usage | None:
    """Usage from an Anthropic `usage` object; cache reads and writes count as input."""
    if not isinstance(usage, dict) or not isinstance(usage.get("input_tokens"), int):
        return None
    cache_read = usage.get("cache_read_input_tokens") or 0
    cache_write = usage.get("cache_creation_input_tokens") or 0
    return Usage(
        tokens_in=usage["input_tokens"] + cache_read + cache_write,
        tokens_out=usage.get("output_tokens") or 0,
        cached_tokens=cache_read,
    )


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.tokens_in - usage.cached_tokens,
        "output_tokens": usage.tokens_out,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def parse_data_url(url: str, where: str) -> tuple[str, str]:
    """`data:<media type>;base64,<data>` -> (media type, data)."""
    header, sep, data = url.partition(",")
    if not sep or not header.startswith("data:") or not header.endswith(";base64"):
        raise InvalidRequest(f"{where}: a data URL must look like data:<media type>;base64,<data>", param=where)
    return header[5:-7], data


def _load_arguments(arguments: Any, where: str) -> Any:
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        return json.loads(arguments)
    except (TypeError, ValueError):
        raise InvalidRequest(f"{where}: tool call arguments are not valid JSON", param=where) from None


def require_list(body: dict[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    if not isinstance(value, list) or not value:
        raise InvalidRequest(f"'{name}' must be a non-empty array", param=name)
    return value


# --- OpenAI chat request -> Anthropic Messages request (the anthropic provider) --------------------------------


def _part_to_block(part: Any, where: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise InvalidRequest(f"{where}: a content part must be an object", param=where)
    kind = part.get("type")
    if kind == "text":
        block = {"type": "text", "text": str(part.get("text", ""))}
        if "cache_control" in part:
            block["cache_control"] = part["cache_control"]
        return block
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str):
            raise InvalidRequest(f"{where}: image_url needs a url", param=where)
        if url.startswith("data:"):
            media_type, data = parse_data_url(url, where)
            return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
        return {"type": "image", "source": {"type": "url", "url": url}}
    if kind == "file":
        file = part.get("file")
        data_url = file.get("file_data") if isinstance(file, dict) else None
        if isinstance(data_url, str):
            media_type, data = parse_data_url(data_url, where)
            return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}
    raise UnsupportedByProvider(f"{where}: content of type {kind!r} cannot be sent to an Anthropic model", param=where)


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list):
        return [_part_to_block(part, f"{where}[{index}]") for index, part in enumerate(content)]
    raise InvalidRequest(f"{where}: content must be a string or an array of parts", param=where)


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    # Anthropic wants user and assistant turns to alternate; consecutive turns of one role are merged.
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    result: dict[str, Any] | None
    if choice is None or choice == "auto":
        result = {"type": "auto"} if parallel is False else None
    elif choice == "none":
        result = {"type": "none"}
    elif choice == "required":
        result = {"type": "any"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        result = {"type": "tool", "name": choice["function"].get("name")}
    else:
        raise InvalidRequest("tool_choice must be auto, none, required or a function", param="tool_choice")
    if result is not None and parallel is False and result["type"] != "none":
        result["disable_parallel_tool_use"] = True
    return result


def has_structured_outputs(model: str) -> bool:
    """Whether Anthropic's API takes `output_format` (a JSON schema the answer is constrained to) for `model`."""
    return model.startswith(_STRUCTURED_OUTPUT_MODELS)


def chat_to_messages(
    body: dict[str, Any], model: str, *, structured_outputs: bool = False, thinks: bool = True
) -> tuple[dict[str, Any], str | None]:
    """An Anthropic Messages request for an OpenAI chat request; also the name of the JSON-mode tool, if any.

    `response_format: json_schema` becomes `output_format` when `structured_outputs` (the caller adds the beta
    header), and a forced tool otherwise. `reasoning_effort` becomes a thinking budget when the model `thinks`.
    """
    if body.get("n") not in (None, 1):
        raise UnsupportedByProvider("Anthropic models return one choice: n must be 1", param="n")
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for index, message in enumerate(require_list(body, "messages")):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where} must be an object", param=where)
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_blocks(message.get("content"), f"{where}.content"))
        elif role == "user":
            _append(messages, "user", _blocks(message.get("content"), f"{where}.content"))
        elif role == "assistant":
            blocks = _blocks(message.get("content"), f"{where}.content")
            for number, call in enumerate(message.get("tool_calls") or ()):
                function = call.get("function") or {}
                arguments = _load_arguments(function.get("arguments"), f"{where}.tool_calls[{number}]")
                blocks.append(
                    {"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": arguments}
                )
            _append(messages, "assistant", blocks)
        elif role == "tool":
            content = message.get("content")
            result = content if isinstance(content, str) else _blocks(content, f"{where}.content")
            block = {"type": "tool_result", "tool_use_id": message.get("tool_call_id"), "content": result}
            _append(messages, "user", [block])
        else:
            raise InvalidRequest(f"{where}.role: unknown role {role!r}", param=f"{where}.role")
    requested = body.get("max_completion_tokens") or body.get("max_tokens")
    out: dict[str, Any] = {"model": model, "max_tokens": requested or DEFAULT_MAX_TOKENS, "messages": messages}
    effort = reasoning.effort_of(body)
    thinking = None
    if effort is not None and thinks:
        limit = requested if isinstance(requested, int) else None
        thinking, out["max_tokens"] = reasoning.anthropic_thinking(effort, limit, DEFAULT_MAX_TOKENS)
        if thinking is not None:
            out["thinking"] = thinking
    if system:
        plain = all(set(block) == {"type", "text"} for block in system)
        out["system"] = "\n\n".join(block["text"] for block in system) if plain else system
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    tools = [_tool(tool) for tool in body.get("tools") or ()]
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    json_tool = None
    response_format = body.get("response_format")
    format_type = response_format.get("type") if isinstance(response_format, dict) else None
    if structured_outputs and isinstance(response_format, dict) and format_type == "json_schema":
        schema_spec = response_format.get("json_schema")
        schema_body = schema_spec.get("schema") if isinstance(schema_spec, dict) else None
        if not isinstance(schema_body, dict):
            raise InvalidRequest("response_format.json_schema needs a 'schema' object", param="response_format")
        out["output_format"] = {"type": "json_schema", "schema": schema_body}
    elif isinstance(response_format, dict) and format_type in ("json_object", "json_schema"):
        if thinking is not None:
            # Extended thinking refuses a forced tool choice, which is how JSON mode is carried here.
            raise UnsupportedByProvider(
                f"{model}: JSON mode cannot be combined with reasoning_effort on this model", param="response_format"
            )
        schema: Any = {"type": "object"}
        if response_format["type"] == "json_schema":
            spec = response_format.get("json_schema") or {}
            schema = spec.get("schema") or schema
        json_tool = JSON_TOOL
        tools.append(
            {"name": JSON_TOOL, "description": "Give the answer as this tool's input.", "input_schema": schema}
        )
        choice = {"type": "tool", "name": JSON_TOOL}
    if tools:
        out["tools"] = tools
    if choice is not None:
        out["tool_choice"] = choice
    if body.get("stream"):
        out["stream"] = True
    out.update({name: value for name, value in body.items() if name not in _CHAT_FIELDS})
    return out, json_tool


def _tool(tool: Any) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or not function.get("name"):
        raise InvalidRequest("each tool must be {type: function, function: {name, parameters}}", param="tools")
    result: dict[str, Any] = {
        "name": function["name"],
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        result["description"] = function["description"]
    return result


def message_to_completion(
    message: dict[str, Any], json_tool: str | None, *, created: int | None = None
) -> dict[str, Any]:
    """An OpenAI chat completion for an Anthropic message."""
    text: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text", ""))
        elif kind == "thinking":
            reasoning.append(block.get("thinking", ""))
        elif kind == "tool_use" and block.get("name") == json_tool:
            text.append(json.dumps(block.get("input"), ensure_ascii=False))
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not tool_calls else None}
    if tool_calls:
        reply["tool_calls"] = tool_calls
    if reasoning:
        reply["reasoning_content"] = "".join(reasoning)
    reply["refusal"] = None
    finish = "stop" if json_tool and not tool_calls else STOP_TO_FINISH.get(message.get("stop_reason") or "", "stop")
    choice = {"index": 0, "message": reply, "logprobs": None, "finish_reason": finish}
    return openai.completion(
        str(message.get("id") or f"msg_{uuid.uuid4().hex}"),
        str(message.get("model") or ""),
        [choice],
        usage_of(message.get("usage")),
        created=created,
    )
