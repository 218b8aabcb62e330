"""The bridge's HTTP link to the gateway: it rides out an unreachable or restarted gateway for the stdio client.

An `httpx2` transport under the SDK's Streamable HTTP client (which keeps doing the protocol work), adding:

- **Unreachable gateway.** A connection that cannot be made (nothing was sent, so trying again is safe) is retried
  with backoff; when the retries run out, a request gets a JSON-RPC error for its id at once, so the stdio client
  hears back instead of waiting forever, and stderr gets one line per outage (and one when the gateway is back).
  While the gateway is known to be down, each request tries once, so it is answered promptly too. The background
  GET stream keeps retrying (backoff capped at `max_delay`) until the gateway is back.
- **Forgotten session.** A 2025-era session lives in one gateway process: after a restart the gateway answers its
  `Mcp-Session-Id` with 404, as the spec says. The link then opens a new session by replaying the client's own
  `initialize` and `notifications/initialized`, and sends the request again on it. The SDK client above keeps the
  session id it first got; the link writes the current one into every request, so neither it nor the stdio client
  ever sees the change. (Per-session state such as `logging/setLevel` is not replayed.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
UNREACHABLE = -32000
"""The JSON-RPC code of the error a request gets when the gateway cannot be reached (implementation-defined)."""
RENEWALS_PER_REQUEST = 2
"""How many times one request may find its session forgotten and go out again on a new one (a second time covers
a gateway that restarted again while the first renewal was under way)."""
_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout)
"""Failures before anything reached the gateway: the only ones a request may be retried after."""


def _jsonrpc(body: bytes) -> dict[str, Any] | None:
    try:
        message = json.loads(body) if body else None
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


class GatewayLink(httpx2.AsyncBaseTransport):
    """Wraps the transport that reaches the gateway (by default a plain `httpx2.AsyncHTTPTransport`)."""

    def __init__(
        self,
        url: str,
        inner: httpx2.AsyncBaseTransport | None = None,
        *,
        attempts: int = 5,
        first_delay: float = 0.1,
        max_delay: float = 5.0,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self.url = url
        self._inner = inner or httpx2.AsyncHTTPTransport()
        self._attempts, self._first_delay, self._max_delay = attempts, first_delay, max_delay
        self._sleep = sleep
        self._down = False
        self._initialize: bytes | None = None
        self._initialized: bytes | None = None
        self.session_id: str | None = None
        """The session the gateway currently knows this client by (None before `initialize`, or on 2026-07-28)."""
        self.renewals = 0
        self._renewing = anyio.Lock()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        await request.aread()  # the SDK sends whole JSON bodies; read, one can be sent again
        message = _jsonrpc(request.content) if request.method == "POST" else None
        method = message.get("method") if message is not None else None
        if method == "initialize":
            # A new session: whatever id the SDK still holds belongs to the old one.
            self._initialize = request.content
            request = _with_session(request, None)
            response = await self._send(request, message)
            if response.status_code < 300 and MCP_SESSION_ID_HEADER in response.headers:
                self.session_id = response.headers[MCP_SESSION_ID_HEADER]
            return response
        if method == "notifications/initialized":
            self._initialized = request.content
        used = self.session_id
        if request.headers.get(MCP_SESSION_ID_HEADER) is None or used is None:
            # Only a session this link opened (from the client's own `initialize`) can be opened again.
            return await self._send(request, message)
        if request.method == "DELETE":
            return await self._send(_with_session(request, used), message)  # ends it; nothing to reopen
        for _ in range(RENEWALS_PER_REQUEST):
            response = await self._send(_with_session(request, used), message)
            if response.status_code != 404:
                return response
            await response.aread()  # a short JSON-RPC error, kept in case the session cannot be reopened
            # Another request may have opened the new session while this one was out (the event stream
            # reconnecting as a call is sent): `_renew` then only hands back its id.
            if not await self._renew(request, forgotten=used):
                return response
            assert self.session_id is not None
            used = self.session_id
        return await self._send(_with_session(request, used), message)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def _send(self, request: httpx2.Request, message: dict[str, Any] | None) -> httpx2.Response:
        """The gateway's answer; if it cannot be reached, a JSON-RPC error for a request (or the error itself)."""
        delay = self._first_delay
        attempt = 1
        while True:
            try:
                response = await self._inner.handle_async_request(request)
            except _SENT as exc:
                # The background GET stream waits for the gateway for as long as it takes; a request is answered.
                waits = request.method == "GET" or (not self._down and attempt < self._attempts)
                if waits:
                    await self._sleep(delay)
                    delay, attempt = min(delay * 2, self._max_delay), attempt + 1
                    continue
                self._went_down(exc)
                return self._failed(request, message, f"cannot reach the gateway at {self.url}: {exc or 'no detail'}")
            except httpx2.TransportError as exc:
                if request.method != "POST":
                    raise
                return self._failed(request, message, f"the connection to the gateway broke: {exc or 'no detail'}")
            self._came_back()
            return response

    def _failed(self, request: httpx2.Request, message: dict[str, Any] | None, reason: str) -> httpx2.Response:
        if message is None or "id" not in message:
            # A notification (or anything but a request) has no one waiting on an answer: a bare status will do.
            return httpx2.Response(503, request=request)
        error = types.JSONRPCError(
            jsonrpc="2.0", id=message["id"], error=types.ErrorData(code=UNREACHABLE, message=reason)
        )
        body = error.model_dump_json(by_alias=True, exclude_unset=True).encode()
        return httpx2.Response(503, headers={"content-type": "application/json"}, content=body, request=request)

    def _went_down(self, exc: Exception) -> None:
        if not self._down:
            self._down = True
            logger.error("cannot reach the gateway at %s (%s); answering requests with an error", self.url, exc)

    def _came_back(self) -> None:
        if self._down:
            self._down = False
            logger.warning("the gateway at %s is reachable again", self.url)

    async def _renew(self, request: httpx2.Request, *, forgotten: str) -> bool:
        """Open a new session in place of `forgotten` by replaying the client's handshake; True once there is one."""
        async with self._renewing:
            if self.session_id != forgotten:
                return True  # another request renewed it meanwhile
            assert self._initialize is not None  # the session came from it
            headers = {
                name: value
                for name, value in request.headers.items()
                if name.lower() not in (MCP_SESSION_ID_HEADER, "content-length", "last-event-id", "accept")
            }
            headers |= {"accept": "application/json, text/event-stream", "content-type": "application/json"}
            opened = await self._send(
                httpx2.Request("POST", request.url, headers=headers, content=self._initialize), None
            )
            try:
                await opened.aread()
            finally:
                await opened.aclose()
            session = opened.headers.get(MCP_SESSION_ID_HEADER)
            if opened.status_code >= 300 or session is None:
                logger.error("the gateway forgot this session and did not open a new one (HTTP %d)", opened.status_code)
                return False
            if self._initialized is not None:
                notice = httpx2.Request(
                    "POST", request.url, headers={**headers, MCP_SESSION_ID_HEADER: session}, content=self._initialized
                )
                await (await self._send(notice, None)).aclose()
            self.session_id = session
            self.renewals += 1
            logger.warning("the gateway forgot this session (it restarted?); continuing on a new one")
            return True


def _with_session(request: httpx2.Request, session_id: str | None) -> httpx2.Request:
    headers = {name: value for name, value in request.headers.items() if name.lower() != MCP_SESSION_ID_HEADER}
    if session_id is not None:
        headers[MCP_SESSION_ID_HEADER] = session_id
    return httpx2.Request(
        request.method, request.url, headers=headers, content=request.content, extensions=request.extensions
    )
