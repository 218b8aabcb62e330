"""The built-in echo provider: every endpoint works with no key and no network, deterministically."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import openai
import pytest

from tests.llm_proxy.conftest import KEY, Gateway, serve_gateway, settings_for

pytestmark = pytest.mark.anyio


@pytest.fixture
async def echo(tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = settings_for(tmp_path, {"echo": {"kind": "echo"}}, models={"demo": {"targets": ["echo/echo-1"]}})
    async with serve_gateway(settings) as started:
        yield started


async def test_echo_answers_chat_streams_and_embeddings(echo: Gateway) -> None:
    async with openai.AsyncOpenAI(base_url=echo.v1, api_key=KEY, max_retries=0) as sdk:
        said = await sdk.chat.completions.create(model="demo", messages=[{"role": "user", "content": "repeat me"}])
        stream = await sdk.chat.completions.create(
            model="echo/echo-1", messages=[{"role": "user", "content": "word by word"}], stream=True
        )
        pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
        first = await sdk.embeddings.create(model="echo/echo-embed", input=["same", "other"])
        again = await sdk.embeddings.create(model="echo/echo-embed", input="same", dimensions=4)
        listed = [model.id async for model in sdk.models.list()]
    assert said.choices[0].message.content == "repeat me"
    assert said.usage is not None and said.usage.completion_tokens == 2
    assert pieces == ["", "word ", "by ", "word", ""]
    assert len(first.data[0].embedding) == 16 and first.data[0].embedding != first.data[1].embedding
    assert len(again.data[0].embedding) == 4
    assert sum(value * value for value in first.data[0].embedding) == pytest.approx(1.0, abs=1e-4)
    assert listed == ["echo/echo-1", "echo/echo-embed", "demo"]


async def test_echo_is_deterministic(echo: Gateway) -> None:
    async with openai.AsyncOpenAI(base_url=echo.v1, api_key=KEY, max_retries=0) as sdk:
        one = await sdk.embeddings.create(model="echo/e", input="x", encoding_format="float")
        two = await sdk.embeddings.create(model="echo/e", input="x", encoding_format="float")
    assert one.data[0].embedding == two.data[0].embedding


async def test_echo_calls_a_forced_tool(echo: Gateway) -> None:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    async with openai.AsyncOpenAI(base_url=echo.v1, api_key=KEY, max_retries=0) as sdk:
        completion = await sdk.chat.completions.create(
            model="demo",
            messages=[{"role": "user", "content": "x"}],
            tools=[tool],
            tool_choice="required",  # type: ignore[list-item]
        )
    calls = completion.choices[0].message.tool_calls
    assert completion.choices[0].finish_reason == "tool_calls"
    assert calls is not None and calls[0].function.name == "lookup"  # type: ignore[union-attr]


async def test_echo_answers_the_anthropic_api_too(echo: Gateway) -> None:
    async with anthropic.AsyncAnthropic(base_url=echo.url, api_key=KEY, max_retries=0) as sdk:
        message = await sdk.messages.create(
            model="demo", max_tokens=20, messages=[{"role": "user", "content": "hello claude"}]
        )
        async with sdk.messages.stream(
            model="demo", max_tokens=20, messages=[{"role": "user", "content": "streamed reply"}]
        ) as stream:
            text = await stream.get_final_text()
        counted = await sdk.messages.count_tokens(model="demo", messages=[{"role": "user", "content": "hello claude"}])
        listed = [model.id async for model in sdk.models.list()]
    assert message.content[0].text == "hello claude"  # type: ignore[union-attr]
    assert text == "streamed reply"
    assert counted.input_tokens > 0
    assert "demo" in listed
