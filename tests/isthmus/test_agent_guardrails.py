"""Agent mode under output guardrails: every step's text and the final answer go through the rules, streamed or
not, with the whole gateway in front of the mock provider and the real fixture MCP server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import openai
import pytest

from tests.llm_proxy.mock_provider import MockProvider, answer_with_tool_results, tool_calls
from tests.mcp_hub.conftest import Gateway, fixture_server, hub_settings, serving

pytestmark = pytest.mark.anyio

KEY = "isk-agent-guarded"
MODEL = "mock/agent-1"
USER = [{"role": "user", "content": "echo my address"}]
RULES = [{"name": "pii-out", "detect": "pii", "entities": ["email"], "apply_to": ["output"], "action": "redact"}]
AGENT_KEY = {
    "name": "guarded",
    "value": KEY,
    "models": ["mock/*"],
    "mcp": {"fixture": ["*"]},
    "agent": {"tools": ["fixture__*"], "max_steps": 4},
    "guardrails": ["pii-out"],
}


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
        tmp_path_factory.mktemp("agent-guard"),
        {"fixture": fixture_server(timeout=10)},
        keys=(AGENT_KEY,),
        providers={"mock": {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-mock"}]}},
        guardrails=RULES,
    )
    async with serving(settings, both_halves=True) as started:
        yield started


@pytest.fixture(autouse=True)
def fresh_script(mock: MockProvider) -> None:
    mock.pending.clear()
    mock.seen.clear()


def client(gateway: Gateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=KEY, base_url=f"{gateway.base_url}/v1", max_retries=0)


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
