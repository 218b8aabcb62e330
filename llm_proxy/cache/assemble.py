"""A streamed answer, assembled as the relay sees it into the route's non-stream body, for storing.

`result()` is the body only when the stream ended normally with a successful finish on every choice and reported
its usage; otherwise None (nothing is stored): an error, a cut stream, or a `content_filter` finish.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

CHAT_FINISHES = frozenset({"stop", "length", "tool_calls", "function_call"})
MESSAGE_STOPS = frozenset({"end_turn", "max_tokens", "stop_sequence", "tool_use"})


class Assembler(Protocol):
    def see(self, item: dict[str, Any]) -> None: ...

    def result(self) -> dict[str, Any] | None: ...


class ChatAssembler:
    def __init__(self) -> None:
        self.head: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None

    def see(self, item: dict[str, Any]) -> None:
        if not self.head:
            self.head = {"id": item.get("id"), "created": item.get("created"), "model": item.get("model")}
        if isinstance(item.get("usage"), dict):
            self.usage = item["usage"]
        for choice in item.get("choices") or ():
            state = self.choices.setdefault(int(choice.get("index", 0)), {"content": [], "calls": {}, "finish": None})
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                state["content"].append(delta["content"])
            for call in delta.get("tool_calls") or ():
                slot = state["calls"].setdefault(
                    int(call.get("index", 0)), {"id": None, "type": "function", "name": "", "arguments": []}
                )
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["name"] += function.get("name") or ""
                slot["arguments"].append(function.get("arguments") or "")
            if choice.get("finish_reason"):
                state["finish"] = choice["finish_reason"]

    def result(self) -> dict[str, Any] | None:
        if self.usage is None or not self.choices:
            return None
        if any(state["finish"] not in CHAT_FINISHES for state in self.choices.values()):
            return None
        choices = []
        for index, state in sorted(self.choices.items()):
            message: dict[str, Any] = {"role": "assistant", "content": "".join(state["content"]) or None}
            if state["calls"]:
                message["tool_calls"] = [
                    {
                        "id": slot["id"],
                        "type": "function",
                        "function": {"name": slot["name"], "arguments": "".join(slot["arguments"])},
                    }
                    for _, slot in sorted(state["calls"].items())
                ]
            choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": state["finish"]})
        return {**self.head, "object": "chat.completion", "choices": choices, "usage": self.usage}


class MessageAssembler:
    def __init__(self) -> None:
        self.message: dict[str, Any] | None = None
        self.blocks: dict[int, dict[str, Any]] = {}
        self.partial: dict[int, list[str]] = {}
        self.usage: dict[str, Any] = {}
        self.stopped = False

    def see(self, item: dict[str, Any]) -> None:
        kind = item.get("type")
        if kind == "message_start":
            self.message = dict(item.get("message") or {})
            self.usage.update(self.message.get("usage") or {})
        elif kind == "content_block_start":
            self.blocks[int(item.get("index", 0))] = dict(item.get("content_block") or {})
        elif kind == "content_block_delta":
            index = int(item.get("index", 0))
            block, delta = self.blocks.get(index), item.get("delta") or {}
            if block is None:
                return
            if delta.get("type") == "text_delta":
                block["text"] = str(block.get("text") or "") + str(delta.get("text") or "")
            elif delta.get("type") == "input_json_delta":
                self.partial.setdefault(index, []).append(str(delta.get("partial_json") or ""))
            elif delta.get("type") == "thinking_delta":
                block["thinking"] = str(block.get("thinking") or "") + str(delta.get("thinking") or "")
            elif delta.get("type") == "signature_delta":
                block["signature"] = str(block.get("signature") or "") + str(delta.get("signature") or "")
        elif kind == "message_delta" and self.message is not None:
            self.message.update({k: v for k, v in (item.get("delta") or {}).items() if v is not None})
            self.usage.update({k: v for k, v in (item.get("usage") or {}).items() if v is not None})
        elif kind == "message_stop":
            self.stopped = True

    def result(self) -> dict[str, Any] | None:
        message = self.message
        if message is None or not self.stopped or message.get("stop_reason") not in MESSAGE_STOPS:
            return None
        content = []
        for index, block in sorted(self.blocks.items()):
            if index in self.partial:
                try:
                    block["input"] = json.loads("".join(self.partial[index]) or "{}")
                except ValueError:
                    return None
            content.append(block)
        return {**message, "content": content, "usage": self.usage}


class ResponseAssembler:
    """The Responses stream carries the whole response in its terminal event; only `response.completed` is kept."""

    def __init__(self) -> None:
        self.response: dict[str, Any] | None = None

    def see(self, item: dict[str, Any]) -> None:
        if item.get("type") == "response.completed" and isinstance(item.get("response"), dict):
            self.response = item["response"]

    def result(self) -> dict[str, Any] | None:
        response = self.response
        if response is None or response.get("status") != "completed" or not response.get("usage"):
            return None
        return response


def assembler(route: str) -> Assembler:
    if route == "chat":
        return ChatAssembler()
    if route == "messages":
        return MessageAssembler()
    return ResponseAssembler()


def complete_body(route: str, body: dict[str, Any]) -> bool:
    """Whether a non-stream answer is complete and successful enough to store."""
    if route == "chat":
        choices = body.get("choices") or []
        return bool(choices) and all(c.get("finish_reason") in CHAT_FINISHES for c in choices) and "usage" in body
    if route == "messages":
        return body.get("stop_reason") in MESSAGE_STOPS and isinstance(body.get("usage"), dict)
    if route == "embeddings":
        return bool(body.get("data")) and isinstance(body.get("usage"), dict)
    return body.get("status") == "completed" and isinstance(body.get("usage"), dict)
