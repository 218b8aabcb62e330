"""The pure translation pair: a Responses request as a chat body, a chat completion as a response object."""

from __future__ import annotations

from typing import Any

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
        "input_tokens_details": {"cached_tokens": 1},
        "output_tokens": 2,
        "output_tokens_details": {"reasoning_tokens": 1},
        "total_tokens": 5,
    }
    assert response["tools"] == [{"type": "function", "name": "f"}]


def test_a_cut_answer_is_incomplete_and_a_refusal_is_a_refusal_part() -> None:
    skeleton = response_object({"model": "p/m"}, response_id="resp_1", created_at=0, model="p/m")
    cut = completion_to_response(completion({"role": "assistant", "content": "abc"}, "length"), skeleton, Usage())
    assert cut["status"] == "incomplete" and cut["incomplete_details"] == {"reason": "max_output_tokens"}
    refused = completion_to_response(
        completion({"role": "assistant", "content": None, "refusal": "no"}), skeleton, Usage()
    )
    assert refused["output"][0]["content"] == [{"type": "refusal", "refusal": "no"}]
