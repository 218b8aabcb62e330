"""Change notices to connected clients: upstream list changes, upstreams going down or coming back, key changes.

Every open client channel is a subscriber with the `Caller` it connected as: a 2025-era session (notified on its
standalone stream with `notifications/*/list_changed`) or a 2026-07-28 `subscriptions/listen` stream. A change
reaches only the subscribers that see one of the servers it concerns. Notices are level triggers ("refetch if you
care"), so each delivery is best-effort and bounded in time: a client that does not read loses notices, not the hub.

The key watcher re-resolves every subscriber's key each `mcp.key_watch_interval` seconds (through the key cache):
when its allowlist changed, or the key was revoked or expired, the subscriber is told that everything changed, and
what watches it (`Subscriber.watch`: a 2025-era session's resource subscriptions) is told that its grants changed.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Hashable
from itertools import count
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup, TaskStatus

from mcp_hub.access import Caller
from mcp_hub.catalog import ALL_KINDS, Kind
from toolpolicy.errors import AuthenticationError, PermissionDenied

if TYPE_CHECKING:
    from toolpolicy.oauth.resolver import CredentialResolver  # with joserfc behind it: only OAuth loads it

logger = logging.getLogger(__name__)

Deliver = Callable[[frozenset[Kind]], Awaitable[None]]
DELIVERY_TIMEOUT = 2.0


@dataclasses.dataclass(eq=False)
class Subscriber:
    id: int
    caller: Caller
    deliver: Deliver
    owner: Hashable | None = None
    watchers: dict[Hashable, Callable[[], None]] = dataclasses.field(default_factory=dict)
    """Called after the key watcher dropped this subscriber (key revoked or expired) or gave it new grants."""

    def watch(self, watcher: Hashable, changed: Callable[[], None]) -> None:
        """Call `changed` whenever the key's grants change (once per `watcher`, however often it asks)."""
        self.watchers[watcher] = changed

    def grants_changed(self) -> None:
        for changed in list(self.watchers.values()):
            try:
                changed()
            except Exception:
                logger.exception("a watcher of subscriber %d failed on its key's change", self.id)


class ChangeFeed:
    def __init__(self) -> None:
        self._subscribers: dict[int, Subscriber] = {}
        self._owned: dict[Hashable, Subscriber] = {}
        """owner (a 2025-era session's connection id) -> its subscriber, for what the session holds besides."""
        self._ids = count(1)
        self._tg: TaskGroup | None = None

    def __len__(self) -> int:
        return len(self._subscribers)

    def subscribe(self, caller: Caller, deliver: Deliver, *, owner: Hashable | None = None) -> Subscriber:
        subscriber = Subscriber(next(self._ids), caller, deliver, owner)
        self._subscribers[subscriber.id] = subscriber
        if owner is not None:
            self._owned[owner] = subscriber
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.pop(subscriber.id, None)
        if subscriber.owner is not None and self._owned.get(subscriber.owner) is subscriber:
            del self._owned[subscriber.owner]

    def owned_by(self, owner: Hashable) -> Subscriber | None:
        """The subscriber `owner` subscribed with, while it still hears from the feed."""
        return self._owned.get(owner)

    def __contains__(self, subscriber: Subscriber) -> bool:
        """Whether `subscriber` still hears from the feed (a revoked key's subscribers do not)."""
        return self._subscribers.get(subscriber.id) is subscriber

    def publish(self, servers: frozenset[str], kinds: frozenset[Kind]) -> None:
        """Tell every subscriber that sees one of `servers` that these kinds of list changed."""
        for subscriber in list(self._subscribers.values()):
            if any(subscriber.caller.sees_server(server) for server in servers):
                self._dispatch(subscriber, kinds)

    def _dispatch(self, subscriber: Subscriber, kinds: frozenset[Kind]) -> None:
        if self._tg is not None:
            self._tg.start_soon(self._deliver, subscriber, kinds)

    async def _deliver(self, subscriber: Subscriber, kinds: frozenset[Kind]) -> None:
        with anyio.move_on_after(DELIVERY_TIMEOUT) as scope:
            try:
                await subscriber.deliver(kinds)
            except Exception:
                logger.exception("change notice to subscriber %d failed; dropping it", subscriber.id)
                self.unsubscribe(subscriber)
        if scope.cancelled_caught:
            logger.info("change notice to subscriber %d timed out (client not reading?)", subscriber.id)

    async def run(self, keys: CredentialResolver, interval: float, *, task_status: TaskStatus[None]) -> None:
        """Deliver notices and watch keys until cancelled."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            task_status.started()
            try:
                while True:
                    await anyio.sleep(interval)
                    await self.check_keys(keys)
            finally:
                self._tg = None

    async def check_keys(self, keys: CredentialResolver) -> None:
        for subscriber in list(self._subscribers.values()):
            try:
                principal = await keys.resolve(subscriber.caller.secret)
            except (AuthenticationError, PermissionDenied) as exc:
                logger.info("key %r of a connected client: %s", subscriber.caller.principal.key_name, exc.message)
                self.unsubscribe(subscriber)
                self._dispatch(subscriber, ALL_KINDS)
                subscriber.grants_changed()
                continue
            except Exception:
                logger.exception("checking a connected client's key failed; trying again later")
                return
            if not subscriber.caller.same_grants(principal):
                subscriber.caller = dataclasses.replace(subscriber.caller, principal=principal)
                self._dispatch(subscriber, ALL_KINDS)
                subscriber.grants_changed()
