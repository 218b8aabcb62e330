"""Concurrent tool calls to one stdio server are multiplexed on its one process, not queued behind each other."""

from __future__ import annotations

import anyio
import mcp_types as types
import pytest

from tests.mcp_hub.conftest import FULL_KEY, Gateway

pytestmark = pytest.mark.anyio

CALLS = 8


async def test_concurrent_calls_to_a_stdio_server_are_all_in_it_at_once(gateway: Gateway) -> None:
    # `rendezvous` answers only once all CALLS calls are inside the server: were the hub to send them one at a
    # time, the first would wait for the others until the server's timeout and come back as a tool error.
    results: list[types.CallToolResult] = []

    async def call(client: object) -> None:
        results.append(await client.call_tool("rendezvous", {"calls": CALLS}))  # type: ignore[attr-defined]

    async with gateway.client(FULL_KEY, "legacy", server="fx") as client:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for _ in range(CALLS):
                    tg.start_soon(call, client)
    assert [(r.is_error, r.content[0].text) for r in results] == [(False, "met")] * CALLS  # type: ignore[union-attr]
