"""2025-era sessions across two replicas: two full gateways in this process on one private Redis and one store.

The client is the SDK's `Client` in legacy mode over an HTTP transport that picks, per request, which replica gets
it (round-robin, or as each test routes it), as a load balancer without stickiness would. Upstreams: the asking
server (`tests/servers/asking_server.py`) over Streamable HTTP, one process both replicas connect to (`askweb`), and
over stdio, a process per replica (`ask`); the conformance server (`poll`), which closes a call's stream mid-call.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext, IncomingMessage
from mcp.client.streamable_http import streamable_http_client

from tests.mcp_hub.conftest import (
    FULL_KEY,
    LIMITED_KEY,
    Gateway,
    Restartable,
    fixture_over_http,
    hub_settings,
    serving,
)
from tests.mcp_hub.test_resume import call, conformance_server, cut_off_then_resumed, open_session, resume
from tests.toolpolicy.limits_support import RedisServer

pytestmark = pytest.mark.anyio

ASKING = Path(__file__).parents[2] / "servers" / "asking_server.py"
A, B = 0, 1

Pick = Callable[[httpx2.Request], int]


def round_robin() -> Pick:
    turn = iter(range(1_000_000))
    return lambda request: next(turn) % 2


class Balancer(httpx2.AsyncBaseTransport):
    """Sends each request to the replica `pick` names; `sent` records (method, replica, JSON-RPC method or kind)."""

    def __init__(self, gateways: list[Gateway], pick: Pick) -> None:
        self.ports = [httpx2.URL(gateway.base_url).port for gateway in gateways]
        self.pick = pick
        self.inner = httpx2.AsyncHTTPTransport()
        self.sent: list[tuple[str, int, str]] = []
        self.session_id: str | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        replica = self.pick(request)
        self.sent.append((request.method, replica, _kind(request)))
        request.url = request.url.copy_with(port=self.ports[replica])
        response = await self.inner.handle_async_request(request)
        self.session_id = response.headers.get("mcp-session-id", self.session_id)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def _kind(request: httpx2.Request) -> str:
    if request.method != "POST":
        return request.method
    body = json.loads(request.content)
    return str(body.get("method", "answer"))


def by_kind(default: int, **kinds: int) -> Pick:
    """Route each request by its JSON-RPC method (`answer` for a client's answer, `GET`, `DELETE`)."""
    return lambda request: kinds.get(_kind(request).replace("/", "_"), default)


@pytest.fixture(scope="module")
async def replicas(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[list[Gateway]]:
    tmp_path = tmp_path_factory.mktemp("replicas")
    redis = RedisServer(tmp_path)
    redis.start()
    async with fixture_over_http(script=ASKING) as url, conformance_server() as polling:
        servers = {
            "askweb": {"url": url, "protocol": "legacy"},
            "ask": {"command": sys.executable, "args": [str(ASKING)], "protocol": "legacy"},
            "poll": {"url": polling, "protocol": "legacy"},
        }
        settings = hub_settings(tmp_path, servers, redis=redis.url)
        try:
            async with serving(settings) as one, serving(settings) as two:
                yield [one, two]
        finally:
            redis.stop()


@asynccontextmanager
async def client(
    gateways: list[Gateway],
    pick: Pick,
    *,
    key: str = FULL_KEY,
    server: str = "askweb",
    mode: str = "legacy",
    **kwargs: Any,
) -> AsyncIterator[tuple[Client, Balancer]]:
    balancer = Balancer(gateways, pick)
    http = httpx2.AsyncClient(transport=balancer, headers={"authorization": f"Bearer {key}"}, timeout=30)
    transport = streamable_http_client(gateways[A].mcp_url(server), http_client=http)
    async with http, Client(transport, mode=mode, cache=None, **kwargs) as session:
        yield session, balancer


def text(result: types.CallToolResult) -> str:
    return result.content[0].text  # type: ignore[union-attr]


def session_id(balancer: Balancer) -> str:
    assert balancer.session_id is not None
    return balancer.session_id


def serving_it(gateway: Gateway, sid: str) -> bool:
    """Whether the replica serves this session now."""
    assert gateway.hub.shared is not None
    return sid in gateway.hub.shared.local


async def test_a_session_opened_on_one_replica_is_served_by_the_other(replicas: list[Gateway]) -> None:
    async with client(replicas, by_kind(B, initialize=A)) as (session, balancer):
        with anyio.fail_after(20):
            tools = await session.list_tools()
            assert "chatty" in {tool.name for tool in tools.tools}
            assert text(await session.call_tool("chatty", {"count": 1})) == "done"
        assert ("POST", A, "initialize") in balancer.sent and ("POST", B, "tools/call") in balancer.sent
        sid = session_id(balancer)
        assert serving_it(replicas[A], sid) and serving_it(replicas[B], sid)


async def test_every_request_alternating_between_replicas_works(replicas: list[Gateway]) -> None:
    async with client(replicas, round_robin(), server="ask") as (session, balancer):
        with anyio.fail_after(30):
            for count in range(6):
                assert text(await session.call_tool("chatty", {"count": count})) == "done"
            await session.list_tools()
        assert {replica for _, replica, _ in balancer.sent} == {A, B}


async def sample(ctx: ClientRequestContext, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    asked = params.messages[0].content
    assert isinstance(asked, types.TextContent)
    reply = types.TextContent(type="text", text=f"the model says hi to {asked.text}")
    return types.CreateMessageResult(role="assistant", content=reply, model="test-model")


@pytest.mark.parametrize("server", ["askweb", "ask"])
async def test_a_sampling_answer_posted_to_the_other_replica_reaches_the_waiting_call(
    replicas: list[Gateway], server: str
) -> None:
    pick = by_kind(B, initialize=A, answer=A)
    async with client(replicas, pick, server=server, sampling_callback=sample) as (session, balancer):
        with anyio.fail_after(20):
            result = await session.call_tool("ask_llm", {"prompt": "Ada"})
    assert not result.is_error, text(result)
    assert json.loads(text(result))["content"]["text"] == "the model says hi to Ada"
    assert ("POST", A, "answer") in balancer.sent and ("POST", B, "tools/call") in balancer.sent


async def test_an_elicitation_answer_posted_to_the_other_replica_reaches_the_waiting_call(
    replicas: list[Gateway],
) -> None:
    async def elicit(ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"name": "Ada", "age": 36})

    pick = by_kind(A, tools_call=B)  # the answer goes to A
    async with client(replicas, pick, elicitation_callback=elicit) as (session, balancer):
        with anyio.fail_after(20):
            result = await session.call_tool("ask_user", {})
    assert not result.is_error, text(result)
    assert json.loads(text(result))["action"] == "accept"
    assert ("POST", A, "answer") in balancer.sent


async def test_a_log_level_set_on_one_replica_applies_on_the_other(replicas: list[Gateway]) -> None:
    got: list[types.LoggingMessageNotificationParams] = []

    async def collect(params: types.LoggingMessageNotificationParams) -> None:
        got.append(params)

    pick = by_kind(B, initialize=A, logging_setLevel=A)
    async with client(replicas, pick, logging_callback=collect) as (session, _):
        with anyio.fail_after(20):
            await session.call_tool("chatty", {"count": 1})  # B serves the session from now on, at every level
            assert [p.level for p in got] == ["debug", "info"]
            request = types.SetLevelRequest(params=types.SetLevelRequestParams(level="info"))
            assert await session.session.send_request(request, types.EmptyResult) == types.EmptyResult()
            got.clear()
            await session.call_tool("chatty", {"count": 2})
    assert [p.data for p in got] == ["step 0", "step 1"]


async def test_updates_caused_on_one_replica_reach_the_get_stream_open_on_the_other(
    replicas: list[Gateway],
) -> None:
    got: list[str] = []

    async def handle(message: IncomingMessage) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            got.append(message.params.uri)

    pick = by_kind(B, initialize=A, GET=A)
    async with client(replicas, pick, message_handler=handle) as (session, balancer):
        with anyio.fail_after(20):
            await session.session.send_request(
                types.SubscribeRequest(params=types.SubscribeRequestParams(uri="note://a")), types.EmptyResult
            )
            while not any(method == "GET" for method, _, _ in balancer.sent):
                await anyio.sleep(0.02)
            await session.call_tool("touch", {"uri": "note://a"})
            while not got:
                await anyio.sleep(0.02)
    assert got == ["note://a"]
    assert ("GET", A, "GET") in balancer.sent
    assert not any(replica == A for method, replica, _ in balancer.sent if method == "POST" and _ != "initialize")


async def test_a_session_id_is_refused_with_another_key(replicas: list[Gateway]) -> None:
    async with client(replicas, by_kind(A)) as (session, balancer):
        await session.list_tools()
        sid = session_id(balancer)
        async with replicas[B].http(LIMITED_KEY, **{"mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}) as h:
            response = await h.post(
                "/mcp/askweb",
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={"accept": "application/json, text/event-stream"},
            )
        assert response.status_code == 404
        assert not serving_it(replicas[B], sid)
        await session.list_tools()  # still the owner's


async def test_a_delete_on_one_replica_ends_the_session_on_the_other(replicas: list[Gateway]) -> None:
    headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}
    async with client(replicas, by_kind(B, initialize=A, GET=A, DELETE=B)) as (session, balancer):
        await session.list_tools()
        sid = session_id(balancer)
        assert serving_it(replicas[A], sid) and serving_it(replicas[B], sid)
    assert ("DELETE", B, "DELETE") in balancer.sent
    with anyio.fail_after(10):
        while serving_it(replicas[A], sid) or serving_it(replicas[B], sid):
            await anyio.sleep(0.02)
    for gateway in replicas:
        async with gateway.http(FULL_KEY, **{"mcp-session-id": sid}) as h:
            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
            assert (await h.post("/mcp/askweb", json=body, headers=headers)).status_code == 404


async def test_a_stream_resumes_on_the_other_replica_from_the_shared_events(replicas: list[Gateway]) -> None:
    params = {"name": "askweb__busy", "_meta": {"progressToken": "t"}}
    request = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}
    async with replicas[A].http(FULL_KEY) as on_a, replicas[B].http(FULL_KEY) as on_b:
        session = await open_session(on_a)
        events = await call(on_b, session, request)
        priming = events[0].id
        assert priming is not None and events[0].data == ""
        replayed = await resume(on_a, session, priming, 7)
        assert sorted(m["method"] for m in replayed[:-1]) == ["notifications/message", "notifications/progress"]
        assert replayed[-1]["result"]["content"][0]["text"] == "busy done"
        await on_b.delete("/mcp", headers=session)


async def test_a_call_whose_stream_closed_finishes_on_the_stream_resumed_on_the_other_replica(
    replicas: list[Gateway],
) -> None:
    async with replicas[A].http(FULL_KEY) as on_a, replicas[B].http(FULL_KEY) as on_b:
        session = await open_session(on_a)
        await cut_off_then_resumed(on_b, on_a, session)  # called on B, resumed on A
        await on_a.delete("/mcp", headers=session)


async def test_a_subscription_outlives_the_copy_of_the_session_that_held_it(replicas: list[Gateway]) -> None:
    """B subscribed upstream for the client; B's copy of the session ends (idle there): A holds it from then on."""
    got: list[str] = []

    async def handle(message: IncomingMessage) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            got.append(message.params.uri)

    pick = by_kind(B, initialize=A, GET=A, tools_call=A)
    async with client(replicas, pick, message_handler=handle) as (session, balancer):
        with anyio.fail_after(20):
            await session.session.send_request(
                types.SubscribeRequest(params=types.SubscribeRequestParams(uri="note://b")), types.EmptyResult
            )
            sid = session_id(balancer)
            held_on = [gateway.hub.relay.shared.subscriptions.holders("askweb", "note://b") for gateway in replicas]
            assert held_on == [0, 1]
            manager = replicas[B].hub._manager
            assert manager is not None
            await manager.end_here(sid)
            while replicas[A].hub.relay.shared.subscriptions.holders("askweb", "note://b") == 0:
                await anyio.sleep(0.02)
            assert replicas[B].hub.relay.shared.subscriptions.holders("askweb", "note://b") == 0
            await session.call_tool("touch", {"uri": "note://b"})
            while not got:
                await anyio.sleep(0.02)
    assert got == ["note://b"]


@asynccontextmanager
async def one_and_a_stoppable_replica(tmp_path: Path) -> AsyncIterator[tuple[Gateway, Gateway, Restartable]]:
    """Two replicas on a private Redis serving `askweb`, the second one a test may stop (`Restartable.stop`)."""
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        async with fixture_over_http(script=ASKING) as url:
            settings = hub_settings(tmp_path, {"askweb": {"url": url, "protocol": "legacy"}}, redis=redis.url)
            async with serving(settings) as one, anyio.create_task_group() as tg:
                two_running = Restartable(settings, tg)
                try:
                    yield one, await two_running.start(), two_running
                finally:
                    await two_running.stop()  # if the test did not (stopping twice is stopping once)
    finally:
        redis.stop()


async def test_a_replica_that_goes_takes_only_its_streams_with_it(tmp_path: Path) -> None:
    """The GET stream and the subscription were on B; B stops: the client's reconnected stream on A gets the updates
    of the subscription A took over from B."""
    got: list[str] = []

    async def handle(message: IncomingMessage) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            got.append(message.params.uri)

    routes = {"GET": B, "resources_subscribe": B}
    async with one_and_a_stoppable_replica(tmp_path) as (one, two, two_running):
        pick: Pick = lambda request: routes.get(_kind(request).replace("/", "_"), A)  # noqa: E731
        async with client([one, two], pick, message_handler=handle) as (session, balancer):
            with anyio.fail_after(30):
                await session.session.send_request(
                    types.SubscribeRequest(params=types.SubscribeRequestParams(uri="note://a")),
                    types.EmptyResult,
                )
                while not serving_it(two, session_id(balancer)):
                    await anyio.sleep(0.02)
                assert two.hub.relay.shared.subscriptions.holders("askweb", "note://a") == 1
                routes.clear()
                await two_running.stop()  # B goes, and its GET stream with it
                while one.hub.relay.shared.subscriptions.holders("askweb", "note://a") == 0:
                    await anyio.sleep(0.05)
                while not any(method == "GET" and replica == A for method, replica, _ in balancer.sent):
                    await anyio.sleep(0.05)
                while not got:
                    await session.call_tool("touch", {"uri": "note://a"})
                    await anyio.sleep(0.2)
                assert (await session.list_tools()).tools
    assert set(got) == {"note://a"}


async def test_a_subscription_is_held_once_wherever_the_client_subscribes_and_unsubscribes(
    replicas: list[Gateway],
) -> None:
    routes = {"resources_subscribe": A}

    def held() -> list[int]:
        return [gateway.hub.relay.shared.subscriptions.holders("askweb", "note://c") for gateway in replicas]

    async def until(expected: list[int]) -> None:
        while held() != expected:
            await anyio.sleep(0.02)

    async def send(request: types.SubscribeRequest | types.UnsubscribeRequest) -> None:
        await session.session.send_request(request, types.EmptyResult)

    subscribe = types.SubscribeRequest(params=types.SubscribeRequestParams(uri="note://c"))
    async with client(replicas, lambda request: routes.get(_kind(request).replace("/", "_"), B)) as (session, _):
        with anyio.fail_after(20):
            await send(subscribe)
            await until([1, 0])
            routes["resources_subscribe"] = B  # subscribing again elsewhere moves the hold there
            await send(subscribe)
            await until([0, 1])
            routes["resources_unsubscribe"] = A  # unsubscribing where it is not held ends it where it is
            await send(types.UnsubscribeRequest(params=types.UnsubscribeRequestParams(uri="note://c")))
            await until([0, 0])


@pytest.mark.parametrize("version", ["2025-03-26", "2025-06-18", "2025-11-25"])
async def test_each_2025_era_version_is_served_on_the_other_replica_as_negotiated(
    replicas: list[Gateway], version: str
) -> None:
    params = {"protocolVersion": version, "capabilities": {"sampling": {}}, "clientInfo": {"name": "t", "version": "1"}}
    headers = {"accept": "application/json, text/event-stream"}
    async with replicas[A].http(FULL_KEY) as on_a, replicas[B].http(FULL_KEY) as on_b:
        opened = await on_a.post(
            "/mcp", json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}, headers=headers
        )
        assert opened.status_code == 200 and version in opened.text
        session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": version}
        request = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "askweb__seen_capabilities"}}
        events = await call(on_b, session, request)
        answer = json.loads(events[-1].data)
        assert json.loads(answer["result"]["content"][0]["text"]) is not None
        assert replicas[B].hub.shared is not None
        connection = replicas[B].hub.shared.local[session["mcp-session-id"]].connection
        assert connection.protocol_version == version
        assert connection.client_params is not None and connection.client_params.capabilities.sampling is not None
        assert (await on_b.delete("/mcp", headers=session)).status_code == 200


async def test_without_redis_a_session_stays_served_where_it_is_and_elsewhere_gets_503(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)
    redis.start()
    headers = {"accept": "application/json, text/event-stream"}
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    try:
        async with fixture_over_http(script=ASKING) as url:
            settings = hub_settings(tmp_path, {"askweb": {"url": url, "protocol": "legacy"}}, redis=redis.url)
            async with serving(settings) as one, serving(settings) as two:
                async with one.http(FULL_KEY) as on_a, two.http(FULL_KEY) as on_b:
                    session = await open_session(on_a)
                    redis.stop()
                    refused = await on_b.post("/mcp", json=listing, headers={**headers, **session})
                    assert refused.status_code == 503
                    assert "session store is unreachable" in refused.json()["error"]["message"]
                    served = await call(on_a, session, listing)
                    assert json.loads(served[-1].data)["result"]["tools"]
    finally:
        redis.stop()
