"""Stream replay both ways, through the official SDKs: an entry stored by a non-stream call answers a stream in the
route's own event shape with usage, and an entry assembled from a stream answers a non-stream call."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from tests.llm_proxy.conftest import KEY, Gateway
from tests.llm_proxy.mock_provider import MockProvider, stream_frames

pytestmark = pytest.mark.anyio
MESSAGES = [{"role": "user", "content": "hello there"}]


def gpt(gateway: Gateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.v1, api_key=KEY, max_retries=0)


def claude(gateway: Gateway) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gateway.url, api_key=KEY, max_retries=0)


async def test_chat_stream_served_from_a_non_stream_entry_with_its_usage_chunk(
    cached: Gateway, mock: MockProvider
) -> None:
    async with gpt(cached) as sdk:
        first = await sdk.chat.completions.create(model="mock/gpt-test", messages=MESSAGES)  # type: ignore[arg-type]
        raw = await sdk.chat.completions.with_raw_response.create(
            model="mock/gpt-test",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        assert raw.headers["x-isthmus-cache"] == "hit"
        parsed = raw.parse()
        chunks = [chunk async for chunk in parsed]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == first.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage == first.usage
    assert len(mock.seen) == 1


async def test_chat_non_stream_served_from_an_entry_a_stream_stored(cached: Gateway, mock: MockProvider) -> None:
    async with gpt(cached) as sdk:
        stream = await sdk.chat.completions.create(model="mock/gpt-test", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        raw = await sdk.chat.completions.with_raw_response.create(model="mock/gpt-test", messages=MESSAGES)  # type: ignore[arg-type]
        completion = raw.parse()
        again = await sdk.chat.completions.create(model="mock/gpt-test", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        replayed = "".join([c.choices[0].delta.content or "" async for c in again if c.choices])
    assert raw.headers["x-isthmus-cache"] == "hit"
    assert completion.choices[0].message.content == streamed == replayed
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert len(mock.seen) == 1


async def test_a_stream_that_never_finishes_is_not_stored(cached: Gateway, mock: MockProvider) -> None:
    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test"}
    partial = [
        f"data: {json.dumps({**chunk, 'choices': [{'index': 0, 'delta': {'content': 'half'}}]})}\n\n".encode(),
        b"data: [DONE]\n\n",
    ]
    mock.queue(stream_frames(partial))
    async with gpt(cached) as sdk:
        stream = await sdk.chat.completions.create(model="mock/gpt-test", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        _ = [c async for c in stream]
        raw = await sdk.chat.completions.with_raw_response.create(model="mock/gpt-test", messages=MESSAGES)  # type: ignore[arg-type]
    assert raw.headers["x-isthmus-cache"] == "miss"
    assert len(mock.seen) == 2


async def test_messages_stream_served_from_a_non_stream_entry(cached: Gateway, mock: MockProvider) -> None:
    async with claude(cached) as sdk:
        first = await sdk.messages.create(model="claude/claude-test", max_tokens=100, messages=MESSAGES)  # type: ignore[arg-type]
        async with sdk.messages.stream(model="claude/claude-test", max_tokens=100, messages=MESSAGES) as stream:  # type: ignore[arg-type]
            final = await stream.get_final_message()
            assert stream.response.headers["x-isthmus-cache"] == "hit"
    assert [b.model_dump() for b in final.content] == [b.model_dump() for b in first.content]
    assert final.stop_reason == first.stop_reason
    assert final.usage.input_tokens == first.usage.input_tokens
    assert final.usage.output_tokens == first.usage.output_tokens
    assert final.id != first.id
    assert len(mock.seen) == 1


async def test_messages_non_stream_served_from_an_entry_a_stream_stored(cached: Gateway, mock: MockProvider) -> None:
    async with claude(cached) as sdk:
        async with sdk.messages.stream(model="claude/claude-test", max_tokens=100, messages=MESSAGES) as stream:  # type: ignore[arg-type]
            streamed = await stream.get_final_message()
        raw = await sdk.messages.with_raw_response.create(
            model="claude/claude-test",
            max_tokens=100,
            messages=MESSAGES,  # type: ignore[arg-type]
        )
        message = await raw.parse()
    assert raw.headers["x-isthmus-cache"] == "hit"
    assert [b.model_dump() for b in message.content] == [
        {k: v for k, v in b.model_dump().items() if k != "parsed_output"} for b in streamed.content
    ]
    assert message.usage.output_tokens == streamed.usage.output_tokens
    assert len(mock.seen) == 1


async def test_responses_stream_served_from_a_non_stream_entry_with_fresh_ids(
    cached: Gateway, mock: MockProvider
) -> None:
    async with gpt(cached) as sdk:
        first = await sdk.responses.create(model="mock/gpt-test", input="hello there")
        async with sdk.responses.stream(model="mock/gpt-test", input="hello there") as stream:
            final = await stream.get_final_response()
        retrieved = await sdk.responses.retrieve(final.id)
    assert final.output_text == first.output_text
    assert final.id != first.id and retrieved.id == final.id
    assert final.output[0].id != first.output[0].id
    assert final.usage == first.usage
    assert len(mock.seen) == 1


async def test_responses_non_stream_served_from_an_entry_a_stream_stored(cached: Gateway, mock: MockProvider) -> None:
    async with gpt(cached) as sdk:
        async with sdk.responses.stream(model="mock/gpt-test", input="hello there") as stream:
            streamed = await stream.get_final_response()
        raw = await sdk.responses.with_raw_response.create(model="mock/gpt-test", input="hello there")
        response = raw.parse()
    assert raw.headers["x-isthmus-cache"] == "hit"
    assert response.output_text == streamed.output_text
    assert response.id != streamed.id
    assert len(mock.seen) == 1
