"""Agent mode end to end: the whole gateway (LLM proxy and MCP hub wired as `isthmus serve` wires them) in front of
the scripted mock provider and the real fixture MCP server over stdio, driven by the official SDKs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import anyio
import openai
import pytest

from tests.llm_proxy.leaving import leave_while_thinking
from tests.llm_proxy.mock_provider import USAGE, MockProvider, answer_with_tool_results, tool_calls
from tests.mcp_hub.conftest import Gateway, fixture_server, hub_settings, serving
from toolpolicy.store.audit_log import AuditQuery

pytestmark = pytest.mark.anyio

AGENT_KEY = "isk-agent"
NARROW_KEY = "isk-agent-narrow"
THRIFTY_KEY = "isk-agent-thrifty"
SHORT_KEY = "isk-agent-short"
THRIFTY_STREAM_KEY = "isk-agent-thrifty-stream"
BROKE_KEY = "isk-agent-broke"
MODEL = "mock/agent-1"
FIXTURE_ALL = {"fixture": ["*"]}
AGENT = {"tools": ["fixture__*"], "max_steps": 4, "parallel": True}
KEYS = (
    {"name": "agent", "value": AGENT_KEY, "models": ["mock/*"], "mcp": FIXTURE_ALL, "agent": AGENT},
    # The allowlist gives one tool; the agent globs select them all: only the allowed one is offered.
    {"name": "narrow", "value": NARROW_KEY, "models": ["mock/*"], "mcp": {"fixture": ["echo"]}, "agent": AGENT},
    # Each model call reserves $0.02 (20 output tokens at $0.001) and spends $0.007: the third no longer fits.
    {
        "name": "thrifty",
        "value": THRIFTY_KEY,
        "models": ["mock/*"],
        "mcp": FIXTURE_ALL,
        "agent": AGENT,
        "budgets": [{"max_usd": 0.03}],
    },
    {
        "name": "thrifty-stream",
        "value": THRIFTY_STREAM_KEY,
        "models": ["mock/*"],
        "mcp": FIXTURE_ALL,
        "agent": AGENT,
        "budgets": [{"max_usd": 0.03}],
    },
    # Cannot cover even the first model call's reservation ($0.02).
    {
        "name": "broke",
        "value": BROKE_KEY,
        "models": ["mock/*"],
        "mcp": FIXTURE_ALL,
        "agent": AGENT,
        "budgets": [{"max_usd": 0.01}],
    },
    {"name": "short", "value": SHORT_KEY, "models": ["mock/*"], "mcp": FIXTURE_ALL, "agent": {**AGENT, "max_steps": 2}},
)


@pytest.fixture(scope="module")
async def mock() -> AsyncIterator[MockProvider]:
    provider = MockProvider()
    await provider.start()
    try:
        yield provider
    finally:
        await provider.close()


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory, mock: MockProvider) -> AsyncIterator[Gateway]:
    settings = hub_settings(
        tmp_path_factory.mktemp("agent"),
        {"fixture": fixture_server(timeout=10)},
        keys=KEYS,
        providers={"mock": {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-mock"}]}},
        pricing={"mock/*": {"input": 0, "output": 1000}},
    )
    async with serving(settings, both_halves=True) as started:
        yield started


@pytest.fixture(autouse=True)
def fresh_script(mock: MockProvider) -> None:
    mock.pending.clear()
    mock.seen.clear()


OPENED: list[openai.AsyncOpenAI | anthropic.AsyncAnthropic] = []


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    yield
    while OPENED:
        await OPENED.pop().close()


def openai_client(gateway: Gateway, key: str = AGENT_KEY, request_id: str | None = None) -> openai.AsyncOpenAI:
    headers = {"x-request-id": request_id} if request_id else None
    client = openai.AsyncOpenAI(api_key=key, base_url=f"{gateway.base_url}/v1", default_headers=headers, max_retries=0)
    OPENED.append(client)
    return client


async def records(gateway: Gateway, kind: str, request_id: str) -> list[dict[str, Any]]:
    await gateway.governance.audit.flush()
    rows, _ = await gateway.governance.audit_log.query(AuditQuery(kind=kind, limit=500))
    return [row for row in rows if row["request_id"] == request_id]


def offered(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {tool["function"]["name"]: tool["function"] for tool in body.get("tools") or ()}


USER = [{"role": "user", "content": "say hello through the tool"}]


async def test_a_key_in_agent_mode_gets_an_answer_that_used_the_tool_the_gateway_ran(
    gateway: Gateway, mock: MockProvider
) -> None:
    mock.queue(tool_calls(("fixture__echo", {"text": "hello"})), answer_with_tool_results())
    client = openai_client(gateway, request_id="agent-plain")
    with anyio.fail_after(30):
        raw = await client.chat.completions.with_raw_response.create(model=MODEL, messages=USER)  # type: ignore[arg-type]
    completion = raw.parse()
    assert completion.choices[0].message.content == "used:hello"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
        2 * USAGE["prompt_tokens"],
        2 * USAGE["completion_tokens"],
    )
    assert raw.headers["x-isthmus-agent-steps"] == "2"
    assert raw.headers["x-isthmus-agent-stopped"] == "answered"
    first, second = mock.seen
    echo = offered(first.body)["fixture__echo"]
    assert echo["parameters"]["properties"]["text"]["type"] == "string"
    assert echo["description"]
    assert "stream" not in first.body
    assistant, tool = second.body["messages"][-2:]
    assert assistant["tool_calls"][0]["function"] == {"name": "fixture__echo", "arguments": '{"text": "hello"}'}
    assert tool == {"role": "tool", "tool_call_id": "call_0", "content": "hello"}
    calls = await records(gateway, "tool_call", "agent-plain")
    assert [(row["target"], row["details"]["via"], row["details"]["outcome"]) for row in calls] == [
        ("fixture/echo", "agent", "ok")
    ]
    (llm,) = await records(gateway, "llm", "agent-plain")
    assert llm["details"]["agent"] == {"steps": 2, "tools": ["fixture__echo"], "stopped": "answered"}
    assert llm["tokens_out"] == 2 * USAGE["completion_tokens"]


async def test_agent_mode_streams_a_chunk_stream_the_openai_sdk_parses(gateway: Gateway, mock: MockProvider) -> None:
    mock.queue(tool_calls(("fixture__echo", {"text": "streamed"})), answer_with_tool_results())
    client = openai_client(gateway, request_id="agent-stream")
    text, ids, finishes, usage = "", set(), [], None
    with anyio.fail_after(30):
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=USER,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            ids.add(chunk.id)
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                text += choice.delta.content or ""
                assert not choice.delta.tool_calls
                if choice.finish_reason:
                    finishes.append(choice.finish_reason)
    assert text == "used:streamed"
    assert finishes == ["stop"]
    assert len(ids) == 1
    assert usage is not None and usage.completion_tokens == 2 * USAGE["completion_tokens"]
    assert all(seen.body["stream"] is True for seen in mock.seen)
    (llm,) = await records(gateway, "llm", "agent-stream")
    assert llm["details"]["agent"]["steps"] == 2
    assert llm["details"]["stream"] is True


async def test_a_streamed_run_relays_each_steps_text_as_it_comes_set_apart(
    gateway: Gateway, mock: MockProvider
) -> None:
    mock.queue(tool_calls(("fixture__echo", {"text": "hi"}), say="Looking it up."), answer_with_tool_results())
    client = openai_client(gateway)
    with anyio.fail_after(30):
        stream = await client.chat.completions.create(model=MODEL, messages=USER, stream=True)  # type: ignore[arg-type]
        deltas = [choice.delta async for chunk in stream for choice in chunk.choices]
    assert "".join(delta.content or "" for delta in deltas) == "Looking it up.\n\nused:hi"
    assert [delta.role for delta in deltas if delta.role] == ["assistant"]  # one message, however many steps
    assistant = mock.seen[1].body["messages"][-2]
    assert assistant["content"] == "Looking it up."  # the model sees what it said before the tool ran


async def test_a_client_tool_goes_back_to_the_client_and_the_same_turns_gateway_calls_are_not_run(
    gateway: Gateway, mock: MockProvider
) -> None:
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    mock.queue(tool_calls(("fixture__echo", {"text": "x"}), ("get_weather", {"city": "Oslo"})))
    client = openai_client(gateway, request_id="agent-client-tool")
    with anyio.fail_after(30):
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=USER,  # type: ignore[arg-type]
            tools=[weather],  # type: ignore[list-item]
            stream=True,
        )
        calls: dict[int, dict[str, str]] = {}
        finishes = []
        async for chunk in stream:
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or ():
                    entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                    entry["id"] += call.id or ""
                    entry["name"] += (call.function.name or "") if call.function else ""
                    entry["arguments"] += (call.function.arguments or "") if call.function else ""
                if choice.finish_reason:
                    finishes.append(choice.finish_reason)
    assert calls == {0: {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    assert finishes == ["tool_calls"]
    (seen,) = mock.seen
    assert seen.body["tools"][0] == weather  # the client's tool, untouched, ahead of the gateway's
    assert "fixture__echo" in offered(seen.body)
    assert await records(gateway, "tool_call", "agent-client-tool") == []
    (llm,) = await records(gateway, "llm", "agent-client-tool")
    assert llm["details"]["agent"] == {"steps": 1, "tools": [], "stopped": "client_tools"}


async def test_a_step_the_budget_cannot_cover_ends_the_loop_with_a_note_saying_so(
    gateway: Gateway, mock: MockProvider
) -> None:
    mock.queue(*[tool_calls(("fixture__echo", {"text": f"round{n}"})) for n in range(3)])
    client = openai_client(gateway, THRIFTY_KEY, request_id="agent-budget")
    with anyio.fail_after(30):
        completion = await client.chat.completions.create(model=MODEL, messages=USER, max_tokens=20)  # type: ignore[arg-type]
    content = completion.choices[0].message.content or ""
    assert content.startswith("[isthmus agent mode] Stopped before model call 3")
    assert "budget" in content
    assert len(mock.seen) == 2
    (llm,) = await records(gateway, "llm", "agent-budget")
    assert llm["details"]["agent"] == {"steps": 2, "tools": ["fixture__echo", "fixture__echo"], "stopped": "budget"}
    assert llm["status"] == 200


async def test_a_streamed_run_the_budget_ends_says_so_at_the_end_of_the_stream(
    gateway: Gateway, mock: MockProvider
) -> None:
    mock.queue(*[tool_calls(("fixture__echo", {"text": f"round{n}"})) for n in range(3)])
    client = openai_client(gateway, THRIFTY_STREAM_KEY, request_id="agent-budget-stream")
    text, finishes = "", []
    with anyio.fail_after(30):
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=USER,  # type: ignore[arg-type]
            max_tokens=20,
            stream=True,
        )
        async for chunk in stream:
            for choice in chunk.choices:
                text += choice.delta.content or ""
                if choice.finish_reason:
                    finishes.append(choice.finish_reason)
    assert text.startswith("[isthmus agent mode] Stopped before model call 3")
    assert finishes == ["stop"]
    (llm,) = await records(gateway, "llm", "agent-budget-stream")
    assert llm["details"]["agent"]["stopped"] == "budget"


async def test_a_first_step_the_budget_cannot_cover_is_the_requests_ordinary_429(
    gateway: Gateway, mock: MockProvider
) -> None:
    client = openai_client(gateway, BROKE_KEY)
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model=MODEL, messages=USER, max_tokens=20, stream=True)  # type: ignore[arg-type]
    assert mock.seen == []


async def test_max_steps_ends_the_loop_with_a_note_and_the_last_turns_tools_unrun(
    gateway: Gateway, mock: MockProvider
) -> None:
    mock.queue(tool_calls(("fixture__echo", {"text": "one"})), tool_calls(("fixture__add", {"a": 1, "b": 2})))
    client = openai_client(gateway, SHORT_KEY, request_id="agent-max-steps")
    with anyio.fail_after(30):
        completion = await client.chat.completions.create(model=MODEL, messages=USER)  # type: ignore[arg-type]
    content = completion.choices[0].message.content or ""
    assert content.startswith("[isthmus agent mode] Stopped after 2 model calls")
    assert "fixture__add" in content
    assert completion.choices[0].finish_reason == "stop"
    calls = await records(gateway, "tool_call", "agent-max-steps")
    assert [row["target"] for row in calls] == ["fixture/echo"]


async def test_one_turns_tool_calls_run_concurrently_with_parallel(gateway: Gateway, mock: MockProvider) -> None:
    # `rendezvous` answers only once both calls are inside the server at once: run one after the other, it waits.
    meet = ("fixture__rendezvous", {"calls": 2})
    mock.queue(tool_calls(meet, meet), answer_with_tool_results())
    client = openai_client(gateway, request_id="agent-parallel")
    with anyio.fail_after(30):
        completion = await client.chat.completions.create(model=MODEL, messages=USER)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == "used:met|met"
    tool_messages = [m for m in mock.seen[1].body["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["call_0", "call_1"]


async def test_a_forced_tool_choice_applies_to_the_first_step_only(gateway: Gateway, mock: MockProvider) -> None:
    mock.queue(tool_calls(("fixture__echo", {"text": "forced"})), answer_with_tool_results())
    client = openai_client(gateway)
    with anyio.fail_after(30):
        completion = await client.chat.completions.create(
            model=MODEL,
            messages=USER,  # type: ignore[arg-type]
            tool_choice="required",
        )
    assert completion.choices[0].message.content == "used:forced"
    assert [seen.body["tool_choice"] for seen in mock.seen] == ["required", "auto"]


async def test_a_tool_error_goes_back_to_the_model_as_a_tool_result(gateway: Gateway, mock: MockProvider) -> None:
    mock.queue(tool_calls(("fixture__fail", {"message": "boom"})), answer_with_tool_results())
    client = openai_client(gateway, request_id="agent-tool-error")
    with anyio.fail_after(30):
        completion = await client.chat.completions.create(model=MODEL, messages=USER)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == "used:[tool error] Error executing tool fail: boom"
    (call,) = await records(gateway, "tool_call", "agent-tool-error")
    assert call["details"]["outcome"] == "tool_error"


async def test_a_tool_the_keys_mcp_allowlist_refuses_is_not_offered(gateway: Gateway, mock: MockProvider) -> None:
    client = openai_client(gateway, NARROW_KEY)
    with anyio.fail_after(30):
        completion = await client.chat.completions.create(model=MODEL, messages=USER)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == "echo:say hello through the tool"
    (seen,) = mock.seen
    assert list(offered(seen.body)) == ["fixture__echo"]


async def test_a_key_without_agent_mode_is_served_as_before(gateway: Gateway, mock: MockProvider) -> None:
    client = openai_client(gateway, "isk-hub-full")
    with pytest.raises(openai.PermissionDeniedError):  # the hub's keys have no models: nothing changed for them
        await client.chat.completions.create(model=MODEL, messages=USER)  # type: ignore[arg-type]
    assert mock.seen == []


async def test_a_messages_client_tool_goes_back_as_a_tool_use_block(gateway: Gateway, mock: MockProvider) -> None:
    mock.queue(tool_calls(("get_weather", {"city": "Oslo"})))
    client = anthropic_client(gateway, "agent-messages-client-tool")
    weather = {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
    with anyio.fail_after(30):
        message = await client.messages.create(
            model=MODEL,
            max_tokens=100,
            messages=[{"role": "user", "content": "weather?"}],
            tools=[weather],  # type: ignore[list-item]
        )
    assert message.stop_reason == "tool_use"
    (block,) = message.content
    assert block.type == "tool_use" and block.name == "get_weather" and block.input == {"city": "Oslo"}
    assert set(offered(mock.seen[0].body)) >= {"get_weather", "fixture__echo"}


def anthropic_client(gateway: Gateway, request_id: str) -> anthropic.AsyncAnthropic:
    client = anthropic.AsyncAnthropic(
        api_key=AGENT_KEY, base_url=gateway.base_url, default_headers={"x-request-id": request_id}, max_retries=0
    )
    OPENED.append(client)
    return client


async def test_a_messages_request_runs_the_loop_for_the_anthropic_sdk(gateway: Gateway, mock: MockProvider) -> None:
    mock.queue(tool_calls(("fixture__echo", {"text": "claude"})), answer_with_tool_results())
    client = anthropic_client(gateway, "agent-messages")
    with anyio.fail_after(30):
        message = await client.messages.create(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "use the tool"}]
        )
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "used:claude"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 2 * USAGE["completion_tokens"]
    assert "fixture__echo" in offered(mock.seen[0].body)
    (llm,) = await records(gateway, "llm", "agent-messages")
    assert llm["details"]["agent"]["tools"] == ["fixture__echo"]


async def test_a_streamed_messages_request_runs_the_loop_for_the_anthropic_sdk(
    gateway: Gateway, mock: MockProvider
) -> None:
    mock.queue(tool_calls(("fixture__echo", {"text": "streamed"})), answer_with_tool_results())
    client = anthropic_client(gateway, "agent-messages-stream")
    with anyio.fail_after(30):
        async with client.messages.stream(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "use the tool"}]
        ) as stream:
            text = "".join([part async for part in stream.text_stream])
            message = await stream.get_final_message()
    assert text == "used:streamed"
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 2 * USAGE["completion_tokens"]
    assert json.loads(mock.seen[1].body["messages"][-2]["tool_calls"][0]["function"]["arguments"]) == {
        "text": "streamed"
    }


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": MODEL, "messages": USER, "stream": True}),
        ("/v1/messages", {"model": MODEL, "messages": USER, "max_tokens": 64, "stream": True}),
    ],
)
async def test_a_client_leaving_before_the_first_event_cancels_the_first_model_call_then(
    gateway: Gateway, mock: MockProvider, path: str, body: dict[str, Any]
) -> None:
    # The first model call opens while the response is made: the gateway learns at once that its client left,
    # not when the model's first token would have been sent.
    request_id = f"agent-left-{path.rsplit('/', 1)[-1]}"
    async with gateway.http(AGENT_KEY, **{"x-request-id": request_id}) as client:
        await leave_while_thinking(client, mock, path, body)
    (llm,) = await records(gateway, "llm", request_id)
    assert llm["status"] == 499 and llm["reason"] == "client_disconnected"
    assert llm["details"]["agent"]["steps"] == 1 and len(mock.seen) == 1
