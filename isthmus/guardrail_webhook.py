"""The HTTP call of `webhook` guardrail rules (`toolpolicy.guardrails.webhook.WebhookPost`), over aiohttp.

One client session for every rule, opened on first use and closed with the app. Every failure (connection, timeout,
non-2xx status, a body that is not a JSON object) is a `WebhookError`: the rule's `on_error` decides what follows.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from toolpolicy.guardrails.webhook import WebhookError


class AiohttpWebhookPost:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, url: str, headers: dict[str, str], body: dict[str, Any], timeout: float) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as response:
                if not 200 <= response.status < 300:
                    raise WebhookError(f"the service answered {response.status}")
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise WebhookError(type(exc).__name__) from None
        if not isinstance(data, dict):
            raise WebhookError("the service's answer is not a JSON object")
        return data

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
