"""Getting change notices to clients of both eras (the transport half of `notify.ChangeFeed`).

- 2025-era clients hold a session: the first request of each session subscribes it, and the notices go out on its
  standalone stream as `notifications/{tools,prompts,resources}/list_changed` until the session closes.
- 2026-07-28 clients open `subscriptions/listen`: `listen` acknowledges, then streams the notices they asked for:
  list changes, and updates of the resources named in `resourceSubscriptions` (`listen_resources.py`) until the
  stream closes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
import mcp_types as types
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.subscriptions import (
    SUBSCRIPTION_ID_META_KEY,
    PromptsListChanged,
    ResourcesListChanged,
    ServerEvent,
    ToolsListChanged,
    event_to_notification,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp_hub.access import Caller
from mcp_hub.catalog import Kind
from mcp_hub.listen_resources import ResourceSubscriber
from mcp_hub.notify import ChangeFeed

logger = logging.getLogger(__name__)

EVENTS: dict[Kind, ServerEvent] = {
    "tools": ToolsListChanged(),
    "prompts": PromptsListChanged(),
    "resources": ResourcesListChanged(),
}


def _connection(ctx: ServerRequestContext[Any, Any]) -> Connection | None:
    # The SDK (2.3) gives handlers no public handle on the connection, which owns the standalone stream and the
    # per-connection cleanup stack that tells when the session ends.
    connection = getattr(ctx.session, "_connection", None)
    return connection if isinstance(connection, Connection) else None


class SessionRegistry:
    """Server middleware that subscribes each 2025-era session to the change feed on its first request."""

    def __init__(self, feed: ChangeFeed, caller_of: Callable[[ServerRequestContext[Any, Any]], Caller]) -> None:
        self.feed = feed
        self.caller_of = caller_of
        self._connections: set[int] = set()

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        connection = self._unregistered(ctx)
        if connection is not None:
            self._register(connection, self.caller_of(ctx))
        return await call_next(ctx)

    def passes_on(self, ctx: ServerRequestContext[Any, Any]) -> bool:
        """Whether `ctx` goes straight to the next link: there is no session to register."""
        return self._unregistered(ctx) is None

    def _unregistered(self, ctx: ServerRequestContext[Any, Any]) -> Connection | None:
        """The 2025-era session's connection, if not registered yet."""
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS or ctx.request is None:
            return None
        connection = _connection(ctx)
        return connection if connection is not None and id(connection) not in self._connections else None

    def _register(self, connection: Connection, caller: Caller) -> None:
        async def deliver(kinds: frozenset[Kind]) -> None:
            if "tools" in kinds:
                await connection.send_tool_list_changed()
            if "prompts" in kinds:
                await connection.send_prompt_list_changed()
            if "resources" in kinds:
                await connection.send_resource_list_changed()

        key = id(connection)
        # Owned by the connection: its resource subscriptions follow the key through this subscriber (`relay`).
        subscriber = self.feed.subscribe(caller, deliver, owner=key)
        self._connections.add(key)

        def forget() -> None:
            self.feed.unsubscribe(subscriber)
            self._connections.discard(key)

        connection.exit_stack.callback(forget)


class Pending:
    """A listen stream's events not yet written, each at most once (they are level triggers), in arrival order.

    Bounded without a cap: there are three list kinds and the stream's own honored URIs."""

    def __init__(self) -> None:
        self._events: dict[ServerEvent, None] = {}
        self._wake = anyio.Event()

    def put(self, event: ServerEvent) -> None:
        self._events[event] = None
        self._wake.set()

    async def take(self) -> list[ServerEvent]:
        while not self._events:
            await self._wake.wait()
            self._wake = anyio.Event()
        events, self._events = list(self._events), {}
        return events


async def listen(
    feed: ChangeFeed,
    caller: Caller,
    ctx: ServerRequestContext[Any, Any],
    params: types.SubscriptionsListenRequestParams,
    resources: ResourceSubscriber,
) -> types.SubscriptionsListenResult:
    """Serve one `subscriptions/listen` stream until the client closes it or the hub stops."""
    subscription_id = ctx.request_id
    assert subscription_id is not None
    asked = params.notifications
    flags: list[tuple[Kind, bool | None]] = [
        ("tools", asked.tools_list_changed),
        ("prompts", asked.prompts_list_changed),
        ("resources", asked.resources_list_changed),
    ]
    wanted = frozenset(kind for kind, flag in flags if flag)
    meta: dict[str, Any] = {SUBSCRIPTION_ID_META_KEY: subscription_id}
    pending = Pending()

    async def deliver(kinds: frozenset[Kind]) -> None:
        for kind in sorted(kinds & wanted):
            pending.put(EVENTS[kind])

    # Subscribe before the acknowledgement so a change made while it is written is not lost.
    subscriber = feed.subscribe(caller, deliver)
    holder = object()
    try:
        uris = await resources.hold(holder, subscriber, asked.resource_subscriptions or [], pending.put)
        honored = types.SubscriptionFilter(
            tools_list_changed=True if asked.tools_list_changed else None,
            prompts_list_changed=True if asked.prompts_list_changed else None,
            resources_list_changed=True if asked.resources_list_changed else None,
            resource_subscriptions=uris or None,
        )
        acknowledged = types.SubscriptionsAcknowledgedNotification(
            params=types.SubscriptionsAcknowledgedNotificationParams(notifications=honored, _meta=meta)
        )
        await ctx.session.send_notification(acknowledged, related_request_id=subscription_id)
        while True:
            for event in await pending.take():
                notice = event_to_notification(event, meta)
                await ctx.session.send_notification(notice, related_request_id=subscription_id)
    finally:
        feed.unsubscribe(subscriber)
        resources.release_soon(holder)
