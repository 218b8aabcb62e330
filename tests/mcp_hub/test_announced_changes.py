"""A change an upstream announces reaches the hub's clients even when the hub's re-listing shows none (the server
changed its list and changed it back before the hub looked): the clients decide for themselves, as they would
talking to the server directly. Over both of the hub's upstream eras, to clients of both eras."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import mcp_types as types
import pytest

from tests.mcp_hub.conftest import FULL_KEY, Gateway, fixture_server, hub_settings, serving

pytestmark = pytest.mark.anyio

UPSTREAMS = ["modern", "old"]


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    servers = {"modern": fixture_server(), "old": fixture_server(protocol="legacy")}
    async with serving(hub_settings(tmp_path_factory.mktemp("announced"), servers)) as started:
        yield started


@pytest.mark.parametrize("upstream", UPSTREAMS)
async def test_a_listen_stream_hears_a_change_the_upstream_undid_at_once(gateway: Gateway, upstream: str) -> None:
    async with gateway.client(FULL_KEY, "2026-07-28") as client:
        before = [t.name for t in (await client.list_tools()).tools]
        async with client.listen(tools_list_changed=True) as subscription:
            assert (await client.call_tool(f"{upstream}__blink", {})).content[0].text == "blinked"  # type: ignore[union-attr]
            with anyio.fail_after(10):
                await subscription.__anext__()
        assert [t.name for t in (await client.list_tools()).tools] == before


@pytest.mark.parametrize("upstream", UPSTREAMS)
async def test_a_legacy_session_hears_a_change_the_upstream_undid_at_once(gateway: Gateway, upstream: str) -> None:
    notices: list[Any] = []

    async def on_message(message: Any) -> None:
        notices.append(message)

    async with gateway.client(FULL_KEY, "legacy", message_handler=on_message) as client:
        await client.call_tool(f"{upstream}__blink", {})
        with anyio.fail_after(10):
            while not any(isinstance(n, types.ToolListChangedNotification) for n in notices):
                await anyio.sleep(0.02)
