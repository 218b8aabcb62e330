"""Chat chunks -> Responses stream events, fed by hand."""

from __future__ import annotations

from typing import Any

from llm_proxy.responses.events import ChunksToResponseEvents
from llm_proxy.responses.shapes import response_object
from toolpolicy.governor import Usage


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"model": "gpt-x", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_text_then_a_call_then_the_terminal_event_with_usage() -> None:
    translate = ChunksToResponseEvents(response_object({"model": "p/m"}, response_id="resp_1", created_at=0, model="m"))
    events = translate.feed(chunk({"role": "assistant", "content": "He"}))
    events += translate.feed(chunk({"content": "llo"}))
    call = {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{}"}}
    events += translate.feed(chunk({"tool_calls": [call]}, "tool_calls"))
    events += translate.finish(Usage(tokens_in=4, tokens_out=3))
    assert [event["type"] for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert events[6]["text"] == "Hello" and events[9]["output_index"] == 1
    final = events[-1]["response"]
    assert [item["type"] for item in final["output"]] == ["message", "function_call"]
    assert final["output"][0]["id"] == events[2]["item"]["id"] and final["output"][1]["call_id"] == "call_1"
    assert final["usage"]["total_tokens"] == 7 and final["model"] == "gpt-x"
    assert translate.texts == ["He", "llo", "{}"]


def test_a_stream_cut_at_the_length_limit_ends_incomplete() -> None:
    translate = ChunksToResponseEvents(response_object({"model": "p/m"}, response_id="resp_1", created_at=0, model="m"))
    events = translate.feed(chunk({"content": "abc"}, "length"))
    events += translate.finish(Usage(tokens_in=1, tokens_out=1))
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_an_empty_stream_still_starts_and_completes() -> None:
    translate = ChunksToResponseEvents(response_object({"model": "p/m"}, response_id="resp_1", created_at=0, model="m"))
    events = translate.finish(Usage())
    assert [event["type"] for event in events] == ["response.created", "response.in_progress", "response.completed"]
