"""One upstream session per virtual key, for OAuth upstreams (flow `authorization_code`) that speak only the 2025
protocol: such a server binds each `Mcp-Session-Id` to the token that opened it (the MCP SDK's session manager
answers "Session not found" to any other), so one shared session cannot carry several people's tokens.

On 2026-07-28 there are no sessions and the shared connection carries each key's bearer per request; this module
is used only when the shared connection negotiated a 2025 version. Each key's session is opened on its first call
(in that call's context, so its handshake and event stream carry that key's token), kept while used, closed after
`IDLE_SECONDS` without a call, and the least recently used one is closed when `MAX_SESSIONS` are open.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import anyio
from anyio.abc import TaskGroup, TaskStatus
from mcp import Client

logger = logging.getLogger(__name__)

IDLE_SECONDS = 600.0
MAX_SESSIONS = 256
CLOSE_SECONDS = 5.0
"""Longest a session's close (its `DELETE`) may take."""


class _Held:
    __slots__ = ("client", "closing", "error", "last_used", "ready")

    def __init__(self, now: float) -> None:
        self.client: Client | None = None
        self.error: BaseException | None = None
        self.ready = anyio.Event()
        self.closing = anyio.Event()
        self.last_used = now


class KeySessions:
    """The per-key sessions of one upstream connection; `run` hosts them (ends with the connection)."""

    def __init__(
        self,
        server: str,
        open_client: Callable[[], AbstractAsyncContextManager[Client]],
        *,
        idle: float = IDLE_SECONDS,
        limit: int = MAX_SESSIONS,
    ) -> None:
        self.server = server
        self.open_client = open_client
        self.idle = idle
        self.limit = limit
        self._held: OrderedDict[str, _Held] = OrderedDict()
        self._tg: TaskGroup | None = None

    def __len__(self) -> int:
        return len(self._held)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            task_status.started()
            try:
                while True:
                    await anyio.sleep(self.idle / 4)
                    cutoff = anyio.current_time() - self.idle
                    for held in [h for h in self._held.values() if h.last_used < cutoff]:
                        held.closing.set()
            finally:
                self._tg = None
                tg.cancel_scope.cancel()

    async def client(self, key_id: str) -> Client:
        """The key's session, opened now if it has none (call in the context of that key's request)."""
        held = self._held.get(key_id)
        if held is None:
            if self._tg is None:
                raise RuntimeError("the connection's per-key sessions are closed")
            while len(self._held) >= self.limit:
                _, oldest = self._held.popitem(last=False)
                oldest.closing.set()
            held = self._held[key_id] = _Held(anyio.current_time())
            self._tg.start_soon(self._hold, key_id, held, name=f"mcp-upstream-{self.server}-key-session")
        else:
            self._held.move_to_end(key_id)
        held.last_used = anyio.current_time()
        await held.ready.wait()
        if held.client is None:
            raise held.error or RuntimeError("the key's session closed")
        return held.client

    def drop(self, key_id: str) -> None:
        """Close the key's session (it failed); its next call opens a new one."""
        held = self._held.pop(key_id, None)
        if held is not None:
            held.closing.set()

    async def _hold(self, key_id: str, held: _Held) -> None:
        try:
            opened = self.open_client()
            client = await opened.__aenter__()
            try:
                held.client = client
                held.ready.set()
                await held.closing.wait()
            finally:
                held.client = None
                # Closed even when the connection is being cancelled: the session's DELETE and its HTTP
                # connections finish rather than being dropped mid-request.
                with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_SECONDS):
                    await opened.__aexit__(None, None, None)
        except Exception as exc:
            logger.info("MCP server %r: a key's session ended: %s", self.server, exc)
            held.error = exc
        finally:
            held.client = None
            held.ready.set()
            if self._held.get(key_id) is held:
                del self._held[key_id]
