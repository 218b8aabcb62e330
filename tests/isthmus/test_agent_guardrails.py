"""Agent mode under output guardrails: every step's text and the final answer go through the rules, streamed or
not, with the whole gateway in front of the mock provider and the real fixture MCP server; a streamed run under a
blocking webhook rule is held for its verdict (a local moderation service)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import openai
import pytest
from aiohttp import web

from tests.llm_proxy.mock_provider import MockProvider, answer_with_tool_results, tool_calls
from tests.mcp_hub.conftest import Gateway, fixture_server, hub_settings, serving

pytestmark = pytest.mark.anyio

KEY = "isk-agent-guarded"
MODEL = "mock/agent-1"
USER = [{"role": "user", "content": "echo my address"}]
WATCHED_KEY = "isk-agent-watched"
AGENT_KEY = {
    "name": "guarded",
    "value": KEY,
    "models": ["mock/*"],
    "mcp": {"fixture": ["*"]},
    "agent": {"tools": ["fixture__*"], "max_steps": 4},
    "guardrails": ["pii-out"],
}
WATCHED = {**AGENT_KEY, "name": "watched", "value": WATCHED_KEY, "guardrails": ["moderation"]}


def rules(moderation: str) -> list[dict[str, Any]]:
    hook = {"kind": "openai_moderation", "url": moderation}
    return [
        {"name": "pii-out", "detect": "pii", "entities": ["email"], "apply_to": ["output"], "action": "redact"},
        {"name": "moderation", "detect": "webhook", "apply_to": ["output"], "action": "block", "webhook": hook},
    ]


@pytest.fixture(scope="module")
async def moderated() -> AsyncIterator[tuple[str, list[str]]]:
    """A moderation service flagging "forbidden": its URL, and the texts it was asked about."""
    seen: list[str] = []

    async def moderations(request: web.Request) -> web.Response:
        text = (await request.json())["input"]
        seen.append(text)
        return web.json_response({"results": [{"flagged": "forbidden" in text, "categories": {"violence": True}}]})

    app = web.Application()
    app.router.add_post("/v1/moderations", moderations)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/v1/moderations", seen
    finally:
        await runner.cleanup()


@pytest.fixture(scope="module")
async def mock() -> AsyncIterator[MockProvider]:
    provider = MockProvider()
    await provider.start()
    try:
        yield provider
    finally:
        await provider.close()


@pytest.fixture(scope="module")
async def gateway(
    tmp_path_factory: pytest.TempPathFactory, mock: MockProvider, moderated: tuple[str, list[str]]
) -> AsyncIterator[Gateway]:
    settings = hub_settings(
        tmp_path_factory.mktemp("agent-guard"),
        {"fixture": fixture_server(timeout=10)},
        keys=(AGENT_KEY, WATCHED),
        providers={"mock": {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-mock"}]}},
        guardrails=rules(moderated[0]),
    )
    async with serving(settings, both_halves=True) as started:
        yield started


@pytest.fixture(autouse=True)
def fresh_script(mock: MockProvider) -> None:
    mock.pending.clear()
    mock.seen.clear()


def client(gateway: Gateway, key: str = KEY) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=key, base_url=f"{gateway.base_url}/v1", max_retries=0)


async def test_the_final_answer_of_a_run_is_redacted(gateway: Gateway, mock: MockProvider) -> None:
    mock.queue(tool_calls(("fixture__echo", {"text": "jo@example.com"})), answer_with_tool_results())
    async with client(gateway) as sdk:
        with anyio.fail_after(30):
            completion = await sdk.chat.completions.create(model=MODEL, messages=USER)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == "used:[REDACTED:email]"
    # The tool's result reached the model (no tool_output rule here); only what the client sees is redacted.
    assert mock.seen[1].body["messages"][-1]["content"] == "jo@example.com"


async def test_every_streamed_step_is_redacted(gateway: Gateway, mock: MockProvider) -> None:
    mock.queue(
        tool_calls(("fixture__echo", {"text": "jo@example.com"}), say="Asking ann@example.org first."),
        answer_with_tool_results(),
    )
    async with client(gateway) as sdk:
        with anyio.fail_after(30):
            stream = await sdk.chat.completions.create(model=MODEL, messages=USER, stream=True)  # type: ignore[arg-type]
            text = "".join([choice.delta.content or "" async for chunk in stream for choice in chunk.choices])
    assert text == "Asking [REDACTED:email] first.\n\nused:[REDACTED:email]"


@pytest.mark.parametrize("stream", [False, True])
async def test_a_responses_run_is_redacted_too(gateway: Gateway, mock: MockProvider, stream: bool) -> None:
    mock.queue(tool_calls(("fixture__echo", {"text": "jo@example.com"})), answer_with_tool_results())
    async with client(gateway) as sdk:
        with anyio.fail_after(30):
            if stream:
                events = [event async for event in await sdk.responses.create(model=MODEL, input="go", stream=True)]
                final = events[-1]
                assert final.type == "response.completed"
                response = final.response
                deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
                assert "jo@example.com" not in deltas and "[REDACTED:email]" in deltas
            else:
                response = await sdk.responses.create(model=MODEL, input="go")
    assert response.output_text == "used:[REDACTED:email]"


async def test_a_streamed_run_under_a_blocking_webhook_is_held_and_refused_whole(
    gateway: Gateway, mock: MockProvider, moderated: tuple[str, list[str]]
) -> None:
    mock.queue(tool_calls(("fixture__echo", {"text": "forbidden"})), answer_with_tool_results())
    received = ""
    async with client(gateway, WATCHED_KEY) as sdk:
        with anyio.fail_after(30):
            stream = await sdk.chat.completions.create(model=MODEL, messages=USER, stream=True)  # type: ignore[arg-type]
            with pytest.raises(openai.APIError) as caught:
                async for chunk in stream:
                    received += "".join(choice.delta.content or "" for choice in chunk.choices)
    assert received == "" and "moderation" in caught.value.message
    assert moderated[1][-1] == "used:forbidden"  # one verdict, on the whole answer
