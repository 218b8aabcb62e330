"""Keeps every enabled upstream connected: reconnects remote servers and restarts stdio servers, with backoff.

The wait before the next attempt starts at `mcp.backoff_initial` and doubles after each failure up to
`mcp.backoff_max`; a connection that stayed up longer than `backoff_max` resets it, so a server that crashes once in
a while comes back quickly while one that crashes at start does not spin.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import anyio
import anyio.abc
import httpx2
from anyio.abc import TaskStatus
from mcp.shared.exceptions import MCPError

from mcp_hub.upstreams.base import ConnectionLost, Upstream
from toolpolicy.errors import GatewayError
from toolpolicy.settings import McpHubSettings

logger = logging.getLogger(__name__)


class Supervisor:
    def __init__(self, upstreams: Iterable[Upstream], settings: McpHubSettings) -> None:
        self.upstreams = [u for u in upstreams if u.settings.enabled]
        self.settings = settings
        self.paused: set[str] = set()
        """Servers disabled at run time (`pause`): not connected until `resume`, or until the process restarts."""
        self._scopes: dict[str, anyio.CancelScope] = {}
        self._tg: anyio.abc.TaskGroup | None = None

    def pause(self, name: str) -> None:
        """Disconnect the server and keep it down: its tools leave every listing and its calls are refused."""
        upstream = self._upstream(name)
        if name in self.paused:
            return
        self.paused.add(name)
        scope = self._scopes.pop(name, None)
        if scope is not None:
            scope.cancel()
        upstream.paused()

    def resume(self, name: str) -> None:
        """Connect a paused server again (with the usual backoff when it fails)."""
        upstream = self._upstream(name)
        if name not in self.paused:
            return
        if self._tg is None:
            raise RuntimeError("the supervisor is not running")
        self.paused.discard(name)
        upstream.health.enter("connecting")
        self._tg.start_soon(self._supervise, upstream, anyio.Event(), name=f"mcp-upstream-{name}")

    def _upstream(self, name: str) -> Upstream:
        for upstream in self.upstreams:
            if upstream.name == name:
                return upstream
        raise KeyError(name)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Supervise every upstream until cancelled; `started` once each has connected or failed once."""
        attempted = {upstream.name: anyio.Event() for upstream in self.upstreams}
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for upstream in self.upstreams:
                tg.start_soon(self._supervise, upstream, attempted[upstream.name], name=f"mcp-upstream-{upstream.name}")
            # The gateway starts serving once every upstream had its first chance; a slow one joins later.
            with anyio.move_on_after(self.settings.connect_timeout + 1):
                for event in attempted.values():
                    await event.wait()
            task_status.started()

    async def _supervise(self, upstream: Upstream, attempted: anyio.Event) -> None:
        with anyio.CancelScope() as scope:
            self._scopes[upstream.name] = scope
            try:
                await self._keep_connected(upstream, attempted)
            finally:
                if self._scopes.get(upstream.name) is scope:
                    del self._scopes[upstream.name]
        attempted.set()  # paused before its first attempt: the hub need not wait for it

    async def _keep_connected(self, upstream: Upstream, attempted: anyio.Event) -> None:
        delay = self.settings.backoff_initial
        upstream.on_connected = attempted.set
        while True:
            upstream.health.enter("connecting")
            began = anyio.current_time()
            try:
                await upstream.serve_connection()
            except Exception as exc:
                error = describe_failure(upstream, exc)
            upstream.went_down(error)
            attempted.set()
            if anyio.current_time() - began > self.settings.backoff_max:
                delay = self.settings.backoff_initial
            logger.info("MCP server %r: next attempt in %.1fs", upstream.name, delay)
            with anyio.move_on_after(delay):
                await upstream.connect_wanted.wait()
            upstream.connect_wanted = anyio.Event()
            delay = min(delay * 2, self.settings.backoff_max)


def describe_failure(upstream: Upstream, exc: BaseException) -> str:
    """One line saying why a connection failed or ended; the traceback goes to the debug log."""
    while isinstance(exc, BaseExceptionGroup):
        leaves = [e for e in exc.exceptions if not isinstance(e, anyio.get_cancelled_exc_class())]
        exc = leaves[0] if leaves else exc.exceptions[0]
    logger.debug("MCP server %r: connection failed", upstream.name, exc_info=exc)
    if isinstance(exc, GatewayError):
        return exc.message  # the hub's own (an OAuth token it could not get), already naming the server
    if isinstance(exc, ConnectionLost | TimeoutError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot start or reach {upstream.describe()}: {exc.strerror}"
    if isinstance(exc, httpx2.TransportError):
        return f"cannot reach {upstream.describe()}: {exc or type(exc).__name__}"
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"{upstream.describe()} answered HTTP {exc.response.status_code}"
    if isinstance(exc, MCPError):
        return f"error {exc.code} while connecting: {exc.message}"
    detail = str(exc) or "no detail"
    return f"{type(exc).__name__}: {detail}"
