"""`isthmus connect`: the stdio-to-HTTP bridge, driven by the SDK's Client over stdio in both eras."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from tests.mcp_hub.conftest import MODES, Gateway, fixture_server, hub_settings, serving

pytestmark = pytest.mark.anyio


BRIDGE_KEY = "isk-bridge"


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    bridged = {"name": "bridged", "value": BRIDGE_KEY, "mcp": {"fx": ["add", "progress", "toggle", "extra"]}}
    settings = hub_settings(tmp_path_factory.mktemp("bridge"), {"fx": fixture_server()}, keys=(bridged,))
    async with serving(settings) as started:
        yield started


def bridge(gateway: Gateway, key: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_hub.bridge", "--url", gateway.mcp_url()],
        env={"ISTHMUS_API_KEY": key},
    )


@pytest.mark.parametrize("mode", MODES)
async def test_a_stdio_client_uses_the_gateway_through_the_bridge(gateway: Gateway, mode: str) -> None:
    notices: list[Any] = []
    updates: list[float] = []

    async def on_message(message: Any) -> None:
        notices.append(message)

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append(progress)

    async with Client(bridge(gateway, BRIDGE_KEY), mode=mode, cache=None, message_handler=on_message) as client:
        assert client.protocol_version == ("2025-11-25" if mode == "legacy" else mode)
        assert [t.name for t in (await client.list_tools()).tools] == ["fx__add", "fx__progress", "fx__toggle"]
        assert (await client.call_tool("fx__add", {"a": 20, "b": 22})).structured_content == {"result": 42}
        with pytest.raises(MCPError, match="Unknown tool: fx__crash") as denied:
            await client.call_tool("fx__crash", {})
        assert denied.value.code == types.INVALID_PARAMS
        done = await client.call_tool("fx__progress", {"steps": 2}, progress_callback=on_progress)
        assert done.content[0].text == "done after 2 steps" and updates == [1, 2]  # type: ignore[union-attr]
        if mode == "legacy":
            await client.call_tool("fx__toggle", {})
            with anyio.fail_after(5):
                while not any(isinstance(n, types.ToolListChangedNotification) for n in notices):
                    await anyio.sleep(0.02)
        else:
            async with client.listen(tools_list_changed=True) as subscription:
                await client.call_tool("fx__toggle", {})
                with anyio.fail_after(5):
                    await subscription.__anext__()
        assert "fx__extra" in [t.name for t in (await client.list_tools()).tools]
        await client.call_tool("fx__toggle", {})


def leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


async def test_the_bridge_passes_on_the_gateways_refusal_of_a_bad_key(gateway: Gateway) -> None:
    with pytest.raises(Exception) as refused:  # the SDK wraps the error in exception groups
        async with Client(bridge(gateway, "isk-not-a-key"), mode="legacy", cache=None):
            pass
    errors = [e for e in leaves(refused.value) if isinstance(e, MCPError)]
    assert errors and errors[0].message == "the API key is not valid"
