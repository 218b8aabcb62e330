"""The bridge's link to the gateway, against a scripted gateway (`httpx2.MockTransport`) and a recorded clock."""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
import httpx2
import pytest

from mcp_hub.bridge_link import UNREACHABLE, GatewayLink

pytestmark = pytest.mark.anyio

URL = "http://gateway.test/mcp"
INITIALIZE = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25"}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def call(id: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "add", "arguments": {}}}


def post(message: dict[str, Any], session: str | None = None) -> httpx2.Request:
    headers = {"mcp-session-id": session} if session else {}
    return httpx2.Request("POST", URL, json=message, headers=headers)


class Clock:
    """Records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        await anyio.lowlevel.checkpoint()


class Gateway:
    """Opens a session per `initialize`, forgets them all on `restart()`, answers 404 for any it does not know."""

    def __init__(self) -> None:
        self.live: set[str] = set()
        self.opened = 0
        self.seen: list[tuple[str, str | None, Any]] = []
        """(HTTP method, session header, JSON body) of every request."""

    def restart(self) -> None:
        self.live.clear()

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        await anyio.lowlevel.checkpoint()  # let concurrent requests interleave
        session = request.headers.get("mcp-session-id")
        body = json.loads(request.content) if request.content else None
        self.seen.append((request.method, session, body))
        if body is not None and body.get("method") == "initialize":
            assert session is None, "an initialize never carries a session id"
            self.opened += 1
            self.live.add(f"s{self.opened}")
            return httpx2.Response(200, headers={"mcp-session-id": f"s{self.opened}"}, json={"result": {}})
        if session is not None and session not in self.live:
            return httpx2.Response(404, json={"jsonrpc": "2.0", "id": None, "error": {"message": "Session not found"}})
        if body is not None and "id" not in body:
            return httpx2.Response(202)
        return httpx2.Response(200, json={"jsonrpc": "2.0", "id": body["id"] if body else None, "result": {}})


def down(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.ConnectError("All connection attempts failed")


async def test_an_unreachable_gateway_is_retried_with_backoff_then_the_request_is_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="mcp_hub.bridge_link")
    clock = Clock()
    link = GatewayLink(URL, httpx2.MockTransport(down), attempts=5, first_delay=0.1, sleep=clock.sleep)
    answer = await link.handle_async_request(post(call(7)))
    assert clock.waits == [0.1, 0.2, 0.4, 0.8]
    assert answer.status_code == 503
    assert json.loads(await answer.aread()) == {
        "jsonrpc": "2.0",
        "id": 7,
        "error": {"code": UNREACHABLE, "message": f"cannot reach the gateway at {URL}: All connection attempts failed"},
    }
    # While it is known to be down, a request is answered after one attempt; a notification gets a bare status.
    assert (await link.handle_async_request(post(call(8)))).status_code == 503
    notice = await link.handle_async_request(post(INITIALIZED))
    assert notice.status_code == 503 and await notice.aread() == b""
    assert clock.waits == [0.1, 0.2, 0.4, 0.8]
    assert [m for m in caplog.messages if "cannot reach the gateway" in m] == [
        f"cannot reach the gateway at {URL} (All connection attempts failed); answering requests with an error"
    ]


async def test_the_event_stream_waits_for_the_gateway_however_long_it_takes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mcp_hub.bridge_link")
    failures = 12

    def comes_back(request: httpx2.Request) -> httpx2.Response:
        nonlocal failures
        if failures:
            failures -= 1
            raise httpx2.ConnectError("refused")
        return httpx2.Response(200, headers={"content-type": "text/event-stream"})

    clock = Clock()
    link = GatewayLink(URL, httpx2.MockTransport(comes_back), attempts=1, max_delay=5.0, sleep=clock.sleep)
    assert (await link.handle_async_request(post(call(1)))).status_code == 503  # found down: answered at once
    stream = await link.handle_async_request(httpx2.Request("GET", URL))
    assert stream.status_code == 200 and len(clock.waits) == 11 and max(clock.waits) == 5.0
    assert "the gateway at http://gateway.test/mcp is reachable again" in caplog.messages


async def test_a_forgotten_session_is_reopened_by_replaying_the_handshake(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mcp_hub.bridge_link")
    gateway = Gateway()
    link = GatewayLink(URL, httpx2.MockTransport(gateway))
    opened = await link.handle_async_request(post(INITIALIZE))
    held = opened.headers["mcp-session-id"]  # what the SDK client keeps sending from now on
    assert (await link.handle_async_request(post(INITIALIZED, held))).status_code == 202
    assert (await link.handle_async_request(post(call(1), held))).status_code == 200

    gateway.restart()
    gateway.seen.clear()
    answer = await link.handle_async_request(post(call(2), held))
    assert answer.status_code == 200 and json.loads(await answer.aread())["id"] == 2
    assert gateway.seen == [
        ("POST", "s1", call(2)),  # 404
        ("POST", None, INITIALIZE),  # the client's own handshake, again
        ("POST", "s2", INITIALIZED),
        ("POST", "s2", call(2)),
    ]
    assert link.session_id == "s2" and link.renewals == 1
    # Later requests still carry the id the SDK holds: they go out with the new one.
    gateway.seen.clear()
    assert (await link.handle_async_request(post(call(3), held))).status_code == 200
    assert gateway.seen == [("POST", "s2", call(3))]
    assert "the gateway forgot this session (it restarted?); continuing on a new one" in caplog.messages


async def test_requests_that_find_the_session_gone_together_reopen_it_once() -> None:
    gateway = Gateway()
    link = GatewayLink(URL, httpx2.MockTransport(gateway))
    held = (await link.handle_async_request(post(INITIALIZE))).headers["mcp-session-id"]
    gateway.restart()
    statuses: list[int] = []

    async def send(id: int) -> None:
        statuses.append((await link.handle_async_request(post(call(id), held))).status_code)

    async with anyio.create_task_group() as tg:
        for id in range(5):
            tg.start_soon(send, id)
    assert statuses == [200] * 5 and link.renewals == 1 and gateway.opened == 2


async def test_no_session_is_reopened_for_a_delete_or_without_one() -> None:
    gateway = Gateway()
    link = GatewayLink(URL, httpx2.MockTransport(gateway))
    # 2026-07-28: no sessions, so a 404 is just the gateway's answer.
    stateless = await link.handle_async_request(post(call(1), "unknown"))
    assert stateless.status_code == 404 and gateway.opened == 0 and len(gateway.seen) == 1
    held = (await link.handle_async_request(post(INITIALIZE))).headers["mcp-session-id"]
    gateway.restart()
    deleted = await link.handle_async_request(httpx2.Request("DELETE", URL, headers={"mcp-session-id": held}))
    assert deleted.status_code == 404 and gateway.opened == 1 and link.renewals == 0


async def test_a_request_out_while_another_reopens_the_session_goes_again_on_the_new_one() -> None:
    # The event stream reconnecting after a restart and a call sent at the same moment: both carry the old id; the
    # stream's 404 comes back first and reopens the session, then the call's 404 arrives.
    gateway = Gateway()
    held_back = anyio.Event()
    answered = gateway.__call__

    async def slow_for_call_1(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content) if request.content else None
        if body == call(1) and request.headers.get("mcp-session-id") == "s1":
            await held_back.wait()
        return await answered(request)

    link = GatewayLink(URL, httpx2.MockTransport(slow_for_call_1))
    held = (await link.handle_async_request(post(INITIALIZE))).headers["mcp-session-id"]
    gateway.restart()
    answers: dict[int, httpx2.Response] = {}

    async def send(id: int) -> None:
        answers[id] = await link.handle_async_request(post(call(id), held))

    async with anyio.create_task_group() as tg:
        tg.start_soon(send, 1)
        await anyio.wait_all_tasks_blocked()  # call 1 is out with s1
        await send(2)  # finds s1 gone, reopens it as s2
        assert link.session_id == "s2"
        held_back.set()
    assert {id: answer.status_code for id, answer in answers.items()} == {1: 200, 2: 200}
    assert gateway.seen[-1] == ("POST", "s2", call(1)) and link.renewals == 1 and gateway.opened == 2


async def test_a_session_forgotten_again_while_it_was_reopened_is_reopened_once_more() -> None:
    gateway = Gateway()
    inner = gateway.__call__

    async def restarts_after_each_opening(request: httpx2.Request) -> httpx2.Response:
        answer = await inner(request)
        if request.content and json.loads(request.content).get("method") == "initialize" and gateway.opened == 2:
            gateway.restart()  # s2 is gone before the call goes out on it
        return answer

    link = GatewayLink(URL, httpx2.MockTransport(restarts_after_each_opening))
    held = (await link.handle_async_request(post(INITIALIZE))).headers["mcp-session-id"]
    gateway.restart()
    answer = await link.handle_async_request(post(call(1), held))
    assert answer.status_code == 200 and link.session_id == "s3" and link.renewals == 2
