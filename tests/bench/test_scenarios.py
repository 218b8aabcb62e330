"""Scenario requests are prepared through the path: tool names looked up, legacy sessions opened, answers checked."""

from __future__ import annotations

import json

import anyio
import pytest

from bench.loadgen import with_id
from bench.mock_mcp import MockMcpServer
from bench.scenarios import ECHO_TEXT, Path, SetupError, request_for

pytestmark = pytest.mark.anyio


async def test_the_modern_call_carries_the_era_header_and_the_meta_envelope(mcp_mock: str) -> None:
    path = Path("direct", "direct", "http://127.0.0.1:9", mcp_base=mcp_mock)
    with anyio.fail_after(10):
        request = await anyio.to_thread.run_sync(request_for, path, "mcp-modern")
    headers = dict(request.headers)
    body = json.loads(with_id(request.body, 1))
    assert request.url == f"{mcp_mock}/mcp" and request.expect == ECHO_TEXT
    assert headers["MCP-Protocol-Version"] == "2026-07-28" and headers["Mcp-Name"] == "echo"
    assert "Mcp-Session-Id" not in headers
    assert body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] == "2026-07-28"


async def test_the_legacy_call_runs_in_a_session_opened_before_the_load(
    mcp_mock: str, mcp_server: MockMcpServer
) -> None:
    path = Path("direct", "direct", "http://127.0.0.1:9", mcp_base=mcp_mock)
    with anyio.fail_after(10):
        request = await anyio.to_thread.run_sync(request_for, path, "mcp-legacy")
    headers = dict(request.headers)
    assert headers["Mcp-Session-Id"] in mcp_server.sessions
    assert headers["MCP-Protocol-Version"] == "2025-11-25"
    assert "_meta" not in json.loads(with_id(request.body, 1))["params"]


async def test_a_path_without_the_tool_cannot_run_the_scenario(llm_mock: str) -> None:
    # the mock provider answers 404 on /mcp: the reason says what answered
    path = Path("broken", "gateway", llm_mock)
    with pytest.raises(SetupError, match="tools/list answered 404"):
        await anyio.to_thread.run_sync(request_for, path, "mcp-modern")


def test_a_path_that_does_not_serve_a_scenario_says_so() -> None:
    path = Path("cf", "peer", "http://127.0.0.1:9", scenarios=frozenset({"mcp-legacy"}))
    with pytest.raises(SetupError, match="cf does not serve chat"):
        request_for(path, "chat")


def test_only_127_0_0_1_is_a_target() -> None:
    path = Path("remote", "peer", "http://10.0.0.1:80")
    with pytest.raises(SetupError, match="only targets 127.0.0.1"):
        request_for(path, "mcp-modern")


def test_stream_one_is_the_stream_request_to_the_one_model_on_any_path_that_streams() -> None:
    path = Path("isthmus", "gateway", "http://127.0.0.1:9", model="mock/mock-gpt")
    one, stream = request_for(path, "stream-one"), request_for(path, "stream")
    assert json.loads(one.body) == {**json.loads(stream.body), "model": "mock/mock-gpt-one"}
    assert one.url == stream.url and one.expect == stream.expect == "[DONE]"
    with pytest.raises(SetupError):
        request_for(Path("mcp-only", "peer", "http://127.0.0.1:9", scenarios=frozenset({"mcp-modern"})), "stream-one")
