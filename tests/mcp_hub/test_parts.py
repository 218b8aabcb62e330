"""The hub's parts on their own: the change feed, transport security, the bridge's headers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import mcp_types as types
import pytest

from mcp_hub.access import Caller
from mcp_hub.bridge import _Headers
from mcp_hub.catalog import Kind
from mcp_hub.endpoint import transport_security
from mcp_hub.notify import ChangeFeed
from mcp_hub.upstreams.http import redacted
from toolpolicy.globs import GlobSet
from toolpolicy.keys import KeyResolver
from toolpolicy.secrets import hash_secret
from toolpolicy.settings import GatewaySettings
from toolpolicy.types import Principal

pytestmark = pytest.mark.anyio


async def no_key(digest: str) -> None:
    return None


def principal(mcp: dict[str, list[str]], name: str = "k") -> Principal:
    return Principal(key_id=f"id-{name}", key_name=name, mcp={s: GlobSet.of(g) for s, g in mcp.items()})


async def test_a_change_reaches_only_subscribers_that_see_the_server() -> None:
    feed = ChangeFeed()
    heard: dict[str, list[frozenset[Kind]]] = {"fx": [], "time": [], "scoped": []}

    def recorder(name: str) -> Any:
        async def deliver(kinds: frozenset[Kind]) -> None:
            heard[name].append(kinds)

        return deliver

    feed.subscribe(Caller(principal({"fx": ["*"]}), "s1"), recorder("fx"))
    feed.subscribe(Caller(principal({"time": ["*"]}), "s2"), recorder("time"))
    feed.subscribe(Caller(principal({"fx": ["*"], "time": ["*"]}), "s3", server="time"), recorder("scoped"))
    keys = KeyResolver(no_key)
    async with anyio.create_task_group() as tg:
        await tg.start(feed.run, keys, 3600)
        feed.publish(frozenset({"fx"}), frozenset({"tools"}))
        with anyio.fail_after(2):
            while not heard["fx"]:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert heard == {"fx": [frozenset({"tools"})], "time": [], "scoped": []}


async def test_the_key_watcher_notices_a_changed_allowlist_and_a_revoked_key() -> None:
    records: dict[str, dict[str, Any]] = {
        "a": {"id": "1", "name": "a", "key_hash": "", "mcp": {"fx": ["add"]}},
        "b": {"id": "2", "name": "b", "key_hash": "", "mcp": {"fx": ["*"]}},
    }
    by_hash = {hash_secret(secret): record for secret, record in records.items()}
    for digest, record in by_hash.items():
        record["key_hash"] = digest

    async def lookup(digest: str) -> dict[str, Any] | None:
        return by_hash.get(digest)

    keys = KeyResolver(lookup, ttl=0)
    feed = ChangeFeed()
    heard: list[str] = []

    def recorder(name: str) -> Any:
        async def deliver(kinds: frozenset[Kind]) -> None:
            heard.append(name)

        return deliver

    a = feed.subscribe(Caller(await keys.resolve("a"), "a"), recorder("a"))
    feed.subscribe(Caller(await keys.resolve("b"), "b"), recorder("b"))
    async with anyio.create_task_group() as tg:
        await tg.start(feed.run, keys, 3600)
        await feed.check_keys(keys)
        assert heard == []
        records["a"]["mcp"] = {"fx": ["add", "echo"]}
        records["b"]["active"] = False
        await feed.check_keys(keys)
        with anyio.fail_after(2):
            while len(heard) < 2:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert sorted(heard) == ["a", "b"]
    assert a.caller.principal.mcp["fx"] == GlobSet.of(["add", "echo"])
    assert len(feed) == 1  # the revoked key's subscriber is gone


async def test_watchers_of_a_subscriber_hear_when_its_key_changes_and_its_owner_finds_it_until_then() -> None:
    records: dict[str, dict[str, Any]] = {
        secret: {"id": secret, "name": secret, "key_hash": hash_secret(secret), "mcp": {"fx": ["*"]}}
        for secret in ("kept", "narrowed", "revoked")
    }
    by_hash = {record["key_hash"]: record for record in records.values()}

    async def lookup(digest: str) -> dict[str, Any] | None:
        return by_hash.get(digest)

    keys = KeyResolver(lookup, ttl=0)
    feed = ChangeFeed()
    told: list[str] = []
    subscribers = {
        secret: feed.subscribe(Caller(await keys.resolve(secret), secret), _ignore, owner=f"session-{secret}")
        for secret in records
    }

    def telling(secret: str) -> Callable[[], None]:
        return lambda: told.append(secret)

    for secret, subscriber in subscribers.items():
        subscriber.watch("first", telling(secret))
        subscriber.watch("first", telling(secret))
    assert feed.owned_by("session-revoked") is subscribers["revoked"]

    await feed.check_keys(keys)
    assert told == []
    records["narrowed"]["mcp"] = {"time": ["*"]}
    records["revoked"]["active"] = False
    await feed.check_keys(keys)
    assert sorted(told) == ["narrowed", "revoked"]  # once each, however often a watcher asked
    assert not subscribers["narrowed"].caller.sees_server("fx")
    assert feed.owned_by("session-revoked") is None
    assert feed.owned_by("session-narrowed") is subscribers["narrowed"]
    feed.unsubscribe(subscribers["kept"])
    assert feed.owned_by("session-kept") is None


async def _ignore(kinds: frozenset[Kind]) -> None:
    return None


@pytest.mark.parametrize(
    ("listen", "mcp", "hosts", "protected"),
    [
        ("127.0.0.1:8080", {}, ["127.0.0.1:*", "localhost:*", "[::1]:*"], True),
        ("gw.internal:8080", {}, ["gw.internal", "gw.internal:*"], True),
        ("0.0.0.0:8080", {}, [], False),
        ("0.0.0.0:8080", {"allowed_hosts": ["mcp.example.com"]}, ["mcp.example.com"], True),
        ("127.0.0.1:8080", {"allowed_hosts": ["*"]}, [], False),
    ],
)
def test_allowed_hosts_follow_listen_unless_configured(
    listen: str, mcp: dict[str, Any], hosts: list[str], protected: bool
) -> None:
    security = transport_security(GatewaySettings.model_validate({"listen": listen, "mcp": mcp}))
    assert security.enable_dns_rebinding_protection is protected
    assert security.allowed_hosts == hosts
    if protected:
        assert f"http://{hosts[0]}" in security.allowed_origins


def test_the_bridge_sets_the_headers_each_era_expects() -> None:
    headers = _Headers()
    initialize = types.JSONRPCRequest(jsonrpc="2.0", id=1, method="initialize", params={"protocolVersion": "x"})
    assert headers.outgoing(initialize) is None
    headers.incoming(types.JSONRPCResponse(jsonrpc="2.0", id=1, result={"protocolVersion": "2025-11-25"}))
    listing = types.JSONRPCRequest(jsonrpc="2.0", id=2, method="tools/list")
    assert headers.outgoing(listing) == {"mcp-protocol-version": "2025-11-25"}
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}
    modern = types.JSONRPCRequest(
        jsonrpc="2.0", id=3, method="tools/call", params={"name": "fx__add", "arguments": {"a": 1}, "_meta": meta}
    )
    assert headers.outgoing(modern) == {
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": "fx__add",
    }


def test_upstream_urls_are_shown_without_credentials() -> None:
    assert redacted("https://user:secret@docs.internal/mcp?token=abc#frag") == "https://docs.internal/mcp"
    assert redacted("http://127.0.0.1:9000/mcp") == "http://127.0.0.1:9000/mcp"
    assert redacted("http://[::1]:8080/sse") == "http://[::1]:8080/sse"
