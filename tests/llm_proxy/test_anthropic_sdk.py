"""The official `anthropic` SDK against `/v1/messages`, natively to an Anthropic mock and translated to others;
and the `openai` SDK against Anthropic, Gemini and Azure providers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from tests.llm_proxy.conftest import KEY, LIMITED_KEY, Gateway, serve_gateway, settings_for
from tests.llm_proxy.mock_provider import MockProvider, json_reply, sse, stream_frames

pytestmark = pytest.mark.anyio

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather of a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
async def multi(tmp_path: Path, mock: MockProvider) -> AsyncIterator[Gateway]:
    """One gateway with every provider kind, all pointing at the same mock."""
    providers = {
        "mock": {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-openai"}]},
        "claude": {"kind": "anthropic", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-ant"}]},
        "google": {"kind": "gemini", "base_url": f"{mock.url}/v1beta", "keys": [{"value": "g-key"}]},
        "az": {"kind": "azure", "base_url": mock.url, "api_version": "2024-06-01", "keys": [{"value": "az-key"}]},
    }
    async with serve_gateway(settings_for(tmp_path, providers)) as started:
        yield started


def claude(gateway: Gateway, key: str = KEY) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gateway.url, api_key=key, max_retries=0)


def gpt(gateway: Gateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.v1, api_key=KEY, max_retries=0)


async def test_messages_go_natively_to_anthropic(multi: Gateway, mock: MockProvider) -> None:
    async with claude(multi) as sdk:
        raw = await sdk.messages.with_raw_response.create(
            model="claude/claude-test",
            max_tokens=100,
            system="be brief",
            messages=[{"role": "user", "content": "hello"}],
            extra_headers={"anthropic-beta": "tools-2024-04-04", "anthropic-version": "2023-06-01"},
        )
    message = await raw.parse()
    assert message.content[0].type == "text" and message.content[0].text == "echo:hello"
    assert message.usage.input_tokens == 13 and message.usage.output_tokens == 9
    assert raw.headers["x-isthmus-route"] == "claude/claude-test"
    seen = mock.seen[0]
    assert seen.path == "/v1/messages" and seen.key == "sk-ant"
    assert seen.headers["anthropic-beta"] == "tools-2024-04-04" and seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.body["system"] == "be brief" and seen.body["model"] == "claude-test"


async def test_a_native_anthropic_stream_keeps_its_exact_event_sequence(multi: Gateway) -> None:
    async with claude(multi) as sdk:
        async with sdk.messages.stream(
            model="claude/claude-test", max_tokens=100, messages=[{"role": "user", "content": "hi there"}]
        ) as stream:
            kinds = [event.type async for event in stream]
            final = await stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_start" in kinds and "content_block_stop" in kinds and "message_delta" in kinds
    assert final.content[0].text == "echo:hi there"  # type: ignore[union-attr]
    assert final.usage.output_tokens == 9


async def test_messages_over_an_openai_provider_translate_both_ways(multi: Gateway, mock: MockProvider) -> None:
    async with claude(multi) as sdk:
        message = await sdk.messages.create(
            model="mock/gpt-test",
            max_tokens=50,
            system="sys",
            stop_sequences=["STOP"],
            messages=[{"role": "user", "content": [{"type": "text", "text": "translate me"}]}],
        )
    assert message.content[0].text == "echo:translate me"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 11 and message.usage.output_tokens == 7
    body = mock.seen[0].body
    assert body["messages"][0] == {"role": "system", "content": "sys"}
    assert body["stop"] == ["STOP"] and body["max_tokens"] == 50


async def test_streamed_messages_over_an_openai_provider(multi: Gateway) -> None:
    async with claude(multi) as sdk:
        async with sdk.messages.stream(
            model="mock/gpt-test", max_tokens=50, messages=[{"role": "user", "content": "a b c"}]
        ) as stream:
            kinds = [event.type async for event in stream]
            final = await stream.get_final_message()
    assert final.content[0].text == "echo:abc"  # type: ignore[union-attr]
    assert final.usage.output_tokens == 7 and final.usage.input_tokens == 11
    raw_kinds = [k for k in kinds if k not in ("text",)]
    assert raw_kinds[0] == "message_start" and raw_kinds[-1] == "message_stop"


async def test_tool_use_through_messages_over_an_openai_provider(multi: Gateway, mock: MockProvider) -> None:
    call = {"id": "call_7", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    mock.queue(
        json_reply(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-test",
                "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
                "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
            }
        )
    )
    async with claude(multi) as sdk:
        first = await sdk.messages.create(
            model="mock/gpt-test",
            max_tokens=50,
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            tool_choice={"type": "any"},
            messages=[{"role": "user", "content": "weather?"}],
        )
        assert first.stop_reason == "tool_use"
        use = first.content[0]
        assert use.type == "tool_use" and use.input == {"city": "Oslo"} and use.id == "call_7"
        await sdk.messages.create(
            model="mock/gpt-test",
            max_tokens=50,
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            messages=[
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [use.model_dump()]},  # type: ignore[list-item]
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_7", "content": "sunny"}]},
            ],
        )
    sent = mock.seen[0].body
    assert sent["tool_choice"] == "required"
    assert sent["tools"][0]["function"]["parameters"] == WEATHER_TOOL["input_schema"]
    follow_up = mock.seen[1].body["messages"]
    assert follow_up[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    assert follow_up[2] == {"role": "tool", "tool_call_id": "call_7", "content": "sunny"}


async def test_a_denied_model_gets_anthropics_error_envelope(multi: Gateway) -> None:
    async with claude(multi, LIMITED_KEY) as sdk:
        with pytest.raises(anthropic.PermissionDeniedError) as caught:
            await sdk.messages.create(model="claude/x", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    body: Any = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "permission_error"


async def test_the_openai_sdk_reaches_anthropic_through_translation(multi: Gateway, mock: MockProvider) -> None:
    async with gpt(multi) as sdk:
        completion = await sdk.chat.completions.create(
            model="claude/claude-test",
            messages=[{"role": "system", "content": "be terse"}, {"role": "user", "content": "hey"}],
            max_tokens=64,
        )
        stream = await sdk.chat.completions.create(
            model="claude/claude-test",
            messages=[{"role": "user", "content": "streamed"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert completion.choices[0].message.content == "echo:hey"
    assert completion.usage is not None and completion.usage.prompt_tokens == 13
    assert mock.seen[0].body["system"] == "be terse" and mock.seen[0].body["max_tokens"] == 64
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo:streamed"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 9


async def test_openai_tool_calls_stream_from_anthropic(multi: Gateway, mock: MockProvider) -> None:
    events = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "m",
                "content": [],
                "usage": {"input_tokens": 5, "output_tokens": 1},
            },
        },
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
        },
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"city":'}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '"Oslo"}'}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}},
        {"type": "message_stop"},
    ]
    mock.queue(stream_frames([sse(e, e["type"]) for e in events]))
    async with gpt(multi) as sdk:
        stream = await sdk.chat.completions.create(
            model="claude/claude-test",
            messages=[{"role": "user", "content": "weather?"}],
            tools=[
                {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_TOOL["input_schema"]}}
            ],  # type: ignore[list-item]
            stream=True,
        )
        chunks = [chunk async for chunk in stream]
    calls = [call for chunk in chunks for call in chunk.choices[0].delta.tool_calls or ()]
    assert calls[0].id == "toolu_1" and calls[0].function is not None and calls[0].function.name == "get_weather"
    assert json.loads("".join(call.function.arguments or "" for call in calls if call.function)) == {"city": "Oslo"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert mock.seen[0].body["tools"][0]["input_schema"] == WEATHER_TOOL["input_schema"]


async def test_the_openai_sdk_reaches_gemini(multi: Gateway, mock: MockProvider) -> None:
    async with gpt(multi) as sdk:
        completion = await sdk.chat.completions.create(
            model="google/gemini-test", messages=[{"role": "user", "content": "hola"}], temperature=0.2
        )
        stream = await sdk.chat.completions.create(
            model="google/gemini-test", messages=[{"role": "user", "content": "stream"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        embedded = await sdk.embeddings.create(model="google/embed-test", input=["x", "y"])
    assert completion.choices[0].message.content == "echo:hola"
    assert completion.usage is not None and completion.usage.total_tokens == 7
    assert text == "echo:stream"
    assert len(embedded.data) == 2 and embedded.usage.prompt_tokens > 0
    assert mock.seen[0].path == "/v1beta/models/gemini-test:generateContent" and mock.seen[0].key == "g-key"
    assert mock.seen[0].body["generationConfig"] == {"temperature": 0.2}
    assert mock.seen[1].path == "/v1beta/models/gemini-test:streamGenerateContent" and mock.seen[1].query == {
        "alt": "sse"
    }
    assert mock.seen[2].path == "/v1beta/models/embed-test:batchEmbedContents"


async def test_the_openai_sdk_reaches_an_azure_deployment(multi: Gateway, mock: MockProvider) -> None:
    async with gpt(multi) as sdk:
        completion = await sdk.chat.completions.create(
            model="az/my-deployment", messages=[{"role": "user", "content": "azure"}]
        )
    assert completion.choices[0].message.content == "echo:azure"
    seen = mock.seen[0]
    assert seen.path == "/openai/deployments/my-deployment/chat/completions"
    assert seen.query == {"api-version": "2024-06-01"}
    assert seen.headers["api-key"] == "az-key" and "Authorization" not in seen.headers


async def test_a_native_messages_stream_goes_out_in_the_providers_bytes(multi: Gateway, mock: MockProvider) -> None:
    """Events passed on whole keep the provider's spelling; one whose `type` only its SSE name gave is re-encoded
    with it. The SDK reads the stream either way."""
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": []}
    typed = [
        sse({"type": "message_start", "message": {**message, "usage": {"input_tokens": 5, "output_tokens": 1}}}),
        sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "héllo"}}),
    ]
    untyped = {"index": 0}  # a `content_block_stop` named by its event line only
    closing = [
        sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}),
        sse({"type": "message_stop"}),
    ]
    frames = [b"event: x\n" + frame for frame in typed] + [sse(untyped, "content_block_stop")]
    mock.queue(stream_frames(frames + closing), stream_frames(frames + closing))
    body = {"model": "claude/claude-test", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    async with httpx2.AsyncClient(base_url=multi.v1, headers={"x-api-key": KEY}) as client:
        response = await client.post("/messages", json={**body, "stream": True})
    expected = [b"event: " + json.loads(frame[6:])["type"].encode() + b"\n" + frame for frame in typed]
    expected.append(b'event: content_block_stop\ndata: {"index":0,"type":"content_block_stop"}\n\n')
    expected += [b"event: " + json.loads(frame[6:])["type"].encode() + b"\n" + frame for frame in closing]
    assert response.content == b"".join(expected)
    assert b'"h\\u00e9llo"' in response.content  # the provider's escape, not re-encoded
    async with claude(multi) as sdk:
        async with sdk.messages.stream(**body) as stream:  # type: ignore[arg-type]
            text = "".join([text async for text in stream.text_stream])
            final = await stream.get_final_message()
    assert text == "héllo" and final.usage.output_tokens == 3
    records = await multi.wait_records(2)
    assert [(record.tokens_in, record.tokens_out) for record in records] == [(5, 3), (5, 3)]
