"""Guardrails on every LLM route, end to end with the official SDKs against the mock provider: a block is a 400 in
the route's envelope and nothing is forwarded, a redaction never reaches the provider (input) or the client
(output), streams included, and each enforcement is one audit record without the matched text."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import anyio
import openai
import pytest

from tests.llm_proxy.conftest import KEY, Gateway, serve_gateway, settings_for
from tests.llm_proxy.mock_provider import MockProvider, json_reply, sse, stream_frames
from toolpolicy.audit import AuditRecord

pytestmark = pytest.mark.anyio

AWS = "AKIA" + "IOSFODNN7EXAMPLE"
CARD = "4111 1111 1111 1111"
RULES = [
    {"name": "no-secrets", "detect": "secrets", "action": "block", "default": True},
    {
        "name": "pii-in",
        "detect": "pii",
        "entities": ["email"],
        "action": "redact",
        "default": True,
        "apply_to": ["input"],
    },
    {
        "name": "pii-out",
        "detect": "pii",
        "entities": ["email", "credit_card"],
        "action": "redact",
        "default": True,
        "apply_to": ["output"],
    },
    {"name": "codename", "detect": "regex", "patterns": [r"(?i)project\s+falcon"], "action": "log", "default": True},
]


@pytest.fixture
async def guarded(tmp_path: Path, mock: MockProvider) -> AsyncIterator[Gateway]:
    providers = {
        "mock": {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-mock"}]},
        "native": {
            "kind": "openai",
            "base_url": f"{mock.url}/v1",
            "keys": [{"value": "sk-mock"}],
            "responses": "native",
        },
        "claude": {"kind": "anthropic", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-ant"}]},
    }
    async with serve_gateway(settings_for(tmp_path, providers, guardrails=RULES)) as started:
        yield started


def gpt(gateway: Gateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.v1, api_key=KEY, max_retries=0)


def claude(gateway: Gateway) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gateway.url, api_key=KEY, max_retries=0)


async def guardrail_records(gateway: Gateway, count: int) -> list[AuditRecord]:
    with anyio.fail_after(5):
        while len(found := [r for r in gateway.records if r.kind == "guardrail"]) < count:
            await anyio.sleep(0.01)
    return found


def chat_stream(pieces: list[str]) -> list[bytes]:
    base = {"id": "chatcmpl-g", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    frames = [chunk({"role": "assistant", "content": ""})]
    frames += [chunk({"content": piece}) for piece in pieces]
    return [*frames, chunk({}, "stop"), sse("[DONE]")]


# --- chat completions ------------------------------------------------------------------------------------------


async def test_a_blocked_chat_request_is_a_400_naming_the_rule_and_nothing_is_forwarded(
    guarded: Gateway, mock: MockProvider
) -> None:
    async with gpt(guarded) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.chat.completions.create(
                model="mock/gpt-test", messages=[{"role": "user", "content": f"my key is {AWS}"}]
            )
    error = caught.value
    assert error.status_code == 400 and error.code == "guardrail_blocked"
    assert "no-secrets" in error.message and AWS not in error.message
    assert mock.seen == []
    (record,) = await guardrail_records(guarded, 1)
    assert (record.decision, record.details["surface"], record.details["entities"]) == (
        "block",
        "input",
        {"aws_access_key": 1},
    )
    assert record.key_name == "dev-key" and AWS not in repr(record)
    llm = (await guarded.wait_records(1))[0]
    assert llm.status == 400 and llm.reason == "guardrail_blocked"


async def test_a_redacted_chat_request_never_shows_the_provider_the_value(guarded: Gateway, mock: MockProvider) -> None:
    async with gpt(guarded) as sdk:
        completion = await sdk.chat.completions.create(
            model="mock/gpt-test",
            messages=[{"role": "user", "content": [{"type": "text", "text": "mail jane@example.com please"}]}],
        )
    assert "jane@example.com" not in json.dumps(mock.seen[0].body)
    assert mock.seen[0].body["messages"][0]["content"][0]["text"] == "mail [REDACTED:email] please"
    assert completion.choices[0].message.content == "echo:mail [REDACTED:email] please"


async def test_chat_output_is_redacted_before_the_client_sees_it(guarded: Gateway, mock: MockProvider) -> None:
    async with gpt(guarded) as sdk:
        completion = await sdk.chat.completions.create(
            model="mock/gpt-test", messages=[{"role": "user", "content": f"card {CARD}"}]
        )
    assert CARD in mock.seen[0].body["messages"][0]["content"]  # no input rule on cards
    assert completion.choices[0].message.content == "echo:card [REDACTED:credit_card]"
    (record,) = await guardrail_records(guarded, 1)
    assert (record.details["rule"], record.details["surface"], record.decision) == ("pii-out", "output", "redact")


async def test_a_scanned_answer_nothing_was_redacted_in_goes_out_as_the_providers_bytes(
    guarded: Gateway, mock: MockProvider
) -> None:
    def answer(content: str) -> dict[str, Any]:
        message = {"role": "assistant", "content": content}
        return {
            "id": "chatcmpl-raw",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-test",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }

    clean, dirty = answer("nothing to see"), answer(f"card {CARD}")
    mock.queue(json_reply(clean), json_reply(dirty))
    async with gpt(guarded) as sdk:
        replies = [
            await sdk.chat.completions.with_raw_response.create(
                model="mock/gpt-test", messages=[{"role": "user", "content": "hi"}]
            )
            for _ in range(2)
        ]
    # Scanned (the output rules apply) but unchanged: the provider's own encoding, not a re-encoding of it.
    assert replies[0].http_response.content == json.dumps(clean).encode()
    redacted = replies[1].http_response.json()
    assert redacted["choices"][0]["message"]["content"] == "card [REDACTED:credit_card]"


async def test_a_streamed_chat_answer_is_redacted_however_the_value_is_split(
    guarded: Gateway, mock: MockProvider
) -> None:
    text = f"Your card is {CARD} and mail is bo@example.org, done."
    mock.queue(stream_frames(chat_stream(list(text))))  # one character per chunk
    async with gpt(guarded) as sdk:
        stream = await sdk.chat.completions.create(
            model="mock/gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        chunks = [chunk async for chunk in stream]
    received = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert received == "Your card is [REDACTED:credit_card] and mail is [REDACTED:email], done."
    (record,) = await guardrail_records(guarded, 1)
    assert record.details["entities"] == {"credit_card": 1, "email": 1}


async def test_a_blocked_streamed_answer_ends_with_the_error_and_never_shows_the_value(
    guarded: Gateway, mock: MockProvider
) -> None:
    pieces = ["Here is ", "the key ", AWS[:7], AWS[7:13], AWS[13:], " ok"]
    mock.queue(stream_frames(chat_stream(pieces)))
    received = ""
    async with gpt(guarded) as sdk:
        stream = await sdk.chat.completions.create(
            model="mock/gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with pytest.raises(openai.APIError) as caught:
            async for chunk in stream:
                received += "".join(choice.delta.content or "" for choice in chunk.choices)
    assert "no-secrets" in caught.value.message
    assert AWS[:7] not in received and "AKIA" not in received
    (record,) = await guardrail_records(guarded, 1)
    assert (record.decision, record.details["surface"]) == ("block", "output")


async def test_log_rules_change_nothing_and_are_audited(guarded: Gateway, mock: MockProvider) -> None:
    async with gpt(guarded) as sdk:
        completion = await sdk.chat.completions.create(
            model="mock/gpt-test", messages=[{"role": "user", "content": "about Project Falcon"}]
        )
    assert mock.seen[0].body["messages"][0]["content"] == "about Project Falcon"
    assert completion.choices[0].message.content == "echo:about Project Falcon"
    records = await guardrail_records(guarded, 2)
    assert sorted((r.decision, r.details["surface"]) for r in records) == [("log", "input"), ("log", "output")]
    assert all("Falcon" not in repr(record) for record in records)
    hits = guarded.governance.metrics.registry.get_sample_value(
        "isthmus_guardrail_hits_total", {"rule": "codename", "action": "log", "surface": "input"}
    )
    assert hits == 1


# --- embeddings ------------------------------------------------------------------------------------------------


async def test_embedding_inputs_are_redacted_and_blocked(guarded: Gateway, mock: MockProvider) -> None:
    async with gpt(guarded) as sdk:
        await sdk.embeddings.create(model="mock/embed", input=["plain", "write a@b.example"])
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.embeddings.create(model="mock/embed", input=f"key {AWS}")
    assert mock.seen[0].body["input"] == ["plain", "write [REDACTED:email]"]
    assert caught.value.code == "guardrail_blocked" and len(mock.seen) == 1


# --- Messages --------------------------------------------------------------------------------------------------


async def test_messages_input_block_is_anthropics_envelope_with_the_code(guarded: Gateway, mock: MockProvider) -> None:
    async with claude(guarded) as sdk:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await sdk.messages.create(
                model="claude/claude-test",
                max_tokens=50,
                system=f"use {AWS}",
                messages=[{"role": "user", "content": "hi"}],
            )
    body: Any = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "guardrail_blocked" and "no-secrets" in body["error"]["message"]
    assert mock.seen == []


async def test_messages_input_and_output_are_redacted(guarded: Gateway, mock: MockProvider) -> None:
    async with claude(guarded) as sdk:
        message = await sdk.messages.create(
            model="claude/claude-test",
            max_tokens=50,
            messages=[{"role": "user", "content": f"x@y.example {CARD}"}],
        )
    assert mock.seen[0].body["messages"][0]["content"] == f"[REDACTED:email] {CARD}"
    assert message.content[0].text == "echo:[REDACTED:email] [REDACTED:credit_card]"  # type: ignore[union-attr]


async def test_a_streamed_messages_answer_is_redacted_across_deltas(guarded: Gateway, mock: MockProvider) -> None:
    async with claude(guarded) as sdk:
        async with sdk.messages.stream(
            model="claude/claude-test", max_tokens=50, messages=[{"role": "user", "content": f"n {CARD} end"}]
        ) as stream:
            text = "".join([piece async for piece in stream.text_stream])
            final = await stream.get_final_message()
    # The mock streams its answer in two halves, which cut the card number.
    assert text == "echo:n [REDACTED:credit_card] end"
    assert final.content[0].text == text  # type: ignore[union-attr]


# --- Responses -------------------------------------------------------------------------------------------------


async def test_responses_input_is_checked_and_output_redacted(guarded: Gateway, mock: MockProvider) -> None:
    async with gpt(guarded) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.responses.create(model="mock/gpt-test", input="k", instructions=f"key {AWS}")
        response = await sdk.responses.create(model="native/gpt-test", input=f"a@b.example {CARD}")
        stored = await sdk.responses.retrieve(response.id)
    assert caught.value.code == "guardrail_blocked"
    assert mock.seen[0].path == "/v1/responses" and mock.seen[0].body["input"] == f"[REDACTED:email] {CARD}"
    assert response.output_text == "native:[REDACTED:email] [REDACTED:credit_card]"
    assert stored.output_text == response.output_text  # the stored response is the redacted one


@pytest.mark.parametrize("model", ["mock/gpt-test", "native/gpt-test"])
async def test_a_streamed_response_is_redacted_in_deltas_and_snapshots(
    guarded: Gateway, mock: MockProvider, model: str
) -> None:
    async with gpt(guarded) as sdk:
        # Separators the mock's word-per-chunk echo keeps, so the card stays a card.
        stream = await sdk.responses.create(model=model, input="num, 4111-1111-1111-1111 ,fin", stream=True)
        events = [event async for event in stream]
        final = events[-1]
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert "1111" not in deltas and "[REDACTED:credit_card]" in deltas and deltas.endswith(",fin")
    numbers = [event.sequence_number for event in events]
    assert numbers == list(range(len(events)))
    assert final.type == "response.completed" and final.response.output_text == deltas
    done = [event for event in events if event.type == "response.output_text.done"]
    assert [event.text for event in done] == [deltas]
