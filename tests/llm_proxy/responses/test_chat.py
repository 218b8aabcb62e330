"""The pure translation pair: a Responses request as a chat body, a chat completion as a response object."""

from __future__ import annotations

from typing import Any

from openai.types.responses import Response

from llm_proxy.responses.chat import completion_to_response, request_to_chat
from llm_proxy.responses.request import input_items
from llm_proxy.responses.shapes import response_object
from toolpolicy.governor import Usage


def completion(message: dict[str, Any], finish: str = "stop", usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion",
        "model": "gpt-x",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage,
    }


def test_items_become_messages_with_images_roles_and_merged_calls() -> None:
    request = {
        "model": "p/m",
        "instructions": "rules",
        "input": [
            {"role": "developer", "content": "be terse"},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is this?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
                ],
            },
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"role": "assistant", "content": [{"type": "output_text", "text": "checking"}]},
            {"type": "function_call", "call_id": "a", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "b", "name": "g", "arguments": '{"x":1}'},
            {"type": "function_call_output", "call_id": "a", "output": "one"},
            {"type": "function_call_output", "call_id": "b", "output": [{"type": "input_text", "text": "two"}]},
        ],
        "user": "u-1",
        "top_p": 0.5,
    }
    body = request_to_chat(request, input_items(request))
    assert body["messages"] == [
        {"role": "system", "content": "rules"},
        {"role": "system", "content": "be terse"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "content": "checking",
            "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "b", "type": "function", "function": {"name": "g", "arguments": '{"x":1}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": "one"},
        {"role": "tool", "tool_call_id": "b", "content": "two"},
    ]
    assert body["user"] == "u-1" and body["top_p"] == 0.5
    assert "tools" not in body and "response_format" not in body and "model" not in body


def test_a_tool_call_completion_becomes_function_call_items() -> None:
    request = {"model": "p/m", "input": "go", "tools": [{"type": "function", "name": "f"}]}
    skeleton = response_object(request, response_id="resp_1", created_at=5, model="p/m")
    call = {"id": "call_7", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
    reported = {"prompt_tokens": 3, "completion_tokens": 2, "completion_tokens_details": {"reasoning_tokens": 1}}
    response = completion_to_response(
        completion({"role": "assistant", "content": "calling", "tool_calls": [call]}, "tool_calls", reported),
        skeleton,
        Usage(tokens_in=3, tokens_out=2, cached_tokens=1),
    )
    message, function_call = response["output"]
    assert message["type"] == "message" and message["content"][0]["text"] == "calling"
    assert function_call["type"] == "function_call" and function_call["id"].startswith("fc_")
    assert (function_call["call_id"], function_call["name"], function_call["arguments"]) == ("call_7", "f", '{"a":1}')
    assert response["status"] == "completed" and response["model"] == "gpt-x" and response["created_at"] == 5
    assert response["usage"] == {
        "input_tokens": 3,
        "input_tokens_details": {"cached_tokens": 1, "cache_write_tokens": 0},
        "output_tokens": 2,
        "output_tokens_details": {"reasoning_tokens": 1},
        "total_tokens": 5,
    }
    assert response["tools"] == [{"type": "function", "name": "f"}]
    Response.model_validate(response)  # the official SDK's model, with every field it requires


def test_a_cut_answer_is_incomplete_and_a_refusal_is_a_refusal_part() -> None:
    skeleton = response_object({"model": "p/m"}, response_id="resp_1", created_at=0, model="p/m")
    cut = completion_to_response(completion({"role": "assistant", "content": "abc"}, "length"), skeleton, Usage())
    assert cut["status"] == "incomplete" and cut["incomplete_details"] == {"reason": "max_output_tokens"}
    refused = completion_to_response(
        completion({"role": "assistant", "content": None, "refusal": "no"}), skeleton, Usage()
    )
    assert refused["output"][0]["content"] == [{"type": "refusal", "refusal": "no"}]


def test_the_gateways_mcp_items_replay_as_the_model_saw_them() -> None:
    ask = {"id": "mcpr_1", "type": "mcp_approval_request", "server_label": "docs", "name": "read", "arguments": "{}"}
    ask_2 = {**ask, "id": "mcpr_2", "arguments": '{"page": 2}'}
    items = [
        {"type": "message", "role": "user", "content": "read two pages"},
        {"id": "mcpl_1", "type": "mcp_list_tools", "server_label": "docs", "tools": []},
        {"id": "mcp_1", "type": "mcp_call", "server_label": "docs", "name": "find", "arguments": "{}", "output": "p1"},
        ask,
        ask_2,
        {"type": "message", "role": "user", "content": "go on"},  # between a call and its answer
        {"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": False},
    ]
    messages = request_to_chat({"model": "p/m"}, items)["messages"]
    find_call, find_result, asked, *results, user = messages[1:]
    assert find_call["tool_calls"][0] == {
        "id": "mcp_1",
        "type": "function",
        "function": {"name": "docs__find", "arguments": "{}"},
    }
    assert find_result == {"role": "tool", "tool_call_id": "mcp_1", "content": "p1"}
    assert [call["id"] for call in asked["tool_calls"]] == ["mcpr_1", "mcpr_2"]
    assert [result["tool_call_id"] for result in results] == ["mcpr_1", "mcpr_2"]
    assert "denied" in results[0]["content"]
    assert "not approved" in results[1]["content"]  # never answered
    assert user == {"role": "user", "content": "go on"}


def test_an_approved_calls_result_answers_its_approval_request() -> None:
    ask = {"id": "mcpr_1", "type": "mcp_approval_request", "server_label": "docs", "name": "read", "arguments": "{}"}
    error = {"type": "mcp_tool_execution_error", "content": [{"type": "text", "text": "no such page"}]}
    items = [
        ask,
        {"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": True},
        {
            "id": "mcp_9",
            "type": "mcp_call",
            "server_label": "docs",
            "name": "read",
            "arguments": "{}",
            "output": None,
            "error": error,
            "approval_request_id": "mcpr_1",
        },
    ]
    messages = request_to_chat({"model": "p/m"}, items)["messages"]
    assert [call["id"] for call in messages[0]["tool_calls"]] == ["mcpr_1"]
    assert messages[1:] == [{"role": "tool", "tool_call_id": "mcpr_1", "content": "[tool error] no such page"}]
