"""An upstream's `tools/call` result made into the SDK session's result model, with fewer of its unions tried.

The SDK's client validates a result against `CallToolResult | InputRequiredResult`, and each content item against
the five content types, in pydantic's smart mode: every member of a union is tried, and the failures cost as much
as the match. For the commonest results two of those tries are known to fail:

- `InputRequiredResult` refuses a result with neither `inputRequests` nor `requestState` (its validator requires one
  of them), so for such a result `CallToolResult` is the only member that can accept it, and the union gives what
  `CallToolResult`'s own validator gives.
- A content item with exactly the keys `type` (`"text"`) and `text` (a string) lacks a field every other content
  type requires (`data`, `uri`, `resource`), so the item union gives what `TextContent`'s validator gives. Such items
  are validated as a list of `TextContent` and handed to `CallToolResult`'s validator as models, which it takes as
  they are (a model instance is not validated again).

`CallToolResult` has no validator that reads more than one field, so its content validated apart is what it would
have been in place. A result any of these validators refuses is validated by the union, whose answer or errors stay
the SDK's.
"""

from __future__ import annotations

from typing import Any, Final

import mcp_types as types
from mcp.client.session import _CallToolResultAdapter
from pydantic import TypeAdapter, ValidationError

SECOND_MEMBER_KEYS: Final = frozenset({"inputRequests", "requestState"})
"""`InputRequiredResult` needs one of these keys to accept a result: with one present, the union decides."""
TEXT_ITEM_KEYS: Final = frozenset({"type", "text"})
"""The keys of a content item that only `TextContent` can accept (with `type` "text" and `text` a string)."""
_validate_call_result = types.CallToolResult.__pydantic_validator__.validate_python
_validate_texts = TypeAdapter(list[types.TextContent]).validator.validate_python


def call_result(adapter: TypeAdapter[Any], raw: dict[str, Any]) -> Any:
    """`adapter.validate_python(raw, by_name=False)`, by `CallToolResult` alone where the union must pick it."""
    if adapter is _CallToolResultAdapter and SECOND_MEMBER_KEYS.isdisjoint(raw):
        try:
            content = raw.get("content")
            if type(content) is list and _text_items(content):
                return _validate_call_result({**raw, "content": _validate_texts(content, by_name=False)}, by_name=False)
            return _validate_call_result(raw, by_name=False)
        except ValidationError:
            pass  # the union raises its own errors
    return adapter.validate_python(raw, by_name=False)


def _text_items(content: list[Any]) -> bool:
    """Whether every item has exactly `TEXT_ITEM_KEYS`, `type` "text" and `text` a string (a loop: `all` over a
    generator cost as much again, on every result)."""
    for item in content:
        if type(item) is not dict or item.keys() != TEXT_ITEM_KEYS:
            return False
        if item["type"] != "text" or type(item["text"]) is not str:
            return False
    return True
