"""The wire form of a plain `tools/call` result, made without validating the result a second time.

The SDK's kernel shapes every handler result for the wire (`ServerRunner._serialize`): it dumps the model, validates
the dump against the protocol version's result schema and dumps that again. A tool result the hub passes on was
validated already, by the hub's client, as it came from the upstream (`fast_call.py`), and for the commonest shape
there is nothing the second validation could refuse or change: only text content (no annotations, no `_meta`), a
`structuredContent` object of plain JSON (string keys, finite numbers, no tuples), `isError`, and no `_meta` of its own.
`PlainResultsRunner` writes such a result's wire form directly, with the schema's own key order and what the version
keeps, learned once per version from the SDK's dump of a probe; the rest (`serverInfo` stamp included) is the SDK's
`_serialize`. Any other result, or a version whose probe the layout does not reproduce, goes through the SDK unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from mcp.server.runner import ServerRunner
from mcp_types import CallToolResult, TextContent, methods

METHOD: Final = "tools/call"
MAX_DEPTH: Final = 64
"""Nesting beyond which a value is not checked here (the SDK's validation takes it)."""
_PROBE_TEXT: Final = "probe"
_PROBE: Final[dict[str, Any]] = {
    "content": [{"type": "text", "text": _PROBE_TEXT}],
    "isError": True,
    "resultType": "complete",
    "structuredContent": {"probe": ["probe", 1, 1.5, True, None]},
}
"""A plain result with every field the layout places."""
_FIELDS: Final = frozenset(_PROBE)
_ITEM_FIELDS: Final = frozenset({"type", "text"})
_TEXT_FIRST: Final = ("text", "type")
_DIRECT_KEYS: Final = (
    ("content", "isError", "structuredContent"),
    ("content", "isError", "resultType", "structuredContent"),
)


@dataclass(frozen=True, slots=True)
class Layout:
    """What a version's schema dumps of a plain result, in its order: the result's keys and a text item's."""

    keys: tuple[str, ...]
    item_keys: tuple[str, ...]
    direct: bool
    """Whether `_build` writes the result as one dict display (every version's layout so far): content, isError,
    resultType where the version has it, structuredContent; a text item's text, then its type."""

    @classmethod
    def of(cls, keys: tuple[str, ...], item_keys: tuple[str, ...]) -> Layout:
        return cls(keys, item_keys, keys in _DIRECT_KEYS and item_keys == _TEXT_FIRST)


_layouts: dict[str, Layout | None] = {}


class PlainResultsRunner(ServerRunner[Any]):
    """The SDK's kernel, writing plain tool results without the second validation (see the module doc)."""

    def _serialize(self, method: str, version: str, result: Any) -> dict[str, Any]:
        if method == METHOD and type(result) is CallToolResult and method not in self.server.cache_hints:
            wire = plain_wire(version, result)
            if wire is not None:
                return self._stamp_server_info(version, wire)
        return super()._serialize(method, version, result)


def plain_wire(version: str, result: CallToolResult) -> dict[str, Any] | None:
    """What `serialize_server_result` makes of `result`'s dump, for a plain result; None for any other."""
    layout = _layouts.get(version)
    if layout is None:
        if version in _layouts:
            return None
        layout = _layouts[version] = _learn(version)
        if layout is None:
            return None
    if result.meta is not None or result.result_type != "complete" or type(result.is_error) is not bool:
        return None
    items: list[dict[str, str]] = []
    for item in result.content:
        if type(item) is not TextContent or item.annotations is not None or item.meta is not None:
            return None
        text = item.text
        if type(text) is not str or item.type != "text":
            return None
        items.append({"text": text, "type": "text"})
    structured = result.structured_content
    if structured is not None and (type(structured) is not dict or not _plain_dict(structured, 0)):
        return None
    return _build(layout, result, items)


def _build(layout: Layout, result: CallToolResult, items: list[dict[str, str]]) -> dict[str, Any]:
    """The wire form of a plain result whose text items are `items` (`{"text": ..., "type": "text"}`)."""
    structured = result.structured_content
    if layout.direct:  # one display, in the layout's order (`_learn` checked it against the SDK's dump)
        wire: dict[str, Any] = {"content": items, "isError": result.is_error}
        if "resultType" in layout.keys:
            wire["resultType"] = result.result_type
        if structured is not None:
            wire["structuredContent"] = structured
        return wire
    wire = {}
    for key in layout.keys:
        if key == "content":
            wire[key] = [{name: item[name] for name in layout.item_keys} for item in items]
        elif key == "isError":
            wire[key] = result.is_error
        elif key == "resultType":
            wire[key] = result.result_type
        elif structured is not None:
            wire[key] = structured
    return wire


def _learn(version: str) -> Layout | None:
    """The version's layout, if the SDK's dump of the probe is exactly what it builds; else None (the SDK's way)."""
    try:
        dumped = methods.serialize_server_result(METHOD, version, _PROBE)
    except (KeyError, ValueError):
        return None
    content = dumped.get("content")
    if not set(dumped) <= _FIELDS or not isinstance(content, list) or len(content) != 1:
        return None
    if not isinstance(content[0], dict) or set(content[0]) != _ITEM_FIELDS:
        return None
    layout = Layout.of(tuple(dumped), tuple(content[0]))
    probe = CallToolResult.model_validate(_PROBE, by_name=False)
    built = _build(layout, probe, [{"text": _PROBE_TEXT, "type": "text"}])
    same = built == dumped and list(built) == list(dumped)
    return layout if same and list(built["content"][0]) == list(content[0]) else None


def _plain(value: Any, depth: int) -> bool:
    """Whether `value` is JSON the schema's dump returns as it is: dicts with string keys, lists, strings, integers,
    finite floats, booleans and None (a tuple would become a list, a NaN null). Loops, not `all` over generators:
    this walks every structured result."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is dict:
        return _plain_dict(value, depth)
    if kind is list and depth < MAX_DEPTH:
        for item in value:
            if not _plain(item, depth + 1):
                return False
        return True
    return False


def _plain_dict(value: dict[Any, Any], depth: int) -> bool:
    """`_plain` of a dict."""
    if depth >= MAX_DEPTH:
        return False
    for key, item in value.items():
        if type(key) is not str:
            return False
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue  # (the commonest values, checked in place)
        if not _plain(item, depth + 1):
            return False
    return True
