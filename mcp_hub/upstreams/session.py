"""What every upstream connection does the same way, whatever its transport: list everything, notice the end.

- `list_everything`: one snapshot of the server's tools, prompts, resources and templates (all pages), keeping the
  tools its server-level `tools` globs expose; the optional listings a server lacks or fails count as empty;
- `watched`: the transport, with its read side pumped through a stream that reports when the connection ends
  (stdio EOF, a closed SSE stream), and where transport-level garbage is logged and dropped.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import anyio
import mcp_types as types
from anyio.streams.memory import MemoryObjectSendStream
from mcp import Client
from mcp.client._transport import TransportStreams
from mcp.shared.message import SessionMessage

from mcp_hub.catalog import Snapshot
from mcp_hub.upstreams.optional import UnsupportedMethods, listed_or_empty
from toolpolicy.globs import GlobSet

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_PAGES = 100
"""Pages of one upstream listing the hub follows; a paginator that never ends cannot hang a refresh."""


async def list_everything(client: Client, expose: GlobSet, unsupported: UnsupportedMethods) -> Snapshot:
    """Only what the server declared is asked for; a failing listing other than tools counts as empty."""
    caps = client.server_capabilities
    tools: list[types.Tool] = []
    prompts: list[types.Prompt] = []
    resources: list[types.Resource] = []
    templates: list[types.ResourceTemplate] = []
    if caps.tools is not None:
        tools = await _all_pages(lambda cursor: client.list_tools(cursor=cursor), lambda r: r.tools)
    if caps.prompts is not None:
        prompts = await listed_or_empty(
            unsupported,
            "prompts/list",
            lambda: _all_pages(lambda cursor: client.list_prompts(cursor=cursor), lambda r: r.prompts),
        )
    if caps.resources is not None:
        resources = await listed_or_empty(
            unsupported,
            "resources/list",
            lambda: _all_pages(lambda cursor: client.list_resources(cursor=cursor), lambda r: r.resources),
        )
        templates = await listed_or_empty(
            unsupported,
            "resources/templates/list",
            lambda: _all_pages(
                lambda cursor: client.list_resource_templates(cursor=cursor), lambda r: r.resource_templates
            ),
        )
    return Snapshot(
        tools=tuple(sorted((t for t in tools if expose.matches(t.name)), key=lambda t: t.name)),
        prompts=tuple(sorted(prompts, key=lambda p: p.name)),
        resources=tuple(sorted(resources, key=lambda r: r.uri)),
        templates=tuple(sorted(templates, key=lambda t: t.uri_template)),
    )


async def _all_pages(fetch: Callable[[str | None], Awaitable[T]], items: Callable[[T], list[Any]]) -> list[Any]:
    collected: list[Any] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        result = await fetch(cursor)
        collected.extend(items(result))
        cursor = getattr(result, "next_cursor", None)
        if cursor is None:
            return collected
    logger.warning("stopped listing after %d pages", MAX_PAGES)
    return collected


@asynccontextmanager
async def watched(
    transport: AbstractAsyncContextManager[TransportStreams], lost: anyio.Event, server: str
) -> AsyncIterator[TransportStreams]:
    """`transport`, with `lost` set when its read side ends."""
    async with transport as (read, write), anyio.create_task_group() as tg:
        sink, source = anyio.create_memory_object_stream[SessionMessage | Exception](0)

        async def pump(sink: MemoryObjectSendStream[SessionMessage | Exception]) -> None:
            async with sink:
                try:
                    async for item in read:
                        if isinstance(item, Exception):
                            logger.warning("MCP server %r sent something that is not JSON-RPC: %s", server, item)
                            continue
                        await sink.send(item)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    pass
                finally:
                    lost.set()

        tg.start_soon(pump, sink)
        try:
            yield source, write
        finally:
            tg.cancel_scope.cancel()
