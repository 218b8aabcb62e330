"""Fetching JSON documents for the OAuth layer (trusted issuers' JWKS, client metadata documents) with httpx2."""

from __future__ import annotations

import json
from typing import Any

import httpx2

MAX_DOCUMENT_BYTES = 256 * 1024


class DocumentFetcher:
    """GET a small JSON object: no redirects, a short timeout, a size cap."""

    def __init__(self, *, timeout: float = 5.0, client: httpx2.AsyncClient | None = None) -> None:
        self._client = client or httpx2.AsyncClient(timeout=timeout, follow_redirects=False)

    async def __call__(self, url: str) -> dict[str, Any]:
        async with self._client.stream("GET", url, headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise ValueError(f"{url} answered HTTP {response.status_code}")
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise ValueError(f"{url} is larger than {MAX_DOCUMENT_BYTES} bytes")
        document = json.loads(body)
        if not isinstance(document, dict):
            raise ValueError(f"{url} is not a JSON object")
        return document

    async def aclose(self) -> None:
        await self._client.aclose()
