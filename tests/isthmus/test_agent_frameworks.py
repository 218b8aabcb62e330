"""Agent frameworks on their default paths, with nothing changed but the base URL (and the key).

openai-agents and pydantic-ai 2.x both speak OpenAI's Responses API by default and take the gateway's `/mcp` as
their MCP server. The model is a scripted OpenAI-compatible mock: asked with tools, it calls the one whose name ends
in `shout`; given that tool's result, it answers with it. So an answer that holds `QUIET PLEASE` went model -> client
-> gateway `/mcp` -> the fixture server's `shout` -> client -> model, every step through the gateway.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from aiohttp import web

from tests.llm_proxy.mock_provider import MockProvider, send_stream, sse
from tests.mcp_hub.conftest import Gateway, fixture_server, hub_settings, serving
from toolpolicy.store.audit_log import AuditQuery

pytestmark = pytest.mark.anyio

AGENT_KEY = "isk-framework-agent"
ALIAS = "scripted"
"""A bare name: openai-agents refuses `prefix/model` names whose prefix it does not know."""
SAID = "quiet please"
HEARD = "QUIET PLEASE"


def _tool_result_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or () if isinstance(part, dict))


def _assistant_turn(body: dict[str, Any]) -> dict[str, Any]:
    """The scripted model's next message: call the `shout` tool, or answer with its result once it has one."""
    results = [message for message in body["messages"] if message.get("role") == "tool"]
    if results:
        return {"role": "assistant", "content": f"The tool answered {_tool_result_text(results[-1])}"}
    names = [tool["function"]["name"] for tool in body.get("tools") or () if tool.get("type") == "function"]
    name = next(name for name in names if name.endswith("shout"))
    call = {
        "id": "call_shout_1",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps({"text": SAID})},
    }
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def _frames(body: dict[str, Any], message: dict[str, Any]) -> list[bytes]:
    base = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 1, "model": body["model"]}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    frames = [chunk({"role": "assistant", "content": ""})]
    if message.get("tool_calls"):
        call = message["tool_calls"][0]
        head = {"index": 0, "id": call["id"], "type": "function", "function": {"name": call["function"]["name"]}}
        frames.append(chunk({"tool_calls": [{**head, "function": {**head["function"], "arguments": ""}}]}))
        arguments = call["function"]["arguments"]
        pieces = [arguments[start : start + 8] for start in range(0, len(arguments), 8)]
        frames += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}) for piece in pieces]
        frames.append(chunk({}, "tool_calls"))
    else:
        frames += [chunk({"content": word + " "}) for word in message["content"].split(" ")]
        frames.append(chunk({}, "stop"))
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}
        frames.append(sse({**base, "choices": [], "usage": usage}))
    return [*frames, sse("[DONE]")]


async def scripted(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    message = _assistant_turn(body)
    if body.get("stream"):
        return await send_stream(request, _frames(body, message))
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    return web.json_response(
        {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29},
        }
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
    key = {"name": "framework-agent", "value": AGENT_KEY, "models": ["*"], "mcp": {"fx": ["shout"]}}
    # An OpenAI-compatible server that has no Responses API: the gateway translates to chat completions.
    provider = {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-mock"}], "responses": "chat"}
    settings = hub_settings(
        tmp_path_factory.mktemp("frameworks"),
        {"fx": fixture_server(timeout=10)},
        keys=(key,),
        providers={"mock": provider},
        models={ALIAS: {"targets": ["mock/scripted-1"]}},
    )
    async with serving(settings, both_halves=True) as started:
        yield started


@pytest.fixture
def scripted_model(mock: MockProvider) -> MockProvider:
    mock.pending.clear()
    mock.seen.clear()
    mock.queue(*[scripted] * 8)
    return mock


@pytest.fixture
def openai_env(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a user sets: the base URL and the key, nothing else."""
    monkeypatch.setenv("OPENAI_BASE_URL", f"{gateway.base_url}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", AGENT_KEY)


async def _records(gateway: Gateway, kind: str) -> list[dict[str, Any]]:
    await gateway.governance.audit.flush()
    rows, _ = await gateway.governance.audit_log.query(AuditQuery(kind=kind))
    return rows


def _assert_the_model_saw_the_tool_result(mock: MockProvider) -> None:
    chats = [seen for seen in mock.seen if seen.path == "/v1/chat/completions"]
    assert len(chats) == 2, [seen.path for seen in mock.seen]
    assert chats[0].body["model"] == "scripted-1"
    tool_messages = [message for message in chats[1].body["messages"] if message.get("role") == "tool"]
    assert tool_messages and HEARD in _tool_result_text(tool_messages[0])


# --- openai-agents ---------------------------------------------------------------------------------------------


def _openai_agents_agent(gateway: Gateway) -> tuple[Any, Any]:
    from agents import Agent, set_tracing_disabled
    from agents.mcp import MCPServerStreamableHttp

    # openai-agents exports its traces to OpenAI with the same key by default: the virtual key must not go there.
    set_tracing_disabled(True)
    server = MCPServerStreamableHttp(
        {"url": gateway.mcp_url(), "headers": {"authorization": f"Bearer {AGENT_KEY}"}},
        client_session_timeout_seconds=30,
    )
    agent = Agent(name="assistant", instructions="Use the tools.", model=ALIAS, mcp_servers=[server])
    return agent, server


@pytest.mark.usefixtures("openai_env")
async def test_openai_agents_default_path_runs_a_gateway_mcp_tool(
    gateway: Gateway, scripted_model: MockProvider
) -> None:
    from agents import Runner

    agent, server = _openai_agents_agent(gateway)
    with anyio.fail_after(60):
        async with server:
            result = await Runner.run(agent, "Make it loud")
    assert HEARD in result.final_output
    _assert_the_model_saw_the_tool_result(scripted_model)
    calls = await _records(gateway, "tool_call")
    assert any(row["target"] == "fx/shout" and row["decision"] == "allow" for row in calls), calls
    llm = [row for row in await _records(gateway, "llm") if row["details"].get("endpoint") == "responses"]
    assert len(llm) >= 2


@pytest.mark.usefixtures("openai_env")
async def test_openai_agents_streamed_run(gateway: Gateway, scripted_model: MockProvider) -> None:
    from agents import Runner
    from openai.types.responses import ResponseTextDeltaEvent

    agent, server = _openai_agents_agent(gateway)
    with anyio.fail_after(60):
        async with server:
            run = Runner.run_streamed(agent, "Make it loud")
            deltas = [
                event.data.delta
                async for event in run.stream_events()
                if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent)
            ]
    assert HEARD in run.final_output
    assert len(deltas) > 1 and HEARD in "".join(deltas)
    _assert_the_model_saw_the_tool_result(scripted_model)


# --- pydantic-ai -----------------------------------------------------------------------------------------------


def _pydantic_ai_agent(gateway: Gateway) -> Any:
    from pydantic_ai import Agent
    from pydantic_ai.mcp import MCPToolset
    from pydantic_ai.models import infer_model
    from pydantic_ai.models.openai import OpenAIResponsesModel

    model = infer_model(f"openai:{ALIAS}")
    assert isinstance(model, OpenAIResponsesModel)  # the default path is the Responses API
    toolset = MCPToolset(gateway.mcp_url(), headers={"authorization": f"Bearer {AGENT_KEY}"})
    return Agent(model, toolsets=[toolset])


@pytest.mark.usefixtures("openai_env")
async def test_pydantic_ai_default_path_runs_a_gateway_mcp_tool(gateway: Gateway, scripted_model: MockProvider) -> None:
    agent = _pydantic_ai_agent(gateway)
    with anyio.fail_after(60):
        async with agent:
            result = await agent.run("Make it loud")
    assert HEARD in result.output
    _assert_the_model_saw_the_tool_result(scripted_model)


@pytest.mark.usefixtures("openai_env")
async def test_pydantic_ai_streamed_run(gateway: Gateway, scripted_model: MockProvider) -> None:
    agent = _pydantic_ai_agent(gateway)
    with anyio.fail_after(60):
        async with agent, agent.run_stream("Make it loud") as run:
            pieces = [text async for text in run.stream_text(delta=True)]
    assert HEARD in "".join(pieces)
    _assert_the_model_saw_the_tool_result(scripted_model)
