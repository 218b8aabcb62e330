"""The server-to-client half of MCP, relayed between the hub's clients and its upstreams.

- Requests an upstream sends during a call (`sampling/createMessage`, `elicitation/create`, `roots/list`) go to the
  client that made the call, if it declared what they need, and its answer goes back (`asks.py`).
- Log notices an upstream sends during a call go to that call's client only, filtered by its level (`logs.py`).
- `resources/subscribe` (2025-era sessions) and listen streams' `resourceSubscriptions` (2026-07-28) are
  reference-counted together per upstream and URI, updates go to the holders that want them (`subscriptions.py`);
  a 2026-07-28 upstream is subscribed through one listen stream of its own (`resource_listen.py`). A session's
  subscriptions follow its key through its change-feed subscriber (`key_bound.py`).
- A server configured with `sampling:` may have its sampling requests answered by the gateway's own LLM proxy
  instead (`gateway_sampling.py`, translation in `sampling_wire.py`).
- Which call a message belongs to: `calls.py`. The per-upstream half: `upstream.py`.
- 2026-07-28 clients (no session): `tools/call`, `prompts/get` and `resources/read` are held calls, an upstream's
  questions (either era's) reach the client as `InputRequiredResult`s and its retries answer them (`rounds.py`),
  the hub's `requestState` sealed under `state_keys.py`'s key.

`Relay` is the hub's one entry point: the handlers for `logging/setLevel` and `resources/(un)subscribe`, the way a
handler runs a client request's upstream work (`served`), the request-state middleware (`state_boundary`), and
`attach` for each upstream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

import anyio
import mcp_types as types
from anyio.abc import TaskStatus
from mcp.server import ServerRequestContext
from mcp.server.connection import Connection
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp.shared.exceptions import MCPError

from mcp_hub.access import Caller
from mcp_hub.notify import ChangeFeed
from mcp_hub.relay.calls import DOWNSTREAM, AuditSink, Downstream, connection_of
from mcp_hub.relay.gateway_sampling import GatewayLlm, ServerSampling
from mcp_hub.relay.key_bound import KeyBound
from mcp_hub.relay.rounds import STATE_TTL, HeldCall, InlineCall, Rounds
from mcp_hub.relay.state_keys import StateKeys
from mcp_hub.relay.subscriptions import Deliver
from mcp_hub.relay.upstream import Shared, UpstreamRelay, elicitation_timeout

__all__ = ["Relay", "UpstreamRelay", "elicitation_timeout"]

Context = ServerRequestContext[Any, Any]
R = TypeVar("R")
SessionSubscription = Callable[[Connection, str, str, str, bool], Awaitable[None]]
"""`(connection, server, uri, named, subscribed)`."""


class Relay:
    def __init__(self, audit: AuditSink, feed: ChangeFeed | None = None) -> None:
        self.shared = Shared(audit=audit)
        self.feed = feed
        """Where each 2025-era session's key is watched (`notify.py`); its resource subscriptions follow that key."""
        self.upstreams: dict[str, UpstreamRelay] = {}
        self.llm = GatewayLlm()
        """What answers the sampling requests of servers configured with `sampling:` (`gateway_sampling`)."""
        self.rounds = Rounds(linger=STATE_TTL)
        self.state_keys = StateKeys()
        """What seals the hub's `requestState`: this process's key, or with Redis the one all replicas share."""
        self.on_session_subscription: SessionSubscription | None = None
        """Told of each 2025-era session's `resources/(un)subscribe` once done (shared sessions record them)."""

    def attach(self, relay: UpstreamRelay) -> None:
        relay.shared = self.shared
        self.upstreams[relay.server] = relay
        sampling = relay.settings.sampling
        if sampling is not None and sampling.when != "never":
            relay.asker.gateway = ServerSampling(sampling, self.llm)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Deliver resource updates and clean up after ended sessions, until cancelled."""
        async with anyio.create_task_group() as tg:
            self.shared.subscriptions.attach(tg)
            self.rounds.tg = tg
            try:
                task_status.started()
                await anyio.sleep_forever()
            finally:
                self.rounds.tg = None
                self.shared.subscriptions.attach(None)

    def state_boundary(self, principal: Callable[[Context], str], audience: str) -> RequestStateBoundary:
        """Server middleware sealing the hub's `requestState` to the caller's key (`rounds.py`, `state_keys.py`)."""
        security = RequestStateSecurity(codec=self.state_keys, ttl=STATE_TTL, bind_principal=principal)
        return RequestStateBoundary(security, default_audience=audience)

    async def served(
        self,
        ctx: Context,
        caller: Caller,
        call_id: str,
        params: types.InputResponseRequestParams,
        work: Callable[[], Awaitable[R]],
    ) -> R | types.InputRequiredResult:
        """Run a client request's upstream work: in the handler (2025 era), or as a held call (2026-07-28)."""
        downstream = self.downstream(ctx, caller, call_id)
        token = DOWNSTREAM.set(downstream)  # (not a context manager: this wraps every call, and one costs)
        try:
            if not downstream.modern:
                return await work()

            async def held_work(held: HeldCall | InlineCall) -> R:
                token = DOWNSTREAM.set(downstream.holding(held))  # the held call's own task and context
                try:
                    return await work()
                finally:
                    DOWNSTREAM.reset(token)

            return await self.rounds.serve(
                params.request_state,
                params.input_responses,
                downstream.capabilities,
                held_work,
                inline=not self.may_ask(),
            )
        finally:
            DOWNSTREAM.reset(token)

    def may_ask(self) -> bool:
        """Whether an upstream could ask a question mid-call (`UpstreamRelay.may_ask`): then calls are held."""
        for upstream in self.upstreams.values():  # (a loop, not `any` over a generator: this runs every call)
            if upstream.may_ask:
                return True
        return False

    @staticmethod
    def downstream(ctx: Context, caller: Caller, call_id: str) -> Downstream:
        """The client request upstream work is done on behalf of (`DOWNSTREAM`, while it is)."""
        session = ctx.session
        assert ctx.request_id is not None
        # By position, in the fields' order: a class called with keywords builds a dict of them (every call).
        return Downstream(
            session,
            ctx.request_id,
            ctx.protocol_version,
            session.client_capabilities,
            ctx.meta,
            connection_of(session),
            caller,
            call_id,
        )

    async def set_level(self, ctx: Context, params: types.SetLevelRequestParams) -> types.EmptyResult:
        self.shared.levels.set(_session(ctx), params.level)
        return types.EmptyResult()

    async def subscribe(self, ctx: Context, server: str, uri: str, named: str) -> types.EmptyResult:
        connection = _session(ctx)
        key: KeyBound | None = None
        if self.feed is not None and ctx.request is not None:  # over HTTP: the session's key is being watched
            subscriber = self.feed.owned_by(id(connection))
            if subscriber is None:
                # The key watcher dropped the session after this request was let in: its key is revoked or expired.
                raise MCPError(types.INVALID_REQUEST, "this session's key is no longer valid")
            key = KeyBound(self.feed, subscriber)
        await self.shared.subscriptions.subscribe(connection, server, uri, named, self._upstream_subscription, key)
        if self.on_session_subscription is not None:
            await self.on_session_subscription(connection, server, uri, named, True)
        return types.EmptyResult()

    async def unsubscribe(self, ctx: Context, server: str, uri: str) -> types.EmptyResult:
        connection = _session(ctx)
        await self.shared.subscriptions.unsubscribe(connection, server, uri, self._upstream_subscription)
        if self.on_session_subscription is not None:
            await self.on_session_subscription(connection, server, uri, uri, False)
        return types.EmptyResult()

    async def adopt(self, connection: Connection, server: str, uri: str, named: str) -> None:
        """Hold a session's subscription here that another replica held (`mcp_hub/shared_sessions`)."""
        if server not in self.upstreams:
            return
        subscriber = self.feed.owned_by(id(connection)) if self.feed is not None else None
        key = KeyBound(self.feed, subscriber) if self.feed is not None and subscriber is not None else None
        await self.shared.subscriptions.subscribe(connection, server, uri, named, self._upstream_subscription, key)

    async def drop(self, connection: Connection, server: str, uri: str) -> None:
        """Give up a session's subscription held here: the client unsubscribed, or subscribed again, elsewhere."""
        await self.shared.subscriptions.unsubscribe(connection, server, uri, self._upstream_subscription)

    async def hold(self, holder: Hashable, server: str, uri: str, named: str, deliver: Deliver) -> None:
        """A 2026-07-28 listen stream (`holder`) wants `uri` of `server`, which it knows as `named`."""
        await self.shared.subscriptions.add(holder, server, uri, named, deliver, self._upstream_subscription)

    def release_soon(self, holder: Hashable) -> None:
        """The listen stream closed: give back what it held (in the background; it cannot wait)."""
        self.shared.subscriptions.release_soon(holder, self._upstream_subscription)

    async def _upstream_subscription(self, server: str, uri: str, subscribe: bool) -> None:
        await self.upstreams[server].subscription(uri, subscribe=subscribe)


def _session(ctx: Context) -> Connection:
    connection = connection_of(ctx.session)
    if connection is None:
        raise MCPError(types.INVALID_REQUEST, f"{ctx.method} needs a 2025-era session (initialize first)")
    return connection
