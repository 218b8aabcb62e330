"""Bedrock's translations and event stream decoding on their own: chat -> Converse, Converse -> chat, frames ->
events, and the provider's settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.credentials import RefreshableCredentials
from pydantic import ValidationError

from llm_proxy.errors import UnsupportedByProvider, UpstreamBadResponse, UpstreamStatusError
from llm_proxy.providers.bedrock.auth import AwsSigner
from llm_proxy.providers.bedrock.converse import chat_to_converse, converse_to_message
from llm_proxy.providers.bedrock.stream import ConverseToEvents, converse_events
from llm_proxy.wire.anthropic import message_to_completion
from llm_proxy.wire.anthropic_stream import EventsToChunks
from tests.llm_proxy.providers.bedrock_mock import event, exception, text_events, tool_events
from toolpolicy.errors import InvalidRequest
from toolpolicy.settings import ProviderSettings

pytestmark = pytest.mark.anyio

CLAUDE = "anthropic.claude-sonnet-4-5-20250929-v1:0"
NOVA = "amazon.nova-pro-v1:0"


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def decoded(frames: list[bytes], size: int) -> list[tuple[str, dict[str, Any]]]:
    return [item async for item in converse_events("bedrock", pieces(b"".join(frames), size))]


def test_json_mode_is_a_forced_tool_and_comes_back_as_text() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    body = {"messages": [user("count")], "response_format": {"type": "json_schema", "json_schema": {"schema": schema}}}
    payload, json_tool = chat_to_converse(body, NOVA)
    assert payload["toolConfig"]["toolChoice"] == {"tool": {"name": json_tool}}
    assert payload["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {"json": schema}
    answer = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": "t", "name": json_tool, "input": {"n": 3}}}],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 5, "outputTokens": 2},
    }
    completion = message_to_completion(converse_to_message(answer, NOVA), json_tool)
    assert completion["choices"][0]["message"]["content"] == '{"n": 3}'
    assert completion["choices"][0]["finish_reason"] == "stop"


def test_reasoning_effort_turns_on_claude_thinking_within_max_tokens() -> None:
    payload, _ = chat_to_converse({"messages": [user("think")], "reasoning_effort": "high", "max_tokens": 8000}, CLAUDE)
    assert payload["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 7999}}
    plain, _ = chat_to_converse({"messages": [user("think")], "reasoning_effort": "low"}, NOVA)
    assert "additionalModelRequestFields" not in plain
    with pytest.raises(InvalidRequest, match="max_tokens above 1024"):
        chat_to_converse({"messages": [user("x")], "reasoning_effort": "low", "max_tokens": 500}, CLAUDE)


def test_reasoning_comes_back_as_reasoning_content() -> None:
    content = [{"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "s"}}}, {"text": "42"}]
    answer = {"output": {"message": {"content": content}}, "stopReason": "end_turn", "usage": {"inputTokens": 1}}
    message = message_to_completion(converse_to_message(answer, CLAUDE), None)["choices"][0]["message"]
    assert (message["content"], message["reasoning_content"]) == ("42", "hmm")


def test_unknown_fields_go_to_additional_model_request_fields_and_converse_fields_pass() -> None:
    guardrail = {"guardrailIdentifier": "g1", "guardrailVersion": "1"}
    body = {"messages": [user("x")], "top_k": 40, "guardrailConfig": guardrail, "user": "u1", "seed": 3}
    payload, _ = chat_to_converse(body, CLAUDE)
    assert payload["additionalModelRequestFields"] == {"top_k": 40}
    assert payload["guardrailConfig"] == guardrail
    assert set(payload) == {"messages", "additionalModelRequestFields", "guardrailConfig"}


def test_tool_choice_none_leaves_tools_out_unless_the_history_used_them() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    fresh, _ = chat_to_converse({"messages": [user("x")], "tools": [tool], "tool_choice": "none"}, CLAUDE)
    assert "toolConfig" not in fresh
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    history = [
        user("x"),
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]
    used, _ = chat_to_converse({"messages": history, "tools": [tool], "tool_choice": "none"}, CLAUDE)
    assert used["toolConfig"] == {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}]}


def test_cache_control_becomes_a_cache_point_and_documents_carry_a_format() -> None:
    system = {"role": "system", "content": [{"type": "text", "text": "long", "cache_control": {"type": "ephemeral"}}]}
    pdf = {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERg=="}}
    payload, _ = chat_to_converse({"messages": [system, {"role": "user", "content": [pdf]}]}, CLAUDE)
    assert payload["system"] == [{"text": "long"}, {"cachePoint": {"type": "default"}}]
    document = payload["messages"][0]["content"][0]["document"]
    assert (document["format"], document["source"]) == ("pdf", {"bytes": "JVBERg=="})
    with pytest.raises(UnsupportedByProvider, match="n must be 1"):
        chat_to_converse({"messages": [user("x")], "n": 2}, CLAUDE)


@pytest.mark.parametrize("size", [1, 5, 64, 100_000])
async def test_the_event_stream_decodes_whatever_the_chunk_boundaries(size: int) -> None:
    events = await decoded(tool_events("t1", "f", '{"a": 1}'), size)
    assert [kind for kind, _ in events] == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockStop",
        "contentBlockStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert events[4][1] == {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"a"'}}}


async def test_a_corrupt_or_cut_frame_is_a_bad_response() -> None:
    good = event("messageStart", {"role": "assistant"})
    corrupt = good[:-1] + bytes([good[-1] ^ 0xFF])
    with pytest.raises(UpstreamBadResponse, match="broken event stream frame"):
        await decoded([corrupt], 1000)
    with pytest.raises(UpstreamBadResponse, match="middle of a frame"):
        await decoded([good, good[:20]], 1000)


@pytest.mark.parametrize(
    ("kind", "status", "retried"),
    [("throttlingException", 429, True), ("internalServerException", 500, True), ("validationException", 400, False)],
)
async def test_stream_exceptions_are_classified_like_statuses(kind: str, status: int, retried: bool) -> None:
    with pytest.raises(UpstreamStatusError) as caught:
        await decoded([exception(kind, "nope")], 1000)
    assert caught.value.upstream_status == status and caught.value.retry_target is retried
    assert caught.value.message == f"provider 'bedrock' stream error ({kind}): nope"


async def test_converse_events_become_chat_chunks_with_usage_last() -> None:
    events = ConverseToEvents(CLAUDE)
    chunks = EventsToChunks(None)
    usage = {"inputTokens": 3, "outputTokens": 4, "cacheReadInputTokens": 10}
    out = [
        chunk
        for kind, payload in await decoded(text_events("abcd", usage=usage, stop="max_tokens"), 9)
        for translated in events.feed(kind, payload)
        for chunk in chunks.feed(translated)
    ]
    assert [chunk for translated in events.finish() for chunk in chunks.feed(translated)] == []
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in out if c["choices"]) == "abcd"
    assert [c["choices"][0]["finish_reason"] for c in out if c["choices"] and c["choices"][0]["finish_reason"]] == [
        "length"
    ]
    assert out[-1]["choices"] == [] and out[-1]["usage"]["prompt_tokens"] == 13
    assert out[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 10}


async def test_expiring_credentials_are_refreshed_before_signing() -> None:
    settings = ProviderSettings(kind="bedrock", region="eu-west-3")
    signer = AwsSigner("bedrock", settings, "eu-west-3")
    issued: list[str] = []

    def refresh() -> dict[str, str]:
        issued.append(f"ASIAREFRESHED{len(issued)}")
        return {"access_key": issued[-1], "secret_key": "s", "token": "t", "expiry_time": "2999-01-01T00:00:00Z"}

    # Issued long expired, so the first use refreshes them.
    signer._credentials = RefreshableCredentials.create_from_metadata(
        {**refresh(), "expiry_time": datetime(2001, 1, 1, tzinfo=UTC).isoformat()}, refresh, "test"
    )
    headers = await signer.sign("https://bedrock-runtime.eu-west-3.amazonaws.com/model/m/converse", {}, b"{}")
    assert headers["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={issued[-1]}/")
    assert "/eu-west-3/bedrock/aws4_request" in headers["Authorization"]
    assert headers["X-Amz-Security-Token"] == "t" and issued == ["ASIAREFRESHED0", "ASIAREFRESHED1"]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"kind": "bedrock"}, "needs region"),
        ({"kind": "bedrock", "region": "us-east-1", "aws_access_key_id": "AKIA"}, "together"),
        ({"kind": "openai", "region": "us-east-1"}, "region only apply to kind bedrock"),
        ({"kind": "bedrock", "region": "US East"}, "pattern"),
    ],
)
def test_bedrock_settings_are_checked(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        ProviderSettings.model_validate(fields)


def test_empty_explicit_credentials_fall_back_to_the_chain() -> None:
    settings = ProviderSettings.model_validate(
        {
            "kind": "bedrock",
            "region": "us-east-1",
            "aws_access_key_id": "",
            "aws_secret_access_key": "",
            "aws_session_token": "",
        }
    )
    assert AwsSigner("bedrock", settings, "us-east-1")._credentials is None
