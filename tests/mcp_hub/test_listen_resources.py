"""Resource subscriptions on 2026-07-28 `subscriptions/listen` streams, through the hub, to upstreams of both eras.

The upstream is `tests/servers/asking_server.py` over stdio: `ask` spoken to in the 2025-11-25 era (the hub uses
`resources/subscribe`), `ask26` in the 2026-07-28 era (the hub opens its own listen stream with
`resourceSubscriptions`). Its `touch` tool announces a change of a resource; `upstream_state` says which URIs the
hub subscribed it to (either era). Clients are the SDK's `Client` in 2026-07-28 mode (`client.listen`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.subscriptions import Subscription
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated, ServerEvent

from mcp_hub.access import Caller
from mcp_hub.listen_resources import ResourceSubscriber
from mcp_hub.notify import ChangeFeed
from mcp_hub.relay import Relay
from mcp_hub.relay.subscriptions import Deliver
from tests.mcp_hub.conftest import FULL_KEY, Gateway, hub_settings, serving
from toolpolicy.keys import KeyResolver
from toolpolicy.secrets import hash_secret

pytestmark = pytest.mark.anyio

ASKING = Path(__file__).parents[1] / "servers" / "asking_server.py"
MODERN = "2026-07-28"
SERVERS = ["ask", "ask26"]
"""The same server, reached over 2025-11-25 and over 2026-07-28."""
ASK_ONLY_KEY = "isk-hub-ask-only"
"""A key that sees `ask` but not `ask26`."""


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    servers = {
        "ask": {"command": sys.executable, "args": [str(ASKING)], "protocol": "legacy"},
        "ask26": {"command": sys.executable, "args": [str(ASKING)], "protocol": "auto"},
    }
    keys = ({"name": "ask-only", "value": ASK_ONLY_KEY, "mcp": {"ask": ["*"]}},)
    async with serving(hub_settings(tmp_path_factory.mktemp("listen-resources"), servers, keys=keys)) as started:
        assert started.hub.upstreams["ask26"].health.protocol_version == MODERN
        assert started.hub.upstreams["ask"].health.protocol_version != MODERN
        yield started


async def upstream_subscribed(client: Client, tool: str) -> list[str]:
    result = await client.call_tool(tool, {})
    subscribed: list[str] = json.loads(result.content[0].text)["subscribed"]  # type: ignore[union-attr]
    return subscribed


async def eventually(condition: Callable[[], Awaitable[bool]]) -> None:
    with anyio.fail_after(10):
        while not await condition():
            await anyio.sleep(0.05)


async def next_event(subscription: Subscription) -> ServerEvent:
    with anyio.fail_after(10):
        return await subscription.__anext__()


def holders(gateway: Gateway, server: str, uri: str) -> int:
    return gateway.hub.relay.shared.subscriptions.holders(server, uri)


@pytest.mark.parametrize("server", SERVERS)
async def test_a_listener_gets_the_updates_of_its_uri_and_another_listener_does_not(
    gateway: Gateway, server: str
) -> None:
    async with (
        gateway.client(FULL_KEY, MODERN, server=server) as one,
        gateway.client(FULL_KEY, MODERN, server=server) as two,
    ):
        with anyio.fail_after(30):
            async with (
                one.listen(resource_subscriptions=["note://a"]) as first,
                two.listen(resource_subscriptions=["note://b"]) as second,
            ):
                assert first.honored.resource_subscriptions == ["note://a"]
                assert second.honored.resource_subscriptions == ["note://b"]
                await one.call_tool("touch", {"uri": "note://a"})
                assert await next_event(first) == ResourceUpdated("note://a")
                await one.call_tool("touch", {"uri": "note://b"})
                # `second` hears of note://b first: note://a never reached it.
                assert await next_event(second) == ResourceUpdated("note://b")
                await one.call_tool("touch", {"uri": "note://a"})
                assert await next_event(first) == ResourceUpdated("note://a")


@pytest.mark.parametrize("server", SERVERS)
async def test_on_the_aggregate_endpoint_updates_name_the_uri_as_listened_to(gateway: Gateway, server: str) -> None:
    uri = f"isthmus://{server}/note://b"
    async with gateway.client(FULL_KEY, MODERN) as client:
        with anyio.fail_after(30):
            async with client.listen(resource_subscriptions=[uri], tools_list_changed=True) as subscription:
                assert subscription.honored.resource_subscriptions == [uri]
                assert subscription.honored.tools_list_changed is True
                assert await upstream_subscribed(client, f"{server}__upstream_state") == ["note://b"]
                await client.call_tool(f"{server}__touch", {"uri": "note://b"})
                assert await next_event(subscription) == ResourceUpdated(uri)


@pytest.mark.parametrize("server", SERVERS)
async def test_closing_the_stream_unsubscribes_upstream_and_counts_are_shared_with_2025_sessions(
    gateway: Gateway, server: str
) -> None:
    legacy_got: list[str] = []

    async def collect(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            legacy_got.append(message.params.uri)

    async with (
        gateway.client(FULL_KEY, "legacy", server=server, message_handler=collect) as legacy,
        gateway.client(FULL_KEY, MODERN, server=server) as modern,
    ):
        with anyio.fail_after(30):
            subscribe = types.SubscribeRequest(params=types.SubscribeRequestParams(uri="note://a"))
            await legacy.session.send_request(subscribe, types.EmptyResult)
            async with modern.listen(resource_subscriptions=["note://a"]) as subscription:
                assert holders(gateway, server, "note://a") == 2
                assert await upstream_subscribed(modern, "upstream_state") == ["note://a"]
                await modern.call_tool("touch", {"uri": "note://a"})
                assert await next_event(subscription) == ResourceUpdated("note://a")
                await eventually(lambda: _true(legacy_got == ["note://a"]))
            # The stream closed: the 2025 session still holds the URI upstream.
            await eventually(lambda: _true(holders(gateway, server, "note://a") == 1))
            assert await upstream_subscribed(modern, "upstream_state") == ["note://a"]

            async with modern.listen(resource_subscriptions=["note://a", "note://b"]) as subscription:
                assert await upstream_subscribed(modern, "upstream_state") == ["note://a", "note://b"]
            await eventually(lambda: _true(holders(gateway, server, "note://b") == 0))
            assert await upstream_subscribed(modern, "upstream_state") == ["note://a"]

            unsubscribe = types.UnsubscribeRequest(params=types.UnsubscribeRequestParams(uri="note://a"))
            await legacy.session.send_request(unsubscribe, types.EmptyResult)
            assert holders(gateway, server, "note://a") == 0
            assert await upstream_subscribed(modern, "upstream_state") == []


async def test_a_key_that_may_not_see_the_server_is_not_subscribed(gateway: Gateway) -> None:
    uri = "isthmus://ask26/note://a"
    async with (
        gateway.client(ASK_ONLY_KEY, MODERN) as hidden,
        gateway.client(FULL_KEY, MODERN) as full,
    ):
        with anyio.fail_after(30):
            async with hidden.listen(resource_subscriptions=[uri, "isthmus://ask/note://a"]) as subscription:
                # Only what the key sees is honored; the other URI is left out, as an unknown one would be.
                assert subscription.honored.resource_subscriptions == ["isthmus://ask/note://a"]
                assert holders(gateway, "ask26", "note://a") == 0
                assert await upstream_subscribed(full, "ask26__upstream_state") == []
                async with full.listen(resource_subscriptions=[uri]) as seen:
                    assert holders(gateway, "ask26", "note://a") == 1  # the full key's stream alone
                    await full.call_tool("ask26__touch", {"uri": "note://a"})
                    assert await next_event(seen) == ResourceUpdated(uri)


async def test_unknown_uris_are_left_out_and_too_many_are_refused(gateway: Gateway) -> None:
    async with gateway.client(FULL_KEY, MODERN) as client:
        with anyio.fail_after(30):
            async with client.listen(resource_subscriptions=["isthmus://nowhere/x", "note://nothing"]) as subscription:
                assert subscription.honored.resource_subscriptions is None
            too_many = [f"isthmus://ask/note://{i}" for i in range(300)]
            with pytest.raises(MCPError, match="at most 256") as refused:
                async with client.listen(resource_subscriptions=too_many):
                    pass
            assert refused.value.code == types.INVALID_PARAMS


async def _true(value: bool) -> bool:
    return value


@pytest.mark.parametrize("server", SERVERS)
async def test_after_the_upstream_reconnects_the_listener_still_gets_updates(gateway: Gateway, server: str) -> None:
    health = gateway.hub.upstreams[server].health
    async with gateway.client(FULL_KEY, MODERN, server=server) as client:
        with anyio.fail_after(40):
            async with client.listen(resource_subscriptions=["note://b"]) as subscription:
                connects = health.connects
                crashed = await client.call_tool("crash", {})
                assert crashed.is_error
                await eventually(lambda: _true(health.connects > connects and health.state == "ready"))
                await eventually(lambda: _is(upstream_subscribed(client, "upstream_state"), ["note://b"]))
                await client.call_tool("touch", {"uri": "note://b"})
                assert await next_event(subscription) == ResourceUpdated("note://b")


async def _is(value: Awaitable[list[str]], expected: list[str]) -> bool:
    return await value == expected


class HoldingRelay:
    """Records what a listen stream holds, as `Relay.hold` would, without an upstream."""

    def __init__(self) -> None:
        self.held: dict[str, Deliver] = {}

    async def hold(self, holder: object, server: str, uri: str, named: str, deliver: Deliver) -> None:
        self.held[named] = deliver


async def test_updates_stop_reaching_a_stream_whose_key_lost_the_server_or_was_revoked() -> None:
    records = {
        "k": {"id": "1", "name": "k", "key_hash": hash_secret("k"), "mcp": {"ask": ["*"]}},
        "narrowed": {"id": "1", "name": "k", "key_hash": hash_secret("narrowed"), "mcp": {"other": ["*"]}},
    }
    by_hash = {record["key_hash"]: record for record in records.values()}

    async def lookup(digest: str) -> dict[str, Any] | None:
        return by_hash.get(digest)

    keys = KeyResolver(lookup, ttl=0)
    feed, relay = ChangeFeed(), HoldingRelay()
    caller = Caller(await keys.resolve("k"), "k")
    resources = ResourceSubscriber(cast(Relay, relay), lambda caller, uri: ("ask", uri), feed)
    got: list[ServerEvent] = []
    subscriber = feed.subscribe(caller, lambda kinds: anyio.sleep(0))
    assert await resources.hold(object(), subscriber, ["note://a", "note://a"], got.append) == ["note://a"]
    deliver = relay.held["note://a"]

    await deliver("note://a")
    assert got == [ResourceUpdated("note://a")]
    subscriber.caller = Caller(await keys.resolve("narrowed"), "k")  # what the key watcher does on a change
    await deliver("note://a")
    subscriber.caller = caller
    feed.unsubscribe(subscriber)  # what the key watcher does to a revoked key's subscribers
    await deliver("note://a")
    assert got == [ResourceUpdated("note://a")]
