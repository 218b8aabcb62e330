"""Disabling a configured server at run time (`POST /admin/mcp/servers/<name>/disable`) and enabling it again."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from tests.mcp_hub.conftest import ADMIN_KEY, FULL_KEY, Gateway, fixture_server, hub_settings, serving

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    servers = {"fx": fixture_server(), "off": {**fixture_server(), "enabled": False}}
    async with serving(hub_settings(tmp_path_factory.mktemp("toggle"), servers)) as started:
        yield started


async def tool_names(gateway: Gateway) -> list[str]:
    async with gateway.http(FULL_KEY) as http:
        return [f["function"]["name"] for f in (await http.get("/v1/mcp/tools")).json()["data"]]


async def test_a_disabled_server_goes_down_and_unlisted_then_comes_back_when_enabled(gateway: Gateway) -> None:
    upstream = gateway.hub.upstreams["fx"]
    connects = upstream.health.connects
    assert "fx__add" in await tool_names(gateway)
    async with gateway.http(ADMIN_KEY) as admin, gateway.http(FULL_KEY) as http:
        disabled = await admin.post("/admin/mcp/servers/fx/disable")
        assert disabled.status_code == 200
        assert (disabled.json()["state"], disabled.json()["enabled"], disabled.json()["tools"]) == (
            "disabled",
            False,
            [],
        )
        assert not [name for name in await tool_names(gateway) if name.startswith("fx__")]
        refused = await http.post("/v1/mcp/tools/call", json={"name": "fx__add", "arguments": {"a": 1, "b": 2}})
        # As for a server that is down: a tool error naming the server and its state.
        assert refused.json()["isError"] is True and "disabled" in refused.json()["content"][0]["text"]
        assert (await admin.post("/admin/mcp/servers/fx/disable")).status_code == 200  # twice is the same
        enabled = await admin.post("/admin/mcp/servers/fx/enable")
        assert enabled.status_code == 200 and enabled.json()["enabled"] is True
        with anyio.fail_after(15):
            while upstream.health.state != "ready":
                await anyio.sleep(0.05)
        assert upstream.health.connects == connects + 1
        called = await http.post("/v1/mcp/tools/call", json={"name": "fx__add", "arguments": {"a": 1, "b": 2}})
        assert called.json()["structuredContent"] == {"result": 3}


async def test_only_the_admin_key_toggles_and_only_servers_the_configuration_enables(gateway: Gateway) -> None:
    async with gateway.http(ADMIN_KEY) as admin, gateway.http(FULL_KEY) as virtual:
        assert (await virtual.post("/admin/mcp/servers/fx/disable")).status_code == 403
        unknown = await admin.post("/admin/mcp/servers/nothing/disable")
        configured_off = await admin.post("/admin/mcp/servers/off/enable")
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "server"
    assert configured_off.status_code == 409 and "enabled: false" in configured_off.json()["error"]["message"]
    assert gateway.hub.upstreams["fx"].health.state == "ready"
