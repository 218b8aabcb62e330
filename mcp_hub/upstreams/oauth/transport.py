"""The bearer on each request to an OAuth upstream, for both of the hub's HTTP clients:

- `BearerAuth`, an `httpx2.Auth` on the SDK client's pooled httpx2 client (and the SSE transport's);
- `FastHttp.post`/`get` (the `tools/call` fast path's HTTP client) ask the same `Credentials` (`fast_http.py`).

Each asks `Credentials.token()` per request, so one pooled connection serves every key with its own token, and on
a 401 asks once for another token (`rejected`) and retries once. Any `Authorization` header the server's static
headers set is replaced: the hub's token is the only credential that goes upstream.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import httpx2

from mcp_hub.upstreams.oauth.credentials import Credentials


class BearerAuth(httpx2.Auth):
    requires_response_body = False

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        token = await self.credentials.token()
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401 or token is None:
            return
        retry = await self.credentials.rejected(token)
        if retry is None:
            return
        request.headers["Authorization"] = f"Bearer {retry}"
        yield request
