"""Which downstream request caused the upstream work now asking or logging: the correlation half of the relay.

A server-to-client message from an upstream (a sampling, elicitation or roots request; a log notice) belongs to the
client request that caused the call it was sent during. How the hub finds that request:

1. **Context** (Streamable HTTP upstreams, and every 2026-07-28 upstream): the hub's client reads a message that
   rides a call's own stream with the context of the task that made the call, and the 2026-07-28 driver of
   `InputRequiredResult` rounds runs in that task itself; the `CURRENT_CALL` variable set around the upstream call
   is visible there.
2. **In-flight registry** (stdio and SSE upstreams; anything on a Streamable HTTP upstream's GET stream): the wire
   does not say which call a request belongs to, so the hub looks at the calls in flight on that upstream. One call, or
   several from one client session, settle it. Calls from several clients at once make it ambiguous, and the hub
   then refuses the request (the upstream gets an error) rather than ask the wrong person.

One upstream session per downstream session would lift the ambiguity, at the price of one stdio process per
client session; the registry keeps one shared process, as the rest of the hub does.
"""

from __future__ import annotations

import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types
from anyio.abc import TaskGroup
from mcp.server.connection import Connection
from mcp.server.session import ServerSession
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp_hub.access import Caller
from mcp_hub.relay.deadlines import Deadline
from toolpolicy.audit import AuditRecord

if TYPE_CHECKING:
    from mcp_hub.relay.rounds import HeldCall, InlineCall

logger = logging.getLogger(__name__)

DELIVERY_TIMEOUT = 5.0
"""Seconds one relayed notice may take to write to its client before it is dropped."""
FLUSH_TIMEOUT = 2.0
"""Seconds a finished call waits for its relayed notices to be written before its result goes out."""


@dataclass(eq=False)
class Downstream:
    """The client request (a tool call, a prompt, a resource read) that caused upstream work."""

    session: ServerSession
    request_id: types.RequestId
    """Its JSON-RPC id: relayed requests and notices name it, so they ride the stream of its response."""
    protocol_version: str
    capabilities: types.ClientCapabilities | None
    meta: Mapping[str, Any] | None
    connection: Connection | None
    """The 2025-era session it came in, or None for a 2026-07-28 request (no session)."""
    caller: Caller
    call_id: str
    """The audit request id of the tool call, which relayed requests are audited under."""
    held: HeldCall | InlineCall | None = None
    """A 2026-07-28 request's held (or inline) call (`rounds.py`): where upstream questions go, its retry's answers."""

    @property
    def modern(self) -> bool:
        return self.protocol_version in MODERN_PROTOCOL_VERSIONS

    def holding(self, held: HeldCall | InlineCall) -> Downstream:
        """This request, served by `held` (`dataclasses.replace`, without its per-call field introspection)."""
        return Downstream(
            self.session,
            self.request_id,
            self.protocol_version,
            self.capabilities,
            self.meta,
            self.connection,
            self.caller,
            self.call_id,
            held,
        )

    @property
    def session_key(self) -> int | None:
        return id(self.connection) if self.connection is not None else None


def connection_of(session: ServerSession) -> Connection | None:
    """The 2025-era session (connection) a request came in on, or None (a 2026-07-28 request has none)."""
    # The SDK (2.3) gives handlers no public handle on the connection, which owns the standalone stream and the
    # per-connection cleanup stack that tells when the session ends.
    connection = getattr(session, "_connection", None)
    if not isinstance(connection, Connection) or connection.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return None
    return connection


@dataclass
class AuditSink:
    """Where relayed requests are audited, and whether their content is kept (`audit.record_arguments`)."""

    emit: Callable[[AuditRecord], None] = lambda record: None
    record_content: bool = False


DOWNSTREAM: contextvars.ContextVar[Downstream | None] = contextvars.ContextVar("isthmus_downstream", default=None)
"""Set by the hub's handlers around the work of one client request."""


class Outbox:
    """Notices for one call's client, written in the order they arrived, one at a time."""

    def __init__(self) -> None:
        self._queue: deque[Callable[[], Awaitable[None]]] = deque()
        self._idle: anyio.Event | None = None
        """Set once the notices being written are: made (an anyio event costs) only when some are."""
        self._running = False

    def put(self, send: Callable[[], Awaitable[None]], tg: TaskGroup) -> None:
        self._queue.append(send)
        if not self._running:
            self._running = True
            self._idle = anyio.Event()
            tg.start_soon(self._drain)

    @property
    def writing(self) -> bool:
        """Whether notices are being written (so `flushed` has something to wait for)."""
        return self._running and self._idle is not None

    async def flushed(self) -> None:
        idle = self._idle
        if not self._running or idle is None:
            return  # nothing being written (most calls: no notices at all)
        with anyio.move_on_after(FLUSH_TIMEOUT):
            await idle.wait()

    async def _drain(self) -> None:
        try:
            while self._queue:
                send = self._queue.popleft()
                with anyio.move_on_after(DELIVERY_TIMEOUT):
                    try:
                        await send()
                    except Exception as exc:
                        logger.info("a relayed notice could not be written to its client: %s", exc)
        finally:
            self._running = False
            if self._idle is not None:
                self._idle.set()


@dataclass(eq=False)
class UpstreamCall:
    """One request in flight on one upstream, on behalf of `downstream` (None: the hub's own work)."""

    server: str
    name: str
    """The tool (prompt, resource) as the upstream knows it."""
    downstream: Downstream | None
    deadline: Deadline
    outbox: Outbox = field(default_factory=Outbox)


CURRENT_CALL: contextvars.ContextVar[UpstreamCall | None] = contextvars.ContextVar("isthmus_call", default=None)
"""Set in the task that awaits an upstream request, for the whole request."""


class InFlight:
    """The calls in flight on one upstream, to attribute what the upstream sends during them."""

    def __init__(self, server: str) -> None:
        self.server = server
        self._calls: dict[int, UpstreamCall] = {}

    def __len__(self) -> int:
        return len(self._calls)

    @contextmanager
    def registered(self, call: UpstreamCall) -> Iterator[None]:
        token = self.enter(call)
        try:
            yield
        finally:
            self.leave(call, token)

    def enter(self, call: UpstreamCall) -> contextvars.Token[UpstreamCall | None]:
        """`call` is in flight, and the running task's (`registered`, for a caller that cannot use a `with`)."""
        self._calls[id(call)] = call
        return CURRENT_CALL.set(call)

    def leave(self, call: UpstreamCall, token: contextvars.Token[UpstreamCall | None]) -> None:
        CURRENT_CALL.reset(token)
        self._calls.pop(id(call), None)

    def attribute(self, context: contextvars.Context | None) -> UpstreamCall | None:
        """The call a message received now belongs to, or None when nothing (or more than one client) fits.

        `context` is the context the message was received with, when the transport keeps it (see the module doc).
        """
        if context is not None:
            call = context.get(CURRENT_CALL)
            if call is not None and call.server == self.server:
                return call
        return self.sole()

    def sole(self) -> UpstreamCall | None:
        calls = [call for call in self._calls.values() if call.downstream is not None]
        if not calls:
            return None
        sessions = {call.downstream.session_key for call in calls if call.downstream is not None}
        if len(calls) == 1 or (len(sessions) == 1 and None not in sessions):
            return calls[-1]
        return None

    def current(self) -> UpstreamCall | None:
        """The call of the running task, if it is one of this upstream's (2026-07-28 input rounds run there)."""
        call = CURRENT_CALL.get()
        return call if call is not None and call.server == self.server else None
