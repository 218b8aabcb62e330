"""Per-key shares of the hub: one key at its cap is refused with an error naming the key and the cap, another key is
served, and closing (or disconnecting, or idling out) gives the slot back.

The gateway's caps here: 2 legacy sessions, 1 `subscriptions/listen` stream and 1 Code Mode run per key; key `vip`
overrides its sessions to 3 (`mcp_rate_limit.concurrency`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from hypothesis import given, strategies as st
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from mcp_hub.fairness import KeyCapReached, KeyCaps, KeySlots, Slot
from tests.mcp_hub.conftest import Gateway, fixture_server, hub_settings, serving
from toolpolicy.key_caps import McpKeyCaps
from toolpolicy.settings import GatewaySettings
from toolpolicy.types import Principal

pytestmark = pytest.mark.anyio

BOT_KEY = "isk-fair-bot"
OTHER_KEY = "isk-fair-other"
VIP_KEY = "isk-fair-vip"
LEGACY_VERSION = "2025-11-25"
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": LEGACY_VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
LIMIT_CODE = -32029


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    keys = (
        {"name": "bot", "value": BOT_KEY, "mcp": {"fx": ["*"]}, "code_mode": True},
        {"name": "other", "value": OTHER_KEY, "mcp": {"fx": ["*"]}, "code_mode": True},
        {
            "name": "vip",
            "value": VIP_KEY,
            "mcp": {"fx": ["*"]},
            "mcp_rate_limit": {"concurrency": {"sessions": 3}},
        },
    )
    settings = hub_settings(
        tmp_path_factory.mktemp("fairness"),
        {"fx": fixture_server(timeout=120)},
        keys=keys,
        mcp={"per_key": {"sessions": 2, "listen_streams": 1, "code_mode_runs": 1}, "session_idle_timeout": 1.0},
        code_mode={"workers": 2, "warm_workers": 1, "wall_timeout": 120},
    )
    async with serving(settings) as started:
        yield started


async def initialize(http: httpx2.AsyncClient) -> httpx2.Response:
    return await http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)


async def hold_session(stack: AsyncExitStack, gateway: Gateway, key: str) -> tuple[str, AsyncExitStack]:
    """Open a legacy session and keep its GET stream open (so it cannot idle out), deleting it when `stack` closes;
    closing the returned stack first is the client going away without deleting the session."""
    http = await stack.enter_async_context(gateway.http(key))
    opened = await initialize(http)
    assert opened.status_code == 200, opened.text
    session_id = opened.headers["mcp-session-id"]
    session = {"mcp-session-id": session_id, "mcp-protocol-version": LEGACY_VERSION}
    stack.push_async_callback(http.delete, "/mcp", headers=session)
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await http.post("/mcp", json=initialized, headers={**MCP_HEADERS, **session})).status_code == 202
    listening = AsyncExitStack()
    stream = await listening.enter_async_context(
        http.stream("GET", "/mcp", headers={"accept": "text/event-stream", **session})
    )
    assert stream.status_code == 200
    stack.push_async_callback(listening.aclose)
    return session_id, listening


async def eventually(attempt: Callable[[], Awaitable[bool]]) -> None:
    """Retry until the server has seen the close: it learns of it over the network, after the client."""
    with anyio.fail_after(15):
        while not await attempt():
            await anyio.sleep(0.05)


def refusal(response: httpx2.Response) -> str:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == LIMIT_CODE
    message: str = error["message"]
    return message


async def test_a_key_at_its_session_cap_is_refused_while_another_key_opens_one(gateway: Gateway) -> None:
    async with AsyncExitStack() as stack, gateway.http(BOT_KEY) as bot:
        first, _ = await hold_session(stack, gateway, BOT_KEY)
        _, second_stream = await hold_session(stack, gateway, BOT_KEY)
        assert refusal(await initialize(bot)) == (
            "key 'bot' holds 2 of 2 MCP sessions; close one (DELETE it) or let one idle out first"
        )
        async with gateway.client(OTHER_KEY, "legacy") as other:
            assert [tool.name for tool in (await other.list_tools()).tools] == [
                "search_tools",
                "get_tool_docs",
                "run_code",
            ]

        # A client that deletes its session gives the slot back.
        deleted = await bot.delete("/mcp", headers={"mcp-session-id": first, "mcp-protocol-version": LEGACY_VERSION})
        assert deleted.status_code == 200
        third_stack = await stack.enter_async_context(AsyncExitStack())

        async def opens_held_session() -> bool:
            try:
                await hold_session(third_stack, gateway, BOT_KEY)
            except AssertionError:
                return False
            return True

        await eventually(opens_held_session)
        assert refusal(await initialize(bot)).startswith("key 'bot' holds 2 of 2 MCP sessions")

        # A client that goes away without deleting: the session idles out (1 s here), and its slot with it.
        await second_stream.aclose()

        async def opens() -> bool:
            opened = await initialize(bot)
            if opened.status_code != 200:
                return False
            await bot.delete("/mcp", headers={"mcp-session-id": opened.headers["mcp-session-id"]})
            return True

        await eventually(opens)


async def test_a_key_override_replaces_the_hub_session_cap(gateway: Gateway) -> None:
    async with AsyncExitStack() as stack, gateway.http(VIP_KEY) as vip:
        for _ in range(3):
            await hold_session(stack, gateway, VIP_KEY)
        assert refusal(await initialize(vip)).startswith("key 'vip' holds 3 of 3 MCP sessions")


async def test_a_key_at_its_listen_cap_is_refused_while_another_key_listens(gateway: Gateway) -> None:
    async with gateway.client(BOT_KEY, "2026-07-28") as bot, gateway.client(OTHER_KEY, "2026-07-28") as other:
        async with bot.listen(tools_list_changed=True) as held:
            assert held.honored.tools_list_changed
            with pytest.raises(MCPError) as refused:
                async with bot.listen(tools_list_changed=True):
                    pass
            assert refused.value.code == LIMIT_CODE
            assert refused.value.message == "key 'bot' holds 1 of 1 subscriptions/listen streams; close one first"
            async with other.listen(tools_list_changed=True) as theirs:
                assert theirs.honored.tools_list_changed

        async def listens() -> bool:
            try:
                async with bot.listen(tools_list_changed=True):
                    return True
            except MCPError as exc:
                assert exc.code == LIMIT_CODE
                return False

        await eventually(listens)


def text_of(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


async def test_a_key_at_its_code_mode_share_is_refused_while_another_key_runs(gateway: Gateway, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    slow = f"await fx.slow(seconds=100, marker={str(marker)!r})"
    async with gateway.client(BOT_KEY, "legacy") as bot, gateway.client(OTHER_KEY, "legacy") as other:
        async with anyio.create_task_group() as tg:
            tg.start_soon(bot.call_tool, "run_code", {"code": slow})
            with anyio.fail_after(15):
                while not marker.exists():
                    await anyio.sleep(0.02)
            refused = await bot.call_tool("run_code", {"code": "1 + 1"})
            assert refused.is_error
            assert text_of(refused) == (
                "Sandbox share in use: key 'bot' holds 1 of 1 Code Mode sandbox runs; wait for one to finish"
            )
            assert (refused.meta or {})["isthmus/outcome"] == "limit"
            theirs = await other.call_tool("run_code", {"code": "1 + 1"})
            assert not theirs.is_error and text_of(theirs) == "Result:\n2"
            tg.cancel_scope.cancel()  # the client gives up on the slow run: it is cancelled, and its share freed

        async def runs() -> bool:
            return not (await bot.call_tool("run_code", {"code": "1 + 1"})).is_error

        await eventually(runs)

    async def upstream_saw_the_cancel() -> bool:
        # The upstream learns of the cancellation by a notification of its own, after the gateway freed the share.
        return marker.read_text() == "cancelled"

    await eventually(upstream_saw_the_cancel)


def principal(key_id: str, concurrency: dict[str, Any] | None = None) -> Principal:
    rate = {"calls": None, "per_server": {}, "concurrency": concurrency}
    return Principal(key_id=key_id, key_name=f"name-{key_id}", limits={"mcp_rate_limit": rate})


def test_caps_follow_the_hub_defaults_unless_the_key_overrides_them() -> None:
    caps = KeyCaps(McpKeyCaps(sessions=5, listen_streams=4), sandbox_workers=6)
    plain = principal("a")
    assert (caps.sessions(plain), caps.listen_streams(plain), caps.code_mode_runs(plain)) == (5, 4, 3)
    own = principal("b", {"sessions": 1, "listen_streams": None, "code_mode_runs": 6})
    assert (caps.sessions(own), caps.listen_streams(own), caps.code_mode_runs(own)) == (1, 4, 6)
    assert KeyCaps(McpKeyCaps(), sandbox_workers=1).code_mode_runs(plain) == 1


def test_caps_are_validated_where_they_are_configured() -> None:
    base = {"store": "sqlite+aiosqlite:///:memory:", "admin_key": "k"}
    key = {"name": "bad", "value": "isk-bad", "mcp_rate_limit": {"concurrency": {"sessions": 0}}}
    with pytest.raises(ValidationError) as zero:
        GatewaySettings.model_validate({**base, "virtual_keys": [key]})
    assert [(e["loc"], e["type"]) for e in zero.value.errors()] == [
        (("virtual_keys", 0, "mcp_rate_limit", "concurrency", "sessions"), "greater_than_equal")
    ]
    with pytest.raises(ValidationError) as typo:
        GatewaySettings.model_validate({**base, "mcp": {"per_key": {"sessoins": 3}}})
    assert [(e["loc"], e["type"]) for e in typo.value.errors()] == [(("mcp", "per_key", "sessoins"), "extra_forbidden")]


@given(
    caps=st.dictionaries(st.sampled_from("abc"), st.integers(1, 3), min_size=3, max_size=3),
    steps=st.lists(st.tuples(st.booleans(), st.sampled_from("abc"), st.integers(0, 5)), max_size=60),
)
def test_slots_count_exactly_what_each_key_holds(caps: dict[str, int], steps: list[tuple[bool, str, int]]) -> None:
    slots = KeySlots("things", "wait", lambda p: caps[p.key_id])
    held: dict[str, list[Slot]] = {key: [] for key in caps}
    for acquiring, key, pick in steps:
        if acquiring:
            if len(held[key]) >= caps[key]:
                with pytest.raises(KeyCapReached) as refused:
                    slots.acquire(principal(key))
                assert refused.value.message == f"key 'name-{key}' holds {caps[key]} of {caps[key]} things; wait"
                assert refused.value.status == 429
            else:
                held[key].append(slots.acquire(principal(key)))
        elif held[key]:
            slot = held[key].pop(pick % len(held[key]))
            slot.release()
            slot.release()  # a second release (e.g. a session ended twice) gives nothing more back
        assert all(slots.held(k) == len(v) for k, v in held.items())
