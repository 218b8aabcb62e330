"""The request headers `/mcp` reads, found in one pass over the ASGI scope's raw headers.

starlette's `Headers.get` walks the raw list, decoding the names it passes, once per look-up; a `tools/call` reads
nine of them on its way (the key, `x-isthmus-tools`, `Content-Length`, the SDK's transport checks: `Content-Type`
twice, `Host`, `Origin`, `Accept`, then `MCP-Protocol-Version` or `x-request-id`). `request_headers(scope)` reads
them all at once, each name's first value decoded as latin-1, exactly what `Headers(scope=scope).get(name)` gives,
and keeps them in the scope for whatever reads them later in the request.

Only the names in `NAMES` are read: asking for any other is a `ValueError`, not a silent "absent".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final, TypeVar, overload

from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER

from mcp_hub.access import NARROW_HEADER

T = TypeVar("T")
HEADERS_SCOPE_KEY: Final = "isthmus.mcp.headers"
NAMES: Final = frozenset(
    {
        "authorization",
        "x-api-key",
        NARROW_HEADER,
        "content-length",
        "content-type",
        "host",
        "origin",
        "accept",
        MCP_PROTOCOL_VERSION_HEADER.lower(),
        MCP_SESSION_ID_HEADER.lower(),
        "x-request-id",
    }
)
"""The headers read in the one pass (lower case, as ASGI servers give every name)."""
_RAW_NAMES: Final = {name.encode("latin-1"): name for name in NAMES}


class RequestHeaders(Mapping[str, str]):
    """The first value of each header in `NAMES` that the request has; look-ups ignore case, as `Headers.get`."""

    __slots__ = ("_found",)

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        found: dict[str, str] = {}
        for name, value in raw:
            key = _RAW_NAMES.get(name)
            if key is not None and key not in found:
                found[key] = value.decode("latin-1")
        self._found = found

    def __getitem__(self, name: str) -> str:
        return self._found[_known(name)]

    @overload
    def get(self, name: str, /) -> str | None: ...
    @overload
    def get(self, name: str, default: str | T, /) -> str | T: ...
    def get(self, name: str, default: object = None, /) -> object:
        return self._found.get(_known(name), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _known(name) in self._found

    def __iter__(self) -> Iterator[str]:
        return iter(self._found)

    def __len__(self) -> int:
        return len(self._found)


def _known(name: str) -> str:
    if name not in NAMES:
        name = name.lower()
        if name not in NAMES:
            raise ValueError(f"the {name!r} header is not among those read in one pass (request_headers.NAMES)")
    return name


def request_headers(scope: Mapping[str, Any]) -> RequestHeaders:
    """The request's headers read once: kept in the scope by the endpoint, else read from the scope now."""
    found = scope.get(HEADERS_SCOPE_KEY)
    if isinstance(found, RequestHeaders):
        return found
    return RequestHeaders(scope.get("headers", ()))
