"""One Streamable HTTP upstream's raw HTTP client for the `tools/call` fast path (`fast_call.py`): pooled.

The MCP SDK's client sends each request through httpx2, anyio memory streams and a dispatcher task; this client
POSTs the JSON-RPC body itself, over `lean_http.py`'s connections (aiohttp's client cost more than the rest of the
call's own work), and hands back the response, whose body (`application/json` or a
`text/event-stream`, read with `sse_events`) the caller reads. It sends what the SDK's transport would for the
same upstream: the server settings' headers, `Accept`, `Content-Type`, the negotiated `MCP-Protocol-Version`, and
the 2025-era session's `Mcp-Session-Id` (seen by `seen_response`, the SDK client's httpx2 response hook).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import httpx2
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER

from mcp_hub.upstreams.lean_http import Answer, LeanHttp

logger = logging.getLogger(__name__)

MCP_SESSION_ID = "mcp-session-id"
LAST_EVENT_ID = "last-event-id"
MAX_SSE_EVENT_BYTES = 1024 * 1024
"""The SDK transport's limit on one SSE event (`DEFAULT_MAX_SSE_EVENT_SIZE`)."""


class BearerSource(Protocol):
    """Where an OAuth upstream's bearer comes from (`mcp_hub.upstreams.oauth.credentials.Credentials`)."""

    async def token(self) -> str | None: ...

    async def rejected(self, token: str) -> str | None: ...


class SseError(Exception):
    """The event stream broke a limit (an event larger than `MAX_SSE_EVENT_BYTES`)."""


@dataclass(slots=True)
class SseEvent:
    event: str
    data: str
    id: str | None
    retry: int | None


class FastHttp:
    """The pooled HTTP client of one upstream connection, and what the SDK's transport learnt of the session."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        connect_timeout: float,
        read_timeout: float,
        credentials: BearerSource | None = None,
        keep_cookies: bool = True,
    ) -> None:
        self.url = url
        self.credentials = credentials
        """An OAuth upstream's tokens: the bearer is chosen per request (for the calling key)."""
        self.session_id: str | None = None
        """The upstream's `Mcp-Session-Id` (2025-era sessions), as the SDK client's transport got it."""
        self.protocol_version: str | None = None
        # `keep_cookies=False` when each caller acts under its own token: a cookie the upstream set for one caller's
        # request must not go with another's.
        jar = aiohttp.CookieJar() if keep_cookies else aiohttp.DummyCookieJar()
        self._client = LeanHttp(
            url, headers, connect_timeout=connect_timeout, read_timeout=read_timeout, cookie_jar=jar
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def seen_response(self, response: httpx2.Response) -> None:
        """httpx2 response hook of the SDK client's HTTP client: the session id the upstream assigned."""
        session_id = response.headers.get(MCP_SESSION_ID)
        if session_id:
            self.session_id = session_id

    def headers(self) -> dict[str, str]:
        """The headers the SDK's transport puts on every message (`_prepare_headers`)."""
        headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        if self.session_id:
            headers[MCP_SESSION_ID] = self.session_id
        if self.protocol_version:
            headers[MCP_PROTOCOL_VERSION_HEADER] = self.protocol_version
        return headers

    def post(self, body: bytes, headers: Mapping[str, str]) -> Awaitable[Answer]:
        """POST one JSON-RPC message; the caller reads and releases the response (redirects are not followed).
        Raises aiohttp's `ClientError`s (`lean_http.py`)."""
        if self.credentials is None:
            return self._client.request("POST", headers, body)  # (no coroutine layer of this: every call's)
        return self._authorized(lambda sent: self._client.request("POST", sent, body), headers)

    async def get(self, headers: Mapping[str, str]) -> Answer:
        """GET the URL (resuming a call's event stream with `Last-Event-ID`)."""
        if self.credentials is None:
            return await self._client.request("GET", headers)
        return await self._authorized(lambda sent: self._client.request("GET", sent), headers)

    async def _authorized(
        self, send: Callable[[Mapping[str, str]], Awaitable[Answer]], headers: Mapping[str, str]
    ) -> Answer:
        """`send` with the bearer for this request; on a 401, once more with the token the credentials renew."""
        assert self.credentials is not None
        token = await self.credentials.token()
        response = await send(_bearer(headers, token))
        if response.status != 401 or token is None:
            return response
        try:
            retry = await self.credentials.rejected(token)
        except BaseException:
            response.release()  # else the 401's connection is never given back to the pool (nor closed)
            raise
        if retry is None:
            return response
        response.release()
        return await send(_bearer(headers, retry))


def _bearer(headers: Mapping[str, str], token: str | None) -> Mapping[str, str]:
    return headers if token is None else {**headers, "authorization": f"Bearer {token}"}


async def sse_events(response: Answer) -> AsyncIterator[SseEvent]:
    """The events of a `text/event-stream` body, as the WHATWG parser dispatches them (plus data-less events that
    carry an id, which the SDK treats as priming events)."""
    buffer = b""
    event, event_id, retry = "", None, None
    data: list[str] = []
    size = 0
    async for chunk in response.chunks():
        buffer += chunk
        if len(buffer) > MAX_SSE_EVENT_BYTES and b"\n" not in buffer:
            raise SseError(f"an event larger than {MAX_SSE_EVENT_BYTES} bytes")
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                if data or event_id is not None:
                    yield SseEvent(event or "message", "\n".join(data), event_id, retry)
                event, data, event_id, retry, size = "", [], None, None, 0
                continue
            size += len(line)
            if size > MAX_SSE_EVENT_BYTES:
                raise SseError(f"an event larger than {MAX_SSE_EVENT_BYTES} bytes")
            if line.startswith(b":"):
                continue
            name, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            text = value.decode("utf-8", errors="replace")
            if name == b"data":
                data.append(text)
            elif name == b"event":
                event = text
            elif name == b"id" and "\0" not in text:
                event_id = text
            elif name == b"retry" and text.isdigit():
                retry = int(text)
