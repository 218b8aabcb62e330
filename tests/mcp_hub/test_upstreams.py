"""Upstream connections on their own: transports, supervision, containment of misbehaving servers."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_hub.catalog import Snapshot
from mcp_hub.errors import UpstreamUnavailable
from mcp_hub.upstreams import Upstream, build_upstream
from mcp_hub.upstreams.stdio import resolve_command
from mcp_hub.upstreams.supervisor import Supervisor
from tests.mcp_hub.conftest import fixture_over_http, fixture_server, free_port
from toolpolicy.settings import McpHubSettings, McpServerSettings

pytestmark = pytest.mark.anyio
HUB = McpHubSettings(backoff_initial=0.05, backoff_max=0.4, connect_timeout=15, max_upstream_message_bytes=65536)


@asynccontextmanager
async def supervised(name: str, server: dict[str, Any], hub: McpHubSettings = HUB) -> AsyncIterator[Upstream]:
    upstream = build_upstream(name, McpServerSettings.model_validate(server), hub)
    async with anyio.create_task_group() as tg:
        await tg.start(Supervisor([upstream], hub).run)
        yield upstream
        tg.cancel_scope.cancel()


async def test_a_legacy_sse_upstream_is_served_and_its_change_notices_trigger_a_relisting() -> None:
    snapshots: list[Snapshot | None] = []
    server = {"url": "", "transport": "sse", "protocol": "legacy"}
    async with fixture_over_http("--sse") as url, supervised("old", {**server, "url": url}) as upstream:
        upstream.on_snapshot = lambda name, snapshot: snapshots.append(snapshot)
        assert upstream.health.state == "ready" and upstream.health.protocol_version == "2025-11-25"
        assert (await upstream.call_tool("add", {"a": 1, "b": 2})).structured_content == {"result": 3}
        assert (await upstream.call_tool("toggle", {})).content[0].text == "added"  # type: ignore[union-attr]
        with anyio.fail_after(5):
            while not snapshots:
                await anyio.sleep(0.02)
        assert snapshots[-1] is not None and "extra" in [t.name for t in snapshots[-1].tools]


@pytest.fixture(scope="module")
async def fx() -> AsyncIterator[Upstream]:
    async with supervised("fx", fixture_server(tools=["add", "e*", "shout", "flood", "crash"])) as upstream:
        yield upstream


async def test_server_level_tool_globs_decide_what_is_exposed_at_all(fx: Upstream) -> None:
    assert fx.snapshot is not None
    assert [t.name for t in fx.snapshot.tools] == ["add", "crash", "echo", "flood", "shout"]
    assert [p.name for p in fx.snapshot.prompts] == ["greet"]


async def test_stderr_goes_to_the_log_under_the_servers_name(fx: Upstream, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mcp_hub.upstreams.stderr")
    assert (await fx.call_tool("shout", {"text": "hello"})).content[0].text == "HELLO"  # type: ignore[union-attr]
    with anyio.fail_after(5):
        while "[fx] shouting: hello" not in caplog.messages:
            await anyio.sleep(0.02)


async def test_a_stdout_flood_is_counted_and_logged_a_few_times_only(
    fx: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mcp_hub.upstreams.stdio")
    before = fx.health.stdout_noise
    await fx.call_tool("flood", {"lines": 20_000, "line_bytes": 1_000_000})
    assert (await fx.call_tool("add", {"a": 2, "b": 2})).structured_content == {"result": 4}
    # At least: the server's own messages may land inside the long line (its writes are not atomic).
    assert fx.health.stdout_noise - before >= 20_001 and fx.health.state == "ready"
    noise = [m for m in caplog.messages if "non-JSON-RPC" in m]
    assert 1 <= len(noise) <= 5
    assert any("a line longer than 65536 bytes" in m for m in noise)


async def test_a_crashed_server_is_restarted(fx: Upstream) -> None:
    connects, failures = fx.health.connects, fx.health.failures
    with pytest.raises(UpstreamUnavailable, match="exited with status 3"):
        await fx.call_tool("crash", {})
    with anyio.fail_after(10):
        while fx.health.connects == connects:
            await anyio.sleep(0.02)
    assert fx.health.failures == failures + 1 and fx.health.state == "ready"
    assert (await fx.call_tool("add", {"a": 1, "b": 1})).structured_content == {"result": 2}


async def test_a_remote_server_that_goes_away_is_reconnected_when_it_is_back() -> None:
    port = free_port()
    first = AsyncExitStack()
    url = await first.enter_async_context(fixture_over_http(port=port))
    async with first:
        async with supervised("web", {"url": url}) as upstream:
            assert upstream.health.state == "ready"
            assert (await upstream.call_tool("add", {"a": 1, "b": 1})).structured_content == {"result": 2}
            await first.aclose()  # the server process goes away
            with anyio.fail_after(10):
                while upstream.health.state == "ready":
                    await anyio.sleep(0.05)
            with pytest.raises(UpstreamUnavailable, match="MCP server 'web'"):
                await upstream.call_tool("add", {"a": 1, "b": 1})
            assert f"cannot reach URL {url}" in (upstream.health.last_error or "")
            async with fixture_over_http(port=port):
                with anyio.fail_after(15):
                    while upstream.health.state != "ready":
                        await anyio.sleep(0.05)
                assert (await upstream.call_tool("add", {"a": 2, "b": 2})).structured_content == {"result": 4}
                assert upstream.health.connects == 2


async def test_a_crash_loop_backs_off(tmp_path: Path) -> None:
    # A command that always fails: attempts keep coming, spaced out by the backoff rather than in a hot loop.
    async with supervised("bad", {"command": str(tmp_path / "missing")}) as upstream:
        with pytest.raises(UpstreamUnavailable, match="MCP server 'bad': is down"):
            await upstream.call_tool("anything", {})
        await anyio.sleep(1.0)
        assert 3 <= upstream.health.failures <= 6  # 0.05 + 0.1 + 0.2 + 0.4 + 0.4 ... seconds apart


def test_bare_commands_are_found_on_path_then_beside_the_interpreter() -> None:
    assert resolve_command("sh").endswith("/sh")
    assert resolve_command("mcp-server-time") == str(Path(sys.executable).parent / "mcp-server-time") or (
        resolve_command("mcp-server-time").endswith("/mcp-server-time")
    )
    assert resolve_command("./relative") == "./relative"
    assert resolve_command("isthmus-no-such-command") == "isthmus-no-such-command"
