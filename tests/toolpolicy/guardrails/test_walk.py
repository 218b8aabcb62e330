"""Which strings of an LLM body are text: the conversation and every value of a tool call's arguments, whatever its
key is named; never the routing fields around them."""

from __future__ import annotations

from typing import Any

from toolpolicy.guardrails import Guardrails, GuardrailSettings
from toolpolicy.guardrails.walk import SKIP_KEYS, rewrite_texts
from toolpolicy.types import Principal

MAIL = "a@b.example"


def _seen(body: Any, skip: frozenset[str] = SKIP_KEYS) -> list[str]:
    seen: list[str] = []

    def scan(text: str) -> str:
        seen.append(text)
        return "<" + text + ">"

    rewrite_texts(body, scan, skip=skip)
    return seen


def test_a_tool_use_blocks_input_is_scanned_whatever_its_keys_are_named() -> None:
    block = {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "send_mail",
        "input": {"name": MAIL, "type": "urgent", "id": "x-" + MAIL, "url": f"mailto:{MAIL}", "n": 3, "ok": True},
    }
    body = {"model": "claude", "messages": [{"role": "assistant", "content": [block]}]}
    assert sorted(_seen(body)) == sorted([MAIL, "urgent", "x-" + MAIL, f"mailto:{MAIL}"])
    assert block["input"] == {
        "name": f"<{MAIL}>",
        "type": "<urgent>",
        "id": f"<x-{MAIL}>",
        "url": f"<mailto:{MAIL}>",
        "n": 3,
        "ok": True,
    }
    # The routing fields around the arguments are left alone.
    assert (block["type"], block["id"], block["name"], body["model"]) == ("tool_use", "toolu_1", "send_mail", "claude")
    assert body["messages"][0]["role"] == "assistant"  # type: ignore[index]


def test_nested_argument_objects_and_server_tool_use_are_scanned_whole() -> None:
    block = {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {"query": {"url": MAIL}}}
    listed = {"type": "tool_use", "id": "t", "name": "n", "input": {"items": [{"id": MAIL}, {"model": "m"}]}}
    assert _seen([block, listed]) == [MAIL, MAIL, "m"]


def test_an_arguments_object_is_scanned_whole_and_a_string_one_as_a_string() -> None:
    body = {
        "input": [
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"url": "' + MAIL + '"}'},
            {"type": "mcp_call", "id": "m1", "name": "g", "arguments": {"url": MAIL, "role": "admin"}},
        ]
    }
    assert _seen(body) == ['{"url": "' + MAIL + '"}', MAIL, "admin"]
    assert body["input"][0]["call_id"] == "c1" and body["input"][1]["id"] == "m1"


def test_input_outside_a_tool_use_block_keeps_its_routing_fields_unscanned() -> None:
    # A Responses request's `input` is the conversation: its items' types, roles and ids are not text.
    body = {
        "input": [{"type": "message", "role": "user", "id": "msg_1", "content": [{"type": "input_text", "text": "hi"}]}]
    }
    assert _seen(body) == ["hi"]
    # Nor is the `input` of a block that is not a tool call.
    assert _seen({"type": "document", "input": {"name": MAIL}}) == []


def test_a_scan_redacts_a_tool_use_input_but_not_the_tool_name() -> None:
    rules = [GuardrailSettings(name="pii", detect="pii", entities=["email"], action="redact", default=True)]
    scan = Guardrails(rules).scan(Principal("k", "k"), "input", request_id="r", target="m")
    assert scan is not None
    block = {"type": "tool_use", "id": "t", "name": MAIL, "input": {"url": MAIL}}
    scan.json({"model": "m", "messages": [{"role": "assistant", "content": [block]}]})
    assert block == {"type": "tool_use", "id": "t", "name": MAIL, "input": {"url": "[REDACTED:email]"}}
    assert scan.hits == {"pii": {"email": 1}}
