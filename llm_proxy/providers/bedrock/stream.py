"""ConverseStream: the binary AWS event stream, decoded as it arrives, as Anthropic Messages stream events.

The body is `application/vnd.amazon.eventstream`: length-prefixed frames with headers and CRCs, parsed by botocore's
`EventStreamBuffer` from whatever chunks the network delivers. Each `event` frame's `:event-type` names a Converse
event; an `exception` (or `error`) frame ends the stream with an error classified like an HTTP status, so a
throttled or failed stream fails over before its first event and reaches the client as an error event after it.

The events become Anthropic's (`message_start`, `content_block_*`, `message_delta`, `message_stop`), which
`wire.anthropic_stream.EventsToChunks` turns into chat chunks: Converse's `metadata` event, with the usage, comes
after `messageStop`, so `message_delta` waits for it (or for the end of the stream).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

from botocore.eventstream import EventStreamBuffer, EventStreamMessage, MessagePrelude, ParserError

from llm_proxy.errors import UpstreamBadResponse, UpstreamStatusError
from llm_proxy.providers.bedrock.converse import STOP_REASONS, usage

EXCEPTION_STATUS = {
    "throttlingException": 429,
    "serviceUnavailableException": 503,
    "internalServerException": 500,
    "modelStreamErrorException": 502,
    "modelTimeoutException": 408,
    "validationException": 400,
    "accessDeniedException": 403,
    "resourceNotFoundException": 404,
}
"""HTTP status of each ConverseStream exception, for the router's retry and failover rules (unknown: 500)."""


async def converse_events(
    provider: str, chunks: AsyncIterator[bytes]
) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
    """Each Converse event of the stream as (event type, payload), frame by frame as the bytes arrive."""
    buffer = EventStreamBuffer()
    pending = 0
    """Bytes received that no complete frame has used yet."""
    async for chunk in chunks:
        buffer.add_data(chunk)
        pending += len(chunk)
        try:
            messages = list(buffer)
        except ParserError as exc:
            raise UpstreamBadResponse(f"provider {provider!r} streamed a broken event stream frame: {exc}") from None
        for message in messages:
            pending -= cast(MessagePrelude, message.prelude).total_length
            event = _event(provider, message)
            if event is not None:
                yield event
    if pending:
        raise UpstreamBadResponse(f"provider {provider!r} ended its event stream in the middle of a frame")


def _event(provider: str, message: EventStreamMessage) -> tuple[str, dict[str, Any]] | None:
    headers = cast(dict[str, Any], message.headers)  # a dict of header values (botocore-stubs says int)
    kind = headers.get(":message-type")
    if kind == "exception":
        name = str(headers.get(":exception-type") or "exception")
        text = _payload(provider, message).get("message") or message.payload[:300].decode("utf-8", "replace")
        raise _stream_error(provider, name, str(text))
    if kind == "error":
        name = str(headers.get(":error-code") or "error")
        raise _stream_error(provider, name, str(headers.get(":error-message") or ""))
    if kind != "event":
        return None
    return str(headers.get(":event-type")), _payload(provider, message)


def _payload(provider: str, message: EventStreamMessage) -> dict[str, Any]:
    try:
        payload = json.loads(message.payload) if message.payload else {}
    except (ValueError, UnicodeDecodeError):
        raise UpstreamBadResponse(f"provider {provider!r} streamed an event that is not JSON") from None
    if not isinstance(payload, dict):
        raise UpstreamBadResponse(f"provider {provider!r} streamed an event that is not an object")
    return payload


def _stream_error(provider: str, name: str, text: str) -> UpstreamStatusError:
    status = EXCEPTION_STATUS.get(name, 500)
    return UpstreamStatusError(
        f"provider {provider!r} stream error ({name}): {text}", upstream_status=status, provider_type=name
    )


class ConverseToEvents:
    """Converse stream events -> Anthropic Messages stream events."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = f"msg_bdrk_{uuid.uuid4().hex[:24]}"
        self.stop_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.ended = False
        self._open: set[int] = set()

    def feed(self, kind: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
        if kind == "messageStart":
            message: dict[str, Any] = {"id": self.id, "type": "message", "role": "assistant", "model": self.model}
            message.update(content=[], stop_reason=None, stop_sequence=None)
            message["usage"] = {"input_tokens": 0, "output_tokens": 0}
            return [{"type": "message_start", "message": message}]
        if kind == "contentBlockStart":
            return self._start(int(payload.get("contentBlockIndex") or 0), payload.get("start") or {})
        if kind == "contentBlockDelta":
            return self._delta(int(payload.get("contentBlockIndex") or 0), payload.get("delta") or {})
        if kind == "contentBlockStop":
            index = int(payload.get("contentBlockIndex") or 0)
            self._open.discard(index)
            return [{"type": "content_block_stop", "index": index}]
        if kind == "messageStop":
            self.stop_reason = STOP_REASONS.get(str(payload.get("stopReason")), "end_turn")
            return []
        if kind == "metadata":
            self.usage = usage(payload.get("usage"))
            return self.finish()
        return []

    def _start(self, index: int, start: dict[str, Any]) -> list[dict[str, Any]]:
        self._open.add(index)
        use = start.get("toolUse")
        if isinstance(use, dict):
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": use.get("toolUseId"),
                "name": use.get("name"),
                "input": {},
            }
            return [{"type": "content_block_start", "index": index, "content_block": block}]
        return [{"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}]

    def _delta(self, index: int, delta: dict[str, Any]) -> list[dict[str, Any]]:
        # Text and reasoning blocks come without a contentBlockStart.
        events = [] if index in self._open else self._start(index, {})
        if isinstance(delta.get("text"), str):
            events.append(
                {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": delta["text"]}}
            )
        elif isinstance(delta.get("toolUse"), dict):
            fragment = str(delta["toolUse"].get("input") or "")
            events.append(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": fragment},
                }
            )
        elif isinstance(delta.get("reasoningContent"), dict) and isinstance(delta["reasoningContent"].get("text"), str):
            thinking = {"type": "thinking_delta", "thinking": delta["reasoningContent"]["text"]}
            events.append({"type": "content_block_delta", "index": index, "delta": thinking})
        return events

    def finish(self) -> list[dict[str, Any]]:
        """`message_delta` (stop reason and usage) and `message_stop`, once: at `metadata` or the stream's end."""
        if self.ended:
            return []
        self.ended = True
        delta = {"stop_reason": self.stop_reason or "end_turn", "stop_sequence": None}
        return [{"type": "message_delta", "delta": delta, "usage": self.usage or {}}, {"type": "message_stop"}]
