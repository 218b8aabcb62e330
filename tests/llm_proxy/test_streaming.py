"""The SSE parser and frames."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any, NamedTuple

import pytest

from llm_proxy.errors import UpstreamBadResponse
from llm_proxy.providers.base import sse_json, sse_objects
from llm_proxy.streaming import EventSplitter, Received, data_frame, event_frame, relayed_frame

pytestmark = pytest.mark.anyio


async def feed(*chunks: bytes) -> AsyncGenerator[bytes, None]:
    for chunk in chunks:
        yield chunk


class SSEEvent(NamedTuple):
    event: str | None
    data: str


async def parse(*chunks: bytes) -> list[SSEEvent]:
    splitter = EventSplitter()
    events = [event async for chunk in feed(*chunks) for event in splitter.feed(chunk)] + splitter.end()
    return [SSEEvent(name, data.decode("utf-8", "replace")) for name, data in events]


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


async def test_provider_events_keep_their_bytes_only_when_one_line_can_frame_them() -> None:
    stream = (
        b'data: {"a": "\\u00e9",  "n": 1}\n\n'  # spacing and escapes as the provider wrote them
        b'data: {"a":\r\ndata: 2}\n\n'  # two data lines: no single line to pass on
        b'data: {"a":\r3}\n\n'  # a lone CR, a line break to the client's parser
        b'data: {"a": "\xff"}\n\n'  # not UTF-8: read as before, with a replacement character
        b"data: [DONE]\n\n"
        b'data: {"after": "done"}\n\n'
    )
    items = [item async for _, item in sse_json("p", feed(stream[:7], stream[7:]))]
    assert items == [{"a": "é", "n": 1}, {"a": 2}, {"a": 3}, {"a": "\ufffd"}]
    assert [type(item) is Received for item in items] == [True, False, False, False]
    assert relayed_frame(items[0]) == b'data: {"a": "\\u00e9",  "n": 1}\n\n'
    assert relayed_frame(dict(items[0])) == data_frame(items[0]) == 'data: {"a":"é","n":1}\n\n'.encode()


async def test_provider_events_that_are_not_json_objects_are_bad_answers() -> None:
    for data, message in ((b"{oops", "not JSON: '{oops'"), (b"[1]", "not an object")):
        with pytest.raises(UpstreamBadResponse, match=message):
            [item async for item in sse_json("p", feed(b"data: " + data + b"\n\n"))]


async def test_an_adapter_check_sees_every_event_and_ends_the_stream_by_raising() -> None:
    seen: list[dict[str, Any]] = []

    def check(item: dict[str, Any]) -> None:
        seen.append(item)
        if "error" in item:
            raise UpstreamBadResponse("refused")

    items = [
        item async for item in sse_objects("p", feed(b'data: {"n": 1}\n\ndata: {"n": 2}\n\ndata: [DONE]\n\n'), check)
    ]
    assert items == seen == [{"n": 1}, {"n": 2}]
    unfinished = [item async for item in sse_objects("p", feed(b'data: {"n": 1}\n\ndata: {"n": 2}'), check)]
    assert unfinished == [{"n": 1}, {"n": 2}]  # the last event, with no blank line after it
    seen.clear()
    with pytest.raises(UpstreamBadResponse, match="refused"):
        [
            item
            async for item in sse_objects(
                "p", feed(b'data: {"n": 1}\n\ndata: {"error": {}}\n\ndata: {"n": 3}\n\n'), check
            )
        ]
    assert seen == [{"n": 1}, {"error": {}}]  # nothing read after the refused event
