"""An agent run's items -> Responses events, fed by hand, parsed with the official SDK's event types."""

from __future__ import annotations

from typing import Any

from openai.types.responses import ResponseOutputItem, ResponseStreamEvent
from pydantic import TypeAdapter

from llm_proxy.agent import ToolOutput
from llm_proxy.responses.agent_events import AgentResponseEvents
from llm_proxy.responses.shapes import mcp_list_tools_item, response_object
from toolpolicy.governor import Usage

EVENTS: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)
ITEMS: TypeAdapter[ResponseOutputItem] = TypeAdapter(ResponseOutputItem)


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"model": "gpt-x", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_concurrent_calls_keep_their_places_and_every_event_parses() -> None:
    translate = AgentResponseEvents(response_object({"model": "p/m"}, response_id="resp_1", created_at=0, model="m"))
    schema = {"type": "object", "properties": {}}
    listed = mcp_list_tools_item("mcpl_1", "docs", [{"name": "a", "input_schema": schema, "annotations": None}])
    events = translate.begin() + translate.list_tools(listed)
    events += translate.feed(chunk({"role": "assistant", "content": "Checking."}))
    events += translate.call_started("call_0", "docs__a", "{}")
    events += translate.call_started("call_1", "docs__b", '{"x": 1}')
    events += translate.call_finished("call_1", ToolOutput("nope", is_error=True))  # the second finishes first
    events += translate.call_finished("call_0", ToolOutput("fine"))
    events += translate.feed(chunk({"content": "\n\nDone."}, "stop"))
    events += translate.finish(Usage(tokens_in=3, tokens_out=2))
    # The terminal event's response is checked item by item below (this SDK's `usage` wants fields of its own).
    parsed = [EVENTS.validate_python(event) for event in events[:-1]]
    assert [event.sequence_number for event in parsed] == list(range(len(events) - 1))
    assert events[-1]["type"] == "response.completed" and events[-1]["sequence_number"] == len(events) - 1
    output = events[-1]["response"]["output"]
    assert [ITEMS.validate_python(item).type for item in output] == [item["type"] for item in output]
    assert [(item["type"], item.get("name")) for item in output] == [
        ("mcp_list_tools", None),
        ("message", None),
        ("mcp_call", "a"),
        ("mcp_call", "b"),
        ("message", None),
    ]
    assert (output[2]["status"], output[2]["output"]) == ("completed", "fine")
    assert (output[3]["status"], output[3]["output"]) == ("failed", None)
    assert output[4]["content"][0]["text"] == "Done."  # its own item: no blank line to set it apart
    ends = [(e["type"], e["output_index"]) for e in events if e["type"].startswith("response.mcp_call.")]
    assert ends == [
        ("response.mcp_call.in_progress", 2),
        ("response.mcp_call.in_progress", 3),
        ("response.mcp_call.failed", 3),
        ("response.mcp_call.completed", 2),
    ]
