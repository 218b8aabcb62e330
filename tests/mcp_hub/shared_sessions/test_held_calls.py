"""2026-07-28 clients' held calls across two replicas (`mcp_hub/shared_sessions/held_calls.py`), and a 2025-era
session's cancellation posted to the replica not running the call.

Two full gateways in this process on one private Redis (the `replicas` fixture of `test_replicas.py`); the client is
the SDK's `Client` at 2026-07-28, which drives the input rounds itself (or its session with
`allow_input_required=True` to see them raw), over a balancer picking the replica per request.
"""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
import redis.asyncio as aioredis
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError

from mcp_hub.shared_sessions.held_calls import GONE, HeldCalls
from tests.mcp_hub.conftest import FULL_KEY, LIMITED_KEY, Gateway
from tests.mcp_hub.shared_sessions.test_replicas import (
    A,
    B,
    Balancer,
    Pick,
    client,
    one_and_a_stoppable_replica,
    replicas,
    round_robin,
)
from tests.mcp_hub.test_relay import sample
from tests.mcp_hub.test_resume import MCP_HEADERS, open_session

pytestmark = pytest.mark.anyio
__all__ = ["replicas"]  # the module fixture, shared with test_replicas.py

MODERN = "2026-07-28"


def retries_to(replica: int) -> Pick:
    """A call's first round on the other replica, every retry (it carries `requestState`) on `replica`."""
    return lambda request: replica if "requestState" in json.loads(request.content).get("params", {}) else 1 - replica


def modern(gateways: list[Gateway], pick: Pick, **kwargs: Any) -> AbstractAsyncContextManager[tuple[Client, Balancer]]:
    """The SDK's client at 2026-07-28 through a balancer (`test_replicas.client`)."""
    return client(gateways, pick, mode=MODERN, **kwargs)


def text(result: types.CallToolResult) -> str:
    return result.content[0].text  # type: ignore[union-attr]


def calls_on(balancer: Balancer) -> list[int]:
    return [replica for method, replica, kind in balancer.sent if method == "POST" and kind == "tools/call"]


async def audited(gateways: list[Gateway], target: str) -> list[dict[str, Any]]:
    """The tool-call records of `target` in the store both replicas share, each replica's buffer flushed first."""
    for gateway in gateways[1:]:
        await gateway.governance.audit.flush()
    return await gateways[0].audit(target=target)


def hello(to: str) -> types.CreateMessageResult:
    return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text=to), model="m")


async def fill_form(ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"name": "Ada"})


@pytest.mark.parametrize("server", ["askweb", "ask"])
async def test_a_question_asked_on_one_replica_is_answered_on_the_other(replicas: list[Gateway], server: str) -> None:
    target = f"{server}/ask_llm"
    before = len(await audited(replicas, target))
    async with modern(replicas, retries_to(B), server=server, sampling_callback=sample) as (client, balancer):
        with anyio.fail_after(20):
            result = await client.call_tool("ask_llm", {"prompt": "Ada"})
    assert not result.is_error, text(result)
    assert json.loads(text(result))["content"]["text"] == "the model says hi to Ada"
    assert calls_on(balancer) == [A, B]
    assert len(replicas[B].hub.relay.rounds) == 0  # B never held it: A did, and answered B's retry
    assert len(await audited(replicas, target)) == before + 1  # governed once, by A


async def test_a_call_asking_twice_alternates_between_replicas(replicas: list[Gateway]) -> None:
    async with modern(replicas, round_robin(), sampling_callback=sample, elicitation_callback=fill_form) as (
        client,
        balancer,
    ):
        with anyio.fail_after(20):
            result = await client.call_tool("ask_twice", {})
    assert not result.is_error, text(result)
    answered = json.loads(text(result))
    assert answered["who"] == {"action": "accept", "content": {"name": "Ada"}}
    assert answered["greeting"]["content"]["text"] == "the model says hi to {'name': 'Ada'}"
    assert calls_on(balancer) == [A, B, A]  # asked on A, first answer via B, second answer on A itself


async def test_a_retry_without_the_answer_on_the_other_replica_is_asked_again(replicas: list[Gateway]) -> None:
    async with modern(replicas, retries_to(B), sampling_callback=sample) as (client, _):
        with anyio.fail_after(20):
            first = await client.session.call_tool("ask_llm", {"prompt": "Lin"}, allow_input_required=True)
            assert isinstance(first, types.InputRequiredResult) and first.request_state
            [key] = first.input_requests or {}
            again = await client.session.call_tool(
                "ask_llm", {"prompt": "Lin"}, request_state=first.request_state, allow_input_required=True
            )
            assert isinstance(again, types.InputRequiredResult) and set(again.input_requests or {}) == {key}
            assert again.request_state and again.request_state != first.request_state  # sealed anew by B
            done = await client.session.call_tool(
                "ask_llm",
                {"prompt": "Lin"},
                input_responses={key: hello("hello Lin")},
                request_state=again.request_state,
                allow_input_required=True,
            )
    assert isinstance(done, types.CallToolResult) and not done.is_error
    assert json.loads(text(done))["content"]["text"] == "hello Lin"


async def test_a_retry_with_another_keys_credentials_is_refused(replicas: list[Gateway]) -> None:
    async with (
        modern(replicas, retries_to(B), sampling_callback=sample) as (owner, _),
        modern(replicas, retries_to(B), key=LIMITED_KEY, sampling_callback=sample) as (other, _),
    ):
        with anyio.fail_after(20):
            first = await owner.session.call_tool("ask_llm", {"prompt": "Eve"}, allow_input_required=True)
            assert isinstance(first, types.InputRequiredResult) and first.request_state
            [key] = first.input_requests or {}
            with pytest.raises(MCPError) as refused:
                await other.session.call_tool(
                    "ask_llm", {"prompt": "Eve"}, input_responses={key: hello("x")}, request_state=first.request_state
                )
            assert refused.value.code == types.INVALID_PARAMS
            assert refused.value.message == "Invalid or expired requestState"
            # The call is still the owner's to answer.
            done = await owner.session.call_tool(
                "ask_llm", {"prompt": "Eve"}, input_responses={key: hello("hi Eve")}, request_state=first.request_state
            )
    assert json.loads(text(done))["content"]["text"] == "hi Eve"


async def test_a_client_leaving_while_its_retry_waits_on_the_other_replica_withdraws_only_the_retry(
    replicas: list[Gateway],
) -> None:
    owner = replicas[A].hub.held_calls
    assert owner is not None
    async with modern(replicas, retries_to(B), elicitation_callback=fill_form) as (client, _):
        with anyio.fail_after(20):
            first = await client.session.call_tool("ask_then_stall", {}, allow_input_required=True)
            assert isinstance(first, types.InputRequiredResult) and first.request_state
            [(key, _)] = (first.input_requests or {}).items()
            [held] = [h for h in replicas[A].hub.relay.rounds.held.values() if key in h.questions]
            answer = types.ElicitResult(action="accept", content={"name": "Ada"})
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    lambda: client.session.call_tool(
                        "ask_then_stall", {}, input_responses={key: answer}, request_state=first.request_state
                    )
                )
                while not owner.serving:  # A serves B's retry: the answer is in, the tool runs on upstream
                    await anyio.sleep(0.02)
                tg.cancel_scope.cancel()  # the client goes away
            while owner.serving:  # B withdrew the retry: A stops waiting for it
                await anyio.sleep(0.02)
    assert held.id in replicas[A].hub.relay.rounds.held  # the call itself runs on, for the client's next retry
    assert not held.scope.cancel_called
    assert held.questions[key].answer == answer
    held.scope.cancel()  # done with it


async def test_an_owner_that_does_not_answer_gives_32602_saying_start_again(replicas: list[Gateway]) -> None:
    """A replica that listens but never answers (a stuck owner): the retry gives up after the acknowledgement bound."""
    bus = replicas[B].hub.held_calls
    assert isinstance(bus, HeldCalls)
    redis_url = replicas[B].governance.settings.redis
    assert redis_url is not None
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe("isthmus:mcp:r:silent")
    bus.ack_timeout = 0.3
    try:
        with anyio.fail_after(10), pytest.raises(MCPError) as refused:
            await bus.resume("silent", "some-call", {"sampling-1": hello("late")})
        received = None
        while received is None:  # the subscription's confirmation comes first, read as None
            received = await pubsub.get_message(timeout=5)
    finally:
        bus.ack_timeout = 5.0
        await pubsub.aclose()
        await client.aclose()
    assert refused.value.code == types.INVALID_PARAMS and refused.value.message == GONE
    assert refused.value.error.data == {"reason": "owner_silent"}
    assert received is not None
    sent = json.loads(received["data"])
    assert (sent["t"], sent["h"]) == ("held", "some-call")
    assert sent["in"]["sampling-1"]["content"]["text"] == "late"


async def test_the_shared_key_is_made_once_and_kept_in_redis(replicas: list[Gateway]) -> None:
    for gateway in replicas:
        assert gateway.hub.relay.state_keys.shared
    redis_url = replicas[A].governance.settings.redis
    assert redis_url is not None
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert len(await client.get("isthmus:mcp:state-key") or b"") == 32
    finally:
        await client.aclose()


async def test_a_cancellation_posted_to_the_other_replica_cancels_the_call(replicas: list[Gateway]) -> None:
    request = {"jsonrpc": "2.0", "id": 41, "method": "tools/call", "params": {"name": "askweb__stall"}}
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 41, "reason": "enough"}}
    in_flight = replicas[A].hub.relay.upstreams["askweb"].in_flight
    async with replicas[A].http(FULL_KEY) as on_a, replicas[B].http(FULL_KEY) as on_b:
        session = await open_session(on_a)

        async def stall() -> None:
            async with on_a.stream("POST", "/mcp", json=request, headers={**MCP_HEADERS, **session}) as response:
                async for _ in response.aiter_bytes():
                    pass

        async with anyio.create_task_group() as tg:
            tg.start_soon(stall)
            with anyio.fail_after(20):
                while len(in_flight) == 0:
                    await anyio.sleep(0.02)
                posted = await on_b.post("/mcp", json=cancel, headers={**MCP_HEADERS, **session})
                assert posted.status_code == 202
                while len(in_flight) > 0:  # the call, a minute long upstream, ends now
                    await anyio.sleep(0.02)
            tg.cancel_scope.cancel()
        rows = await audited(replicas, "askweb/stall")
        assert [row["details"]["outcome"] for row in rows] == ["cancelled"]
        await on_a.delete("/mcp", headers=session)


async def test_a_retry_for_a_replica_that_is_gone_gets_32602_saying_start_again(tmp_path: Path) -> None:
    async with (
        one_and_a_stoppable_replica(tmp_path) as (one, two, two_running),
        modern([two, one], retries_to(1), sampling_callback=sample) as (session, _),
    ):
        with anyio.fail_after(30):
            first = await session.session.call_tool("ask_llm", {"prompt": "Bo"}, allow_input_required=True)
            assert isinstance(first, types.InputRequiredResult) and first.request_state
            [key] = first.input_requests or {}
            await two_running.stop()  # the replica holding the call goes
            with pytest.raises(MCPError) as refused:
                await session.session.call_tool(
                    "ask_llm",
                    {"prompt": "Bo"},
                    input_responses={key: hello("too late")},
                    request_state=first.request_state,
                )
    assert refused.value.code == types.INVALID_PARAMS
    assert refused.value.message == GONE and refused.value.error.data == {"reason": "owner_gone"}
