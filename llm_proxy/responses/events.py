"""Chat completion chunks -> Responses API stream events, as a state machine fed one chunk at a time.

The sequence is the one OpenAI sends and the `openai` SDK's stream helper accumulates: `response.created`,
`response.in_progress`; per output item `response.output_item.added`, then for a message
`response.content_part.added`, `response.output_text.delta`..., `response.output_text.done`,
`response.content_part.done`, or for a function call `response.function_call_arguments.delta`...,
`response.function_call_arguments.done`; then `response.output_item.done`; last `response.completed` (or
`response.incomplete` when the answer was cut short) carrying the whole response and its usage. Every event has a
`sequence_number`, from 0.
"""

from __future__ import annotations

from typing import Any

from llm_proxy.responses.chat import usage_body
from llm_proxy.responses.shapes import (
    FUNCTION_CALL_PREFIX,
    MESSAGE_PREFIX,
    finished,
    function_call_item,
    message_item,
    new_id,
    text_part,
)
from llm_proxy.wire import openai
from toolpolicy.governor import Usage


class ChunksToResponseEvents:
    """Feed chat chunks with `feed`, then call `finish` once with the usage; both return the events to send."""

    def __init__(self, skeleton: dict[str, Any]) -> None:
        self.response = {**skeleton, "status": "in_progress", "output": [], "usage": None}
        """The response being built: `skeleton` (`shapes.response_object`) and the items finished so far."""
        self.usage: Usage | None = None
        """The provider's usage, once a chunk reported it."""
        self.reported: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.texts: list[str] = []
        """The text and arguments streamed, to count when the provider reports no usage."""
        self._sequence = 0
        self._started = False
        self._open: dict[str, Any] | None = None
        """The output item being streamed (a message or a function call)."""
        self._call_index: int | None = None
        """The chat `tool_calls` index of the open function call."""

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _start(self) -> list[dict[str, Any]]:
        self._started = True
        return [
            self._event("response.created", response=dict(self.response)),
            self._event("response.in_progress", response=dict(self.response)),
        ]

    @property
    def _index(self) -> int:
        return len(self.response["output"])

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        events = [] if self._started else self._start()
        usage = openai.usage_of(chunk.get("usage"))
        if usage is not None:
            self.usage, self.reported = usage, chunk["usage"]
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self.response["model"] = chunk["model"]
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                events += self._text(text)
            for call in delta.get("tool_calls") or ():
                events += self._call(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def _text(self, text: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if self._open is None or self._open["type"] != "message":
            events += self._close()
            self._open = message_item(new_id(MESSAGE_PREFIX), [], status="in_progress")
            events.append(self._event("response.output_item.added", output_index=self._index, item=dict(self._open)))
            self._open["content"] = [text_part("")]
            events.append(
                self._event(
                    "response.content_part.added",
                    item_id=self._open["id"],
                    output_index=self._index,
                    content_index=0,
                    part=text_part(""),
                )
            )
        self._open["content"][0]["text"] += text
        self.texts.append(text)
        events.append(
            self._event(
                "response.output_text.delta",
                item_id=self._open["id"],
                output_index=self._index,
                content_index=0,
                delta=text,
                logprobs=[],
            )
        )
        return events

    def _call(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        function = call.get("function") or {}
        index = call.get("index", 0)
        if self._open is None or self._open["type"] != "function_call" or self._call_index != index:
            events += self._close()
            item_id = new_id(FUNCTION_CALL_PREFIX)
            self._open = function_call_item(
                item_id, str(call.get("id") or item_id), str(function.get("name") or ""), "", status="in_progress"
            )
            self._call_index = index
            events.append(self._event("response.output_item.added", output_index=self._index, item=dict(self._open)))
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            self._open["arguments"] += arguments
            self.texts.append(arguments)
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=self._open["id"],
                    output_index=self._index,
                    delta=arguments,
                )
            )
        return events

    def _close(self) -> list[dict[str, Any]]:
        item = self._open
        if item is None:
            return []
        self._open = None
        events: list[dict[str, Any]] = []
        where = {"item_id": item["id"], "output_index": self._index}
        if item["type"] == "message":
            part = item["content"][0]
            events.append(
                self._event("response.output_text.done", **where, content_index=0, text=part["text"], logprobs=[])
            )
            events.append(self._event("response.content_part.done", **where, content_index=0, part=dict(part)))
        else:
            events.append(
                self._event(
                    "response.function_call_arguments.done", **where, name=item["name"], arguments=item["arguments"]
                )
            )
        item["status"] = "completed"
        events.append(self._event("response.output_item.done", output_index=self._index, item=item))
        self.response["output"].append(item)
        return events

    def finish(self, usage: Usage) -> list[dict[str, Any]]:
        """The closing events once the chunks have ended; `usage` is the provider's or the count made instead."""
        events = [] if self._started else self._start()
        events += self._close()
        response = finished(self.response, self.finish_reason)
        response["usage"] = usage_body(usage, self.reported)
        self.response = response
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        events.append(self._event(kind, response=response))
        return events
