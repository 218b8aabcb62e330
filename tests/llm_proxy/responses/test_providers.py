"""`/v1/responses` over every provider kind, streamed and not: natively to an OpenAI server that has the Responses
API, translated to chat completions for Anthropic, Gemini, Azure, OpenAI-compatible servers and `echo`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.llm_proxy.conftest import KEY, Gateway, serve_gateway, settings_for
from tests.llm_proxy.mock_provider import MockProvider, openai_frames, sse, status, stream_frames
from toolpolicy.settings import ProviderSettings

pytestmark = pytest.mark.anyio

# provider, path the mock sees, the answer's text (the mocks answer `echo:` in chat and `native:` natively)
CASES = [
    ("claude/claude-test", "/v1/messages", "echo:hello"),
    ("google/gemini-test", "/v1beta/models/gemini-test:generateContent", "echo:hello"),
    ("az/my-deployment", "/openai/deployments/my-deployment/chat/completions", "echo:hello"),
    ("compat/llama", "/v1/chat/completions", "echo:hello"),
    ("native/gpt-test", "/v1/responses", "native:hello"),
    ("echo/echo-1", None, "hello"),
]


@pytest.fixture
async def gateway(tmp_path: Path, mock: MockProvider) -> AsyncIterator[Gateway]:
    providers = {
        "claude": {"kind": "anthropic", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-ant"}]},
        "google": {"kind": "gemini", "base_url": f"{mock.url}/v1beta", "keys": [{"value": "g-key"}]},
        "az": {"kind": "azure", "base_url": mock.url, "keys": [{"value": "az-key"}]},
        "compat": {"kind": "openai", "base_url": f"{mock.url}/v1"},
        "native": {"kind": "openai", "base_url": f"{mock.url}/v1", "responses": "native", "keys": [{"value": "sk"}]},
        "echo": {"kind": "echo"},
    }
    aliases = {"mixed": {"targets": ["native/gpt-test", "compat/llama"]}}
    async with serve_gateway(settings_for(tmp_path, providers, models=aliases)) as started:
        yield started


def client(gateway: Gateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.v1, api_key=KEY, max_retries=0)


@pytest.mark.parametrize(("model", "path", "text"), CASES)
async def test_a_response_from_each_kind(
    gateway: Gateway, mock: MockProvider, model: str, path: str | None, text: str
) -> None:
    async with client(gateway) as sdk:
        response = await sdk.responses.create(model=model, input="hello", instructions="be kind")
        fetched = await sdk.responses.retrieve(response.id)
    assert response.output_text == text and fetched.output_text == text
    assert response.usage is not None and response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.id.startswith("resp_")
    assert [seen.path for seen in mock.seen] == ([path] if path else [])
    if path == "/v1/responses":
        sent = mock.seen[0].body
        assert sent["instructions"] == "be kind" and sent["input"] == "hello" and sent["model"] == "gpt-test"


@pytest.mark.parametrize(("model", "path", "text"), CASES)
async def test_a_streamed_response_from_each_kind(
    gateway: Gateway, mock: MockProvider, model: str, path: str | None, text: str
) -> None:
    async with client(gateway) as sdk:
        async with sdk.responses.stream(model=model, input="hello") as stream:
            kinds = [event.type async for event in stream]
            final = await stream.get_final_response()
        fetched = await sdk.responses.retrieve(final.id)
    assert final.output_text == text and fetched.output_text == text
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    assert final.usage is not None and final.usage.output_tokens > 0
    record = (await gateway.wait_records(1))[0]
    assert record.details["endpoint"] == "responses" and record.tokens_out == final.usage.output_tokens


async def test_native_continuation_sends_the_chain_as_input_without_previous_response_id(
    gateway: Gateway, mock: MockProvider
) -> None:
    async with client(gateway) as sdk:
        first = await sdk.responses.create(model="native/gpt-test", input="remember 42")
        await sdk.responses.create(model="native/gpt-test", input="what number?", previous_response_id=first.id)
    sent = mock.seen[1].body
    assert "previous_response_id" not in sent
    assert [item.get("role") for item in sent["input"]] == ["user", "assistant", "user"]
    assert sent["input"][0] == {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "remember 42"}],
    }
    assert sent["input"][1]["content"][0]["text"] == "native:remember 42" and "id" not in sent["input"][1]


async def test_a_native_stream_error_after_the_first_event_ends_with_error_and_response_failed(
    gateway: Gateway, mock: MockProvider
) -> None:
    created = {"id": "resp_x", "object": "response", "status": "in_progress", "output": [], "model": "gpt-test"}
    frames = [
        sse({"type": "response.created", "sequence_number": 0, "response": created}, "response.created"),
        sse({"type": "error", "sequence_number": 1, "message": "overloaded", "code": "server_error"}, "error"),
    ]
    mock.queue(stream_frames(frames))
    async with client(gateway) as sdk:
        stream = await sdk.responses.create(model="native/gpt-test", input="hi", stream=True)
        events = [event async for event in stream]
    assert [event.type for event in events] == ["response.created", "error", "response.failed"]
    assert [event.sequence_number for event in events] == [0, 1, 2]
    assert "overloaded" in events[1].message  # type: ignore[union-attr]
    assert events[2].response.status == "failed" and events[2].response.id == "resp_x"  # type: ignore[union-attr]
    record = (await gateway.wait_records(1))[0]
    assert record.status == 500


async def test_a_native_failure_fails_over_to_a_translated_target(gateway: Gateway, mock: MockProvider) -> None:
    mock.queue(status(500), status(500), status(500))
    async with client(gateway) as sdk:
        raw = await sdk.responses.with_raw_response.create(model="mixed", input="hello")
        response = raw.parse()
        fetched = await sdk.responses.retrieve(response.id)
    assert [seen.path for seen in mock.seen] == ["/v1/responses"] * 3 + ["/v1/chat/completions"]
    assert raw.headers["x-isthmus-route"] == "compat/llama" and raw.headers["x-isthmus-attempts"] == "4"
    assert response.output_text == "echo:hello" and fetched.output_text == "echo:hello"


async def test_a_translated_stream_broken_midway_ends_with_error_and_response_failed(
    gateway: Gateway, mock: MockProvider
) -> None:
    started = openai_frames({"model": "llama"}, "partial answer")[:2]
    broken = sse({"error": {"message": "upstream exploded", "type": "server_error"}})
    mock.queue(stream_frames([*started, broken]))
    async with client(gateway) as sdk:
        stream = await sdk.responses.create(model="compat/llama", input="hello", stream=True)
        events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-2:] == ["error", "response.failed"]
    assert "response.output_text.delta" in kinds
    assert [event.sequence_number for event in events] == list(range(len(events)))
    failed = events[-1].response  # type: ignore[union-attr]
    assert failed.status == "failed" and "upstream exploded" in failed.error.message
    async with client(gateway) as sdk:
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.retrieve(failed.id)
    record = (await gateway.wait_records(1))[0]
    assert record.status == 500 and record.tokens_out is not None


def test_native_is_the_default_only_for_openais_own_api() -> None:
    def mode(**fields: Any) -> bool:
        return ProviderSettings.model_validate({"kind": "openai", **fields}).native_responses

    assert mode() and mode(base_url="https://api.openai.com/v1/")
    assert not mode(base_url="http://localhost:11434/v1")
    assert mode(base_url="http://localhost:8000/v1", responses="native")
    assert not mode(responses="chat")
    with pytest.raises(ValueError, match="responses: native needs kind openai"):
        ProviderSettings.model_validate({"kind": "anthropic", "responses": "native"})
