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
from mcp.shared.inbound import MCP_METHOD_HEADER, MCP_NAME_HEADER, MCP_PROTOCOL_VERSION_HEADER

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
        MCP_METHOD_HEADER.lower(),
        MCP_NAME_HEADER.lower(),
        MCP_SESSION_ID_HEADER.lower(),
        "x-request-id",
    }
)
"""The headers read in the one pass (lower case, as ASGI servers give every name)."""
_RAW_NAMES: Final = {name.encode("latin-1"): name for name in NAMES}
ROUTING: Final = frozenset(name.lower() for name in (MCP_PROTOCOL_VERSION_HEADER, MCP_METHOD_HEADER, MCP_NAME_HEADER))
"""The 2026-07-28 routing headers, which the SDK refuses to see repeated (`find_duplicated_routing_header`)."""


class RequestHeaders(Mapping[str, str]):
    """The first value of each header in `NAMES` that the request has; look-ups ignore case, as `Headers.get`."""

    __slots__ = ("found", "routing_repeated")

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        found: dict[str, str] = {}
        repeated = False
        for name, value in raw:
            key = _RAW_NAMES.get(name)
            if key is not None:
                if key not in found:
                    found[key] = value.decode("latin-1")
                elif key in ROUTING:
                    repeated = True
        self.found = found
        """Each name's first value, by its name in lower case: what `dict(Headers(raw=raw))` has for these names."""
        self.routing_repeated = repeated
        """Whether a `ROUTING` header came more than once: `find_duplicated_routing_header(...) is not None`."""

    def __getitem__(self, name: str) -> str:
        return self.found[name if name in NAMES else _known(name)]

    @overload
    def get(self, name: str, /) -> str | None: ...
    @overload
    def get(self, name: str, default: str | T, /) -> str | T: ...
    def get(self, name: str, default: object = None, /) -> object:
        # The name as read (lower case, most look-ups) costs no call to `_known`.
        return self.found.get(name if name in NAMES else _known(name), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name if name in NAMES else _known(name)) in self.found

    def __iter__(self) -> Iterator[str]:
        return iter(self.found)

    def __len__(self) -> int:
        return len(self.found)


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
