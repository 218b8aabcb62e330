"""A 2025-era session's resource subscriptions end when its key is revoked or loses the server.

The upstream is `tests/servers/asking_server.py` over stdio, spoken to in the 2025-11-25 era (`ask`, the hub uses
`resources/subscribe`) and in the 2026-07-28 era (`ask26`, the hub listens upstream). `touch` announces a change;
`upstream_state` says what the hub holds upstream. Clients are the SDK's `Client` in 2025 mode; keys change through
the admin API, and the hub's key watcher (every 0.2 s here) notices.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client

from mcp_hub.access import Caller
from mcp_hub.notify import ChangeFeed
from mcp_hub.relay.key_bound import KeyBound
from tests.mcp_hub.conftest import ADMIN_KEY, FULL_KEY, Gateway, hub_settings, serving
from toolpolicy.keys import KeyResolver
from toolpolicy.secrets import hash_secret

pytestmark = pytest.mark.anyio

ASKING = Path(__file__).parents[1] / "servers" / "asking_server.py"
SERVERS = ["ask", "ask26"]


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    servers = {
        "ask": {"command": sys.executable, "args": [str(ASKING)], "protocol": "legacy"},
        "ask26": {"command": sys.executable, "args": [str(ASKING)], "protocol": "auto"},
    }
    async with serving(hub_settings(tmp_path_factory.mktemp("follow-key"), servers)) as started:
        yield started


class Updates:
    """The `notifications/resources/updated` URIs one client received, and its tool-list change notices."""

    def __init__(self) -> None:
        self.uris: list[str] = []
        self.tool_lists = 0

    async def __call__(self, message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self.uris.append(message.params.uri)
        if isinstance(message, types.ToolListChangedNotification):
            self.tool_lists += 1


async def eventually(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(10):
        while not condition():
            await anyio.sleep(0.05)


async def subscribe(client: Client, uri: str) -> None:
    await client.session.send_request(
        types.SubscribeRequest(params=types.SubscribeRequestParams(uri=uri)), types.EmptyResult
    )


async def upstream_subscribed(client: Client) -> list[str]:
    result = await client.call_tool("upstream_state", {})
    subscribed: list[str] = json.loads(result.content[0].text)["subscribed"]  # type: ignore[union-attr]
    return subscribed


async def upstream_comes_to(client: Client, expected: list[str]) -> None:
    """Wait until the upstream's subscriptions are `expected`: the hub drops a holder at once and tells the upstream
    after (`Subscriptions._drop`), so the upstream may still hold what no one here holds any more."""
    with anyio.fail_after(10):
        while await upstream_subscribed(client) != expected:
            await anyio.sleep(0.05)


def holders(gateway: Gateway, server: str, uri: str) -> int:
    return gateway.hub.relay.shared.subscriptions.holders(server, uri)


def revoke(name: str) -> Callable[[Any], Awaitable[Any]]:
    return lambda admin: admin.post(f"/admin/keys/{name}/revoke")


def narrow(name: str, server: str) -> Callable[[Any], Awaitable[Any]]:
    other = "ask26" if server == "ask" else "ask"
    return lambda admin: admin.patch(f"/admin/keys/{name}", json={"mcp": {other: ["*"]}})


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("change", ["revoked", "narrowed"])
async def test_a_session_whose_key_no_longer_sees_the_server_gets_no_updates_and_lets_go_upstream(
    gateway: Gateway, server: str, change: str
) -> None:
    name = f"follow-{change}-{server}"
    async with gateway.http(ADMIN_KEY) as admin:
        created = await admin.post("/admin/keys", json={"name": name, "mcp": {"ask": ["*"], "ask26": ["*"]}})
        assert created.status_code in (200, 201), created.text
        secret = created.json()["key"]
        alone, shared = Updates(), Updates()
        async with (
            gateway.client(secret, "legacy", server=server, message_handler=alone) as doomed,
            gateway.client(FULL_KEY, "legacy", server=server, message_handler=shared) as valid,
        ):
            with anyio.fail_after(40):
                await subscribe(doomed, "note://a")
                await subscribe(doomed, "note://b")
                await subscribe(valid, "note://a")
                assert await upstream_subscribed(valid) == ["note://a", "note://b"]
                await valid.call_tool("touch", {"uri": "note://b"})
                await eventually(lambda: alone.uris == ["note://b"])

                changed = await (revoke(name) if change == "revoked" else narrow(name, server))(admin)
                assert changed.status_code == 200, changed.text
                # The key watcher lets go of note://b, which no one else holds; note://a stays for `valid`.
                await eventually(lambda: holders(gateway, server, "note://b") == 0)
                assert holders(gateway, server, "note://a") == 1
                await upstream_comes_to(valid, ["note://a"])

                await valid.call_tool("touch", {"uri": "note://a"})
                await valid.call_tool("touch", {"uri": "note://b"})
                await valid.call_tool("touch", {"uri": "note://a"})
                # The positive control: both updates of note://a were sent and reached the valid session, so
                # `doomed`'s deliveries of the same notices (started alongside) are over.
                await eventually(lambda: shared.uris == ["note://a", "note://a"])
                await anyio.sleep(0.2)
                assert alone.uris == ["note://b"]

                # List changes: the key change itself was announced once ("refetch": it is refused or sees less),
                # and the server's later changes do not reach the session any more.
                assert alone.tool_lists == 1
                assert shared.tool_lists == 0
                gateway.hub.feed.publish(frozenset({server}), frozenset({"tools"}))
                await eventually(lambda: shared.tool_lists == 1)
                await anyio.sleep(0.2)
                assert alone.tool_lists == 1


async def test_an_update_is_withheld_as_soon_as_the_watcher_drops_or_narrows_the_key() -> None:
    """Before the released subscription is gone upstream, an update already in flight is not delivered."""
    records = {
        secret: {"id": "1", "name": "k", "key_hash": hash_secret(secret), "mcp": mcp}
        for secret, mcp in (("k", {"ask": ["*"]}), ("narrowed", {"other": ["*"]}))
    }
    by_hash = {record["key_hash"]: record for record in records.values()}

    async def lookup(digest: str) -> dict[str, Any] | None:
        return by_hash.get(digest)

    async def ignore(kinds: Any) -> None:
        return None

    keys = KeyResolver(lookup, ttl=0)
    feed = ChangeFeed()
    caller = Caller(await keys.resolve("k"), "k")
    subscriber = feed.subscribe(caller, ignore, owner="session")
    got: list[str] = []

    async def record(uri: str) -> None:
        got.append(uri)

    deliver = KeyBound(feed, subscriber).guarded("ask", record)
    await deliver("note://a")
    subscriber.caller = Caller(await keys.resolve("narrowed"), "narrowed")  # the watcher on an allowlist change
    await deliver("note://a")
    subscriber.caller = caller
    feed.unsubscribe(subscriber)  # the watcher on a revoked or expired key
    await deliver("note://a")
    assert got == ["note://a"]
