"""Values crossing the sandbox boundary: arguments out to tools, tool results in, the run's result out as JSON.

The sandbox hands back Python values (tuples, sets, dates, proxies of sandbox classes); tools and models take JSON.
Arguments are converted strictly (a value JSON cannot carry is a `TypeError` the program sees, naming the
argument); the run's result leniently (anything unknown is shown by its `repr`), since it is only read.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from decimal import Decimal
from typing import Any

import mcp_types as types
from pydantic_monty import MontyClassProxy, MontyStdTypeProxy

MAX_NESTING = 100


def to_argument(value: Any, where: str, depth: int = 0) -> Any:
    """`value` as JSON for a tool argument; raises TypeError naming `where` when JSON cannot carry it."""
    if depth > MAX_NESTING:
        raise TypeError(f"{where} is nested more than {MAX_NESTING} levels deep")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{where} is {value!r}, which JSON cannot carry")
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has a key {key!r} of type {type(key).__name__}; JSON object keys are str")
            out[key] = to_argument(item, f"{where}[{key!r}]", depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [to_argument(item, f"{where}[{index}]", depth + 1) for index, item in enumerate(value)]
    if isinstance(value, set | frozenset):
        return [to_argument(item, f"{where} item", depth + 1) for item in _ordered(value)]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal) and value.is_finite():
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, MontyClassProxy):
        return to_argument(value.attributes, where, depth + 1)
    raise TypeError(f"{where} is a {_kind(value)}, which JSON cannot carry; pass str, numbers, lists or dicts")


def to_result(value: Any, depth: int = 0) -> Any:
    """`value` as JSON for the model, whatever it is."""
    if depth > MAX_NESTING:
        return "…"
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {key if isinstance(key, str) else repr(key): to_result(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_result(item, depth + 1) for item in value]
    if isinstance(value, set | frozenset):
        return [to_result(item, depth + 1) for item in _ordered(value)]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return base64.b64encode(value).decode()
    if isinstance(value, MontyClassProxy):
        return to_result(value.attributes, depth + 1)
    if isinstance(value, MontyStdTypeProxy):
        return f"<built-in {value.kind} {value.name}>"
    return repr(value)


def _ordered(values: set[Any] | frozenset[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=repr)


def _kind(value: Any) -> str:
    if isinstance(value, MontyStdTypeProxy):
        return f"builtin {value.kind} {value.name!r}"
    return type(value).__name__


def _content(block: types.ContentBlock) -> Any:
    if isinstance(block, types.TextContent):
        text = block.text
        if text.lstrip().startswith(("{", "[")):
            try:
                return json.loads(text)
            except ValueError:
                pass
        return text
    return block.model_dump(mode="json", exclude_none=True)


def tool_value(result: types.CallToolResult) -> Any:
    """What a tool call returns to the program: its structured content, else its content (one block unwrapped)."""
    if result.structured_content is not None:
        return result.structured_content
    values = [_content(block) for block in result.content]
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def error_text(result: types.CallToolResult) -> str:
    """The message of a tool's error result."""
    texts = [block.text for block in result.content if isinstance(block, types.TextContent)]
    return " ".join(" ".join(texts).split()) or "the tool reported an error without a message"


def dump_json(value: Any) -> str:
    return json.dumps(to_result(value), ensure_ascii=False)


def cut(text: str, limit: int) -> tuple[str, int]:
    """`text` cut to `limit` bytes of UTF-8 (never inside a character), and its full size in bytes."""
    data = text.encode()
    if len(data) <= limit:
        return text, len(data)
    return data[:limit].decode(errors="ignore"), len(data)
