"""Anthropic stream events <-> OpenAI chat chunks, as two small state machines fed one item at a time.

`EventsToChunks` serves the `anthropic` provider to OpenAI clients and always ends with a usage-only chunk (the
pipeline strips it when the client did not ask). `ChunksToEvents` serves `/v1/messages` over other providers and
produces Anthropic's exact sequence: `message_start`, then for each content block `content_block_start`,
`content_block_delta`..., `content_block_stop` (a `ping` after the first start), then `message_delta` and
`message_stop`.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from llm_proxy.errors import UpstreamStatusError
from llm_proxy.wire import openai
from llm_proxy.wire.anthropic import FINISH_TO_STOP, STOP_TO_FINISH, usage_body, usage_of
from toolpolicy.governor import Usage

_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "overloaded_error": 529,
}


def stream_error(event: dict[str, Any]) -> UpstreamStatusError:
    """The error an Anthropic `error` event reports, classified by its type (overloaded -> retryable)."""
    error = event.get("error") or {}
    status = _ERROR_STATUS.get(str(error.get("type")), 500)
    message = f"provider stream error ({error.get('type')}): {error.get('message')}"
    return UpstreamStatusError(message, upstream_status=status, provider_type=error.get("type"))


class EventsToChunks:
    """Anthropic Messages stream events -> OpenAI chat completion chunks."""

    def __init__(self, json_tool: str | None, *, created: int | None = None) -> None:
        self.json_tool = json_tool
        self.created = int(time.time()) if created is None else created
        self.id = ""
        self.model = ""
        self.usage: dict[str, Any] = {}
        self.finish: str | None = None
        self._tool_index: dict[int, int] = {}
        self._json_blocks: set[int] = set()

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return openai.chunk(self.id, self.model, self.created, [openai.delta_choice(delta, finish)])

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = str(message.get("id") or "")
            self.model = str(message.get("model") or "")
            self.usage.update(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(event.get("index", 0), event.get("content_block") or {})
        if kind == "content_block_delta":
            return self._delta(event.get("index", 0), event.get("delta") or {})
        if kind == "message_delta":
            self.usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            reason = (event.get("delta") or {}).get("stop_reason")
            self.finish = "stop" if self._json_blocks else STOP_TO_FINISH.get(reason or "", "stop")
            return [self._chunk({}, self.finish)]
        if kind == "message_stop":
            usage = usage_of(self.usage)
            return [openai.chunk(self.id, self.model, self.created, [], usage or Usage())]
        if kind == "error":
            raise stream_error(event)
        return []

    def _block_start(self, index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
        if block.get("type") == "tool_use":
            if block.get("name") == self.json_tool:
                self._json_blocks.add(index)
                return []
            number = len(self._tool_index)
            self._tool_index[index] = number
            call = {"index": number, "id": block.get("id"), "type": "function"}
            call["function"] = {"name": block.get("name"), "arguments": ""}
            return [self._chunk({"tool_calls": [call]})]
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        return []

    def _delta(self, index: int, delta: dict[str, Any]) -> list[dict[str, Any]]:
        kind = delta.get("type")
        if kind == "text_delta":
            return [self._chunk({"content": delta.get("text", "")})]
        if kind == "thinking_delta":
            return [self._chunk({"reasoning_content": delta.get("thinking", "")})]
        if kind == "input_json_delta":
            fragment = delta.get("partial_json", "")
            if index in self._json_blocks:
                return [self._chunk({"content": fragment})] if fragment else []
            if index in self._tool_index and fragment:
                call = {"index": self._tool_index[index], "function": {"arguments": fragment}}
                return [self._chunk({"tool_calls": [call]})]
        return []


class ChunksToEvents:
    """OpenAI chat completion chunks -> Anthropic Messages stream events."""

    def __init__(
        self, model: str, *, input_tokens: int = 0, message_id: str | None = None, thinking: bool = False
    ) -> None:
        self.model = model
        self.thinking = thinking
        """Whether the client asked for thinking: reasoning content then becomes `thinking` blocks."""
        self.input_tokens = input_tokens
        self.id = message_id or f"msg_{uuid.uuid4().hex[:24]}"
        self.usage: Usage | None = None
        self.stop_reason = "end_turn"
        self._started = False
        self._pinged = False
        self._blocks = 0
        self._open: str | None = None
        """`text`, `thinking`, or `tool:<openai tool call index>` for the open content block."""

    def _start(self) -> list[dict[str, Any]]:
        self._started = True
        message: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        }
        return [{"type": "message_start", "message": message}]

    def _close(self) -> list[dict[str, Any]]:
        if self._open is None:
            return []
        self._open = None
        self._blocks += 1
        return [{"type": "content_block_stop", "index": self._blocks - 1}]

    def _open_block(self, name: str, block: dict[str, Any]) -> list[dict[str, Any]]:
        events = self._close()
        self._open = name
        events.append({"type": "content_block_start", "index": self._blocks, "content_block": block})
        if not self._pinged:
            self._pinged = True
            events.append({"type": "ping"})
        return events

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        events = [] if self._started else self._start()
        usage = openai.usage_of(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            thought = delta.get("reasoning_content")
            if thought and self.thinking:
                if self._open != "thinking":
                    events += self._open_block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
                thinking_delta = {"type": "thinking_delta", "thinking": thought}
                events.append({"type": "content_block_delta", "index": self._blocks, "delta": thinking_delta})
            text = delta.get("content")
            if text:
                if self._open != "text":
                    events += self._open_block("text", {"type": "text", "text": ""})
                events.append(
                    {
                        "type": "content_block_delta",
                        "index": self._blocks,
                        "delta": {"type": "text_delta", "text": text},
                    }
                )
            for call in delta.get("tool_calls") or ():
                events += self._tool_delta(call)
            if choice.get("finish_reason"):
                self.stop_reason = FINISH_TO_STOP.get(choice["finish_reason"], "end_turn")
        return events

    def _tool_delta(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        name = f"tool:{call.get('index', 0)}"
        function = call.get("function") or {}
        if self._open != name:
            block = {"type": "tool_use", "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}"}
            block.update({"name": function.get("name") or "", "input": {}})
            events += self._open_block(name, block)
        arguments = function.get("arguments")
        if arguments:
            delta = {"type": "input_json_delta", "partial_json": arguments}
            events.append({"type": "content_block_delta", "index": self._blocks, "delta": delta})
        return events

    def finish(self) -> list[dict[str, Any]]:
        """The closing events, once the chunk stream has ended."""
        events = [] if self._started else self._start()
        events += self._close()
        usage = usage_body(self.usage) if self.usage is not None else {"output_tokens": 0}
        delta = {"stop_reason": self.stop_reason, "stop_sequence": None}
        events.append({"type": "message_delta", "delta": delta, "usage": usage})
        events.append({"type": "message_stop"})
        return events
