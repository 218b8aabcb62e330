"""Wrappers of an upstream transport's streams that see each message on its way, and close what they wrap.

The hub layers several over one connection (tool screening, the relay's observer, capability forwarding); each
overrides one hook and inherits the rest.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

import anyio
from mcp.client._transport import ReadStream, WriteStream
from mcp.shared.message import SessionMessage


class _Closable(Protocol):
    async def aclose(self) -> None: ...


class _Closing:
    _inner: _Closable

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class ReadWrapper(_Closing):
    """A read stream whose items pass through `received` as they arrive."""

    _inner: ReadStream[SessionMessage | Exception]

    def __init__(self, inner: ReadStream[SessionMessage | Exception]) -> None:
        self._inner = inner

    def received(self, item: SessionMessage | Exception) -> SessionMessage | Exception:
        return item

    async def receive(self) -> SessionMessage | Exception:
        return self.received(await self._inner.receive())

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None


class WriteWrapper(_Closing):
    """A write stream whose items pass through `sent` before they go."""

    _inner: WriteStream[SessionMessage]

    def __init__(self, inner: WriteStream[SessionMessage]) -> None:
        self._inner = inner

    def sent(self, item: SessionMessage) -> SessionMessage:
        return item

    async def send(self, item: SessionMessage, /) -> None:
        await self._inner.send(self.sent(item))
