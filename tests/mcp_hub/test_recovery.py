"""Upstreams that crash, never start, or never answer: a tool error naming the server, then recovery."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import mcp_types as types
import pytest

from tests.mcp_hub.conftest import ADMIN_KEY, FULL_KEY, Gateway, fixture_server, hub_settings, serving

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    servers = {
        "fx": fixture_server(timeout=1),
        "bad": {"command": "isthmus-no-such-server"},
        "off": {**fixture_server(), "enabled": False},
    }
    async with serving(hub_settings(tmp_path_factory.mktemp("recovery"), servers)) as started:
        yield started


def text(result: types.CallToolResult) -> str:
    return result.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_a_server_that_never_started_gives_a_tool_error_naming_it_and_its_state(
    gateway: Gateway, mode: str
) -> None:
    async with gateway.client(FULL_KEY, mode) as client:
        with anyio.fail_after(5):
            result = await client.call_tool("bad__anything", {})
    assert result.is_error
    assert "MCP server 'bad'" in text(result) and "is down" in text(result)
    assert "isthmus-no-such-server" in text(result)  # the last error says what failed


async def test_a_down_server_shows_in_readiness_and_the_admin_api(gateway: Gateway) -> None:
    async with gateway.http() as http, gateway.http(ADMIN_KEY) as admin:
        ready = (await http.get("/ready")).json()
        servers = {s["name"]: s for s in (await admin.get("/admin/mcp/servers")).json()["data"]}
    assert ready["status"] == "ready"  # one upstream down does not take the gateway out of rotation
    assert ready["mcp"]["status"] == "degraded" and ready["mcp"]["servers"]["bad"]["state"] in ("down", "connecting")
    assert servers["bad"]["failures"] >= 1 and "No such file or directory" in servers["bad"]["last_error"]
    assert servers["fx"]["state"] == "ready"


async def test_a_call_that_outlives_the_servers_timeout_is_a_timeout_tool_error(gateway: Gateway) -> None:
    async with gateway.client(FULL_KEY, "2026-07-28") as client:
        with anyio.fail_after(8):
            result = await client.call_tool("fx__slow", {"seconds": 30})
        assert result.is_error and text(result) == "MCP server 'fx': did not answer within its 1s timeout"
        assert text(await client.call_tool("fx__echo", {"text": "alive"})) == "alive"
    records = await gateway.audit(target="fx/slow")
    assert records[0]["details"]["outcome"] == "timeout" and records[0]["status"] == 504


async def test_a_crash_mid_session_is_a_tool_error_then_the_server_comes_back(gateway: Gateway) -> None:
    notices: list[Any] = []

    async def on_message(message: Any) -> None:
        notices.append(message)

    connects = gateway.hub.upstreams["fx"].health.connects
    async with gateway.client(FULL_KEY, "legacy", message_handler=on_message) as client:
        crashed = await client.call_tool("fx__crash", {"code": 3})
        assert crashed.is_error and "MCP server 'fx'" in text(crashed)
        assert "exited with status 3" in text(crashed)
        # The session hears the tools go away and come back, and then the server answers again.
        with anyio.fail_after(15):
            while gateway.hub.upstreams["fx"].health.connects == connects:
                await anyio.sleep(0.05)
            while sum(isinstance(n, types.ToolListChangedNotification) for n in notices) < 2:
                await anyio.sleep(0.05)
        assert "fx__add" in [t.name for t in (await client.list_tools()).tools]
        assert (await client.call_tool("fx__add", {"a": 1, "b": 2})).structured_content == {"result": 3}
    health = gateway.hub.upstreams["fx"].health
    assert health.state == "ready" and health.last_error == "the process exited with status 3"
    records = await gateway.audit(target="fx/crash")
    assert records[0]["details"]["outcome"] == "upstream_error"


async def test_a_disabled_server_is_neither_started_nor_listed(gateway: Gateway) -> None:
    async with gateway.http(ADMIN_KEY) as admin, gateway.http(FULL_KEY) as http:
        servers = {s["name"]: s for s in (await admin.get("/admin/mcp/servers")).json()["data"]}
        endpoint = await http.post("/mcp/off", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert servers["off"]["enabled"] is False and servers["off"]["state"] == "disabled"
    assert servers["off"]["connects"] == 0 and servers["off"]["tools"] == []
    assert endpoint.status_code == 404
    async with gateway.client(FULL_KEY, "2026-07-28") as client:
        assert not [t.name for t in (await client.list_tools()).tools if t.name.startswith("off__")]
