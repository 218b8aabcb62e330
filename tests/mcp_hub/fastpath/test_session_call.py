"""The session fast path (`mcp_hub/fastpath/session_call.py`) answers a 2025-era session's `tools/call` and
`tools/list` as the SDK does: each exchange is made in a fresh session with the fast path off, then on, against one
gateway, and the answers (status, headers, the event stream byte for byte) and audit records must be the same, while
the fast path must have served exactly the requests it takes.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp.server.streamable_http import REQUEST_CANCELLED

import mcp_hub.fastpath.session_call as session_call
from mcp_hub.fastpath.plain_results import plain_wire
from mcp_hub.fastpath.session_call import SessionCall, sse_headers
from tests.mcp_hub.conftest import FULL_KEY, LIMITED_KEY, Gateway, fixture_server, hub_settings, serving
from tests.mcp_hub.fastpath.test_fastpath import audit_of, set_fast

pytestmark = pytest.mark.anyio

VERSION = "2025-11-25"
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
_ids = itertools.count(1)


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    settings = hub_settings(
        tmp_path_factory.mktemp("session-fast"),
        {"fx": fixture_server(timeout=30)},
        audit={"record_arguments": True},
        mcp={"resume": {"retry_ms": 500}},
    )
    async with serving(settings) as started:
        yield started


class Served:
    """How many requests the session fast path served."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fast = 0
        run = SessionCall.run

        async def counted(call: SessionCall, *args: Any) -> None:
            self.fast += 1
            await run(call, *args)

        monkeypatch.setattr(SessionCall, "run", counted)


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    yield Served(monkeypatch)


async def open_session(http: httpx2.AsyncClient, version: str = VERSION) -> dict[str, str]:
    initialize = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    opened = await http.post("/mcp", json=initialize, headers=MCP_HEADERS)
    assert opened.status_code == 200, opened.text
    session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": version}
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await http.post("/mcp", json=initialized, headers={**MCP_HEADERS, **session})).status_code == 202
    return session


def answer_of(response: httpx2.Response, session_id: str) -> dict[str, Any]:
    kept = {k: v for k, v in response.headers.items() if k not in ("date", "x-request-id")}
    if kept.get("mcp-session-id") == session_id:
        kept["mcp-session-id"] = "<session>"
    return {"status": response.status_code, "headers": kept, "body": response.text}


def tool_call(name: str, arguments: dict[str, Any], request_id: Any = 5, meta: dict[str, Any] | None = None) -> Any:
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if meta is not None:
        params["_meta"] = meta
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


async def in_session(
    gateway: Gateway, body: Any, *, key: str = FULL_KEY, version: str = VERSION, **head: str
) -> tuple[dict[str, Any], str]:
    """`body` POSTed in a fresh session: the answer, and the audit request id it was sent with."""
    request_id = f"session-fast-{next(_ids)}"
    async with gateway.http(key) as http:
        session = await open_session(http, version)
        response = await http.post(
            "/mcp", content=json.dumps(body), headers={**MCP_HEADERS, **session, "x-request-id": request_id, **head}
        )
        return answer_of(response, session["mcp-session-id"]), request_id


async def both_ways(
    gateway: Gateway, served: Served, send: Callable[[], Awaitable[Any]], *, taken: bool = True
) -> tuple[Any, Any]:
    set_fast(gateway, False)
    try:
        before = served.fast
        off = await send()
        assert served.fast == before
    finally:
        set_fast(gateway, True)
    before = served.fast
    on = await send()
    assert served.fast - before == (1 if taken else 0)
    return off, on


async def same(
    gateway: Gateway, served: Served, body: Any, *, audited: bool = True, taken: bool = True, **kwargs: Any
) -> dict[str, Any]:
    off, on = await both_ways(gateway, served, lambda: in_session(gateway, body, **kwargs), taken=taken)
    assert on[0] == off[0]
    if audited:
        assert await audit_of(gateway, on[1]) == await audit_of(gateway, off[1])
    answer: dict[str, Any] = on[0]
    return answer


def events_of(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in answer["body"].splitlines() if line.startswith("data: {")]


async def test_a_session_call_is_answered_byte_for_byte_as_the_sdk_answers_it(gateway: Gateway, served: Served) -> None:
    answer = await same(gateway, served, tool_call("fx__add", {"a": 2, "b": 3}))
    assert answer["status"] == 200 and answer["headers"]["content-type"] == "text/event-stream"
    assert answer["headers"]["mcp-session-id"] == "<session>"
    # Primed (an id, no data, the retry hint), then the response numbered after it.
    assert answer["body"].startswith("id: 3\r\ndata: \r\nretry: 500\r\n\r\nid: 4\r\nevent: message\r\ndata: ")
    assert events_of(answer)[-1]["result"]["structuredContent"] == {"result": 5}


async def test_a_session_call_s_answer_is_encoded_and_validated_once(
    gateway: Gateway, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[Any] = []
    dump, write = session_call.message_json, session_call.response_json

    def counted(message: Any) -> str:
        encoded.append(message.id)
        return dump(message)

    def written(request_id: Any, result: Any) -> str:
        encoded.append(request_id)
        return write(request_id, result)

    serialize = types.methods.serialize_server_result
    serialized: list[str] = []

    def recorded(method: str, *args: Any, **kwargs: Any) -> Any:
        serialized.append(method)
        return serialize(method, *args, **kwargs)

    assert plain_wire(VERSION, types.CallToolResult(content=[])) is not None  # the layout learnt (from a probe)
    monkeypatch.setattr(session_call, "message_json", counted)
    monkeypatch.setattr(session_call, "response_json", written)
    built: list[Any] = []
    monkeypatch.setattr(session_call, "JSONRPCResponse", lambda **fields: built.append(fields))
    monkeypatch.setattr(types.methods, "serialize_server_result", recorded)
    answer, _ = await in_session(gateway, tool_call("fx__add", {"a": 2, "b": 3}, request_id=21))
    assert served.fast == 1 and events_of(answer)[-1]["result"]["structuredContent"] == {"result": 5}
    assert encoded == [21] and not built  # for the event store and the event both, without a response model
    assert "initialize" in serialized and "tools/call" not in serialized  # validated by the hub's client only


async def test_tool_errors_unknown_tools_and_bad_params_are_the_same(gateway: Gateway, served: Served) -> None:
    await same(gateway, served, tool_call("fx__fail", {}))
    unknown = await same(gateway, served, tool_call("fx__nope", {}))
    assert events_of(unknown)[-1]["error"]["code"] == types.INVALID_PARAMS
    denied = await same(gateway, served, tool_call("fx__fail", {}), key=LIMITED_KEY)
    assert events_of(denied)[-1]["error"] == events_of(unknown)[-1]["error"] | {"message": "Unknown tool: fx__fail"}
    bad = {"jsonrpc": "2.0", "id": "x", "method": "tools/call", "params": {"arguments": {}}}
    assert events_of(await same(gateway, served, bad, audited=False))[-1]["error"]["code"] == types.INVALID_PARAMS


async def test_tools_list_and_older_protocol_versions_are_the_same(gateway: Gateway, served: Served) -> None:
    listing = {"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": {}}
    answer = await same(gateway, served, listing, audited=False)
    assert events_of(answer)[-1]["result"]["tools"]
    # A 2025-06-18 client gets no priming event (it could not parse one).
    old = await same(gateway, served, tool_call("fx__add", {"a": 1, "b": 1}), version="2025-06-18")
    assert old["body"].startswith("id: 2\r\nevent: message\r\n")


async def test_progress_rides_the_call_s_stream_in_order(gateway: Gateway, served: Served) -> None:
    answer = await same(gateway, served, tool_call("fx__progress", {"steps": 3}, meta={"progressToken": "p"}))
    events = events_of(answer)
    assert [event.get("method") for event in events] == ["notifications/progress"] * 3 + [None]
    assert events[-1]["result"]["content"][0]["text"] == "done after 3 steps"


async def test_what_the_fast_path_does_not_take_stays_the_sdk_s(gateway: Gateway, served: Served) -> None:
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    await same(gateway, served, ping, audited=False, taken=False)
    batch = [tool_call("fx__add", {"a": 1, "b": 2})]
    await same(gateway, served, batch, audited=False, taken=False)
    await same(gateway, served, tool_call("fx__add", {"a": 1, "b": 2}), audited=False, taken=False, accept="text/plain")


async def test_unknown_and_foreign_sessions_get_the_sdks_404(gateway: Gateway, served: Served) -> None:
    async with gateway.http(FULL_KEY) as http:
        session = await open_session(http)
    async with gateway.http(LIMITED_KEY) as other:
        for head in ({"mcp-session-id": "nope"}, session):
            before = served.fast
            response = await other.post(
                "/mcp", json=tool_call("fx__add", {"a": 1, "b": 2}), headers={**MCP_HEADERS, **head}
            )
            assert response.status_code == 404 and served.fast == before


async def test_a_cancelled_call_is_answered_request_cancelled_and_audited(
    gateway: Gateway, served: Served, tmp_path: Any
) -> None:
    marker = tmp_path / "marker"
    async with gateway.http(FULL_KEY) as http, anyio.create_task_group() as tg:
        session = await open_session(http)
        answers: list[dict[str, Any]] = []

        async def slow_call() -> None:
            body = tool_call("fx__slow", {"seconds": 60, "marker": str(marker)}, request_id="slow-1")
            response = await http.post("/mcp", json=body, headers={**MCP_HEADERS, **session, "x-request-id": "cx-1"})
            answers.append(answer_of(response, session["mcp-session-id"]))

        tg.start_soon(slow_call)
        with anyio.fail_after(15):
            while not marker.exists():
                await anyio.sleep(0.02)
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "slow-1"}}
        assert (await http.post("/mcp", json=cancel, headers={**MCP_HEADERS, **session})).status_code == 202
    assert served.fast == 1
    assert events_of(answers[0])[-1] == {
        "jsonrpc": "2.0",
        "id": "slow-1",
        "error": {"code": REQUEST_CANCELLED, "message": "Request cancelled"},
    }
    with anyio.fail_after(15):
        while marker.read_text() != "cancelled":
            await anyio.sleep(0.02)
    rows = [row for row in await gateway.audit(target="fx/slow") if row["request_id"] == "cx-1"]
    assert [row["details"]["outcome"] for row in rows] == ["cancelled"]


async def test_a_fast_path_answer_is_replayed_on_resumption(gateway: Gateway, served: Served) -> None:
    async with gateway.http(FULL_KEY) as http:
        session = await open_session(http)
        body = tool_call("fx__add", {"a": 4, "b": 5}, request_id=11)
        answer = answer_of(await http.post("/mcp", json=body, headers={**MCP_HEADERS, **session}), "")
        assert served.fast == 1
        priming = answer["body"].split("\r\n")[0].removeprefix("id: ")
        headers = {"accept": "text/event-stream", "last-event-id": priming, **session}
        with anyio.fail_after(15):
            async with http.stream("GET", "/mcp", headers=headers) as replay:
                async for line in replay.aiter_lines():
                    if line.startswith("data: {"):
                        assert json.loads(line[6:])["result"]["structuredContent"] == {"result": 9}
                        break


async def test_a_session_that_ends_ends_its_fast_path_calls(gateway: Gateway, served: Served, tmp_path: Any) -> None:
    marker = tmp_path / "marker"
    async with gateway.http(FULL_KEY) as http, anyio.create_task_group() as tg:
        session = await open_session(http)
        bodies: list[str] = []

        async def slow_call() -> None:
            body = tool_call("fx__slow", {"seconds": 60, "marker": str(marker)})
            response = await http.post("/mcp", json=body, headers={**MCP_HEADERS, **session})
            bodies.append(response.text)

        tg.start_soon(slow_call)
        with anyio.fail_after(15):
            while not marker.exists():
                await anyio.sleep(0.02)
        manager = gateway.hub._manager
        assert manager is not None
        await manager.end_here(session["mcp-session-id"])
    assert served.fast == 1 and events_of({"body": bodies[0]}) == []
    with anyio.fail_after(15):
        while marker.read_text() != "cancelled":
            await anyio.sleep(0.02)


def test_the_headers_are_the_sdks_event_source_response_s() -> None:
    from sse_starlette import EventSourceResponse

    async def nothing() -> AsyncIterator[bytes]:
        yield b""

    sdk = EventSourceResponse(
        content=nothing(),
        headers={
            "Cache-Control": "no-cache, no-transform",
            "Connection": "keep-alive",
            "Content-Type": "text/event-stream",
            "mcp-session-id": "abc",
        },
    )
    assert sdk.raw_headers == sse_headers("abc")
    assert session_call.priming_bytes("7", 250) == b"id: 7\r\ndata: \r\nretry: 250\r\n\r\n"


async def test_a_long_call_gets_keep_alive_comments(
    gateway: Gateway, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_call, "PING_INTERVAL", 0.2)
    async with gateway.http(FULL_KEY) as http:
        session = await open_session(http)
        body = tool_call("fx__slow", {"seconds": 1})
        response = await http.post("/mcp", json=body, headers={**MCP_HEADERS, **session})
    assert served.fast == 1
    lines = response.text.split("\r\n")
    assert lines[:3] == [lines[0], "data: ", "retry: 500"] and lines[0].startswith("id: ")
    pings = [line for line in lines if line.startswith(": ping - ")]
    assert pings and lines.index(pings[0]) > 3  # after the priming event, before the answer
    assert events_of({"body": response.text})[-1]["result"]["content"][0]["text"]


async def test_fast_path_off_leaves_sessions_to_the_sdk(tmp_path: Any) -> None:
    settings = hub_settings(tmp_path, {"fx": fixture_server(timeout=30)}, mcp={"fast_path": False})
    async with serving(settings) as gateway, gateway.http(FULL_KEY) as http:
        manager = gateway.hub._manager
        assert manager is not None and manager.calls is None
        session = await open_session(http)
        response = await http.post(
            "/mcp", json=tool_call("fx__add", {"a": 1, "b": 2}), headers={**MCP_HEADERS, **session}
        )
        assert events_of({"body": response.text})[-1]["result"]["structuredContent"] == {"result": 3}
