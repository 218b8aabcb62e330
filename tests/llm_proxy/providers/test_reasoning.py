"""`reasoning_effort` and thinking across providers, through the official SDKs: OpenAI clients asking Anthropic
and Gemini models to think, Anthropic clients asking Gemini models, and the thinking coming back as reasoning."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.llm_proxy.conftest import Gateway, serve_gateway, settings_for
from tests.llm_proxy.mock_provider import MockProvider, json_reply, sse, stream_frames

pytestmark = pytest.mark.anyio

HELLO = [{"role": "user", "content": "Where is Oslo?"}]
THOUGHTFUL_MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "Oslo is a capital.", "signature": "sig"},
        {"type": "text", "text": "In Norway."},
    ],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 10, "output_tokens": 20},
}


def gemini_answer(thought: str, text: str, *, usage: bool = True) -> dict[str, Any]:
    parts = [{"text": thought, "thought": True}, {"text": text}]
    answer: dict[str, Any] = {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        "responseId": "r1",
    }
    if usage:
        answer["usageMetadata"] = {"promptTokenCount": 5, "candidatesTokenCount": 3, "thoughtsTokenCount": 9}
    return answer


@pytest.fixture
async def gateway(tmp_path: Path, mock: MockProvider) -> AsyncIterator[Gateway]:
    providers = {
        "claude": {"kind": "anthropic", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-ant"}]},
        "google": {"kind": "gemini", "base_url": f"{mock.url}/v1beta", "keys": [{"value": "g-key"}]},
    }
    async with serve_gateway(settings_for(tmp_path, providers)) as started:
        yield started


async def test_an_openai_client_makes_claude_think_and_reads_the_thinking(gateway: Gateway, mock: MockProvider) -> None:
    mock.queue(json_reply(THOUGHTFUL_MESSAGE))
    async with gateway.openai_sdk() as sdk:
        reply = await sdk.chat.completions.create(
            model="claude/claude-sonnet-4-5", messages=HELLO, reasoning_effort="medium", max_completion_tokens=2000
        )
    sent = mock.seen[0].body
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1999} and sent["max_tokens"] == 2000
    message = reply.choices[0].message
    assert message.content == "In Norway."
    assert (message.model_extra or {})["reasoning_content"] == "Oslo is a capital."


async def test_a_json_schema_reaches_claude_as_a_structured_output_with_its_beta(
    gateway: Gateway, mock: MockProvider
) -> None:
    answer = {**THOUGHTFUL_MESSAGE, "content": [{"type": "text", "text": '{"country": "Norway"}'}]}
    mock.queue(json_reply(answer))
    schema = {"type": "object", "properties": {"country": {"type": "string"}}, "additionalProperties": False}
    async with gateway.openai_sdk() as sdk:
        reply = await sdk.chat.completions.create(
            model="claude/claude-sonnet-4-5",
            messages=HELLO,
            response_format={"type": "json_schema", "json_schema": {"name": "place", "schema": schema, "strict": True}},
            extra_headers={"anthropic-beta": "other-beta"},
        )
    assert json.loads(reply.choices[0].message.content or "") == {"country": "Norway"}
    seen = mock.seen[0]
    assert seen.body["output_format"] == {"type": "json_schema", "schema": schema} and "tools" not in seen.body
    assert seen.headers["anthropic-beta"].split(",")[-1] == "structured-outputs-2025-11-13"


async def test_an_openai_client_makes_gemini_think_and_gets_reasoning_tokens(
    gateway: Gateway, mock: MockProvider
) -> None:
    mock.queue(json_reply(gemini_answer("Capitals...", "In Norway.")))
    async with gateway.openai_sdk() as sdk:
        reply = await sdk.chat.completions.create(
            model="google/gemini-2.5-flash", messages=HELLO, reasoning_effort="low"
        )
    config = mock.seen[0].body["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 1024, "includeThoughts": True}
    assert reply.choices[0].message.content == "In Norway."
    assert (reply.choices[0].message.model_extra or {})["reasoning_content"] == "Capitals..."
    assert reply.usage is not None and reply.usage.completion_tokens == 12
    assert reply.usage.completion_tokens_details is not None
    assert reply.usage.completion_tokens_details.reasoning_tokens == 9


async def test_an_anthropic_client_makes_gemini_think_and_gets_thinking_blocks(
    gateway: Gateway, mock: MockProvider
) -> None:
    mock.queue(json_reply(gemini_answer("Capitals...", "In Norway.")))
    async with gateway.anthropic_sdk() as sdk:
        message = await sdk.messages.create(
            model="google/gemini-2.5-flash",
            max_tokens=20000,
            messages=HELLO,
            thinking={"type": "enabled", "budget_tokens": 10000},
        )
    assert mock.seen[0].body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 8192, "includeThoughts": True}
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].type == "thinking" and message.content[0].thinking == "Capitals..."


async def test_a_streamed_gemini_thought_reaches_an_anthropic_client_as_thinking_deltas(
    gateway: Gateway, mock: MockProvider
) -> None:
    frames = [sse(gemini_answer("Capitals...", "", usage=False)), sse(gemini_answer("", "In Norway."))]
    mock.queue(stream_frames(frames))
    async with gateway.anthropic_sdk() as sdk:
        async with sdk.messages.stream(
            model="google/gemini-2.5-flash",
            max_tokens=20000,
            messages=HELLO,
            thinking={"type": "enabled", "budget_tokens": 2048},
        ) as stream:
            kinds = [event.type async for event in stream]
            final = await stream.get_final_message()
    assert "thinking" in kinds
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[0].type == "thinking" and final.content[0].thinking == "Capitals..."
    assert final.content[1].type == "text" and final.content[1].text == "In Norway."
