"""`isthmus connect`: the stdio-to-HTTP bridge, driven by the SDK's Client over stdio in both eras."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from tests.mcp_hub.conftest import MODES, Gateway, Restartable, fixture_server, free_port, hub_settings, serving

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


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}


async def test_the_bridge_answers_at_once_when_the_gateway_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"  # nothing listens there
    command = [sys.executable, "-m", "mcp_hub.bridge", "--url", url, "--key", BRIDGE_KEY]
    async with await anyio.open_process(command) as process:
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None
        lines = BufferedByteReceiveStream(process.stdout)
        for request in (INITIALIZE, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}):
            await process.stdin.send(json.dumps(request).encode() + b"\n")
            with anyio.fail_after(15):
                answer = json.loads(await lines.receive_until(b"\n", 65536))
            assert answer["id"] == request["id"]
            assert answer["error"]["message"].startswith(f"cannot reach the gateway at {url}")
        await process.stdin.aclose()
        with anyio.fail_after(15):
            assert await process.wait() == 0
        stderr = b"".join([chunk async for chunk in process.stderr]).decode()
    # One line for the outage, however many requests it answered.
    assert stderr.count("\n") == 1 and f"cannot reach the gateway at {url}" in stderr


@pytest.mark.parametrize("mode", MODES)
async def test_a_bridged_session_keeps_working_after_a_gateway_restart(tmp_path: Path, mode: str) -> None:
    bridged = {"name": "bridged", "value": BRIDGE_KEY, "mcp": {"fx": ["add"]}}
    settings = hub_settings(tmp_path, {"fx": fixture_server()}, keys=(bridged,))
    async with anyio.create_task_group() as tg:
        gateway = Restartable(settings, tg)
        params = bridge(await gateway.start(), BRIDGE_KEY)
        async with Client(params, mode=mode, cache=None) as client:
            assert (await client.call_tool("fx__add", {"a": 1, "b": 2})).structured_content == {"result": 3}
            await gateway.stop()
            await gateway.start()
            with anyio.fail_after(20):
                result = await client.call_tool("fx__add", {"a": 2, "b": 2})
            assert result.structured_content == {"result": 4}
        await gateway.stop()
