"""A page of a stored response's input items, as `GET /v1/responses/{id}/input_items` answers it.

OpenAI's cursor pagination: `order` (`desc`, the default, is newest first), `limit` (1 to 100, default 20) and
`after` (the id of the item the page starts after; an id not in the list is refused).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from toolpolicy.errors import InvalidRequest

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise InvalidRequest(f"'limit' must be an integer from 1 to {MAX_LIMIT}", param="limit")
    return int(value)


def page(items: Sequence[dict[str, Any]], query: Mapping[str, str]) -> dict[str, Any]:
    """The list object for `items` (oldest first, as stored) under the query's `order`, `limit` and `after`."""
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("'order' must be 'asc' or 'desc'", param="order")
    limit = _limit(query.get("limit"))
    ordered = list(items) if order == "asc" else list(reversed(items))
    start = 0
    after = query.get("after")
    if after is not None:
        ids = [item.get("id") for item in ordered]
        if after not in ids:
            raise InvalidRequest(f"'after' names no input item of this response: {after!r}", param="after")
        start = ids.index(after) + 1
    data = ordered[start : start + limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0].get("id") if data else None,
        "last_id": data[-1].get("id") if data else None,
        "has_more": start + limit < len(ordered),
    }
