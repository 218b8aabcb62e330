"""Tools an upstream lists that the hub cannot serve are dropped from its `tools/list` answers, one by one.

The SDK validates a `tools/list` result as a whole: one tool whose `inputSchema` is not an object would make the
whole listing fail, and with it every tool of the server. The screen sits between the transport and the SDK's
client and removes such tools before the SDK sees the answer: a tool that does not fit the negotiated protocol's
shape, or whose input or output schema is not a valid JSON Schema (which downstream clients would reject). Each one
is logged once and kept, with why, in `rejected` (shown by `GET /admin/mcp/servers` as `skipped_tools`).

It tracks the traffic it needs: which requests are `tools/list` (and whether each is a first page, which starts a
new listing), and the protocol version (an `initialize` answer, or a 2026-07-28 request's `_meta`).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import mcp_types as types
from jsonschema import SchemaError
from jsonschema.validators import validator_for
from mcp.client._transport import ReadStream, TransportStreams, WriteStream
from mcp.shared.message import SessionMessage
from mcp_types import methods
from mcp_types.version import LATEST_HANDSHAKE_VERSION
from pydantic import ValidationError

from mcp_hub.streams import ReadWrapper, WriteWrapper

logger = logging.getLogger(__name__)


class ToolScreen:
    """One upstream connection's screen; `rejected` maps each dropped tool's name to why (latest listing)."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.rejected: dict[str, str] = {}
        self._version = LATEST_HANDSHAKE_VERSION
        self._initialize_ids: set[types.RequestId] = set()
        self._listing_ids: dict[types.RequestId, bool] = {}
        """`tools/list` requests awaiting their answer, each with whether it asked for the first page."""
        self._logged: set[tuple[str, str]] = set()

    def new_connection(self) -> None:
        """Forget the requests of a previous connection: request ids start over on a new one."""
        self._initialize_ids.clear()
        self._listing_ids.clear()

    def outgoing(self, message: types.JSONRPCMessage) -> None:
        if not isinstance(message, types.JSONRPCRequest):
            return
        params: Mapping[str, Any] = message.params or {}
        meta = params.get("_meta")
        version = meta.get(types.PROTOCOL_VERSION_META_KEY) if isinstance(meta, Mapping) else None
        if isinstance(version, str):
            self._version = version
        if message.method == "initialize":
            self._initialize_ids.add(message.id)
        elif message.method == "tools/list":
            self._listing_ids[message.id] = params.get("cursor") is None

    def incoming(self, message: types.JSONRPCMessage) -> types.JSONRPCMessage:
        if not isinstance(message, types.JSONRPCResponse | types.JSONRPCError) or message.id is None:
            return message
        first_page = self._listing_ids.pop(message.id, None)
        if not isinstance(message, types.JSONRPCResponse):
            self._initialize_ids.discard(message.id)
            return message
        if message.id in self._initialize_ids:
            self._initialize_ids.discard(message.id)
            version = message.result.get("protocolVersion")
            if isinstance(version, str):
                self._version = version
            return message
        if first_page is None:
            return message
        if first_page:
            self.rejected = {}
        kept = self.screen(message.result)
        return message if kept is message.result else message.model_copy(update={"result": kept})

    def screen(self, result: dict[str, Any]) -> dict[str, Any]:
        """`result` without the tools the hub cannot serve (the same object when every tool is fine)."""
        tools = result.get("tools")
        if not isinstance(tools, list):
            return result  # not a listing at all: the SDK reports that as it would
        reasons = self._shape_errors(result)
        for index, tool in enumerate(tools):
            if index not in reasons and isinstance(tool, dict):
                problem = schema_problem(tool)
                if problem is not None:
                    reasons[index] = problem
        if not reasons:
            return result
        for index, reason in sorted(reasons.items()):
            self._reject(tools[index], index, reason)
        return {**result, "tools": [tool for index, tool in enumerate(tools) if index not in reasons]}

    def _shape_errors(self, result: dict[str, Any]) -> dict[int, str]:
        try:
            methods.validate_server_result("tools/list", self._version, result)
        except ValidationError as exc:
            reasons: dict[int, str] = {}
            for error in exc.errors():
                loc = error["loc"]
                if len(loc) >= 2 and loc[0] == "tools" and isinstance(loc[1], int):
                    where = ".".join(str(part) for part in loc[2:]) or "the tool"
                    reasons.setdefault(loc[1], f"{where}: {error['msg']}")
            return reasons
        except (KeyError, ValueError):
            pass  # a version or method this SDK has no shape for: nothing to check it against
        return {}

    def _reject(self, tool: Any, index: int, reason: str) -> None:
        name = tool.get("name") if isinstance(tool, dict) else None
        label = name if isinstance(name, str) else f"#{index}"
        self.rejected[label] = reason
        if (label, reason) not in self._logged:
            self._logged.add((label, reason))
            logger.warning("MCP server %r: tool %r skipped, its definition is invalid: %s", self.server, label, reason)


def schema_problem(tool: Mapping[str, Any]) -> str | None:
    """Why a tool's input or output schema is not a usable JSON Schema object, or None if both are."""
    for field in ("inputSchema", "outputSchema"):
        schema = tool.get(field)
        if schema is None and field == "outputSchema":
            continue
        if not isinstance(schema, dict):
            return f"{field} is not a JSON object"
        try:
            validator_for(schema).check_schema(schema)
        except SchemaError as exc:
            path = "/".join(str(part) for part in exc.path)
            return f"{field} is not a valid JSON Schema{f' at {path}' if path else ''}: {exc.message}"
    return None


class _ScreenedRead(ReadWrapper):
    def __init__(self, inner: ReadStream[SessionMessage | Exception], screen: ToolScreen) -> None:
        super().__init__(inner)
        self._screen = screen

    def received(self, item: SessionMessage | Exception) -> SessionMessage | Exception:
        if isinstance(item, SessionMessage):
            screened = self._screen.incoming(item.message)
            if screened is not item.message:
                return SessionMessage(screened, metadata=item.metadata)
        return item

    @property
    def last_context(self) -> contextvars.Context | None:
        """The sender's context of the last message, as the wrapped stream has it (the SDK reads it if present)."""
        context = getattr(self._inner, "last_context", None)
        return context if isinstance(context, contextvars.Context) else None


class _ScreenedWrite(WriteWrapper):
    def __init__(self, inner: WriteStream[SessionMessage], screen: ToolScreen) -> None:
        super().__init__(inner)
        self._screen = screen

    def sent(self, item: SessionMessage) -> SessionMessage:
        self._screen.outgoing(item.message)
        return item


@asynccontextmanager
async def screened(
    transport: AbstractAsyncContextManager[TransportStreams], screen: ToolScreen
) -> AsyncIterator[TransportStreams]:
    """`transport`, with its `tools/list` answers passed through `screen`."""
    screen.new_connection()
    async with transport as (read, write):
        yield _ScreenedRead(read, screen), _ScreenedWrite(write, screen)
