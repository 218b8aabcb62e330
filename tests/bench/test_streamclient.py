"""The streaming client decodes chunked event streams and times each event; the summary finds held-back chunks."""

from __future__ import annotations

import anyio
import pytest

from bench.scenarios import chat_body
from bench.streamclient import Connection, StreamError, StreamTiming, summarise

pytestmark = pytest.mark.anyio


async def test_each_event_of_a_paced_stream_is_timed_on_arrival(llm_mock: str) -> None:
    connection = Connection(f"{llm_mock}/v1/chat/completions")
    headers = {"Content-Type": "application/json"}
    try:
        with anyio.fail_after(10):
            first = await anyio.to_thread.run_sync(connection.stream, chat_body("m-paced", stream=True), headers)
            again = await anyio.to_thread.run_sync(connection.stream, chat_body("m-paced", stream=True), headers)
    finally:
        connection.close()
    # role, 4 paced contents, finish, usage, [DONE]; the same keep-alive connection serves both streams.
    assert len(first.events_s) == len(again.events_s) == 8
    assert first.headers_s <= first.events_s[0] <= first.events_s[-1] <= first.total_s
    assert first.events_s[4] - first.events_s[0] >= 0.075


async def test_an_error_status_is_a_stream_error(llm_mock: str) -> None:
    connection = Connection(f"{llm_mock}/v1/chat/completions")
    try:
        with pytest.raises(StreamError, match="status 400"):
            await anyio.to_thread.run_sync(connection.stream, b"{}", {"Content-Type": "application/json"})
    finally:
        connection.close()


def test_only_loopback_is_a_target() -> None:
    with pytest.raises(ValueError, match="loopback"):
        Connection("http://example.com/v1/chat/completions")


def test_events_that_arrive_together_count_as_held_back() -> None:
    paced = StreamTiming(0.001, [0.001, 0.002, 0.004, 0.006, 0.008, 0.0081, 0.0082], 0.009)
    bunched = StreamTiming(0.001, [0.001, 0.002, 0.0021, 0.0022, 0.008, 0.0081, 0.0082], 0.009)
    summary = summarise([paced, bunched], errors=1, expected_gap_ms=2.0, paced=4)
    # gaps among the 4 paced events only: 2, 2, 2 ms and 0.1, 0.1, 5.8 ms
    assert summary["held_back_share"] == pytest.approx(2 / 6)
    assert summary["streams"] == 2 and summary["errors"] == 1
    assert summary["first_event_ms"]["p50"] == pytest.approx(1.0)
