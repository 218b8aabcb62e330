"""A client that gives up on a stream while the model is still thinking, before its first event."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import anyio
import httpx2

from tests.llm_proxy.mock_provider import MockProvider


async def leave_while_thinking(client: httpx2.AsyncClient, mock: MockProvider, path: str, body: dict[str, Any]) -> None:
    """Post `body` to `path` with `client`, the provider sending nothing until its client leaves; leave once the
    provider has the request, and return when the provider saw its own client (the gateway) leave too."""
    mock.stream_closed = asyncio.Event()
    mock.queue(mock.thinking())
    async with anyio.create_task_group() as group:
        group.start_soon(partial(client.post, path, json=body))
        with anyio.fail_after(10):
            while not mock.seen:
                await anyio.sleep(0.005)
        group.cancel_scope.cancel()  # the client gives up while the provider thinks
    with anyio.fail_after(10):
        await mock.stream_closed.wait()
