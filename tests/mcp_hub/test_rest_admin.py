"""The REST routes for agent frameworks without MCP, and `GET /admin/mcp/servers`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import pytest

from tests.mcp_hub.conftest import ADMIN_KEY, FULL_KEY, LIMITED_KEY, Gateway

pytestmark = pytest.mark.anyio


async def test_rest_lists_the_keys_tools_as_openai_functions(gateway: Gateway) -> None:
    async with gateway.http(LIMITED_KEY) as http:
        listed = await http.get("/v1/mcp/tools")
        narrowed = await http.get("/v1/mcp/tools", headers={"x-isthmus-tools": "web__*"})
    assert listed.status_code == 200
    functions = listed.json()["data"]
    assert [f["function"]["name"] for f in functions] == [
        "fx__add",
        "fx__echo",
        "time__get_current_time",
        "web__add",
        "web__echo",
    ]
    add = functions[0]
    assert add["type"] == "function" and add["function"]["description"] == "Add two integers."
    assert add["function"]["parameters"]["required"] == ["a", "b"]
    assert [f["function"]["name"] for f in narrowed.json()["data"]] == ["web__add", "web__echo"]


async def test_rest_calls_a_tool_under_the_same_governance(gateway: Gateway) -> None:
    async with gateway.http(LIMITED_KEY) as http:
        ok = await http.post("/v1/mcp/tools/call", json={"name": "fx__add", "arguments": {"a": 4, "b": 5}})
        forbidden = await http.post("/v1/mcp/tools/call", json={"name": "fx__crash", "arguments": {}})
        missing = await http.post("/v1/mcp/tools/call", json={"name": "fx__nothing"})
    assert ok.status_code == 200
    assert ok.json()["structuredContent"] == {"result": 9} and ok.json()["isError"] is False
    assert forbidden.status_code == missing.status_code == 404
    assert forbidden.json()["error"]["code"] == missing.json()["error"]["code"] == "tool_not_found"
    assert forbidden.json()["error"]["message"] == "Unknown tool: fx__crash"
    records = await gateway.audit(target="fx/add", key="limited")
    assert records and records[0]["request_id"] == ok.headers["x-request-id"]


async def test_rest_tool_errors_are_results_and_bad_bodies_are_400(gateway: Gateway) -> None:
    async with gateway.http(FULL_KEY) as http:
        failed = await http.post("/v1/mcp/tools/call", json={"name": "fx__fail", "arguments": {"message": "nope"}})
        not_json = await http.post("/v1/mcp/tools/call", content=b"{oops")
        no_name = await http.post("/v1/mcp/tools/call", json={"arguments": {}})
        bad_args = await http.post("/v1/mcp/tools/call", json={"name": "fx__add", "arguments": [1, 2]})
        too_big = await http.post("/v1/mcp/tools/call", json={"name": "fx__echo", "arguments": {"text": "x" * 70_000}})
    assert failed.status_code == 200 and failed.json()["isError"] is True
    assert "nope" in failed.json()["content"][0]["text"]
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]["message"]
    assert no_name.status_code == 400 and no_name.json()["error"]["param"] == "name"
    assert bad_args.status_code == 400 and bad_args.json()["error"]["param"] == "arguments"
    assert too_big.status_code == 413


async def test_rest_without_a_valid_key_is_401(gateway: Gateway) -> None:
    async with gateway.http() as http:
        response = await http.get("/v1/mcp/tools")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


async def test_the_admin_api_lists_servers_with_their_health(gateway: Gateway) -> None:
    async with gateway.http(ADMIN_KEY) as admin, gateway.http(FULL_KEY) as virtual, gateway.http() as anonymous:
        listed = await admin.get("/admin/mcp/servers")
        forbidden = await virtual.get("/admin/mcp/servers")
        unauthenticated = await anonymous.get("/admin/mcp/servers")
    assert listed.status_code == 200
    servers = {s["name"]: s for s in listed.json()["data"]}
    assert set(servers) == {"fx", "time", "web"}
    assert servers["fx"]["transport"] == "stdio" and servers["web"]["transport"] == "streamable-http"
    assert all(s["state"] == "ready" and s["last_error"] is None for s in servers.values())
    assert servers["time"]["tools"] == ["convert_time", "get_current_time"]
    assert servers["web"]["protocol_version"] == "2026-07-28"
    assert forbidden.status_code == 403 and unauthenticated.status_code == 401


async def test_readiness_summarises_the_upstreams(gateway: Gateway) -> None:
    async with gateway.http() as http:
        ready = await http.get("/ready")
    assert ready.status_code == 200
    mcp = ready.json()["mcp"]
    assert mcp["status"] == "ok"
    assert mcp["servers"]["time"] == {"state": "ready", "last_error": None, "tools": 2}


async def test_the_example_agent_gets_the_keys_tools_from_mcp(gateway: Gateway) -> None:
    agent = Path(__file__).parents[2] / "examples" / "agents" / "mcp_agent.py"
    env = {**os.environ, "ISTHMUS_URL": gateway.base_url, "ISTHMUS_API_KEY": LIMITED_KEY}
    done = await anyio.run_process([sys.executable, str(agent), "--list-tools"], env=env)
    tools = json.loads(done.stdout)
    assert [t["function"]["name"] for t in tools] == [
        "fx__add",
        "fx__echo",
        "time__get_current_time",
        "web__add",
        "web__echo",
    ]
    assert tools[0]["type"] == "function" and tools[0]["function"]["parameters"]["type"] == "object"
