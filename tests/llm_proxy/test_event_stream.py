"""`EventStreamResponse` over ASGI: frames that come together leave together, none waits for a later one, and a
client that leaves closes the producer (its cleanup run to the end) however the stream was busy."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

import anyio
import httpx2
import pytest
from aiohttp import web

from llm_proxy.burst import Pending, probe, ready_or, shielded
from llm_proxy.streaming import BODY_FOLLOWS, EventStreamResponse
from tests.llm_proxy.conftest import KEY, Gateway
from tests.llm_proxy.mock_provider import USAGE, MockProvider, openai_frames, stream_frames

pytestmark = pytest.mark.anyio


class Client:
    """The ASGI side: what was sent, and a disconnect the test triggers."""

    def __init__(self, *, stall_body_sends: bool = False) -> None:
        self.messages: list[dict[str, Any]] = []
        self.sent = anyio.Event()
        """Set by the next send."""
        self.gone = anyio.Event()
        self.stall_body_sends = stall_body_sends

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if self.stall_body_sends and message["type"] == "http.response.body":
            await anyio.sleep_forever()  # a client that reads nothing: the server's writes are paused
        self.messages.append(message)
        self.sent.set()

    async def until(self, count: int) -> None:
        """Wait until `count` messages were sent."""
        while len(self.messages) < count:
            self.sent = anyio.Event()
            await self.sent.wait()

    def bodies(self) -> list[bytes]:
        return [message["body"] for message in self.messages if message["type"] == "http.response.body"]


async def serve(response: EventStreamResponse, client: Client) -> None:
    await response({"type": "http"}, client.receive, client.send)


async def test_the_first_frame_goes_at_once_then_frames_produced_together_go_out_in_one_message() -> None:
    async def frames() -> AsyncGenerator[bytes, None]:
        for frame in (b"data: 1\n\n", b"data: 2\n\n", b"data: 3\n\n", b"data: [DONE]\n\n"):
            yield frame

    client = Client()
    with anyio.fail_after(5):
        await serve(EventStreamResponse(frames(), headers={"x-request-id": "r"}), client)
    start = client.messages[0]
    assert start["type"] == "http.response.start" and (b"x-request-id", b"r") in start["headers"]
    assert start[BODY_FOLLOWS] is True  # the first frame was ready: the server may write the head with it
    assert client.messages[1:] == [
        {"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True},
        {"type": "http.response.body", "body": b"data: 2\n\ndata: 3\n\ndata: [DONE]\n\n", "more_body": False},
    ]


async def test_a_stream_with_no_frame_is_the_headers_and_an_empty_end() -> None:
    async def frames() -> AsyncGenerator[bytes, None]:
        return
        yield b""  # pragma: no cover - makes this an async generator

    client = Client()
    with anyio.fail_after(5):
        await serve(EventStreamResponse(frames(), headers={}), client)
    assert [message["type"] for message in client.messages] == ["http.response.start", "http.response.body"]
    assert client.messages[0][BODY_FOLLOWS] is True
    assert client.messages[1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def test_the_first_frame_is_sent_before_the_producer_is_asked_for_more() -> None:
    client = Client()
    seen_when_asked: list[list[bytes]] = []

    async def frames() -> AsyncGenerator[bytes, None]:
        yield b"data: 1\n\n"
        seen_when_asked.append(client.bodies())  # resumed for the second frame: what the client has by then
        yield b"data: 2\n\n"

    with anyio.fail_after(5):
        await serve(EventStreamResponse(frames(), headers={}), client)
    assert seen_when_asked == [[b"data: 1\n\n"]]
    assert client.messages[0]["type"] == "http.response.start"


async def test_one_task_learns_that_the_client_left_and_it_ends_with_the_stream() -> None:
    tasks: list[int] = []

    async def empty() -> AsyncGenerator[bytes, None]:
        tasks.append(len(asyncio.all_tasks()))
        return
        yield b""  # pragma: no cover - makes this an async generator

    async def waiting() -> AsyncGenerator[bytes, None]:
        yield b"data: 1\n\n"
        await anyio.sleep(0)
        tasks.append(len(asyncio.all_tasks()))
        yield b"data: 2\n\n"
        await anyio.sleep(0)
        tasks.append(len(asyncio.all_tasks()))
        yield b"data: 3\n\n"

    before = len(asyncio.all_tasks())
    with anyio.fail_after(5):
        await serve(EventStreamResponse(empty(), headers={}), Client())  # nothing to send: no task
        client = Client()
        await serve(EventStreamResponse(waiting(), headers={}), client)
        await anyio.sleep(0)  # the cancelled watcher runs to its end
    assert tasks == [before, before + 1, before + 1]
    assert len(asyncio.all_tasks()) == before
    assert client.bodies() == [b"data: 1\n\n", b"data: 2\n\n", b"data: 3\n\n"]


@pytest.mark.parametrize(
    ("ready", "sent_before_the_wait", "sent_after"),
    [
        # The first frame alone, the others that were ready together; none held for "late", which ends the stream.
        ([b"data: a\n\n", b"data: b\n\n"], [b"data: a\n\n", b"data: b\n\n"], [b"data: late\n\n"]),
        (
            [b"data: a\n\n", b"data: b\n\n", b"data: c\n\n"],
            [b"data: a\n\n", b"data: b\n\ndata: c\n\n"],
            [b"data: late\n\n"],
        ),
        # The headers alone: they do not wait for a first frame that is not ready; that frame, when it comes, goes
        # at once, without asking for more, and the end after it.
        ([], [], [b"data: late\n\n", b""]),
    ],
)
async def test_what_is_ready_is_sent_before_the_producer_waits(
    ready: list[bytes], sent_before_the_wait: list[bytes], sent_after: list[bytes]
) -> None:
    gate = anyio.Event()

    async def frames() -> AsyncGenerator[bytes, None]:
        for frame in ready:
            yield frame
        await gate.wait()
        yield b"data: late\n\n"

    client = Client()
    async with anyio.create_task_group() as group:
        group.start_soon(serve, EventStreamResponse(frames(), headers={}), client)
        with anyio.fail_after(5):
            await client.until(1 + len(sent_before_the_wait))
            await anyio.sleep(0.01)
        assert client.messages[0]["type"] == "http.response.start"
        # Sent alone, as soon as the producer waits, when no frame was ready: nothing follows it at once.
        assert client.messages[0].get(BODY_FOLLOWS, False) is bool(ready)
        assert client.bodies() == sent_before_the_wait
        gate.set()
    assert client.bodies() == [*sent_before_the_wait, *sent_after]
    assert client.messages[-1]["more_body"] is False


async def test_a_client_leaving_while_the_producer_waits_closes_it_and_runs_on_close() -> None:
    events: list[str] = []

    async def frames() -> AsyncGenerator[bytes, None]:
        try:
            yield b"data: a\n\n"
            await anyio.sleep_forever()
        finally:
            events.append("producer closed")

    async def on_close() -> None:
        events.append("on_close")

    client = Client()
    async with anyio.create_task_group() as group:
        group.start_soon(serve, EventStreamResponse(frames(), headers={}, on_close=on_close), client)
        with anyio.fail_after(5):
            await client.until(2)
            client.gone.set()
    assert client.bodies() == [b"data: a\n\n"]
    assert events == ["producer closed", "on_close"]


async def test_a_client_leaving_while_a_send_is_stuck_runs_the_waiting_producers_cleanup_to_its_end() -> None:
    events: list[str] = []
    cleaned = anyio.Event()

    async def frames() -> AsyncGenerator[bytes, None]:
        try:
            yield b"data: a\n\n"
            await anyio.sleep_forever()  # the producer waits, so "a" is sent, and that send never finishes
        except BaseException:
            events.append("producer cancelled")
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.01)  # settling: awaits, and must not be abandoned half way
            events.append("producer cleaned up")
            cleaned.set()

    async def on_close() -> None:
        events.append("on_close")

    client = Client(stall_body_sends=True)
    async with anyio.create_task_group() as group:
        group.start_soon(serve, EventStreamResponse(frames(), headers={}, on_close=on_close), client)
        with anyio.fail_after(5):
            await client.until(1)  # the headers; the body's first send is stuck
            await anyio.sleep(0.01)
            client.gone.set()
            await cleaned.wait()
    assert events == ["producer cancelled", "producer cleaned up", "on_close"]
    assert client.bodies() == []


async def test_ready_or_and_probe_run_meanwhile_only_when_the_step_has_to_wait() -> None:
    ran: list[str] = []

    async def meanwhile() -> None:
        ran.append("meanwhile")

    async def at_once() -> str:
        return "now"

    async def later() -> str:
        await anyio.sleep(0)
        ran.append("step resumed")
        return "later"

    assert await ready_or(at_once(), meanwhile) == "now" and ran == []
    assert await ready_or(later(), meanwhile) == "later"
    assert ran == ["meanwhile", "step resumed"]
    ran.clear()
    assert probe(at_once()) == "now"
    pending = probe(later())
    assert isinstance(pending, Pending) and ran == []  # held at its first wait
    assert await pending.after(meanwhile) == "later"
    assert ran == ["meanwhile", "step resumed"]


async def test_ready_or_passes_the_steps_error_on() -> None:
    async def meanwhile() -> None:
        pass

    async def broken() -> None:
        await anyio.sleep(0)
        raise ValueError("upstream broke")

    with pytest.raises(ValueError, match="upstream broke"):
        await ready_or(broken(), meanwhile)


async def test_an_error_while_a_probed_step_waits_runs_the_steps_cleanup_and_goes_on() -> None:
    cleaned = asyncio.Event()

    async def meanwhile() -> None:
        raise OSError("the client went away")

    async def waits() -> str:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)  # cleanup that awaits runs to its end
            cleaned.set()
        return "never"

    pending = probe(waits())
    assert isinstance(pending, Pending)
    with pytest.raises(OSError, match="went away"):
        await pending.after(meanwhile)
    assert cleaned.is_set()


async def test_shielded_work_runs_to_its_end_in_a_cancelled_scope_whether_it_waits_or_not() -> None:
    done: list[str] = []

    async def at_once() -> None:
        done.append("at once")

    async def waits() -> None:
        await anyio.sleep(0.01)
        done.append("after waiting")

    with anyio.fail_after(5), anyio.CancelScope() as scope:
        scope.cancel()
        await shielded(at_once())
        await shielded(waits())
        await shielded(waits(), 60)
    assert done == ["at once", "after waiting", "after waiting"]


async def test_shielded_work_that_waits_past_its_timeout_is_given_up() -> None:
    async def stuck() -> None:
        await anyio.sleep(3600)

    with anyio.fail_after(5):
        await shielded(stuck(), 0.01)


async def test_shielded_work_that_fails_before_waiting_raises_its_error() -> None:
    async def broken() -> None:
        raise ValueError("settling broke")

    with pytest.raises(ValueError, match="settling broke"):
        await shielded(broken())


@pytest.mark.parametrize("include_usage", [True, False])
async def test_a_burst_through_the_gateway_reaches_the_client_as_the_providers_frames_and_is_settled(
    gateway: Gateway, mock: MockProvider, include_usage: bool
) -> None:
    """Chunks passed on whole go out in the provider's own bytes (its spacing, its `\\u00e9`); chunks the gateway
    changes (`usage` taken out for a client that did not ask for it) are encoded compactly."""
    upstream = openai_frames({"model": "m", "stream_options": {"include_usage": True}}, "héllo wide world")
    mock.queue(stream_frames([b": keep-alive\n\n" + b"".join(upstream)]))  # one write: the events come together
    body = {"model": "mock/m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    async with httpx2.AsyncClient(base_url=gateway.v1, headers={"authorization": f"Bearer {KEY}"}) as client:
        response = await client.post("/chat/completions", json=body)
    expected = b""
    for frame in upstream[:-1]:
        if include_usage:
            expected += frame
            continue
        chunk = json.loads(frame.removeprefix(b"data: "))
        if not chunk["choices"]:
            continue
        del chunk["usage"]
        expected += b"data: " + json.dumps(chunk, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert response.content == expected + b"data: [DONE]\n\n"
    record = (await gateway.wait_records(1))[0]
    assert (record.status, record.tokens_in, record.tokens_out) == (
        200,
        USAGE["prompt_tokens"],
        USAGE["completion_tokens"],
    )


async def test_a_stream_asked_for_right_after_the_last_ends_reuses_its_provider_connection(
    gateway: Gateway, mock: MockProvider
) -> None:
    """`[DONE]` goes to the client once the provider's body has been read to its end, when its connection is back
    in the pool: a client that asks again at once is served over the same connection, not a new one."""
    peers: list[object] = []

    def ends_late() -> Any:
        async def answer(request: Any, body: dict[str, Any]) -> Any:
            assert request.transport is not None
            peers.append(request.transport.get_extra_info("peername"))
            response = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await response.prepare(request)
            await response.write(b"".join(openai_frames(body, "hello")))  # `[DONE]` included
            await asyncio.sleep(0.05)  # the body's end comes apart from its last event
            await response.write_eof()
            return response

        return answer

    mock.queue(ends_late(), ends_late())
    body = {"model": "mock/m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with httpx2.AsyncClient(base_url=gateway.v1, headers={"authorization": f"Bearer {KEY}"}) as client:
        for _ in range(2):
            response = await client.post("/chat/completions", json=body)
            assert response.status_code == 200 and response.content.endswith(b"data: [DONE]\n\n")
    assert len(peers) == 2 and peers[0] == peers[1]
