"""In-process mock upstreams on 127.0.0.1 for the benchmark harness's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bench.httpserver import Handler, listen
from bench.mock_llm import MockProvider
from bench.mock_mcp import MockMcpServer
from bench.procs import free_port


async def serve_on_loopback(handler: Handler) -> AsyncIterator[str]:
    port = free_port()
    server = await listen(handler, "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def llm_mock() -> AsyncIterator[str]:
    """Base URL of a mock provider streaming 4 chunks, 20 ms apart for `-paced` models."""
    async for url in serve_on_loopback(MockProvider(chunks=4, gap_ms=20)):
        yield url


@pytest.fixture
async def mcp_server() -> MockMcpServer:
    return MockMcpServer()


@pytest.fixture
async def mcp_mock(mcp_server: MockMcpServer) -> AsyncIterator[str]:
    """Base URL of the mock MCP server (its endpoint is `<url>/mcp`)."""
    async for url in serve_on_loopback(mcp_server):
        yield url
