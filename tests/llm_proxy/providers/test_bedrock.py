"""The official openai and anthropic SDKs through the gateway to a Bedrock mock that verifies every SigV4 signature
with botocore and streams real event-stream frames."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.llm_proxy.conftest import Gateway, serve_gateway, settings_for
from tests.llm_proxy.providers.bedrock_mock import (
    ACCESS_KEY,
    API_KEY,
    REGION,
    SECRET_KEY,
    SESSION_TOKEN,
    TEMP_ACCESS_KEY,
    TEMP_SECRET_KEY,
    BedrockMock,
    aws_error,
    converse_answer,
    exception,
    stream_of,
    text_events,
    tool_events,
)

pytestmark = pytest.mark.anyio

CLAUDE = "anthropic.claude-sonnet-4-5-20250929-v1:0"
SIGNED = {"kind": "bedrock", "region": REGION, "aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PIXEL = base64.b64encode(bytes.fromhex("89504e470d0a1a0a0000000d49484452")).decode()


@pytest.fixture
async def bedrock() -> AsyncIterator[BedrockMock]:
    mock = BedrockMock()
    await mock.start()
    try:
        yield mock
    finally:
        await mock.close()


@pytest.fixture
async def gateway(tmp_path: Path, bedrock: BedrockMock) -> AsyncIterator[Gateway]:
    settings = settings_for(tmp_path, {"bedrock": {**SIGNED, "base_url": bedrock.url}})
    async with serve_gateway(settings) as started:
        yield started


async def test_chat_reaches_converse_signed_and_answers_with_usage(gateway: Gateway, bedrock: BedrockMock) -> None:
    async with gateway.openai_sdk() as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(
            model=f"bedrock/{CLAUDE}",
            messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
            max_tokens=200,
            temperature=0.2,
            top_p=0.9,
            stop=["END"],
        )
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo:hello"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
        21,
        8,
    )
    assert raw.headers["x-isthmus-route"] == f"bedrock/{CLAUDE}"
    seen = bedrock.seen[0]
    assert seen.auth == f"sigv4:{ACCESS_KEY}"
    assert seen.raw_path == "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
    assert seen.body == {
        "messages": [{"role": "user", "content": [{"text": "hello"}]}],
        "system": [{"text": "be brief"}],
        "inferenceConfig": {"maxTokens": 200, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]},
    }
    assert "X-Amz-Security-Token" not in seen.headers


async def test_a_streamed_chat_decodes_the_event_stream_cut_anywhere(gateway: Gateway, bedrock: BedrockMock) -> None:
    bedrock.queue.append(stream_of(text_events("Hello from Bedrock"), split=7))
    async with gateway.openai_sdk() as sdk:
        stream = await sdk.chat.completions.create(
            model=f"bedrock/{CLAUDE}",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from Bedrock"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 29
    assert bedrock.seen[0].raw_path.endswith("/converse-stream")
    assert bedrock.seen[0].headers["Accept"] == "application/vnd.amazon.eventstream"


async def test_messages_reach_bedrock_streamed_and_not(gateway: Gateway, bedrock: BedrockMock) -> None:
    async with gateway.anthropic_sdk() as sdk:
        message = await sdk.messages.create(
            model=f"bedrock/{CLAUDE}",
            max_tokens=100,
            system="terse",
            messages=[{"role": "user", "content": "ping"}],
        )
        bedrock.queue.append(stream_of(text_events("streamed answer")))
        async with sdk.messages.stream(
            model=f"bedrock/{CLAUDE}", max_tokens=100, messages=[{"role": "user", "content": "again"}]
        ) as stream:
            texts = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
    assert message.content[0].type == "text" and message.content[0].text == "echo:ping"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (21, 8)
    assert message.stop_reason == "end_turn"
    assert "".join(texts) == "streamed answer"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 8
    assert bedrock.seen[0].body["system"] == [{"text": "terse"}]
    assert bedrock.seen[0].body["inferenceConfig"] == {"maxTokens": 100}


async def test_tools_make_a_round_trip(gateway: Gateway, bedrock: BedrockMock) -> None:
    use = {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}}
    bedrock.queue.append(converse_answer([{"text": "Checking."}, use], stop="tool_use"))
    bedrock.queue.append(converse_answer([{"text": "Sunny in Paris."}]))
    messages: list[Any] = [{"role": "user", "content": "weather in Paris?"}]
    async with gateway.openai_sdk() as sdk:
        first = await sdk.chat.completions.create(
            model=f"bedrock/{CLAUDE}", messages=messages, tools=[WEATHER], tool_choice="required"
        )
        call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert first.choices[0].finish_reason == "tool_calls"
        assert (call.id, call.function.name, json.loads(call.function.arguments)) == (  # type: ignore[union-attr]
            "tooluse_1",
            "get_weather",
            {"city": "Paris"},
        )
        messages += [
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": "tooluse_1", "content": '{"sky": "sunny"}'},
        ]
        second = await sdk.chat.completions.create(model=f"bedrock/{CLAUDE}", messages=messages, tools=[WEATHER])
    assert second.choices[0].message.content == "Sunny in Paris."
    spec = bedrock.seen[0].body["toolConfig"]
    assert spec["toolChoice"] == {"any": {}}
    assert spec["tools"][0]["toolSpec"] == {
        "name": "get_weather",
        "inputSchema": {"json": WEATHER["function"]["parameters"]},  # type: ignore[index]
        "description": "Weather of a city",
    }
    history = bedrock.seen[1].body["messages"]
    assert history[1] == {
        "role": "assistant",
        "content": [
            {"text": "Checking."},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}},
        ],
    }
    assert history[2] == {
        "role": "user",
        "content": [{"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": '{"sky": "sunny"}'}]}}],
    }


async def test_a_streamed_tool_call_reaches_both_sdks(gateway: Gateway, bedrock: BedrockMock) -> None:
    bedrock.queue.append(stream_of(tool_events("tooluse_9", "get_weather", '{"city": "Oslo"}')))
    bedrock.queue.append(stream_of(tool_events("tooluse_10", "get_weather", '{"city": "Rome"}')))
    async with gateway.openai_sdk() as sdk:
        stream = await sdk.chat.completions.create(
            model=f"bedrock/{CLAUDE}", messages=[{"role": "user", "content": "Oslo?"}], tools=[WEATHER], stream=True
        )
        chunks = [chunk async for chunk in stream]
    calls = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or ()]
    assert calls[0].id == "tooluse_9" and calls[0].function and calls[0].function.name == "get_weather"
    assert "".join(call.function.arguments or "" for call in calls if call.function) == '{"city": "Oslo"}'
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    tool = {"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}  # type: ignore[index]
    async with (
        gateway.anthropic_sdk() as sdk,
        sdk.messages.stream(
            model=f"bedrock/{CLAUDE}",
            max_tokens=50,
            messages=[{"role": "user", "content": "Rome?"}],
            tools=[tool],  # type: ignore[list-item]
        ) as events,
    ):
        final = await events.get_final_message()
    uses = [block for block in final.content if block.type == "tool_use"]
    assert final.stop_reason == "tool_use"
    assert uses[0].id == "tooluse_10" and uses[0].input == {"city": "Rome"}


async def test_an_image_data_url_becomes_bytes_with_a_format(gateway: Gateway, bedrock: BedrockMock) -> None:
    content: Any = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
    ]
    async with gateway.openai_sdk() as sdk:
        await sdk.chat.completions.create(model=f"bedrock/{CLAUDE}", messages=[{"role": "user", "content": content}])
        with pytest.raises(openai.BadRequestError, match="data URL"):
            await sdk.chat.completions.create(
                model=f"bedrock/{CLAUDE}",
                messages=[
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]}
                ],
            )
    blocks = bedrock.seen[0].body["messages"][0]["content"]
    assert blocks[1] == {"image": {"format": "png", "source": {"bytes": PIXEL}}}
    assert len(bedrock.seen) == 1


async def test_usage_is_charged_at_the_shipped_bedrock_price(gateway: Gateway, bedrock: BedrockMock) -> None:
    usage = {"inputTokens": 1000, "outputTokens": 200, "cacheReadInputTokens": 4000, "cacheWriteInputTokens": 0}
    bedrock.queue.append(converse_answer([{"text": "ok"}], usage=usage))
    profile = f"us.{CLAUDE}"  # a cross-region inference profile, priced as its model
    async with gateway.openai_sdk() as sdk:
        completion = await sdk.chat.completions.create(
            model=f"bedrock/{profile}", messages=[{"role": "user", "content": "hi"}]
        )
    assert completion.usage is not None and completion.usage.prompt_tokens == 5000
    assert completion.usage.prompt_tokens_details and completion.usage.prompt_tokens_details.cached_tokens == 4000
    [record] = await gateway.wait_records(1)
    assert (record.tokens_in, record.tokens_out) == (5000, 200)
    # Sonnet 4.5: $3 input, $15 output, $0.30 cache reads per million tokens.
    assert record.cost_usd == Decimal("0.0030") + Decimal("0.0030") + Decimal("0.0012")


async def test_throttling_and_5xx_fail_over_to_the_next_provider(tmp_path: Path, bedrock: BedrockMock) -> None:
    second = BedrockMock()
    await second.start()
    providers = {
        "bedrock": {**SIGNED, "base_url": bedrock.url},
        "backup": {**SIGNED, "base_url": second.url},
    }
    models = {"claude": {"targets": [f"bedrock/{CLAUDE}", f"backup/{CLAUDE}"]}}
    try:
        async with serve_gateway(settings_for(tmp_path, providers, models=models)) as gateway:
            throttled = aws_error(429, "ThrottlingException", "Too many requests, please wait before trying again.")
            bedrock.queue += [throttled] * 3 + [aws_error(503, "ServiceUnavailableException", "busy")] * 3
            bedrock.queue += [stream_of([exception("throttlingException", "slow down")])] * 3
            async with gateway.openai_sdk() as sdk:
                first = await sdk.chat.completions.with_raw_response.create(
                    model="claude", messages=[{"role": "user", "content": "one"}]
                )
                again = await sdk.chat.completions.with_raw_response.create(
                    model="claude", messages=[{"role": "user", "content": "two"}]
                )
                stream = await sdk.chat.completions.with_raw_response.create(
                    model="claude", messages=[{"role": "user", "content": "three"}], stream=True
                )
                texts = [c.choices[0].delta.content or "" async for c in stream.parse() if c.choices]
    finally:
        await second.close()
    assert first.parse().choices[0].message.content == "echo:one"
    assert first.headers["x-isthmus-route"] == f"backup/{CLAUDE}" and first.headers["x-isthmus-attempts"] == "4"
    assert again.headers["x-isthmus-route"] == f"backup/{CLAUDE}"
    assert stream.headers["x-isthmus-route"] == f"backup/{CLAUDE}" and "".join(texts) == "echo:three"
    assert len(bedrock.seen) == 9 and not bedrock.queue


async def test_an_exception_mid_stream_reaches_the_client_as_an_error(gateway: Gateway, bedrock: BedrockMock) -> None:
    frames = text_events("partial answer")[:2] + [exception("modelStreamErrorException", "the model broke")]
    bedrock.queue.append(stream_of(frames))
    async with gateway.openai_sdk() as sdk:
        stream = await sdk.chat.completions.create(
            model=f"bedrock/{CLAUDE}", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        broke = r"provider .bedrock. stream error \(modelStreamErrorException\): the model broke"
        with pytest.raises(openai.APIError, match=broke):
            async for _ in stream:
                pass


async def test_a_wrong_secret_is_a_clear_error_naming_the_provider(tmp_path: Path, bedrock: BedrockMock) -> None:
    providers = {"bedrock": {**SIGNED, "aws_secret_access_key": "not-the-secret", "base_url": bedrock.url}}
    async with serve_gateway(settings_for(tmp_path, providers)) as gateway, gateway.openai_sdk() as sdk:
        with pytest.raises(openai.APIStatusError) as caught:
            await sdk.chat.completions.create(model=f"bedrock/{CLAUDE}", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 502
    message = str(caught.value.message)
    assert "provider 'bedrock' answered 403: InvalidSignatureException: The request signature we calculated" in message
    assert not bedrock.seen


async def test_an_unknown_access_key_is_unrecognized(tmp_path: Path, bedrock: BedrockMock) -> None:
    providers = {"bedrock": {**SIGNED, "aws_access_key_id": "AKIAUNKNOWN000000000", "base_url": bedrock.url}}
    async with serve_gateway(settings_for(tmp_path, providers)) as gateway, gateway.anthropic_sdk() as sdk:
        with pytest.raises(anthropic.APIStatusError) as caught:
            await sdk.messages.create(
                model=f"bedrock/{CLAUDE}", max_tokens=10, messages=[{"role": "user", "content": "x"}]
            )
    assert "provider 'bedrock' answered 403: UnrecognizedClientException" in str(caught.value.message)


async def test_a_bedrock_api_key_goes_as_a_bearer_token(tmp_path: Path, bedrock: BedrockMock) -> None:
    providers = {
        "bedrock": {"kind": "bedrock", "region": REGION, "keys": [{"value": API_KEY}], "base_url": bedrock.url}
    }
    async with serve_gateway(settings_for(tmp_path, providers)) as gateway, gateway.openai_sdk() as sdk:
        completion = await sdk.chat.completions.create(
            model=f"bedrock/{CLAUDE}", messages=[{"role": "user", "content": "keyed"}]
        )
    assert completion.choices[0].message.content == "echo:keyed"
    assert bedrock.seen[0].auth == f"bearer:{API_KEY}"
    assert "X-Amz-Date" not in bedrock.seen[0].headers


async def test_temporary_credentials_send_and_sign_their_session_token(tmp_path: Path, bedrock: BedrockMock) -> None:
    temporary = {
        "kind": "bedrock",
        "region": REGION,
        "aws_access_key_id": TEMP_ACCESS_KEY,
        "aws_secret_access_key": TEMP_SECRET_KEY,
        "aws_session_token": SESSION_TOKEN,
        "base_url": bedrock.url,
    }
    async with serve_gateway(settings_for(tmp_path, {"bedrock": temporary})) as gateway, gateway.openai_sdk() as sdk:
        await sdk.chat.completions.create(model=f"bedrock/{CLAUDE}", messages=[{"role": "user", "content": "t"}])
    seen = bedrock.seen[0]
    assert seen.auth == f"sigv4:{TEMP_ACCESS_KEY}"
    assert seen.headers["X-Amz-Security-Token"] == SESSION_TOKEN
    assert "x-amz-security-token" in seen.headers["Authorization"]


async def test_an_inference_profile_arn_routes_and_is_signed(gateway: Gateway, bedrock: BedrockMock) -> None:
    arn = f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.{CLAUDE}"
    async with gateway.openai_sdk() as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(
            model=f"bedrock/{arn}", messages=[{"role": "user", "content": "arn"}]
        )
    assert raw.parse().choices[0].message.content == "echo:arn"
    assert raw.headers["x-isthmus-route"] == f"bedrock/{arn}"
    assert bedrock.seen[0].raw_path == (
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus."
        "anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
    )


async def test_the_responses_api_reaches_bedrock_through_chat(gateway: Gateway, bedrock: BedrockMock) -> None:
    async with gateway.openai_sdk() as sdk:
        response = await sdk.responses.create(model=f"bedrock/{CLAUDE}", input="respond", store=False)
        bedrock.queue.append(stream_of(text_events("streamed response")))
        stream = await sdk.responses.create(model=f"bedrock/{CLAUDE}", input="stream it", stream=True, store=False)
        events = [event async for event in stream]
    assert response.output_text == "echo:respond"
    assert response.usage is not None and response.usage.input_tokens == 21
    completed = [event for event in events if event.type == "response.completed"]
    assert completed[0].response.output_text == "streamed response"  # type: ignore[attr-defined]
    assert completed[0].response.usage.output_tokens == 8  # type: ignore[attr-defined]


async def test_titan_and_cohere_embeddings_go_through_invoke_model(gateway: Gateway, bedrock: BedrockMock) -> None:
    async with gateway.openai_sdk() as sdk:
        titan = await sdk.embeddings.create(
            model="bedrock/amazon.titan-embed-text-v2:0",
            input=["one two", "three"],
            dimensions=3,
            encoding_format="float",
        )
        cohere = await sdk.embeddings.create(
            model="bedrock/cohere.embed-english-v3", input=["alpha", "be"], encoding_format="float"
        )
    assert [item.embedding for item in titan.data] == [[7.0, 0.5, 0.5], [5.0, 0.5, 0.5]]
    assert titan.usage.prompt_tokens == 3
    assert [item.embedding for item in cohere.data] == [[5.0, 0.25, 0.75], [2.0, 0.25, 0.75]]
    titan_bodies = sorted(json.dumps(seen.body) for seen in bedrock.seen[:2])
    assert titan_bodies == [
        json.dumps({"inputText": "one two", "dimensions": 3}),
        json.dumps({"inputText": "three", "dimensions": 3}),
    ]
    assert bedrock.seen[2].body == {"texts": ["alpha", "be"], "input_type": "search_document"}
    assert all(seen.raw_path.endswith("/invoke") for seen in bedrock.seen)


async def test_the_standard_aws_chain_supplies_credentials(
    tmp_path: Path, bedrock: BedrockMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[work]\naws_access_key_id = {TEMP_ACCESS_KEY}\naws_secret_access_key = {TEMP_SECRET_KEY}\n"
        f"aws_session_token = {SESSION_TOKEN}\n"
    )
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_PROFILE", "work")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    providers = {"bedrock": {"kind": "bedrock", "region": REGION, "base_url": bedrock.url}}
    async with serve_gateway(settings_for(tmp_path, providers)) as gateway, gateway.openai_sdk() as sdk:
        await sdk.chat.completions.create(model=f"bedrock/{CLAUDE}", messages=[{"role": "user", "content": "c"}])
    assert bedrock.seen[0].auth == f"sigv4:{TEMP_ACCESS_KEY}"
    assert bedrock.seen[0].headers["X-Amz-Security-Token"] == SESSION_TOKEN


async def test_no_credentials_anywhere_is_a_clear_error(
    tmp_path: Path, bedrock: BedrockMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    providers = {"bedrock": {"kind": "bedrock", "region": REGION, "base_url": bedrock.url}}
    async with serve_gateway(settings_for(tmp_path, providers)) as gateway, gateway.openai_sdk() as sdk:
        with pytest.raises(openai.APIStatusError) as caught:
            await sdk.chat.completions.create(model=f"bedrock/{CLAUDE}", messages=[{"role": "user", "content": "c"}])
    assert caught.value.status_code == 502
    assert "provider 'bedrock' found no AWS credentials" in str(caught.value.message)
    assert not bedrock.seen


async def test_a_messages_tool_result_reaches_converse_as_a_tool_result(gateway: Gateway, bedrock: BedrockMock) -> None:
    tool = {"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}  # type: ignore[index]
    history: Any = [
        {"role": "user", "content": "weather in Lima?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_7", "name": "get_weather", "input": {"city": "Lima"}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_7", "content": "fog", "is_error": True}],
        },
    ]
    async with gateway.anthropic_sdk() as sdk:
        message = await sdk.messages.create(
            model=f"bedrock/{CLAUDE}", max_tokens=64, messages=history, tools=[tool], tool_choice={"type": "auto"}
        )
    assert message.content[0].type == "text"
    body = bedrock.seen[0].body
    assert "toolChoice" not in body["toolConfig"]  # auto is Converse's default
    assert body["messages"][1]["content"] == [
        {"toolUse": {"toolUseId": "toolu_7", "name": "get_weather", "input": {"city": "Lima"}}}
    ]
    assert body["messages"][2]["content"][0]["toolResult"]["toolUseId"] == "toolu_7"
    assert body["messages"][2]["content"][0]["toolResult"]["content"] == [{"text": "Error: fog"}]
