"""A 2026-07-28 call no upstream can ask about mid-call runs inline, in the request's task (`rounds.InlineCall`);
with a 2025-era upstream about, it is still held in the background (`rounds.HeldCall`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from mcp_hub.relay.rounds import HeldCall, InlineCall, InputRequired, RoundInput, Rounds, decode_state
from tests.mcp_hub.conftest import FULL_KEY, Gateway, hub_settings, serving
from tests.mcp_hub.test_relay import asking_server, sample, text

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
SAMPLE = types.CreateMessageRequest(
    params=types.CreateMessageRequestParams(
        messages=[types.SamplingMessage(role="user", content=types.TextContent(type="text", text="hi"))],
        max_tokens=5,
    )
)


async def served(rounds: Rounds, start: Any, *, inline: bool, caps: types.ClientCapabilities | None = None) -> Any:
    async with anyio.create_task_group() as tg:
        rounds.tg = tg
        try:
            return await rounds.serve(None, None, caps, start, inline=inline)
        except MCPError as exc:
            return exc  # outside the task group's exception group
        finally:
            tg.cancel_scope.cancel()  # the held call lingers for a retry otherwise


@pytest.mark.parametrize("inline", [True, False])
async def test_a_call_runs_inline_only_when_asked_to(inline: bool) -> None:
    rounds = Rounds(linger=60)
    caller = anyio.get_current_task().id
    seen: list[tuple[int, type, int]] = []

    async def start(call: HeldCall | InlineCall) -> str:
        seen.append((anyio.get_current_task().id, type(call), len(rounds)))
        return "done"

    assert await served(rounds, start, inline=inline) == "done"
    [(task, kind, held)] = seen
    assert (task == caller, kind, held) == ((True, InlineCall, 0) if inline else (False, HeldCall, 1))
    assert len(rounds) == 0


async def test_an_inline_calls_upstream_input_round_is_passed_through_sealed_and_filtered() -> None:
    upstream = types.InputRequiredResult(input_requests={"s": SAMPLE}, request_state="upstream-state")

    async def start(call: HeldCall | InlineCall) -> str:
        raise InputRequired(upstream)

    sampling = types.ClientCapabilities(sampling=types.SamplingCapability())
    result = await served(Rounds(linger=60), start, inline=True, caps=sampling)
    assert isinstance(result, types.InputRequiredResult)
    assert result.input_requests == {"s": SAMPLE}
    assert decode_state(result.request_state) == {"upstream": "upstream-state"}
    refused = await served(Rounds(linger=60), start, inline=True, caps=types.ClientCapabilities())
    assert isinstance(refused, MCPError) and refused.code == types.MISSING_REQUIRED_CLIENT_CAPABILITY


async def test_an_inline_call_refuses_a_question_it_cannot_hold() -> None:
    answer = await InlineCall(RoundInput(None, None)).ask(SAMPLE, 5)
    assert isinstance(answer, types.ErrorData) and answer.code == types.INTERNAL_ERROR


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    servers = {"ask26": {**asking_server(), "protocol": "auto"}}
    async with serving(hub_settings(tmp_path_factory.mktemp("inline"), servers)) as started:
        yield started


async def test_with_only_2026_upstreams_a_2026_clients_input_rounds_still_work(gateway: Gateway) -> None:
    with anyio.fail_after(20):
        while gateway.hub.upstreams["ask26"].health.protocol_version != MODERN:
            await anyio.sleep(0.05)
    assert not gateway.hub.relay.may_ask()
    async with gateway.client(FULL_KEY, MODERN, server="ask26", sampling_callback=sample) as client:
        with anyio.fail_after(20):
            result = await client.call_tool("dual_llm", {"prompt": "Eve"})
    assert not result.is_error, text(result)
    assert json.loads(text(result))["content"] == {"type": "text", "text": "the model says hi to Eve"}
    assert len(gateway.hub.relay.rounds) == 0
