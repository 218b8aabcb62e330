"""One model turn in chat completions format: assembled from a stream, split into gateway and client tool calls,
and the messages and texts the loop adds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from llm_proxy.agent.events import StopReason
from llm_proxy.agent.host import ToolOutput
from llm_proxy.wire import openai
from toolpolicy.governor import Usage

NOTE = "[isthmus agent mode]"
"""How the gateway's own words in an answer begin, so neither a reader nor a model takes them for the model's."""


TOOL_ERROR = "[tool error]"
"""How a tool result that is an error (MCP `isError`, a refusal, a failure) begins, for the model to tell."""


@dataclass(slots=True)
class ToolCall:
    call_id: str
    name: str
    arguments: str
    """JSON text, as the model wrote it."""

    def wire(self, index: int | None = None) -> dict[str, Any]:
        call: dict[str, Any] = {
            "id": self.call_id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }
        return call if index is None else {"index": index, **call}


@dataclass(slots=True)
class Turn:
    """What the model said in one call: its text, its tool calls, why it stopped."""

    text: str = ""
    refusal: str | None = None
    calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None

    @classmethod
    def of_message(cls, message: dict[str, Any], finish_reason: Any) -> Turn:
        content = message.get("content")
        calls = [
            ToolCall(
                str(call.get("id") or ""),
                str((call.get("function") or {}).get("name") or ""),
                str((call.get("function") or {}).get("arguments") or ""),
            )
            for call in message.get("tool_calls") or ()
            if isinstance(call, dict)
        ]
        refusal = message.get("refusal")
        return cls(
            text=content if isinstance(content, str) else "",
            refusal=refusal if isinstance(refusal, str) else None,
            calls=calls,
            finish_reason=finish_reason if isinstance(finish_reason, str) else None,
        )

    def split(self, gateway: set[str]) -> tuple[list[ToolCall], list[ToolCall]]:
        """(gateway tool calls, client tool calls)."""
        return [c for c in self.calls if c.name in gateway], [c for c in self.calls if c.name not in gateway]

    def assistant_message(self, calls: list[ToolCall]) -> dict[str, Any]:
        """The turn as the assistant message of the conversation, with `calls` as its tool calls."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if calls:
            message["tool_calls"] = [call.wire() for call in calls]
        return message


class TurnAssembler:
    """Collects one streamed model call: the delta text (also returned, to relay), tool call fragments by index,
    the finish reason and the usage."""

    def __init__(self) -> None:
        self.turn = Turn()
        self.usage: Usage | None = None
        self._calls: dict[int, ToolCall] = {}
        self.first: dict[str, Any] | None = None

    def feed(self, chunk: dict[str, Any]) -> dict[str, Any]:
        """Take one chunk; return the part of its first choice's delta to relay now (text, refusal), maybe empty."""
        if self.first is None:
            self.first = chunk
        usage = openai.usage_of(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        relay: dict[str, Any] = {}
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                self.turn.text += text
                relay["content"] = text
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                self.turn.refusal = (self.turn.refusal or "") + refusal
                relay["refusal"] = refusal
            for fragment in delta.get("tool_calls") or ():
                self._call_fragment(fragment)
            if choice.get("finish_reason"):
                self.turn.finish_reason = str(choice["finish_reason"])
        return relay

    def _call_fragment(self, fragment: Any) -> None:
        if not isinstance(fragment, dict):
            return
        index = fragment.get("index", 0)
        call = self._calls.setdefault(index if isinstance(index, int) else 0, ToolCall("", "", ""))
        function = fragment.get("function") or {}
        if fragment.get("id"):
            call.call_id = str(fragment["id"])
        if function.get("name"):
            call.name += str(function["name"])
        if function.get("arguments"):
            call.arguments += str(function["arguments"])

    def finish(self) -> Turn:
        self.turn.calls = [self._calls[index] for index in sorted(self._calls)]
        return self.turn


def arguments_of(call: ToolCall) -> dict[str, Any] | ToolOutput:
    """The call's arguments as an object, or the error output the model gets instead of a call."""
    if not call.arguments.strip():
        return {}
    try:
        value = json.loads(call.arguments)
    except ValueError:
        return ToolOutput(f"The arguments of {call.name} are not valid JSON; nothing was called.", is_error=True)
    if not isinstance(value, dict):
        return ToolOutput(f"The arguments of {call.name} must be a JSON object; nothing was called.", is_error=True)
    return value


def tool_message(call: ToolCall, output: ToolOutput) -> dict[str, Any]:
    text = f"{TOOL_ERROR} {output.text}" if output.is_error else output.text
    return {"role": "tool", "tool_call_id": call.call_id, "content": text}


def stop_note(reason: StopReason, steps: int, detail: str) -> str:
    """The gateway's explanation of a run it ended before the model answered."""
    if reason == "max_steps":
        return (
            f"{NOTE} Stopped after {steps} model calls (the key's agent.max_steps): the model still asked for "
            f"tools ({detail}), which were not run. Ask again, or narrow the question."
        )
    return (
        f"{NOTE} Stopped before model call {steps + 1}: the key's limits cannot cover it ({detail}). "
        "The tool results gathered so far were not answered on."
    )


def add_usage(total: Usage | None, step: Usage) -> Usage:
    if total is None:
        return step
    return Usage(
        tokens_in=total.tokens_in + step.tokens_in,
        tokens_out=total.tokens_out + step.tokens_out,
        cached_tokens=total.cached_tokens + step.cached_tokens,
    )
