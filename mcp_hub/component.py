"""`McpHub`: the MCP half of the gateway, as one Component (routes, start, stop, readiness).

Its long-lived work runs in one background task, so `start` and `stop` may be called from different tasks: the
SDK's session manager (2025-era sessions), the change feed with its key watcher, the supervisor that keeps
every upstream connected, and Code Mode's sandbox pool (opened and closed by that same task).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
from starlette.routing import BaseRoute, Route

from mcp_hub.admin import admin_routes
from mcp_hub.bundles import build_bundles
from mcp_hub.catalog import Catalog, Kind, Snapshot
from mcp_hub.codemode import CodeMode
from mcp_hub.endpoint import Challenge, McpEndpoint, transport_security
from mcp_hub.fairness import KeyCaps
from mcp_hub.fastpath.session_call import SessionCalls
from mcp_hub.notify import ChangeFeed
from mcp_hub.pipeline import ToolCalls
from mcp_hub.relay import Relay
from mcp_hub.relay.calls import AuditSink
from mcp_hub.relay.gateway_sampling import ChatCompletions
from mcp_hub.rest import RestApi
from mcp_hub.resume import SessionEventStores
from mcp_hub.server import Handlers, build_server
from mcp_hub.sessions import FairSessionManager
from mcp_hub.tools import HubTools
from mcp_hub.upstreams import Upstream, build_upstream
from mcp_hub.upstreams.oauth.hub import UpstreamOAuth
from mcp_hub.upstreams.supervisor import Supervisor
from toolpolicy.errors import Conflict, NotFound
from toolpolicy.runtime import Governance
from toolpolicy.settings import CodeModeSettings, GatewaySettings

if TYPE_CHECKING:
    from mcp_hub.shared_sessions import SharedSessions
    from mcp_hub.shared_sessions.events import RedisEventStores
    from mcp_hub.shared_sessions.held_calls import HeldCalls
    from toolpolicy.oauth.resolver import CredentialResolver  # with joserfc behind it: only OAuth loads it

logger = logging.getLogger(__name__)

VERSION = "0.1.0"


class McpHub:
    """Upstream MCP servers served to each virtual key as one MCP server, at `/mcp`, `/mcp/<server>` and
    `/mcp/<bundle>`."""

    name = "mcp"

    def __init__(
        self,
        governance: Governance,
        *,
        credentials: CredentialResolver | None = None,
        challenge: Challenge | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`credentials` resolves what `/mcp` callers present (default: virtual keys only; with OAuth on, tokens
        too), `challenge` is the 401's `WWW-Authenticate` (`isthmus.oauth` supplies both), and `clock` (epoch
        seconds) times upstream OAuth tokens and authorization links."""
        self.governance = governance
        self.credentials: CredentialResolver = credentials or governance.keys
        self.settings = governance.settings.mcp
        servers = governance.settings.mcp_servers
        self.catalog = Catalog({name: server.overrides for name, server in servers.items() if server.overrides})
        self.bundles = build_bundles(governance.settings.mcp_bundles)
        self.feed = ChangeFeed()
        self.upstreams: dict[str, Upstream] = {
            name: build_upstream(name, server, self.settings)
            for name, server in governance.settings.mcp_servers.items()
        }
        # Looked up per record, like the guardrails' emitter: whatever `governance.audit` is then receives it.
        self.oauth = UpstreamOAuth(
            governance.settings,
            governance.store,
            governance.keys,
            lambda record: governance.audit.emit(record),
            clock=clock,
        )
        self.oauth.attach(self.upstreams)
        audit = AuditSink(governance.audit.emit, governance.settings.audit.record_arguments)
        self.relay = Relay(audit, self.feed)
        for upstream in self.upstreams.values():
            upstream.on_snapshot = self._changed
            upstream.on_announced = self._announced
            self.relay.attach(upstream.relay)
        enabled = {name: u for name, u in self.upstreams.items() if u.settings.enabled}
        self.code_mode_servers = frozenset(name for name, u in enabled.items() if u.settings.code_mode)
        wanted = _code_mode_wanted(governance.settings)
        self.code_mode = CodeMode(
            _sandbox_settings(governance.settings, wanted), metrics=governance.metrics, lazy=not wanted
        )
        self.caps = KeyCaps(self.settings.per_key, governance.settings.code_mode.workers)
        self.calls = ToolCalls(governance, self.catalog, enabled)
        self.tools = HubTools(
            governance, self.catalog, self.calls, self.code_mode, enabled.keys(), runs=self.caps.code_mode_slots()
        )
        handlers = Handlers(
            self.catalog,
            enabled,
            self.tools,
            self.feed,
            self.settings.page_size,
            streams=self.caps.listen_slots(),
            relay=self.relay,
            guardrails=governance.guardrails,
        )
        self.server = build_server(handlers, VERSION)
        self.shared: SharedSessions | None = None
        """With Redis, 2025-era sessions any replica serves (`mcp_hub/shared_sessions`)."""
        self.held_calls: HeldCalls | None = None
        """With Redis, 2026-07-28 held calls any replica resumes (`mcp_hub/shared_sessions/held_calls.py`)."""
        if governance.settings.redis:
            # Imported here: redis-py (about 9 MiB resident) is loaded only by gateways configured with Redis.
            from mcp_hub.shared_sessions import RecordSessions, SharedSessions
            from mcp_hub.shared_sessions.held_calls import HeldCalls

            self.shared = SharedSessions(
                governance.settings.redis, self.settings, redis_prefix=governance.settings.redis_prefix
            )
            self.server.middleware.append(RecordSessions(self.shared))
            self.shared.on_level = self.relay.shared.levels.set_named
            self.shared.on_adopt = self.relay.adopt
            self.shared.on_drop = self.relay.drop
            self.relay.on_session_subscription = self.shared.subscription
            # 2026-07-28 held calls too: one requestState key for all replicas, retries passed on to their owner.
            self.shared.on_state_key = self.relay.state_keys.share
            self.held_calls = HeldCalls(self.shared, self.relay.rounds)
        self.supervisor = Supervisor(enabled.values(), self.settings)
        self.endpoint = McpEndpoint(
            self.credentials,
            enabled.keys(),
            lambda: self._manager,
            self.code_mode_servers,
            max_body_bytes=self.settings.max_body_bytes,
            bundles=self.bundles,
            fast_path=self.settings.fast_path,
            challenge=challenge,
        )
        self.rest = RestApi(
            governance.keys, self.tools, self.settings.max_body_bytes, self.code_mode_servers, bundles=self.bundles
        )
        self._code_mode_state = "stopped"
        self._code_mode_error: str | None = None
        self._manager: FairSessionManager | None = None
        self._task: asyncio.Task[None] | None = None

    def sample_with(self, chat: ChatCompletions) -> None:
        """Answer the sampling requests of servers configured with `sampling:` with these chat completions."""
        self.relay.llm.chat = chat

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/mcp", self.endpoint),
            Route("/mcp/{server}", self.endpoint),
            *self.rest.routes(),
            *self.oauth.routes(),
            *admin_routes(self.governance, self.upstreams, self.bundles, self.catalog, self.set_enabled),
        ]

    async def start(self) -> None:
        """Start serving; returns once every upstream has connected or failed once (bounded by connect_timeout)."""
        if self._task is not None:
            return
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(started), name="mcp-hub")
        await started

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def set_enabled(self, server: str, enabled: bool) -> None:
        """Disable a configured server at run time (disconnected, its tools gone) or enable it again.

        Held by this process only, until it restarts: the configuration's `enabled` is what every replica starts from.
        """
        upstream = self.upstreams.get(server)
        if upstream is None:
            raise NotFound(f"no MCP server named {server!r}", param="server")
        if not upstream.settings.enabled:
            raise Conflict(f"MCP server {server!r} is disabled in the configuration (enabled: false)", param="server")
        if enabled:
            self.supervisor.resume(server)
        else:
            self.supervisor.pause(server)

    def readiness(self) -> dict[str, Any]:
        servers = {
            name: {"state": u.health.state, "last_error": u.health.last_error, "tools": len(u.snapshot.tools)}
            if u.snapshot
            else {"state": u.health.state, "last_error": u.health.last_error, "tools": 0}
            for name, u in self.upstreams.items()
        }
        code_mode = {
            "state": self._code_mode_state,
            "last_error": self._code_mode_error,
            "servers": sorted(self.code_mode_servers),
        }
        if self._task is None or self._task.done():
            status = "down"
        elif all(s["state"] in ("ready", "disabled") for s in servers.values()) and self._code_mode_state == "ready":
            status = "ok"
        else:
            status = "degraded"  # the gateway serves; the other servers' tools (or direct tools) still work
        return {"status": status, "servers": servers, "code_mode": code_mode, "clients_listening": len(self.feed)}

    def _changed(self, server: str, snapshot: Snapshot | None) -> None:
        kinds = self.catalog.update(server, snapshot)
        if kinds:
            self.feed.publish(frozenset({server}), kinds)

    def _announced(self, server: str, kinds: frozenset[Kind]) -> None:
        self.feed.publish(frozenset({server}), kinds)

    async def _run(self, started: asyncio.Future[None]) -> None:
        resume = self.settings.resume
        manager = FairSessionManager(
            app=self.server,
            slots=self.caps.session_slots(),
            security_settings=transport_security(self.governance.settings),
            max_request_body_size=self.settings.max_body_bytes,
            session_idle_timeout=self.settings.session_idle_timeout,
            max_sessions=self.settings.max_sessions,
            event_stores=self._event_stores(),
            retry_interval=resume.retry_ms if resume.enabled else None,
            shared=self.shared,
            calls=SessionCalls(self.endpoint.fast_path) if self.settings.fast_path else None,
        )
        if self.shared is not None:
            self.shared.on_end = manager.end_here
        try:
            await self._start_code_mode()
            async with manager.run(), anyio.create_task_group() as tg:
                self._manager = manager
                await tg.start(self.feed.run, self.credentials, self.settings.key_watch_interval)
                await tg.start(self.relay.run)
                await tg.start(self.supervisor.run)
                if self.shared is not None:
                    await tg.start(self.shared.run)
                started.set_result(None)
                logger.info("MCP hub serving %d upstream servers", len(self.supervisor.upstreams))
                await anyio.sleep_forever()
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            raise
        finally:
            self._manager = None
            # Shielded, so bounded: a pool waiting on a busy or stuck worker must not hold the gateway's shutdown.
            with anyio.CancelScope(shield=True):
                await self.oauth.aclose()
                if self.shared is not None:
                    await self.shared.close()
                with anyio.move_on_after(self.governance.settings.server.stop_timeout) as bound:
                    try:
                        await self.code_mode.stop()
                    except Exception:
                        logger.exception("Code Mode's sandbox pool did not close cleanly")
                if bound.cancelled_caught:
                    logger.error("Code Mode's sandbox pool did not close within server.stop_timeout; left behind")
                self._code_mode_state = "stopped"

    def _event_stores(self) -> SessionEventStores | RedisEventStores | None:
        """Where each session's SSE events are kept for resumption: in Redis when sessions are shared."""
        if not self.settings.resume.enabled:
            return None
        if self.shared is not None:
            return self.shared.event_stores
        return SessionEventStores(self.settings.resume)

    async def _start_code_mode(self) -> None:
        try:
            await self.code_mode.start()
        except Exception as exc:
            # Direct tools serve on; each run retries the pool and says why it cannot run meanwhile.
            logger.exception("Code Mode's sandbox pool could not start")
            self._code_mode_state, self._code_mode_error = "down", str(exc)
        else:
            self._code_mode_state, self._code_mode_error = "ready", None


def _code_mode_wanted(settings: GatewaySettings) -> bool:
    """Whether a server or a configured key uses Code Mode (a key created later through the admin API may too)."""
    return any(s.enabled and s.code_mode for s in settings.mcp_servers.values()) or any(
        key.code_mode for key in settings.virtual_keys
    )


def _sandbox_settings(settings: GatewaySettings, wanted: bool) -> CodeModeSettings:
    """Code Mode's limits; with no server or configured key using Code Mode, no worker is started before a run (and
    the sandbox is not even loaded: `CodeMode(lazy=True)`)."""
    return settings.code_mode if wanted else settings.code_mode.model_copy(update={"warm_workers": 0})
