"""Responses API wire shapes built by the gateway: ids, the response object, output items, usage.

Ids are minted as OpenAI mints them: a type prefix (`resp_`, `msg_`, `fc_`, `mcpl_`, `mcp_`, `mcpr_`) and 48 random
hex digits.
"""

from __future__ import annotations

import secrets
from typing import Any

from llm_proxy.wire.openai import response_usage_body
from toolpolicy.governor import Usage

RESPONSE_PREFIX = "resp_"
MESSAGE_PREFIX = "msg_"
FUNCTION_CALL_PREFIX = "fc_"
FUNCTION_OUTPUT_PREFIX = "fco_"
MCP_LIST_PREFIX = "mcpl_"
MCP_CALL_PREFIX = "mcp_"
MCP_APPROVAL_PREFIX = "mcpr_"
MCP_APPROVAL_RESPONSE_PREFIX = "mcpa_"

_DEFAULTS: dict[str, Any] = {
    "instructions": None,
    "max_output_tokens": None,
    "metadata": {},
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "reasoning": {"effort": None, "summary": None},
    "store": True,
    "temperature": 1.0,
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "tools": [],
    "top_p": 1.0,
    "truncation": "disabled",
    "user": None,
}
"""The request fields a response object echoes, with OpenAI's values for a request that left them out."""


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(24)


def response_object(
    request: dict[str, Any],
    *,
    response_id: str,
    created_at: int,
    model: str,
    status: str = "in_progress",
    output: list[dict[str, Any]] | None = None,
    usage: Usage | None = None,
) -> dict[str, Any]:
    """A response object for `request`: its echoed fields, then the answer's status, output and usage."""
    body: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "model": model,
        "output": list(output or []),
    }
    for name, default in _DEFAULTS.items():
        value = request.get(name)
        body[name] = default if value is None else value
    body["usage"] = response_usage_body(usage) if usage is not None else None
    return body


def finished(response: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    """`response` with the status a chat `finish_reason` means: `length` and `content_filter` are incomplete."""
    if finish_reason == "length":
        return {**response, "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}
    if finish_reason == "content_filter":
        return {**response, "status": "incomplete", "incomplete_details": {"reason": "content_filter"}}
    return {**response, "status": "completed"}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, parts: list[dict[str, Any]], status: str = "completed") -> dict[str, Any]:
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": parts}


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def mcp_list_tools_item(item_id: str, server_label: str, tools: list[dict[str, Any]]) -> dict[str, Any]:
    """`tools`: `{name, input_schema, description, annotations}` each, named as the server names them."""
    return {"id": item_id, "type": "mcp_list_tools", "server_label": server_label, "tools": tools, "error": None}


def mcp_call_item(
    item_id: str,
    server_label: str,
    name: str,
    arguments: str,
    *,
    output: str | None = None,
    error: str | None = None,
    status: str = "completed",
    approval_request_id: str | None = None,
) -> dict[str, Any]:
    """A call the gateway made; `error` (the tool's error text) makes it `failed`, in the SDK's error shape."""
    failure = None if error is None else {"type": "mcp_tool_execution_error", "content": [text_content(error)]}
    return {
        "id": item_id,
        "type": "mcp_call",
        "server_label": server_label,
        "name": name,
        "arguments": arguments,
        "output": output,
        "error": failure,
        "status": "failed" if error is not None else status,
        "approval_request_id": approval_request_id,
    }


def mcp_approval_request_item(item_id: str, server_label: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "mcp_approval_request",
        "server_label": server_label,
        "name": name,
        "arguments": arguments,
    }


def text_content(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def mcp_error_text(error: Any) -> str:
    """The text of an `mcp_call` item's `error` (the SDK's object, or a plain string as older clients send)."""
    if isinstance(error, str):
        return error
    if not isinstance(error, dict):
        return "the tool failed"
    content = error.get("content")
    if isinstance(content, list):
        return "\n".join(str(part.get("text") or "") for part in content if isinstance(part, dict))
    return str(error.get("message") or content or "the tool failed")
