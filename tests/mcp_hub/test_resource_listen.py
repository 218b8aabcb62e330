"""`ResourceListener`: the hub's one listen stream to a 2026-07-28 upstream follows the set of wanted URIs.

Against a fake client recording every stream it opens and closes, so the order (the new stream acknowledged before
the old one closes) and the refusals are seen exactly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
import mcp_types as types
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated, ServerEvent

from mcp_hub.relay import resource_listen
from mcp_hub.relay.resource_listen import ResourceListener

pytestmark = pytest.mark.anyio


class FakeSubscription:
    def __init__(self, uris: list[str], receive: MemoryObjectReceiveStream[ServerEvent]) -> None:
        self.honored = types.SubscriptionFilter(resource_subscriptions=uris or None)
        self._receive = receive

    def __aiter__(self) -> AsyncIterator[ServerEvent]:
        return self._receive.__aiter__()


class FakeUpstream:
    def __init__(self) -> None:
        self.history: list[tuple[str, list[str]]] = []
        self.streams: dict[tuple[str, ...], MemoryObjectSendStream[ServerEvent]] = {}
        self.refused: set[str] = set()
        self.honors_only: set[str] | None = None

    @asynccontextmanager
    async def listen(self, *, resource_subscriptions: Sequence[str]) -> AsyncIterator[FakeSubscription]:
        uris = list(resource_subscriptions)
        if self.refused & set(uris):
            raise MCPError(types.INVALID_PARAMS, "refused")
        honored = [uri for uri in uris if self.honors_only is None or uri in self.honors_only]
        send, receive = anyio.create_memory_object_stream[ServerEvent](10)
        self.streams[tuple(uris)] = send
        self.history.append(("open", uris))
        try:
            async with receive:
                yield FakeSubscription(honored, receive)
        finally:
            self.history.append(("close", uris))
            self.streams.pop(tuple(uris), None)
            send.close()


@asynccontextmanager
async def following(upstream: FakeUpstream) -> AsyncIterator[tuple[ResourceListener, list[str]]]:
    listener = ResourceListener("up", timeout=5)
    updates: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.run, cast(Client, upstream), updates.append)
        yield listener, updates
        tg.cancel_scope.cancel()


async def settle() -> None:
    for _ in range(20):
        await anyio.lowlevel.checkpoint()


async def test_each_new_set_is_opened_before_the_old_stream_closes_and_an_empty_set_closes_it() -> None:
    upstream = FakeUpstream()
    async with following(upstream) as (listener, updates):
        assert await listener.want(frozenset({"a"})) == {"a"}
        assert await listener.want(frozenset({"a", "b"})) == {"a", "b"}
        await settle()
        assert upstream.history == [("open", ["a"]), ("open", ["a", "b"]), ("close", ["a"])]
        await upstream.streams[("a", "b")].send(ResourceUpdated("b"))
        await settle()
        assert updates == ["b"]
        assert await listener.want(frozenset()) == frozenset()
        await settle()
        assert upstream.history[-1] == ("close", ["a", "b"])
        assert upstream.streams == {}


async def test_a_refused_stream_raises_and_the_open_one_stays() -> None:
    upstream = FakeUpstream()
    upstream.refused = {"bad"}
    async with following(upstream) as (listener, updates):
        await listener.want(frozenset({"a"}))
        with pytest.raises(MCPError, match="refused"):
            await listener.want(frozenset({"a", "bad"}))
        await upstream.streams[("a",)].send(ResourceUpdated("a"))
        await settle()
        assert updates == ["a"]
        assert await listener.want(frozenset({"a", "c"})) == {"a", "c"}
        await settle()
        assert upstream.history == [("open", ["a"]), ("open", ["a", "c"]), ("close", ["a"])]


async def test_wanting_the_set_already_open_opens_nothing() -> None:
    upstream = FakeUpstream()
    async with following(upstream) as (listener, _):
        await listener.want(frozenset({"a"}))
        assert await listener.want(frozenset({"a"})) == {"a"}
        await settle()
        assert upstream.history == [("open", ["a"])]


async def test_the_honored_subset_is_what_want_returns() -> None:
    upstream = FakeUpstream()
    upstream.honors_only = {"a"}
    async with following(upstream) as (listener, _):
        assert await listener.want(frozenset({"a", "z"})) == {"a"}


async def test_a_stream_the_upstream_ends_is_opened_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resource_listen, "RELISTEN_DELAY", 0)
    upstream = FakeUpstream()
    async with following(upstream) as (listener, _):
        await listener.want(frozenset({"a"}))
        upstream.streams[("a",)].close()
        with anyio.fail_after(5):
            while upstream.history.count(("open", ["a"])) < 2:
                await anyio.sleep(0.01)
        assert upstream.history == [("open", ["a"]), ("close", ["a"]), ("open", ["a"])]


async def test_a_want_waiting_when_the_connection_ends_is_told_so() -> None:
    upstream = FakeUpstream()
    listener = ResourceListener("up", timeout=5)
    outcome: list[Any] = []

    async def want() -> None:
        try:
            await listener.want(frozenset({"a"}))
        except MCPError as exc:
            outcome.append(exc.message)

    async with anyio.create_task_group() as tg:
        tg.start_soon(want)
        await settle()
        with anyio.CancelScope() as scope:
            scope.cancel()
            await listener.run(cast(Client, upstream), lambda uri: None)
    assert outcome == ["MCP server 'up' went away"]
