"""A Responses API request checked at the edge, and its `input` as a list of items.

`check_request` refuses, naming the param, what the gateway cannot serve or the request gets wrong; it runs before
admission, so a malformed request costs no rate limit. `input_items` turns `input` (text or items) into the list of
items that is stored and listed by `GET /v1/responses/{id}/input_items`, as OpenAI lists them: each with an id, and
a message's text content as one `input_text` (or, for the assistant, `output_text`) part.
"""

from __future__ import annotations

from typing import Any

from llm_proxy.responses import mcp
from llm_proxy.responses.shapes import (
    FUNCTION_CALL_PREFIX,
    FUNCTION_OUTPUT_PREFIX,
    MCP_APPROVAL_RESPONSE_PREFIX,
    MESSAGE_PREFIX,
    new_id,
)
from toolpolicy.errors import InvalidRequest

MAX_ITEMS = 10_000
"""The most input items one response may be given, a previous response's chain included."""
MAX_ID_LENGTH = 64
MAX_METADATA_PAIRS = 16
"""OpenAI's limits on `metadata`: 16 pairs, keys up to 64 characters, values up to 512."""
INPUT_ROLES = frozenset({"user", "system", "developer", "assistant"})
CONTENT_PARTS = frozenset({"input_text", "input_image", "output_text", "refusal"})
ITEM_TYPES = frozenset(
    {
        "message",
        "function_call",
        "function_call_output",
        "reasoning",
        "mcp_list_tools",
        "mcp_call",
        "mcp_approval_request",
        "mcp_approval_response",
    }
)
UNSUPPORTED = ("conversation", "prompt", "background")
"""Request fields that need state or features the gateway does not have; refused rather than ignored."""


def _fail(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def _number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise _fail(f"'{name}' must be a number from {low:g} to {high:g}", name)


def _flag(body: dict[str, Any], name: str) -> None:
    if body.get(name) is not None and not isinstance(body[name], bool):
        raise _fail(f"'{name}' must be true or false", name)


def max_output_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("max_output_tokens")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _fail("'max_output_tokens' must be a positive integer", "max_output_tokens")
    return value


def previous_response_id(body: dict[str, Any]) -> str | None:
    value = body.get("previous_response_id")
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise _fail(
            f"'previous_response_id' must be a response id (at most {MAX_ID_LENGTH} characters)", "previous_response_id"
        )
    return value


def stores(body: dict[str, Any]) -> bool:
    """Whether the response is to be stored (`store`, default true)."""
    return body.get("store") is not False


def check_request(body: dict[str, Any]) -> None:
    """Raise InvalidRequest naming the first param the gateway cannot accept."""
    for name in UNSUPPORTED:
        if body.get(name) not in (None, False):
            raise _fail(f"'{name}' is not supported by this gateway", name)
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise _fail("'instructions' must be a string", "instructions")
    for name in ("stream", "store", "parallel_tool_calls"):
        _flag(body, name)
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    max_output_tokens(body)
    previous_response_id(body)
    _check_metadata(body.get("metadata"))
    _check_tools(body.get("tools"))
    _check_tool_choice(body.get("tool_choice"))
    _check_text(body.get("text"))
    reasoning = body.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, dict):
        raise _fail('\'reasoning\' must be an object such as {"effort": "low"}', "reasoning")


def _check_metadata(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or len(value) > MAX_METADATA_PAIRS:
        raise _fail(f"'metadata' must be an object of at most {MAX_METADATA_PAIRS} string pairs", "metadata")
    for key, item in value.items():
        if len(key) > 64 or not isinstance(item, str) or len(item) > 512:
            raise _fail("'metadata' keys are at most 64 characters, values strings of at most 512", f"metadata.{key}")


def _check_tools(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        raise _fail("'tools' must be an array", "tools")
    for index, tool in enumerate(value):
        if not isinstance(tool, dict):
            raise _fail(f"tools[{index}] must be an object", f"tools[{index}]")
        if tool.get("type") == "mcp":
            mcp.parse(tool, index)
            continue
        if tool.get("type") != "function":
            raise _fail(
                f"tools[{index}]: only function and mcp tools are supported, not {tool.get('type')!r}",
                f"tools[{index}].type",
            )
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise _fail(f"tools[{index}] needs a 'name'", f"tools[{index}].name")
        parameters = tool.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise _fail(f"tools[{index}].parameters must be a JSON schema object", f"tools[{index}].parameters")


def _check_tool_choice(value: Any) -> None:
    if value is None or value in ("auto", "none", "required"):
        return
    if isinstance(value, dict) and value.get("type") == "function" and isinstance(value.get("name"), str):
        return
    raise _fail(
        "'tool_choice' must be 'auto', 'none', 'required' or {\"type\": \"function\", \"name\": ...}", "tool_choice"
    )


def _check_text(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise _fail("'text' must be an object", "text")
    form = value.get("format")
    if form is None:
        return
    kind = form.get("type") if isinstance(form, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise _fail("'text.format.type' must be 'text', 'json_object' or 'json_schema'", "text.format.type")
    if kind == "json_schema":
        assert isinstance(form, dict)
        if not isinstance(form.get("name"), str) or not form["name"]:
            raise _fail("a json_schema format needs a 'name'", "text.format.name")
        if not isinstance(form.get("schema"), dict):
            raise _fail("a json_schema format needs a 'schema' object", "text.format.schema")


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """`input` as items, each with an id: text becomes one user message; items are checked and copied."""
    value = body.get("input")
    if isinstance(value, str):
        if not value:
            raise _fail("'input' must be a non-empty string or array of items", "input")
        content = [{"type": "input_text", "text": value}]
        return [{"id": new_id(MESSAGE_PREFIX), "type": "message", "role": "user", "content": content}]
    if not isinstance(value, list) or not value:
        raise _fail("'input' must be a non-empty string or array of items", "input")
    if len(value) > MAX_ITEMS:
        raise _fail(f"'input' has more than {MAX_ITEMS} items", "input")
    return [_item(item, f"input[{index}]") for index, item in enumerate(value)]


def _item(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise _fail(f"{where} must be an object", where)
    kind = item.get("type", "message" if "role" in item else None)
    if kind not in ITEM_TYPES:
        raise _fail(f"{where}: items of type {kind!r} are not supported", f"{where}.type")
    copied = {**item, "type": kind}
    if kind == "message":
        _check_message(copied, where)
        if isinstance(copied["content"], str):
            part = "output_text" if copied["role"] == "assistant" else "input_text"
            copied["content"] = [{"type": part, "text": copied["content"]}]
        copied.setdefault("id", new_id(MESSAGE_PREFIX))
    elif kind == "function_call":
        for name in ("call_id", "name", "arguments"):
            if not isinstance(item.get(name), str):
                raise _fail(f"{where}.{name} must be a string", f"{where}.{name}")
        copied.setdefault("id", new_id(FUNCTION_CALL_PREFIX))
    elif kind == "function_call_output":
        if not isinstance(item.get("call_id"), str):
            raise _fail(f"{where}.call_id must be a string", f"{where}.call_id")
        if not isinstance(item.get("output"), str | list):
            raise _fail(f"{where}.output must be a string or an array of parts", f"{where}.output")
        copied.setdefault("id", new_id(FUNCTION_OUTPUT_PREFIX))
    elif kind == "mcp_approval_response":
        if not isinstance(item.get("approval_request_id"), str):
            raise _fail(f"{where}.approval_request_id must be a string", f"{where}.approval_request_id")
        if not isinstance(item.get("approve"), bool):
            raise _fail(f"{where}.approve must be true or false", f"{where}.approve")
        copied.setdefault("id", new_id(MCP_APPROVAL_RESPONSE_PREFIX))
    elif kind in ("mcp_call", "mcp_approval_request", "mcp_list_tools"):
        names = ("server_label",) if kind == "mcp_list_tools" else ("id", "server_label", "name", "arguments")
        for name in names:
            if not isinstance(item.get(name), str):
                raise _fail(f"{where}.{name} must be a string", f"{where}.{name}")
    return copied


def _check_message(item: dict[str, Any], where: str) -> None:
    if item.get("role") not in INPUT_ROLES:
        raise _fail(f"{where}.role must be one of {sorted(INPUT_ROLES)}", f"{where}.role")
    content = item.get("content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _fail(f"{where}.content must be a string or an array of parts", f"{where}.content")
    for index, part in enumerate(content):
        place = f"{where}.content[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in CONTENT_PARTS:
            raise _fail(f"{place}: content parts of type {kind!r} are not supported", f"{place}.type")
        assert isinstance(part, dict)
        if kind == "input_image" and not isinstance(part.get("image_url"), str):
            raise _fail(f"{place}: images are accepted as 'image_url' (a URL or data URL), not file ids", place)
        if kind in ("input_text", "output_text") and not isinstance(part.get("text"), str):
            raise _fail(f"{place}.text must be a string", f"{place}.text")
