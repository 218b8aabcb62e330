"""Where the text is in an LLM request or response body: the values to scan, rewritten in place.

Strings under a text key (`content`, `text`, `input`, ...) are scanned, and so is every string nested below one
(a content part's text). Keys that name or route things (`model`, `role`, `type`, ids, URLs, base64 data) and tool
definitions are never scanned: they are not the conversation, and a match there would be a false positive.

A tool call's arguments are the model's (or client's) free-form data, not routing: an `arguments` object and a
`tool_use` block's `input` object are scanned whole, whatever their keys are named (`{"url": ..., "name": ...}`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TEXT_KEYS = frozenset(
    {"content", "text", "input", "instructions", "system", "arguments", "output", "prompt", "thinking", "refusal"}
)
SKIP_KEYS = frozenset(
    {
        "model",
        "role",
        "type",
        "id",
        "call_id",
        "tool_call_id",
        "tool_use_id",
        "item_id",
        "name",
        "tools",
        "tool_choice",
        "response_format",
        "image_url",
        "source",
        "data",
        "url",
        "file_id",
        "file_data",
        "signature",
        "encrypted_content",
        "metadata",
        "status",
        "object",
        "embedding",
        "usage",
    }
)

TOOL_USE_TYPES = frozenset({"tool_use", "server_tool_use"})
"""Anthropic content blocks whose `input` object is a tool call's arguments."""
_NOTHING: frozenset[str] = frozenset()


def rewrite_texts(
    value: Any, scan: Callable[[str], str], inside: bool = False, skip: frozenset[str] = SKIP_KEYS
) -> Any:
    """`value` with every text string passed through `scan`; dicts and lists are changed in place. With
    `inside=True` and no `skip` (a tool's arguments or structured result), every string is text."""
    if isinstance(value, str):
        return scan(value) if inside else value
    if isinstance(value, dict):
        for key, item in value.items():
            if key in skip:
                continue
            # Strings are handled here rather than by a call per string: a body is mostly strings.
            if isinstance(item, str):
                if inside or key in TEXT_KEYS:
                    value[key] = scan(item)
            elif isinstance(item, dict | list):
                if _tool_arguments(value, key):
                    value[key] = rewrite_texts(item, scan, True, _NOTHING)
                else:
                    value[key] = rewrite_texts(item, scan, inside or key in TEXT_KEYS, skip)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                if inside:
                    value[index] = scan(item)
            elif isinstance(item, dict | list):
                value[index] = rewrite_texts(item, scan, inside, skip)
    return value


def _tool_arguments(parent: dict[str, Any], key: str) -> bool:
    """Whether `parent[key]` is a tool call's arguments as an object: every string in it is data."""
    return key == "arguments" or (key == "input" and parent.get("type") in TOOL_USE_TYPES)
