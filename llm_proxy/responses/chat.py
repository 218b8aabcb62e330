"""The Responses API in chat completions terms: a request as a chat body, a chat completion as a response object.

Both functions are pure (no I/O, no clock, no randomness but the ids of output items), so any code that runs in chat
format (translated providers, the agent loop) can serve the Responses API through them. Streams are translated by
`llm_proxy.responses.events.ChunksToResponseEvents`.

What maps to what:

- `instructions` -> a leading system message; items -> messages: `message` (roles `developer` and `system` become
  `system`; `input_text`/`output_text` parts -> `text` parts, `input_image` -> `image_url`), `function_call` items
  -> the `tool_calls` of one assistant message (consecutive ones, and the assistant text before them, merged),
  `function_call_output` -> a `tool` message; `reasoning` and `mcp_list_tools` items are dropped (chat has no place
  for them); the gateway's MCP items replay as the model saw them: `mcp_approval_request` -> an assistant tool call
  (named `<server>__<tool>`), `mcp_call` -> its call and a `tool` message with its output, a denied (or never
  answered) approval request -> a `tool` message saying so;
- function tools (flat `name`/`parameters`) -> chat's nested `function`; `tool_choice` likewise;
- `text.format` json_schema / json_object -> `response_format`; `reasoning.effort` -> `reasoning_effort`;
- `max_output_tokens` -> `max_completion_tokens`; `temperature`, `top_p`, `parallel_tool_calls`, `user` as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llm_proxy.agent.turns import TOOL_ERROR
from llm_proxy.responses.mcp import qualified
from llm_proxy.responses.shapes import (
    FUNCTION_CALL_PREFIX,
    MCP_APPROVAL_PREFIX,
    MESSAGE_PREFIX,
    finished,
    function_call_item,
    mcp_error_text,
    message_item,
    new_id,
    text_part,
)
from llm_proxy.wire.openai import response_usage_body
from toolpolicy.governor import Usage

_PASSED = ("temperature", "top_p", "user")
DENIED = "The user denied this tool call; it was not run."
UNANSWERED = "This tool call was not approved (no approval came); it was not run."


def request_to_chat(request: dict[str, Any], items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The chat completions body (without `model` and `stream`) for a Responses `request` given `items`.

    `items` are all the input items, a previous response's chain first (see `request.input_items`); the request's
    own `input` is not read. The request is assumed checked (`request.check_request`).
    """
    messages: list[dict[str, Any]] = []
    instructions = request.get("instructions")
    if instructions:
        messages.append({"role": "system", "content": instructions})
    for item in items:
        _add_item(messages, item)
    _answer_unanswered(messages)
    body: dict[str, Any] = {"messages": messages}
    for name in _PASSED:
        if request.get(name) is not None:
            body[name] = request[name]
    if request.get("max_output_tokens") is not None:
        body["max_completion_tokens"] = request["max_output_tokens"]
    tools = [_tool(tool) for tool in request.get("tools") or () if tool.get("type") == "function"]
    if tools:
        body["tools"] = tools
        if request.get("parallel_tool_calls") is not None:
            body["parallel_tool_calls"] = request["parallel_tool_calls"]
    choice = request.get("tool_choice")
    if isinstance(choice, dict):
        body["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif choice is not None:
        body["tool_choice"] = choice
    response_format = _response_format((request.get("text") or {}).get("format"))
    if response_format is not None:
        body["response_format"] = response_format
    effort = (request.get("reasoning") or {}).get("effort")
    if effort is not None:
        body["reasoning_effort"] = effort
    return body


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = {"name": tool["name"], "parameters": tool.get("parameters") or {"type": "object", "properties": {}}}
    if tool.get("description") is not None:
        function["description"] = tool["description"]
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _response_format(form: Any) -> dict[str, Any] | None:
    if not isinstance(form, dict) or form.get("type") not in ("json_object", "json_schema"):
        return None
    if form["type"] == "json_object":
        return {"type": "json_object"}
    spec = {"name": form.get("name"), "schema": form.get("schema")}
    for name in ("description", "strict"):
        if form.get(name) is not None:
            spec[name] = form[name]
    return {"type": "json_schema", "json_schema": spec}


def _add_item(messages: list[dict[str, Any]], item: dict[str, Any]) -> None:
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        content = _content(item.get("content"), assistant=role == "assistant")
        if role == "assistant":
            messages.append({"role": "assistant", "content": content})
        else:
            messages.append({"role": "system" if role in ("system", "developer") else "user", "content": content})
    elif kind == "function_call":
        _add_call(messages, item.get("call_id"), item.get("name"), item.get("arguments"))
    elif kind == "function_call_output":
        output = item.get("output")
        text = output if isinstance(output, str) else "".join(_part_texts(output))
        messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": text})
    elif kind in ("mcp_call", "mcp_approval_request", "mcp_approval_response"):
        _add_mcp_item(messages, item)


def _add_call(messages: list[dict[str, Any]], call_id: Any, name: Any, arguments: Any) -> None:
    """A tool call of the assistant: merged into the assistant message just before, if any."""
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments or ""}}
    last = messages[-1] if messages else None
    if last is not None and last.get("role") == "assistant" and not isinstance(last.get("content"), list):
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _add_mcp_item(messages: list[dict[str, Any]], item: dict[str, Any]) -> None:
    """The gateway's MCP items as the model saw them: an `mcp_approval_request` is the assistant's tool call (its
    id the call's id), an `mcp_call` the call (unless its approval request made it) and its result, a denied
    `mcp_approval_response` the result saying so. A result goes right after the call it answers."""
    kind = item["type"]
    if kind == "mcp_approval_response":
        if item.get("approve") is not True:
            _place_result(messages, str(item.get("approval_request_id")), f"{TOOL_ERROR} {DENIED}")
        return
    name = qualified(str(item.get("server_label")), str(item.get("name")))
    if kind == "mcp_approval_request":
        _add_call(messages, item.get("id"), name, item.get("arguments"))
        return
    call_id = str(item.get("approval_request_id") or item.get("id"))
    if _call_at(messages, call_id) is None:
        _add_call(messages, call_id, name, item.get("arguments"))
    error = item.get("error")
    text = str(item.get("output") or "") if error is None else f"{TOOL_ERROR} {mcp_error_text(error)}"
    _place_result(messages, call_id, text)


def _call_at(messages: list[dict[str, Any]], call_id: str) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        calls = messages[index].get("tool_calls") or ()
        if messages[index].get("role") == "assistant" and any(call.get("id") == call_id for call in calls):
            return index
    return None


def _place_result(messages: list[dict[str, Any]], call_id: str, text: str) -> None:
    at = _call_at(messages, call_id)
    if at is None:
        return  # nothing to answer: a chat model refuses a result without its call
    if any(m.get("role") == "tool" and m.get("tool_call_id") == call_id for m in messages[at + 1 :]):
        return
    end = at + 1
    while end < len(messages) and messages[end].get("role") == "tool":
        end += 1
    messages.insert(end, {"role": "tool", "tool_call_id": call_id, "content": text})


def _answer_unanswered(messages: list[dict[str, Any]]) -> None:
    """An approval request the client never answered gets a result saying so (a chat model needs one per call)."""
    for message in list(messages):
        for call in message.get("tool_calls") or () if message.get("role") == "assistant" else ():
            call_id = str(call.get("id"))
            if call_id.startswith(MCP_APPROVAL_PREFIX):
                _place_result(messages, call_id, f"{TOOL_ERROR} {UNANSWERED}")


def _part_texts(parts: Any) -> list[str]:
    return [str(part.get("text") or "") for part in parts or () if isinstance(part, dict)]


def _content(content: Any, *, assistant: bool) -> Any:
    """Chat content for message parts: plain text for the assistant (and text-only parts), parts when images come."""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    if assistant or all(part.get("type") != "input_image" for part in parts):
        return "".join(
            str(part.get("text") if part.get("type") != "refusal" else part.get("refusal") or "") for part in parts
        )
    converted: list[dict[str, Any]] = []
    for part in parts:
        if part.get("type") == "input_image":
            image = {"url": part["image_url"]}
            if part.get("detail") is not None:
                image["detail"] = part["detail"]
            converted.append({"type": "image_url", "image_url": image})
        else:
            converted.append({"type": "text", "text": str(part.get("text") or "")})
    return converted


def chat_output(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A chat completion's assistant message as Responses output items: its text (or refusal), then its calls."""
    output: list[dict[str, Any]] = []
    text, refusal = message.get("content"), message.get("refusal")
    if isinstance(text, str) and text:
        output.append(message_item(new_id(MESSAGE_PREFIX), [text_part(text)]))
    elif isinstance(refusal, str) and refusal:
        output.append(message_item(new_id(MESSAGE_PREFIX), [{"type": "refusal", "refusal": refusal}]))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        item_id = new_id(FUNCTION_CALL_PREFIX)
        call_id = str(call.get("id") or item_id)
        output.append(function_call_item(item_id, call_id, str(function.get("name")), function.get("arguments") or ""))
    return output


def completion_to_response(completion: dict[str, Any], skeleton: dict[str, Any], usage: Usage) -> dict[str, Any]:
    """The response object for a chat `completion` (its first choice), on `skeleton` (`shapes.response_object`).

    `usage` is the provider's, or the count made when it reported none.
    """
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    output = chat_output(choice.get("message") or {})
    response = {**skeleton, "output": output, "usage": usage_body(usage, completion.get("usage"))}
    if isinstance(completion.get("model"), str):
        response["model"] = completion["model"]
    return finished(response, choice.get("finish_reason"))


def usage_body(usage: Usage, reported: Any) -> dict[str, Any]:
    """A Responses `usage` object for `usage`, with the reasoning tokens a chat `usage` (`reported`) gave."""
    details = reported.get("completion_tokens_details") if isinstance(reported, dict) else None
    reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
    return response_usage_body(usage, reasoning_tokens=reasoning if isinstance(reasoning, int) else 0)
