"""The SSE parser and frames."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from llm_proxy.streaming import SSEEvent, data_frame, event_frame, sse_events

pytestmark = pytest.mark.anyio


async def feed(*chunks: bytes) -> AsyncGenerator[bytes, None]:
    for chunk in chunks:
        yield chunk


async def parse(*chunks: bytes) -> list[SSEEvent]:
    return [event async for event in sse_events(feed(*chunks))]


async def test_events_split_anywhere_across_chunks_are_reassembled() -> None:
    stream = b'event: message_start\ndata: {"a": 1}\n\ndata: {"b": 2}\n\n'
    for cut in range(1, len(stream)):
        assert await parse(stream[:cut], stream[cut:]) == [
            SSEEvent("message_start", '{"a": 1}'),
            SSEEvent(None, '{"b": 2}'),
        ]


async def test_crlf_comments_multiline_data_and_a_missing_final_blank_line() -> None:
    events = await parse(b": keep-alive\r\n\r\ndata: one\r\ndata: two\r\nid: 5\r\n\r\ndata:[DONE]")
    assert events == [SSEEvent(None, "one\ntwo"), SSEEvent(None, "[DONE]")]


async def test_a_long_line_is_not_limited() -> None:
    big = "x" * 300_000
    events = await parse(b"data: ", big.encode()[:150_000], big.encode()[150_000:], b"\n\n")
    assert events == [SSEEvent(None, big)]


def test_frames_are_compact_json() -> None:
    assert data_frame({"a": "é"}) == 'data: {"a":"é"}\n\n'.encode()
    frame = event_frame({"type": "ping"})
    assert frame.startswith(b"event: ping\ndata: ") and json.loads(frame.split(b"data: ")[1]) == {"type": "ping"}


@pytest.mark.parametrize(
    "payload",
    [
        {"a": "é\u2028😀", "b": [1, 2.5, None, True, float("nan"), float("inf")], "c": {"d": '\n"\\\x01'}},
        {3: "int key", 2.5: "float key", True: "bool key", None: "null key", "big": 10**30, "neg": -0.0},
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "</script>"}},
        {},
    ],
)
def test_frames_hold_exactly_what_json_dumps_writes(payload: dict[Any, Any]) -> None:
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    assert data_frame(payload) == b"data: " + text + b"\n\n"
    assert event_frame(payload).endswith(b"\ndata: " + text + b"\n\n")
