"""Optional MCP methods an upstream lacks or fails: served as empty, remembered, and logged once.

Many servers declare a capability but not every method under it (a low-level-SDK server with `resources` and no
`resources/templates/list` answers -32601), or fail one listing while the rest work. None of that is a reason to
stop serving the server's tools: the hub treats such a method as answering "nothing" and shows it in
`GET /admin/mcp/servers` under `unsupported`. Losing the connection or timing out is not "unsupported": those still
end the connection, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import mcp_types as types
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from mcp_hub.errors import UpstreamRejected

logger = logging.getLogger(__name__)

T = TypeVar("T")

_FATAL_CODES = frozenset({types.CONNECTION_CLOSED, types.REQUEST_TIMEOUT})
"""Errors that say the connection is in trouble, not that the method is missing."""


class UnsupportedMethods:
    """The optional methods of one upstream that are currently served as empty, with the error each one gave."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.failed: dict[str, str] = {}
        self._logged: set[str] = set()

    def note(self, method: str, error: str) -> None:
        self.failed[method] = error
        if method not in self._logged:
            # Once per server and method: a server missing a method misses it at every re-listing and reconnect.
            self._logged.add(method)
            logger.warning("MCP server %r: %s failed (%s); served as empty", self.server, method, error)

    def clear(self, method: str) -> None:
        self.failed.pop(method, None)

    def as_list(self) -> list[dict[str, Any]]:
        return [{"method": method, "error": self.failed[method]} for method in sorted(self.failed)]


async def listed_or_empty(record: UnsupportedMethods, method: str, call: Callable[[], Awaitable[list[T]]]) -> list[T]:
    """A listing's items, or none when the server answers the listing with an error or an invalid result."""
    try:
        items = await call()
    except MCPError as exc:
        if exc.code in _FATAL_CODES:
            raise
        record.note(method, f"error {exc.code}: {exc.message}")
        return []
    except ValidationError as exc:
        record.note(method, f"not a valid MCP result ({exc.error_count()} errors)")
        return []
    record.clear(method)
    return items


async def answered_or_none(record: UnsupportedMethods, method: str, answer: Awaitable[T]) -> T | None:
    """The answer to a call-time optional method, or None when the server does not implement it (-32601).

    Other errors are the server's answer to this request (say, an unknown prompt) and reach the caller.
    """
    try:
        result = await answer
    except UpstreamRejected as exc:
        if exc.upstream_code != types.METHOD_NOT_FOUND:
            raise
        record.note(method, exc.message)
        return None
    record.clear(method)
    return result
