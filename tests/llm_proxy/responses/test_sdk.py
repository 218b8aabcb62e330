"""The official `openai` SDK's Responses API against the proxy, over an OpenAI-compatible mock that has only chat
completions (a custom `base_url`, so `/v1/responses` is translated to chat)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.llm_proxy.conftest import KEY, LIMITED_KEY, Gateway
from tests.llm_proxy.mock_provider import (
    USAGE,
    MockProvider,
    tool_calls,
)

pytestmark = pytest.mark.anyio


def client(gateway: Gateway, key: str = KEY) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.v1, api_key=key, max_retries=0)


async def test_a_response_is_created_from_chat_with_ids_usage_and_instructions(
    gateway: Gateway, mock: MockProvider
) -> None:
    async with client(gateway) as sdk:
        response = await sdk.responses.create(
            model="mock/gpt-test", input="hello", instructions="be brief", max_output_tokens=50, temperature=0.2
        )
    assert response.id.startswith("resp_") and len(response.id) == 53
    assert response.status == "completed" and response.object == "response"
    assert response.output_text == "echo:hello"
    message = response.output[0]
    assert message.type == "message" and message.id.startswith("msg_")
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (11, 7, 18)
    assert response.instructions == "be brief" and response.temperature == 0.2
    sent = mock.seen[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
    ]
    assert sent.body["max_completion_tokens"] == 50 and sent.body["temperature"] == 0.2


async def test_a_stored_response_is_retrieved_listed_and_deleted(gateway: Gateway, mock: MockProvider) -> None:
    items = [{"role": "user", "content": f"message {number}"} for number in range(5)]
    async with client(gateway) as sdk:
        created = await sdk.responses.create(model="mock/gpt-test", input=items, metadata={"run": "7"})  # type: ignore[arg-type]
        fetched = await sdk.responses.retrieve(created.id)
        assert fetched.id == created.id and fetched.output_text == "echo:message 4"
        assert fetched.metadata == {"run": "7"}
        first = await sdk.responses.input_items.list(created.id, limit=2, order="asc")
        assert [item.content[0].text for item in first.data] == ["message 0", "message 1"]  # type: ignore[union-attr]
        assert first.has_more is True
        rest = await sdk.responses.input_items.list(created.id, limit=10, order="asc", after=first.last_id)
        assert len(rest.data) == 3 and rest.has_more is False
        newest = await sdk.responses.input_items.list(created.id)
        assert newest.data[0].content[0].text == "message 4"  # type: ignore[union-attr]
        assert all(item.id.startswith("msg_") for item in newest.data)  # type: ignore[union-attr]
        await sdk.responses.delete(created.id)
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.retrieve(created.id)


async def test_previous_response_id_prepends_the_earlier_input_and_output(gateway: Gateway, mock: MockProvider) -> None:
    async with client(gateway) as sdk:
        first = await sdk.responses.create(model="mock/gpt-test", input="my name is Ada", instructions="first")
        second = await sdk.responses.create(
            model="mock/gpt-test", input="what is my name?", previous_response_id=first.id
        )
        listed = await sdk.responses.input_items.list(second.id, order="asc")
    assert second.previous_response_id == first.id
    assert mock.seen[1].body["messages"] == [
        {"role": "user", "content": "my name is Ada"},
        {"role": "assistant", "content": "echo:my name is Ada"},
        {"role": "user", "content": "what is my name?"},
    ]
    assert [item.type for item in listed.data] == ["message", "message", "message"]


async def test_a_function_call_round_trip(gateway: Gateway, mock: MockProvider) -> None:
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "strict": True,
    }
    mock.queue(tool_calls(("get_weather", '{"city":"Paris"}')))
    async with client(gateway) as sdk:
        first = await sdk.responses.create(
            model="mock/gpt-test",
            input="weather in Paris?",
            tools=[tool],  # type: ignore[list-item]
            tool_choice={"type": "function", "name": "get_weather"},
            parallel_tool_calls=False,
        )
        call = first.output[0]
        assert call.type == "function_call" and call.id.startswith("fc_")
        assert (call.call_id, call.name, call.arguments) == ("call_0", "get_weather", '{"city":"Paris"}')
        second = await sdk.responses.create(
            model="mock/gpt-test",
            previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18C and sunny"}],
            tools=[tool],  # type: ignore[list-item]
        )
    sent = mock.seen[0].body
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": tool["parameters"],
                "description": "weather of a city",
                "strict": True,
            },
        }
    ]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False
    messages = mock.seen[1].body["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
        ],
    }
    assert messages[2] == {"role": "tool", "tool_call_id": "call_0", "content": "18C and sunny"}
    assert second.status == "completed"


async def test_text_format_json_schema_becomes_response_format(gateway: Gateway, mock: MockProvider) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    async with client(gateway) as sdk:
        await sdk.responses.create(
            model="mock/gpt-test",
            input="answer in JSON",
            text={"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}},
            reasoning={"effort": "low"},
        )
        await sdk.responses.create(model="mock/gpt-test", input="json", text={"format": {"type": "json_object"}})
    assert mock.seen[0].body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }
    assert mock.seen[0].body["reasoning_effort"] == "low"
    assert mock.seen[1].body["response_format"] == {"type": "json_object"}


async def test_store_false_is_answered_but_not_stored(gateway: Gateway, mock: MockProvider) -> None:
    async with client(gateway) as sdk:
        response = await sdk.responses.create(model="mock/gpt-test", input="secret", store=False)
        assert response.output_text == "echo:secret" and response.store is False
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.retrieve(response.id)
        with pytest.raises(openai.NotFoundError) as refused:
            await sdk.responses.create(model="mock/gpt-test", input="again", previous_response_id=response.id)
    assert refused.value.body["param"] == "previous_response_id"  # type: ignore[index]
    assert refused.value.body["code"] == "previous_response_not_found"  # type: ignore[index]


async def test_one_key_never_sees_another_keys_responses(gateway: Gateway, mock: MockProvider) -> None:
    async with client(gateway) as owner, client(gateway, LIMITED_KEY) as other:
        created = await owner.responses.create(model="mock/gpt-test", input="mine")
        with pytest.raises(openai.NotFoundError):
            await other.responses.retrieve(created.id)
        with pytest.raises(openai.NotFoundError):
            await other.responses.input_items.list(created.id)
        with pytest.raises(openai.NotFoundError):
            await other.responses.delete(created.id)
        with pytest.raises(openai.NotFoundError):
            await other.responses.create(model="mock/allowed-1", input="yours?", previous_response_id=created.id)
        assert (await owner.responses.retrieve(created.id)).output_text == "echo:mine"


async def test_streaming_follows_the_event_sequence_the_sdk_accumulates(gateway: Gateway, mock: MockProvider) -> None:
    async with client(gateway) as sdk:
        async with sdk.responses.stream(model="mock/gpt-test", input="one two three") as stream:
            events = [event async for event in stream]
            final = await stream.get_final_response()
        fetched = await sdk.responses.retrieve(final.id)
    kinds = [event.type for event in events]
    assert kinds[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert final.output_text == "echo:onetwothree" and final.status == "completed"
    assert final.usage is not None and final.usage.total_tokens == 18
    assert fetched.output_text == "echo:onetwothree"
    record = (await gateway.wait_records(1))[0]
    assert record.details["endpoint"] == "responses" and record.details["stream"] is True
    assert (record.tokens_in, record.tokens_out) == (11, 7)


async def test_a_streamed_function_call_arrives_as_argument_deltas(gateway: Gateway, mock: MockProvider) -> None:
    mock.queue(tool_calls(("lookup", '{"q":"x"}')))
    tool = {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}
    async with client(gateway) as sdk:
        stream = await sdk.responses.create(model="mock/gpt-test", input="find x", tools=[tool], stream=True)  # type: ignore[list-item]
        events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    done = events[-1].response  # type: ignore[union-attr]
    call = done.output[0]
    assert call.type == "function_call" and call.call_id == "call_0" and json.loads(call.arguments) == {"q": "x"}
    assert done.usage is not None and done.usage.output_tokens == USAGE["completion_tokens"]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"input": 5}, "input"),
        ({"input": [{"role": "robot", "content": "hi"}]}, "input[0].role"),
        ({"input": [{"type": "web_search_call"}]}, "input[0].type"),
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": "hi", "text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
        ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "hi", "temperature": 3}, "temperature"),
        ({"input": "hi", "tool_choice": {"type": "file_search"}}, "tool_choice"),
        ({"input": "hi", "background": True}, "background"),
    ],
)
async def test_bad_input_is_refused_naming_the_param(
    gateway: Gateway, mock: MockProvider, extra: dict[str, Any], param: str
) -> None:
    async with client(gateway) as sdk:
        with pytest.raises(openai.BadRequestError) as refused:
            await sdk.responses.create(model="mock/gpt-test", **extra)
    assert refused.value.body["param"] == param  # type: ignore[index]
    assert refused.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    assert mock.seen == []
