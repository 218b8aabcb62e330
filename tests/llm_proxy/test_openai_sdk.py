"""The official `openai` SDK, with only its base URL changed, against the proxy over an OpenAI-compatible mock."""

from __future__ import annotations

import base64
import json
import struct

import openai
import pytest

from tests.llm_proxy.conftest import KEY, LIMITED_KEY, Gateway
from tests.llm_proxy.mock_provider import MockProvider, json_reply, sse, stream_frames

pytestmark = pytest.mark.anyio


def client(gateway: Gateway, key: str = KEY) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.v1, api_key=key, max_retries=0)


async def test_a_chat_completion_goes_through_with_route_and_attempt_headers(
    gateway: Gateway, mock: MockProvider
) -> None:
    async with client(gateway) as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(
            model="mock/gpt-test",
            messages=[{"role": "user", "content": "hello"}],
            extra_headers={"x-request-id": "req-123"},
        )
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo:hello"
    assert completion.usage is not None and completion.usage.total_tokens == 18
    assert raw.headers["x-isthmus-route"] == "mock/gpt-test"
    assert raw.headers["x-isthmus-attempts"] == "1"
    assert raw.headers["x-request-id"] == "req-123"
    assert mock.seen[0].body["model"] == "gpt-test"
    assert mock.seen[0].key == "sk-mock"


async def test_unknown_fields_and_options_reach_the_provider(gateway: Gateway, mock: MockProvider) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    async with client(gateway) as sdk:
        await sdk.chat.completions.create(
            model="mock/gpt-test",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    ],
                }
            ],
            n=2,
            stop=["END"],
            seed=42,
            response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
            extra_body={"top_k": 5, "provider_specific": {"x": 1}},
        )
    body = mock.seen[0].body
    assert body["top_k"] == 5 and body["provider_specific"] == {"x": 1}
    assert body["n"] == 2 and body["stop"] == ["END"] and body["seed"] == 42
    assert body["response_format"]["json_schema"]["schema"] == schema
    assert body["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/png")


async def test_streaming_relays_chunks_and_strips_usage_the_client_did_not_ask_for(
    gateway: Gateway, mock: MockProvider
) -> None:
    async with client(gateway) as sdk:
        stream = await sdk.chat.completions.create(
            model="mock/gpt-test", messages=[{"role": "user", "content": "one two three"}], stream=True
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo:onetwothree"
    assert all(c.usage is None and c.choices for c in chunks)
    assert mock.seen[0].body["stream_options"] == {"include_usage": True}
    record = (await gateway.wait_records(1))[0]
    assert (record.tokens_in, record.tokens_out) == (11, 7)
    assert record.details["route"] == "mock/gpt-test" and record.details["stream"] is True
    assert record.details["ttfb_ms"] > 0


async def test_streaming_keeps_usage_when_the_client_asks(gateway: Gateway) -> None:
    async with client(gateway) as sdk:
        stream = await sdk.chat.completions.create(
            model="mock/gpt-test",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 11


async def test_tool_calls_round_trip(gateway: Gateway, mock: MockProvider) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    message = {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None}
    mock.queue(
        json_reply(
            {
                "id": "chatcmpl-t",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-test",
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls"}],
                "usage": {"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40},
            }
        )
    )
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    async with client(gateway) as sdk:
        first = await sdk.chat.completions.create(
            model="mock/gpt-test",
            messages=[{"role": "user", "content": "weather in Oslo?"}],
            tools=tools,  # type: ignore[arg-type]
            tool_choice="auto",
        )
        calls = first.choices[0].message.tool_calls
        assert calls is not None and calls[0].function.name == "get_weather"  # type: ignore[union-attr]
        second = await sdk.chat.completions.create(
            model="mock/gpt-test",
            messages=[
                {"role": "user", "content": "weather in Oslo?"},
                first.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ],
            tools=tools,  # type: ignore[arg-type]
        )
    assert second.choices[0].message.content == "echo:weather in Oslo?"
    assert mock.seen[0].body["tool_choice"] == "auto"
    assert mock.seen[1].body["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}


async def test_streamed_tool_calls_are_relayed(gateway: Gateway, mock: MockProvider) -> None:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    deltas = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"index": 0, "id": "call_9", "type": "function", "function": {"name": "f", "arguments": ""}}
            ],
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"x":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]},
    ]
    frames = [sse({**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]}) for d in deltas]
    frames.append(sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}))
    frames += [
        sse({**base, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}),
        sse("[DONE]"),
    ]
    mock.queue(stream_frames(frames))
    async with client(gateway) as sdk:
        stream = await sdk.chat.completions.create(
            model="mock/gpt-test", messages=[{"role": "user", "content": "call f"}], stream=True
        )
        chunks = [chunk async for chunk in stream]
    arguments = "".join(
        call.function.arguments or ""
        for chunk in chunks
        for call in chunk.choices[0].delta.tool_calls or ()
        if call.function is not None
    )
    assert json.loads(arguments) == {"x": 1}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_embeddings_in_floats_and_in_the_sdks_default_base64(gateway: Gateway, mock: MockProvider) -> None:
    async with client(gateway) as sdk:
        default = await sdk.embeddings.create(model="mock/embed", input=["a", "b"])
        floats = await sdk.embeddings.create(model="mock/embed", input="a", encoding_format="float")
    assert [item.embedding for item in default.data] == [[0.5, -0.25, 0.0], [0.5, -0.25, 1.0]]
    assert floats.data[0].embedding == [0.5, -0.25, 0.0]
    assert mock.seen[0].body["encoding_format"] == "base64"
    assert default.usage.prompt_tokens == 5
    packed = base64.b64encode(struct.pack("<3f", 0.5, -0.25, 0.0)).decode()
    assert packed  # the mock answered base64, which the SDK decoded into the floats above


async def test_models_lists_only_what_the_key_may_use(gateway: Gateway, tmp_path: object) -> None:
    async with client(gateway) as sdk:
        everything = [model.id async for model in sdk.models.list()]
    async with client(gateway, LIMITED_KEY) as sdk:
        limited = [model.id async for model in sdk.models.list()]
    assert "fast" in everything
    assert limited == ["fast"]


async def test_a_model_outside_the_allowlist_is_refused_with_403(gateway: Gateway, mock: MockProvider) -> None:
    async with client(gateway, LIMITED_KEY) as sdk:
        with pytest.raises(openai.PermissionDeniedError) as caught:
            await sdk.chat.completions.create(model="mock/forbidden", messages=[{"role": "user", "content": "x"}])
        allowed = await sdk.chat.completions.create(model="mock/allowed-1", messages=[{"role": "user", "content": "y"}])
    error = caught.value.body
    assert isinstance(error, dict) and error["type"] == "permission_error" and error["code"] == "model_not_allowed"
    assert allowed.choices[0].message.content == "echo:y"
    assert [seen.body["model"] for seen in mock.seen] == ["allowed-1"]
    denied = [r for r in gateway.llm_records() if r.decision == "deny"]
    assert denied and denied[0].status == 403 and denied[0].key_name == "limited"


async def test_a_fallback_the_key_may_not_use_is_refused(gateway: Gateway, mock: MockProvider) -> None:
    async with client(gateway, LIMITED_KEY) as sdk:
        with pytest.raises(openai.PermissionDeniedError) as caught:
            await sdk.chat.completions.create(
                model="mock/allowed-1",
                messages=[{"role": "user", "content": "x"}],
                extra_body={"fallbacks": ["mock/forbidden"]},
            )
    assert isinstance(caught.value.body, dict) and caught.value.body["param"] == "fallbacks[0]"
    assert mock.seen == []


async def test_a_wrong_virtual_key_is_refused_with_401(gateway: Gateway) -> None:
    async with client(gateway, "isk-nope") as sdk:
        with pytest.raises(openai.AuthenticationError):
            await sdk.chat.completions.create(model="mock/x", messages=[{"role": "user", "content": "x"}])


async def test_a_route_the_gateway_does_not_serve_is_a_404_the_sdk_reads(gateway: Gateway) -> None:
    async with client(gateway) as sdk:
        with pytest.raises(openai.NotFoundError) as caught:
            await sdk.batches.retrieve("batch_1")
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "unknown_route" and error["type"] == "invalid_request_error"
    assert error["message"] == "unknown route: GET /v1/batches/batch_1"
    assert caught.value.code == "unknown_route"
