"""`reasoning_effort` to Anthropic's thinking budget and Gemini's thinking config, and back; Anthropic's structured
outputs for JSON schemas; reasoning tokens in usage."""

from __future__ import annotations

from typing import Any

import pytest

from llm_proxy.errors import UnsupportedByProvider
from llm_proxy.wire import anthropic, anthropic_inbound, gemini, openai, reasoning
from llm_proxy.wire.anthropic_stream import ChunksToEvents
from toolpolicy.errors import InvalidRequest
from toolpolicy.governor import Usage

HELLO = [{"role": "user", "content": "hello"}]
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "place", "schema": SCHEMA, "strict": True}}


@pytest.mark.parametrize(
    ("effort", "requested", "thinking", "sent_max"),
    [
        ("minimal", None, {"type": "enabled", "budget_tokens": 1024}, 4096 + 1024),
        ("high", None, {"type": "enabled", "budget_tokens": 16384}, 4096 + 16384),
        ("medium", 50_000, {"type": "enabled", "budget_tokens": 8192}, 50_000),
        ("high", 8000, {"type": "enabled", "budget_tokens": 7999}, 8000),
        ("none", None, None, 4096),
        ("none", 300, None, 300),
    ],
)
def test_an_effort_becomes_a_thinking_budget_within_the_clients_limit(
    effort: str, requested: int | None, thinking: dict[str, Any] | None, sent_max: int
) -> None:
    assert reasoning.anthropic_thinking(effort, requested, 4096) == (thinking, sent_max)
    assert thinking is None or sent_max > thinking["budget_tokens"]


def test_a_limit_that_leaves_no_room_for_the_minimum_budget_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="max_tokens above 1024") as caught:
        reasoning.anthropic_thinking("low", 900, 4096)
    assert caught.value.param == "max_tokens"


def test_chat_with_reasoning_effort_asks_anthropic_to_think() -> None:
    body = {"messages": HELLO, "reasoning_effort": "high", "max_completion_tokens": 20000}
    payload, json_tool = anthropic.chat_to_messages(body, "claude-sonnet-4-5")
    assert payload["thinking"] == {"type": "enabled", "budget_tokens": 16384}
    assert payload["max_tokens"] == 20000 and "reasoning_effort" not in payload and json_tool is None
    plain, _ = anthropic.chat_to_messages(body, "claude-3-haiku", thinks=False)
    assert "thinking" not in plain and plain["max_tokens"] == 20000


def test_an_unknown_effort_is_refused_by_name() -> None:
    with pytest.raises(InvalidRequest) as caught:
        anthropic.chat_to_messages({"messages": HELLO, "reasoning_effort": "extreme"}, "claude-sonnet-4-5")
    assert caught.value.param == "reasoning_effort"


def test_a_json_schema_goes_as_structured_output_where_the_model_has_it() -> None:
    body = {"messages": HELLO, "response_format": JSON_SCHEMA, "reasoning_effort": "low"}
    payload, json_tool = anthropic.chat_to_messages(body, "claude-sonnet-4-5", structured_outputs=True)
    assert payload["output_format"] == {"type": "json_schema", "schema": SCHEMA}
    assert json_tool is None and "tools" not in payload and "tool_choice" not in payload
    assert anthropic.has_structured_outputs("claude-opus-4-1-20250805")
    assert not anthropic.has_structured_outputs("claude-3-5-haiku-latest")


def test_without_structured_outputs_a_json_schema_is_a_forced_tool_which_thinking_cannot_take() -> None:
    payload, json_tool = anthropic.chat_to_messages({"messages": HELLO, "response_format": JSON_SCHEMA}, "claude-x")
    assert json_tool == anthropic.JSON_TOOL and payload["tool_choice"] == {"type": "tool", "name": json_tool}
    with pytest.raises(UnsupportedByProvider):
        anthropic.chat_to_messages(
            {"messages": HELLO, "response_format": JSON_SCHEMA, "reasoning_effort": "low"}, "claude-x"
        )


@pytest.mark.parametrize(
    ("model", "effort", "config"),
    [
        ("gemini-2.5-flash", "high", {"thinkingBudget": 24576, "includeThoughts": True}),
        ("gemini-2.5-flash", "low", {"thinkingBudget": 1024, "includeThoughts": True}),
        ("gemini-2.5-flash", "none", {"thinkingBudget": 0, "includeThoughts": False}),
        ("gemini-3-pro-preview", "medium", {"thinkingLevel": "high", "includeThoughts": True}),
        ("gemini-3-pro-preview", "minimal", {"thinkingLevel": "low", "includeThoughts": True}),
    ],
)
def test_an_effort_becomes_geminis_thinking_config(model: str, effort: str, config: dict[str, Any]) -> None:
    request = gemini.chat_to_gemini({"messages": HELLO, "reasoning_effort": effort, "max_tokens": 10}, model)
    assert request["generationConfig"] == {"maxOutputTokens": 10, "thinkingConfig": config}
    assert "reasoning_effort" not in request


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, "minimal"),
        ({"type": "enabled", "budget_tokens": 5000}, "low"),
        ({"type": "enabled", "budget_tokens": 10000}, "medium"),
        ({"type": "enabled", "budget_tokens": 64000}, "high"),
        ({"type": "disabled"}, "none"),
        (None, None),
    ],
)
def test_a_thinking_budget_goes_back_as_the_nearest_effort(thinking: Any, effort: str | None) -> None:
    body: dict[str, Any] = {"max_tokens": 100, "messages": HELLO}
    if thinking is not None:
        body["thinking"] = thinking
    chat = anthropic_inbound.messages_to_chat(body, "m")
    assert chat.get("reasoning_effort") == effort and "thinking" not in chat


def test_reasoning_content_comes_back_as_a_thinking_block_when_asked() -> None:
    message = {"role": "assistant", "content": "Oslo.", "reasoning_content": "It is in Norway."}
    completion = {"id": "c1", "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
    asked = anthropic_inbound.completion_to_message(completion, "m", thinking=True)
    assert asked["content"] == [
        {"type": "thinking", "thinking": "It is in Norway.", "signature": ""},
        {"type": "text", "text": "Oslo."},
    ]
    assert anthropic_inbound.completion_to_message(completion, "m")["content"] == [{"type": "text", "text": "Oslo."}]


def test_streamed_reasoning_becomes_a_thinking_block_before_the_text() -> None:
    translate = ChunksToEvents("m", thinking=True)
    events: list[dict[str, Any]] = []
    for delta in ({"reasoning_content": "Hm, "}, {"reasoning_content": "Norway."}, {"content": "Oslo."}):
        events += translate.feed(openai.chunk("c", "m", 0, [openai.delta_choice(delta)]))
    events += translate.finish()
    starts = [event["content_block"]["type"] for event in events if event["type"] == "content_block_start"]
    deltas = [event["delta"] for event in events if event["type"] == "content_block_delta"]
    assert starts == ["thinking", "text"]
    assert deltas == [
        {"type": "thinking_delta", "thinking": "Hm, "},
        {"type": "thinking_delta", "thinking": "Norway."},
        {"type": "text_delta", "text": "Oslo."},
    ]


def test_reasoning_tokens_are_read_and_reported_in_usage() -> None:
    usage = gemini.usage_of({"promptTokenCount": 3, "candidatesTokenCount": 4, "thoughtsTokenCount": 6})
    assert usage == Usage(tokens_in=3, tokens_out=10, reasoning_tokens=6)
    body = openai.usage_body(usage)
    assert body["completion_tokens_details"] == {"reasoning_tokens": 6}
    assert openai.usage_of(body) == usage
