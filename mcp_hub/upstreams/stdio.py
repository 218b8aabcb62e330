"""Upstreams run as child processes speaking newline-delimited JSON-RPC on stdin/stdout.

The hub has its own stdio transport rather than the SDK's, to contain misbehaving servers: stdout lines that are not
JSON-RPC are counted and discarded (the first few logged, then a summary at most every few seconds), a line longer
than `mcp.max_upstream_message_bytes` is dropped without being buffered, and stderr goes to the log under the
server's name at a bounded rate. The child gets a minimal environment plus its `env`; it is started in its own
process group and the whole group is stopped at the end.

A bare `command` is looked up on PATH, then next to the gateway's Python interpreter, so console scripts installed
in the gateway's virtualenv (e.g. `mcp-server-time`) work without activating it.

Everything written to stdin goes through one batching writer (`fast_stdio.Outbox`); `tools/call` takes the fast path
(`fast_stdio.StdioLink`: written there directly, its response taken off stdout by id before the SDK's client sees
the line) unless `fast_path: false`.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import anyio
import mcp_types as types
from anyio.abc import ByteReceiveStream, Process
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import Client
from mcp.client._transport import TransportStreams
from mcp.client.stdio import get_default_environment
from mcp.os.posix.utilities import terminate_posix_process_tree
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from mcp_hub.upstreams.base import Upstream
from mcp_hub.upstreams.fast_call import FastCalls
from mcp_hub.upstreams.fast_stdio import Outbox, StdioLink
from toolpolicy.settings import McpHubSettings, McpServerSettings

logger = logging.getLogger(__name__)
stderr_logger = logging.getLogger("mcp_hub.upstreams.stderr")

STDERR_LINE_BYTES = 8192
_GRACE = 2.0
"""Seconds a server gets to exit after its stdin closes (then SIGTERM, then SIGKILL, to the whole group)."""


class _Throttle:
    """At most `limit` events per `period` seconds get through; the rest are counted until the next window."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit, self.period = limit, period
        self.suppressed = 0
        self._window_end = 0.0
        self._in_window = 0

    def allow(self) -> bool:
        now = anyio.current_time()
        if now >= self._window_end:
            self._window_end, self._in_window = now + self.period, 0
        if self._in_window < self.limit:
            self._in_window += 1
            return True
        self.suppressed += 1
        return False

    def take_suppressed(self) -> int:
        count, self.suppressed = self.suppressed, 0
        return count


def resolve_command(command: str) -> str:
    if os.sep in command:
        return command
    found = shutil.which(command)
    if found is not None:
        return found
    beside = Path(sys.executable).parent / command
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return command


class StdioUpstream(Upstream):
    kind = "stdio"

    def __init__(self, name: str, settings: McpServerSettings, hub: McpHubSettings) -> None:
        super().__init__(name, settings, hub)
        self._exit_reason: str | None = None
        self._noise = _Throttle(limit=3, period=10.0)
        self._stderr = _Throttle(limit=200, period=1.0)
        self._link: StdioLink | None = None
        """The current connection's pipes as the `tools/call` fast path uses them (`fast_stdio.py`)."""

    def describe(self) -> str:
        return f"command {self.settings.command!r}"

    def lost_reason(self) -> str:
        return self._exit_reason or "the process closed its stdout"

    def transport(self) -> AbstractAsyncContextManager[TransportStreams]:
        return self._run_process()

    def fast_calls(self, client: Client) -> FastCalls | None:
        if self._link is None or not self.settings.fast_path:
            return None
        return FastCalls(self._link, client, self.relay)

    @asynccontextmanager
    async def _run_process(self) -> AsyncIterator[TransportStreams]:
        assert self.settings.command is not None
        env = get_default_environment() | {key: value.get_secret_value() for key, value in self.settings.env.items()}
        process = await anyio.open_process(
            [resolve_command(self.settings.command), *self.settings.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=self.settings.cwd,
            start_new_session=True,
        )
        logger.info("MCP server %r: started %s (pid %d)", self.name, self.describe(), process.pid)
        self._exit_reason = None
        read_sink, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        write_stream, write_source = anyio.create_memory_object_stream[SessionMessage](0)
        outbox = Outbox()
        link = StdioLink(outbox)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._read_stdout, process, read_sink, link)
            tg.start_soon(self._queue_sdk_messages, write_source, outbox)
            tg.start_soon(self._write_stdin, process, outbox)
            tg.start_soon(self._log_stderr, process)
            self._link = link
            try:
                yield read_stream, write_stream
            finally:
                self._link = None
                link.close()
                outbox.close()
                with anyio.CancelScope(shield=True):
                    await _stop(process)
                tg.cancel_scope.cancel()
                read_stream.close()
                write_stream.close()

    async def _read_stdout(
        self, process: Process, sink: MemoryObjectSendStream[SessionMessage | Exception], link: StdioLink
    ) -> None:
        assert process.stdout is not None
        limit = self.hub.max_upstream_message_bytes
        buffer = bytearray()
        discarding = False
        async with sink:
            try:
                async for chunk in process.stdout:
                    *complete, rest = chunk.split(b"\n")
                    for piece in complete:
                        if discarding:
                            discarding = False  # the end of an oversized line
                        elif len(buffer) + len(piece) > limit:
                            self._garbage(f"a line longer than {limit} bytes")
                        else:
                            buffer += piece
                            line = bytes(buffer)
                            if not (link.pending and link.take_response(line)):
                                await self._deliver(line, sink)
                        buffer.clear()
                    if not discarding:
                        buffer += rest
                        if len(buffer) > limit:
                            self._garbage(f"a line longer than {limit} bytes")
                            buffer.clear()
                            discarding = True
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass
            finally:
                with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                    while process.returncode is None:
                        await anyio.sleep(0.02)
                if process.returncode is not None:
                    self._exit_reason = f"the process exited with status {process.returncode}"
                link.close()  # the fast path's calls in flight get no answer (once the reason is known)

    async def _deliver(self, line: bytes, sink: MemoryObjectSendStream[SessionMessage | Exception]) -> None:
        if not line.strip():
            return
        try:
            message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
        except (ValidationError, ValueError):
            self._garbage(line[:200].decode(errors="replace"))
            return
        await sink.send(SessionMessage(message))

    def _garbage(self, sample: str) -> None:
        self.health.stdout_noise += 1
        if self._noise.allow():
            skipped = self._noise.take_suppressed()
            more = f" ({skipped} more since the last report)" if skipped else ""
            logger.warning("MCP server %r wrote non-JSON-RPC to stdout, discarded: %r%s", self.name, sample, more)

    @staticmethod
    async def _queue_sdk_messages(source: MemoryObjectReceiveStream[SessionMessage], outbox: Outbox) -> None:
        """The SDK client's messages, serialized as its stdio transport does, into the outbox in their order."""
        async with source:
            async for message in source:
                data = message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                try:
                    await outbox.send(data.encode())
                except MCPError:
                    return  # the pipe is closed: the SDK sees the connection end on the read side

    async def _write_stdin(self, process: Process, outbox: Outbox) -> None:
        """Write what the outbox holds, a batch at a time (`fast_stdio.py`)."""
        assert process.stdin is not None
        while True:
            data = await outbox.take()
            try:
                await process.stdin.send(data)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
                # A server that stops reading its stdin is broken: stop it, so the read side ends and the
                # supervisor restarts it, instead of every request waiting out its timeout.
                logger.warning("MCP server %r: cannot write to its stdin (%s); stopping it", self.name, exc)
                outbox.close()
                with anyio.CancelScope(shield=True):
                    await _stop(process)
                return
            outbox.written()

    async def _log_stderr(self, process: Process) -> None:
        assert process.stderr is not None
        async for line in _lines(process.stderr, STDERR_LINE_BYTES):
            if self._stderr.allow():
                skipped = self._stderr.take_suppressed()
                if skipped:
                    stderr_logger.warning("[%s] (%d stderr lines not logged: too many)", self.name, skipped)
                stderr_logger.info("[%s] %s", self.name, line.decode(errors="replace").rstrip())


async def _lines(stream: ByteReceiveStream, max_bytes: int) -> AsyncIterator[bytes]:
    """Lines of a byte stream, each cut to `max_bytes` (the rest of a long line is skipped, never buffered)."""
    buffer = bytearray()
    try:
        async for chunk in stream:
            *complete, rest = chunk.split(b"\n")
            for piece in complete:
                if len(buffer) < max_bytes:
                    buffer += piece[: max_bytes - len(buffer)]
                yield bytes(buffer)
                buffer.clear()
            if len(buffer) < max_bytes:
                buffer += rest[: max_bytes - len(buffer)]
    except (anyio.ClosedResourceError, anyio.BrokenResourceError):
        pass
    if buffer:
        yield bytes(buffer)


async def _stop(process: Process) -> None:
    """Close stdin, give the server a grace period, then stop its whole process group."""
    if process.stdin is not None:
        try:
            await process.stdin.aclose()
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
    with anyio.move_on_after(_GRACE):
        while process.returncode is None:
            await anyio.sleep(0.02)
    if process.returncode is None:
        await terminate_posix_process_tree(process, _GRACE)
    with anyio.move_on_after(_GRACE):
        await process.aclose()
