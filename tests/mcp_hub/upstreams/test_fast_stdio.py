"""A stdio upstream's `tools/call` fast path (`mcp_hub/upstreams/fast_stdio.py`): one writer batching what is sent,
one reader handing each response to its call by id, and the same answers as the MCP SDK's client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from mcp_hub.errors import UpstreamUnavailable
from mcp_hub.upstreams import Upstream
from mcp_hub.upstreams.fast_stdio import HIGH_WATER, Outbox, StdioLink
from tests.mcp_hub.conftest import fixture_server
from tests.mcp_hub.test_upstreams import supervised

pytestmark = pytest.mark.anyio


def _response(request_id: object, result: object = None) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result or {"content": []}}).encode()


async def test_the_writer_takes_everything_queued_since_its_last_write_in_order() -> None:
    outbox = Outbox()
    await outbox.send(b"one\n")
    await outbox.send(b"two\n")
    assert await outbox.take() == b"one\ntwo\n"
    await outbox.send(b"three\n")
    assert await outbox.take() == b"three\n"


async def test_a_sender_past_the_high_water_mark_waits_for_the_writer() -> None:
    outbox = Outbox()
    done = anyio.Event()

    async def big() -> None:
        await outbox.send(b"x" * (HIGH_WATER + 1))
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(big)
        await anyio.wait_all_tasks_blocked()
        assert not done.is_set()
        assert len(await outbox.take()) == HIGH_WATER + 1
        outbox.written()
        with anyio.fail_after(5):
            await done.wait()


async def test_a_closed_outbox_refuses_to_send() -> None:
    outbox = Outbox()
    outbox.close()
    with pytest.raises(MCPError) as refused:
        await outbox.send(b"late\n")
    assert refused.value.code == types.CONNECTION_CLOSED


async def test_only_a_response_to_a_call_in_flight_is_taken_off_the_sdks_stream() -> None:
    link = StdioLink(Outbox())
    got: dict[str, object] = {}

    async def call() -> None:
        got["answer"] = await link.call(7, b'{"id":7}')

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        assert not link.take_response(_response(8))  # an id the fast path did not send: the SDK's
        assert not link.take_response(_response(True))  # a boolean is not the integer 1
        assert not link.take_response(b'{"jsonrpc":"2.0","id":7,"method":"ping"}')  # a request from the server
        assert not link.take_response(b'{"jsonrpc":"2.0","id":7}')  # neither result nor error: garbage, as before
        assert not link.take_response(b"not json")
        assert link.take_response(_response(7, {"content": [], "isError": False}))
    assert got["answer"] == {"jsonrpc": "2.0", "id": 7, "result": {"content": [], "isError": False}}
    assert not link.pending


async def test_a_call_whose_caller_goes_away_tells_the_server() -> None:
    outbox = Outbox()
    link = StdioLink(outbox)
    with anyio.move_on_after(0.05):
        await link.call(3, b'{"id":3}')
    sent = (await outbox.take()).splitlines()
    assert sent[0] == b'{"id":3}'
    assert json.loads(sent[1]) == {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": 3, "reason": "caller cancelled"},
    }
    assert not link.pending


async def test_calls_in_flight_fail_as_a_closed_connection_when_it_ends() -> None:
    link = StdioLink(Outbox())
    errors: list[int] = []

    async def call(request_id: int) -> None:
        try:
            await link.call(request_id, b"{}")
        except MCPError as exc:
            errors.append(exc.code)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, 1)
        tg.start_soon(call, 2)
        await anyio.wait_all_tasks_blocked()
        link.close()
    assert errors == [types.CONNECTION_CLOSED] * 2
    with pytest.raises(MCPError):
        await link.call(4, b"{}")


@pytest.fixture(scope="module")
async def fast_and_sdk() -> AsyncIterator[tuple[Upstream, Upstream]]:
    server = fixture_server(tools=["add", "echo", "slow", "crash", "fail"])
    async with supervised("fast", server) as fast, supervised("sdk", {**server, "fast_path": False}) as sdk:
        yield fast, sdk


async def test_a_stdio_server_is_called_on_the_fast_path_with_the_sdks_answers(
    fast_and_sdk: tuple[Upstream, Upstream],
) -> None:
    fast, sdk = fast_and_sdk
    assert fast._fast is not None and isinstance(fast._fast.http, StdioLink)
    assert sdk._fast is None
    for tool, arguments in (("add", {"a": 2, "b": 3}), ("echo", {"text": "hi"}), ("fail", {})):
        assert await fast.call_tool(tool, arguments) == await sdk.call_tool(tool, arguments)


async def test_concurrent_fast_calls_share_the_one_process_and_each_gets_its_own_answer(
    fast_and_sdk: tuple[Upstream, Upstream],
) -> None:
    fast, _ = fast_and_sdk
    answers: dict[int, object] = {}

    async def call(n: int) -> None:
        answers[n] = (await fast.call_tool("add", {"a": n, "b": 1000})).structured_content

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(call, n)
    assert answers == {n: {"result": n + 1000} for n in range(20)}


async def test_a_cancelled_fast_call_is_cancelled_in_the_server(
    fast_and_sdk: tuple[Upstream, Upstream], tmp_path: Path
) -> None:
    fast, _ = fast_and_sdk
    marker = tmp_path / "marker"
    with anyio.move_on_after(10) as waited:
        async with anyio.create_task_group() as tg:
            tg.start_soon(fast.call_tool, "slow", {"seconds": 30, "marker": str(marker)})
            while not marker.exists():
                await anyio.sleep(0.02)
            tg.cancel_scope.cancel()
        while marker.read_text() != "cancelled":
            await anyio.sleep(0.02)
    assert not waited.cancelled_caught


async def test_a_fast_call_whose_server_dies_says_how(fast_and_sdk: tuple[Upstream, Upstream]) -> None:
    fast, _ = fast_and_sdk
    connects = fast.health.connects
    with pytest.raises(UpstreamUnavailable, match="exited with status 3"):
        await fast.call_tool("crash", {})
    with anyio.fail_after(10):
        while fast.health.connects == connects or fast.health.state != "ready":
            await anyio.sleep(0.02)
    assert (await fast.call_tool("add", {"a": 1, "b": 1})).structured_content == {"result": 2}
