"""The server-to-client half of MCP through the hub: sampling, elicitation, roots, logs, resource subscriptions.

The upstream is `tests/servers/asking_server.py` (2025-11-25 era), over stdio (`ask`) and Streamable HTTP (`askweb`);
clients are the SDK's `Client` with its callbacks, at `/mcp/<server>` and `/mcp`, or raw HTTP where a client must
declare less than the SDK's `Client` can.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext, IncomingMessage

from tests.mcp_hub.conftest import FULL_KEY, Gateway, fixture_over_http, hub_settings, serving
from tests.servers.asking_server import REQUESTED_SCHEMA
from toolpolicy.store.audit_log import AuditQuery

pytestmark = pytest.mark.anyio

ASKING = Path(__file__).parents[1] / "servers" / "asking_server.py"
SERVERS = ["ask", "askweb"]
"""The same asking server over stdio and over Streamable HTTP."""
LEGACY = "2025-11-25"


def asking_server(**extra: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": [str(ASKING)], "protocol": "legacy", **extra}


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    async with fixture_over_http(script=ASKING) as url:
        servers = {
            "ask": asking_server(),
            "askweb": {"url": url, "protocol": "legacy"},
            "brief": asking_server(timeout=1, elicitation_timeout=1),
            "ask26": {**asking_server(), "protocol": "auto"},  # the hub speaks 2026-07-28 to this one
        }
        async with serving(hub_settings(tmp_path_factory.mktemp("relay"), servers)) as started:
            yield started


def text(result: types.CallToolResult) -> str:
    return result.content[0].text  # type: ignore[union-attr]


async def sample(ctx: ClientRequestContext, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    asked = params.messages[0].content
    assert isinstance(asked, types.TextContent)
    reply = types.TextContent(type="text", text=f"the model says hi to {asked.text}")
    return types.CreateMessageResult(role="assistant", content=reply, model="test-model")


async def list_roots(ctx: ClientRequestContext) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri="file:///work/project", name="project")])


# Sampling


@pytest.mark.parametrize("server", SERVERS)
async def test_sampling_goes_to_the_calling_client_and_its_answer_back_to_the_tool(
    gateway: Gateway, server: str
) -> None:
    async with gateway.client(FULL_KEY, "legacy", server=server, sampling_callback=sample) as client:
        with anyio.fail_after(20):
            result = await client.call_tool("ask_llm", {"prompt": "Ada"})
    assert not result.is_error, text(result)
    answer = json.loads(text(result))
    assert answer["content"] == {"type": "text", "text": "the model says hi to Ada"}
    assert answer["model"] == "test-model"


async def test_sampling_through_the_aggregate_endpoint_is_audited_under_the_tool_call(gateway: Gateway) -> None:
    headers = {"x-request-id": "relay-sampling-1"}
    async with gateway.client(FULL_KEY, "legacy", sampling_callback=sample, headers=headers) as client:
        with anyio.fail_after(20):
            result = await client.call_tool("ask__ask_llm", {"prompt": "Bob"})
    assert not result.is_error and "hi to Bob" in text(result)
    await gateway.governance.audit.flush()
    rows, _ = await gateway.governance.audit_log.query(AuditQuery(kind="sampling", target="ask/ask_llm"))
    mine = [row for row in rows if row["request_id"] == "relay-sampling-1"]
    assert len(mine) == 1
    record = mine[0]
    assert record["decision"] == "allow" and record["key_name"] == "full"
    assert record["details"]["tool_call_request_id"] == "relay-sampling-1"
    assert record["details"]["outcome"] == "ok"
    assert "request" not in record["details"] and "response" not in record["details"]  # record_arguments is off
    calls = await gateway.audit(target="ask/ask_llm")
    assert "relay-sampling-1" in {row["request_id"] for row in calls}


@pytest.mark.parametrize("server", SERVERS)
async def test_a_client_that_did_not_declare_sampling_is_not_asked_and_the_call_is_an_error(
    gateway: Gateway, server: str
) -> None:
    async with gateway.client(FULL_KEY, "legacy", server=server) as client:
        with anyio.fail_after(20):
            result = await client.call_tool("ask_llm", {"prompt": "Ada"})
    assert result.is_error
    assert "client answered error -32601" in text(result)


async def test_a_2026_upstreams_input_round_is_answered_by_the_calling_2025_client(gateway: Gateway) -> None:
    assert gateway.hub.upstreams["ask26"].health.protocol_version == "2026-07-28"
    async with gateway.client(FULL_KEY, "legacy", server="ask26", sampling_callback=sample) as client:
        with anyio.fail_after(20):
            result = await client.call_tool("dual_llm", {"prompt": "Eve"})
    assert not result.is_error, text(result)
    assert json.loads(text(result))["content"] == {"type": "text", "text": "the model says hi to Eve"}


async def test_on_a_stdio_server_busy_with_two_clients_a_request_goes_to_neither(gateway: Gateway) -> None:
    asked_first: list[str] = []
    answering = anyio.Event()
    release = anyio.Event()

    async def first_samples(ctx: ClientRequestContext, params: types.CreateMessageRequestParams) -> Any:
        asked_first.append("sampling")
        return await sample(ctx, params)

    async def first_elicits(ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        answering.set()
        await release.wait()
        return types.ElicitResult(action="cancel")

    first_result: list[types.CallToolResult] = []
    async with (
        gateway.client(
            FULL_KEY, "legacy", server="ask", sampling_callback=first_samples, elicitation_callback=first_elicits
        ) as first,
        gateway.client(FULL_KEY, "legacy", server="ask", sampling_callback=sample) as second,
    ):

        async def first_call() -> None:
            first_result.append(await first.call_tool("ask_user", {}))

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(first_call)
                await answering.wait()  # the first client's call is in flight, a person answering it
                result = await second.call_tool("ask_llm", {"prompt": "Ada"})
                release.set()
    # The stdio wire does not say whose call the sampling request belongs to: nobody is asked.
    assert result.is_error and "client answered error -32603" in text(result)
    assert asked_first == []
    assert json.loads(text(first_result[0])) == {"action": "cancel"}


# Elicitation


@pytest.mark.parametrize("server", SERVERS)
async def test_an_elicitation_reaches_the_client_with_its_schema_unchanged(gateway: Gateway, server: str) -> None:
    seen: list[types.ElicitRequestParams] = []

    async def elicit(ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        seen.append(params)
        return types.ElicitResult(action="accept", content={"name": "Grace", "toppings": ["ham"]})

    async with gateway.client(FULL_KEY, "legacy", server=server, elicitation_callback=elicit) as client:
        with anyio.fail_after(20):
            result = await client.call_tool("ask_user", {})
    assert not result.is_error, text(result)
    assert json.loads(text(result)) == {"action": "accept", "content": {"name": "Grace", "toppings": ["ham"]}}
    [params] = seen
    assert isinstance(params, types.ElicitRequestFormParams)
    assert params.message == "Who are you?"
    # Byte for byte: same keys in the same order, defaults, enumNames, oneOf titles and all.
    assert json.dumps(params.requested_schema) == json.dumps(REQUESTED_SCHEMA)


@pytest.mark.parametrize("server", SERVERS)
async def test_a_url_elicitation_reaches_the_client(gateway: Gateway, server: str) -> None:
    seen: list[types.ElicitRequestParams] = []

    async def elicit(ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        seen.append(params)
        return types.ElicitResult(action="decline")

    async with gateway.client(FULL_KEY, "legacy", server=server, elicitation_callback=elicit) as client:
        with anyio.fail_after(20):
            result = await client.call_tool("ask_url", {})
    assert json.loads(text(result)) == {"action": "decline"}
    [params] = seen
    assert isinstance(params, types.ElicitRequestURLParams)
    assert (params.url, params.elicitation_id) == ("https://example.com/login", "login-1")


async def raw_call(gateway: Gateway, server: str, capabilities: dict[str, Any], tool: str) -> dict[str, Any]:
    """A 2025-11-25 session declaring exactly `capabilities`, one tool call; the call's JSON-RPC response."""
    url = f"/mcp/{server}"
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    init_params = {
        "protocolVersion": LEGACY,
        "capabilities": capabilities,
        "clientInfo": {"name": "raw", "version": "0"},
    }
    async with gateway.http(FULL_KEY) as http:
        opened = await http.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init_params}, headers=headers
        )
        headers |= {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": LEGACY}
        await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": {}}}
        response = await http.post(url, json=call, headers=headers)
    # A priming event (SEP-1699) has an empty `data:`.
    lines = response.text.splitlines()
    messages = [json.loads(line[5:]) for line in lines if line.startswith("data:") and line[5:].strip()]
    [answer] = [message for message in messages if message.get("id") == 2]
    assert not [message for message in messages if "method" in message and "id" in message]  # nothing was asked
    return answer


@pytest.mark.parametrize(
    ("capabilities", "tool", "code"),
    [
        ({"elicitation": {}}, "ask_url", -32602),  # `{}` means form mode only
        ({"elicitation": {"form": {}}}, "ask_url", -32602),
        ({"elicitation": {"url": {}}}, "ask_user", -32602),
        ({}, "ask_user", -32602),
        ({"elicitation": {}}, "client_roots", -32601),
    ],
)
async def test_the_upstream_gets_the_standard_error_for_what_the_client_did_not_declare(
    gateway: Gateway, capabilities: dict[str, Any], tool: str, code: int
) -> None:
    with anyio.fail_after(20):
        answer = await raw_call(gateway, "ask", capabilities, tool)
    result = answer["result"]
    assert result["isError"] is True
    assert f"client answered error {code}" in result["content"][0]["text"]


async def test_an_elicitation_may_outlast_the_tools_own_timeout(gateway: Gateway) -> None:
    async def slow_person(ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        await anyio.sleep(1.5)  # longer than `brief`'s 1 s tool timeout, shorter than its elicitation_timeout
        return types.ElicitResult(action="cancel")

    settings = gateway.hub.upstreams["brief"].settings
    assert settings.timeout == 1 and settings.elicitation_timeout == 1
    # The person has 1 s per question here; this one answers within it only if the clocks are told apart.
    gateway.hub.upstreams["brief"].relay.asker.human_timeout = 3
    try:
        async with gateway.client(FULL_KEY, "legacy", server="brief", elicitation_callback=slow_person) as client:
            with anyio.fail_after(20):
                result = await client.call_tool("ask_user", {})
    finally:
        gateway.hub.upstreams["brief"].relay.asker.human_timeout = 1
    assert not result.is_error, text(result)
    assert json.loads(text(result)) == {"action": "cancel"}


async def test_an_unanswered_elicitation_ends_at_the_elicitation_timeout(gateway: Gateway) -> None:
    async def absent_person(ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        await anyio.sleep(30)
        return types.ElicitResult(action="cancel")

    async with gateway.client(FULL_KEY, "legacy", server="brief", elicitation_callback=absent_person) as client:
        with anyio.fail_after(20):
            result = await client.call_tool("ask_user", {})
    assert result.is_error
    assert f"client answered error {types.REQUEST_TIMEOUT}" in text(result)


# Roots


@pytest.mark.parametrize("server", SERVERS)
async def test_roots_are_listed_by_the_calling_client(gateway: Gateway, server: str) -> None:
    async with gateway.client(FULL_KEY, "legacy", server=server, list_roots_callback=list_roots) as client:
        with anyio.fail_after(20):
            result = await client.call_tool("client_roots", {})
    assert json.loads(text(result)) == {"roots": [{"uri": "file:///work/project", "name": "project"}]}


# Logging


def log_collector() -> tuple[list[types.LoggingMessageNotificationParams], Any]:
    got: list[types.LoggingMessageNotificationParams] = []

    async def collect(params: types.LoggingMessageNotificationParams) -> None:
        got.append(params)

    return got, collect


async def set_level(client: Client, level: types.LoggingLevel) -> types.EmptyResult:
    request = types.SetLevelRequest(params=types.SetLevelRequestParams(level=level))
    return await client.session.send_request(request, types.EmptyResult)


@pytest.mark.parametrize("server", SERVERS)
async def test_log_notices_of_a_call_reach_its_client_before_the_result_at_the_level_it_set(
    gateway: Gateway, server: str
) -> None:
    got, collect = log_collector()
    async with gateway.client(FULL_KEY, "legacy", server=server, logging_callback=collect) as client:
        with anyio.fail_after(20):
            assert text(await client.call_tool("chatty", {"count": 3})) == "done"
            assert [(p.level, p.data) for p in got] == [
                ("debug", "debug detail"),
                ("info", "step 0"),
                ("info", "step 1"),
                ("info", "step 2"),
            ]
            assert await set_level(client, "info") == types.EmptyResult()
            got.clear()
            await client.call_tool("chatty", {"count": 3})
            assert [p.data for p in got] == ["step 0", "step 1", "step 2"]
            state = json.loads(text(await client.call_tool("upstream_state", {})))
    assert state["levels"] == ["debug"]  # set low once by the hub, however its clients set theirs


@pytest.mark.parametrize("server", SERVERS)
async def test_a_2026_client_gets_the_log_notices_of_its_call_at_the_level_it_opted_in_to(
    gateway: Gateway, server: str
) -> None:
    got, collect = log_collector()
    async with gateway.client(FULL_KEY, "2026-07-28", server=server, logging_callback=collect, log_level="info") as c:
        with anyio.fail_after(20):
            assert text(await c.call_tool("chatty", {"count": 2})) == "done"
    assert [(p.level, p.data) for p in got] == [("info", "step 0"), ("info", "step 1")]


async def test_log_notices_go_to_the_calling_client_only(gateway: Gateway) -> None:
    first, collect_first = log_collector()
    second, collect_second = log_collector()
    async with (
        gateway.client(FULL_KEY, "legacy", server="askweb", logging_callback=collect_first) as one,
        gateway.client(FULL_KEY, "legacy", server="askweb", logging_callback=collect_second) as two,
    ):
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(one.call_tool, "chatty", {"count": 5})
                tg.start_soon(two.call_tool, "chatty", {"count": 2})
    assert [p.data for p in first if p.level == "info"] == [f"step {i}" for i in range(5)]
    assert [p.data for p in second if p.level == "info"] == [f"step {i}" for i in range(2)]


async def test_the_hub_advertises_logging_and_subscriptions_to_2025_clients(gateway: Gateway) -> None:
    async with gateway.client(FULL_KEY, "legacy", server="ask") as client:
        caps = client.server_capabilities
    assert caps.logging is not None
    assert caps.resources is not None and caps.resources.subscribe


# Resource subscriptions


def updates_collector() -> tuple[list[str], Any]:
    got: list[str] = []

    async def handle(message: IncomingMessage) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            got.append(message.params.uri)

    return got, handle


async def subscribe(client: Client, uri: str, *, on: bool = True) -> types.EmptyResult:
    request: types.SubscribeRequest | types.UnsubscribeRequest
    if on:
        request = types.SubscribeRequest(params=types.SubscribeRequestParams(uri=uri))
    else:
        request = types.UnsubscribeRequest(params=types.UnsubscribeRequestParams(uri=uri))
    return await client.session.send_request(request, types.EmptyResult)


async def upstream_subscribed(client: Client, tool: str = "upstream_state") -> list[str]:
    subscribed: list[str] = json.loads(text(await client.call_tool(tool, {})))["subscribed"]
    return subscribed


async def eventually(condition: Any) -> None:
    with anyio.fail_after(10):
        while not await condition():
            await anyio.sleep(0.05)


@pytest.mark.parametrize("server", SERVERS)
async def test_subscriptions_are_counted_per_uri_and_updates_reach_only_subscribers(
    gateway: Gateway, server: str
) -> None:
    one_got, one_handler = updates_collector()
    two_got, two_handler = updates_collector()
    async with (
        gateway.client(FULL_KEY, "legacy", server=server, message_handler=one_handler) as one,
        gateway.client(FULL_KEY, "legacy", server=server, message_handler=two_handler) as two,
    ):
        with anyio.fail_after(20):
            assert await subscribe(one, "note://a") == types.EmptyResult()
            await subscribe(two, "note://a")
            assert await upstream_subscribed(one) == ["note://a"]
            await subscribe(two, "note://a", on=False)
            assert await upstream_subscribed(one) == ["note://a"]  # `one` still wants it

            await two.call_tool("touch", {"uri": "note://a"})
            await eventually(lambda: _truthy(one_got))
            await two.call_tool("touch", {"uri": "note://b"})  # nobody subscribed to this one
            await one.call_tool("touch", {"uri": "note://a"})
            await eventually(lambda: _truthy(len(one_got) == 2))
            assert one_got == ["note://a", "note://a"] and two_got == []

            await subscribe(one, "note://a", on=False)
            assert await upstream_subscribed(one) == []


async def test_a_session_that_ends_gives_its_subscriptions_back(gateway: Gateway) -> None:
    async with gateway.client(FULL_KEY, "legacy", server="ask") as client:
        await subscribe(client, "note://b")
        assert await upstream_subscribed(client) == ["note://b"]
    async with gateway.client(FULL_KEY, "legacy", server="ask") as client:
        await eventually(lambda: _is_empty(upstream_subscribed(client)))


async def test_on_the_aggregate_endpoint_updates_name_the_uri_as_subscribed(gateway: Gateway) -> None:
    got, handler = updates_collector()
    async with gateway.client(FULL_KEY, "legacy", message_handler=handler) as client:
        with anyio.fail_after(20):
            await subscribe(client, "isthmus://ask/note://a")
            await client.call_tool("ask__touch", {"uri": "note://a"})
            await eventually(lambda: _truthy(got))
            await subscribe(client, "isthmus://ask/note://a", on=False)
    assert got == ["isthmus://ask/note://a"]


async def _truthy(value: object) -> bool:
    return bool(value)


async def _is_empty(subscribed: Any) -> bool:
    return await subscribed == []
