"""Guardrails on the LLM routes: the request body before anything is forwarded (`input`), the answer before the
client sees it (`output`), streamed answers chunk by chunk through the engine's stream scanner.

A key no rule applies to costs one dictionary lookup per request (none when no rules are configured). A blocked
input raises `GuardrailBlocked`, rendered by the route as a 400 in its own envelope; a blocked stream ends with the
API's error event in place of the rest of the content.
"""

from __future__ import annotations

from typing import Any, Protocol

from llm_proxy.pipeline import Exchange, Pipeline
from toolpolicy.guardrails import Scan, StreamScanner


def input_scan(pipeline: Pipeline, exchange: Exchange) -> Scan | None:
    """The scan for what the client sent, or None when no input rule applies."""
    return _scan(pipeline, exchange, "input")


def output_scan(pipeline: Pipeline, exchange: Exchange) -> Scan | None:
    """The scan for the answer, or None when no output rule applies (the caller then skips all of this)."""
    if exchange.endpoint == "embeddings":
        return None  # vectors: no text goes back
    return _scan(pipeline, exchange, "output")


async def check_body(scan: Scan | None, body: Any) -> None:
    """A whole body (a request, a non-streamed answer), redacted in place, then shown to the webhook rules; raises
    `GuardrailBlocked`."""
    if scan is None:
        return
    try:
        scan.json(body)
        await scan.remote(body)
    finally:
        scan.report()


def _scan(pipeline: Pipeline, exchange: Exchange, surface: Any) -> Scan | None:
    guardrails = pipeline.governance.guardrails
    if not guardrails.active:
        return None
    return guardrails.scan(exchange.principal, surface, request_id=exchange.request_id, target=exchange.requested)


class StreamGuard(Protocol):
    """Rewrites a stream's items: `feed` may hold text back (returning fewer or emptier items), `end` lets the rest
    out when the stream ends; both raise `GuardrailBlocked`."""

    scan: Scan

    def feed(self, item: dict[str, Any]) -> list[dict[str, Any]]: ...

    def end(self) -> list[dict[str, Any]]: ...


def stream_guard(pipeline: Pipeline, exchange: Exchange) -> StreamGuard | None:
    scan = output_scan(pipeline, exchange)
    if scan is None:
        return None
    return ChatStreamGuard(scan) if exchange.api == "openai" else MessagesStreamGuard(scan)


class ChatStreamGuard:
    """Streamed OpenAI chat chunks: each choice's content and each tool call's arguments through a stream scanner,
    flushed on the chunk that finishes the choice (or in one last chunk if the stream ends without one)."""

    def __init__(self, scan: Scan) -> None:
        self.scan = scan
        self.scanners: dict[tuple[int, int], StreamScanner] = {}
        """(choice index, -1 for content or the tool call's index) -> its scanner."""
        self.last: dict[str, Any] = {}

    def _feed(self, key: tuple[int, int], text: str) -> str:
        scanner = self.scanners.get(key)
        if scanner is None:
            scanner = self.scanners[key] = self.scan.stream()
        return scanner.feed(text)

    def feed(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        self.last = item
        for choice in item.get("choices") or ():
            index = choice.get("index", 0)
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("content"), str):
                delta["content"] = self._feed((index, -1), delta["content"])
            for call in delta.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    function["arguments"] = self._feed((index, call.get("index", 0)), function["arguments"])
            if choice.get("finish_reason") is not None:
                self._flush_choice(index, delta)
        return [item]

    def _flush_choice(self, index: int, delta: dict[str, Any]) -> None:
        for key in [key for key in self.scanners if key[0] == index]:
            rest = self.scanners.pop(key).flush()
            if not rest:
                continue
            if key[1] == -1:
                delta["content"] = (delta.get("content") or "") + rest
                continue
            calls = delta.setdefault("tool_calls", [])
            same = next((call for call in calls if call.get("index") == key[1]), None)
            if same is None:
                calls.append({"index": key[1], "function": {"arguments": rest}})
            else:
                function = same.setdefault("function", {})
                function["arguments"] = (function.get("arguments") or "") + rest

    def end(self) -> list[dict[str, Any]]:
        """What is still held when the stream ends without finishing a choice, as one last chunk (or nothing)."""
        choices: list[dict[str, Any]] = []
        for index in sorted({key[0] for key in self.scanners}):
            delta: dict[str, Any] = {}
            self._flush_choice(index, delta)
            if delta:
                choices.append({"index": index, "delta": delta, "finish_reason": None})
        if not choices:
            return []
        head: dict[str, Any] = {
            name: self.last[name] for name in ("id", "object", "created", "model") if name in self.last
        }
        return [{**head, "choices": choices}]


_DELTA_FIELDS = {"text_delta": "text", "input_json_delta": "partial_json", "thinking_delta": "thinking"}


class MessagesStreamGuard:
    """Streamed Anthropic events: each content block's text (or tool input JSON) through a stream scanner, flushed
    as one more delta before the block's `content_block_stop`."""

    def __init__(self, scan: Scan) -> None:
        self.scan = scan
        self.scanners: dict[int, tuple[StreamScanner, str]] = {}
        """Block index -> its scanner and its delta type."""

    def feed(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        kind = item.get("type")
        if kind == "content_block_delta":
            delta = item.get("delta")
            field = _DELTA_FIELDS.get(delta.get("type", "")) if isinstance(delta, dict) else None
            if delta is None or field is None or not isinstance(delta.get(field), str):
                return [item]
            index = item.get("index", 0)
            entry = self.scanners.get(index)
            if entry is None:
                entry = self.scanners[index] = (self.scan.stream(), delta["type"])
            delta[field] = entry[0].feed(delta[field])
            return [item] if delta[field] else []
        if kind == "content_block_stop":
            return [*self._flush(item.get("index", 0)), item]
        if kind in ("message_delta", "message_stop"):
            return [event for index in list(self.scanners) for event in self._flush(index)] + [item]
        return [item]

    def end(self) -> list[dict[str, Any]]:
        """Deltas still held when the stream ends without stopping its blocks (a provider cut off)."""
        return [event for index in list(self.scanners) for event in self._flush(index)]

    def _flush(self, index: int) -> list[dict[str, Any]]:
        entry = self.scanners.pop(index, None)
        if entry is None:
            return []
        rest = entry[0].flush()
        if not rest:
            return []
        return [
            {"type": "content_block_delta", "index": index, "delta": {"type": entry[1], _DELTA_FIELDS[entry[1]]: rest}}
        ]
