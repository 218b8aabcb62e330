"""Cancelling a request's work when its HTTP client goes away.

ASGI servers do not cancel a request handler whose client disconnected; they only report it through `receive()`.
A REST tool call would otherwise run on upstream (holding its rate-limit and budget reservations) until it ends or
times out, for nobody. `/mcp` needs no help: the SDK cancels the call itself, and the cancellation travels upstream.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import anyio
from starlette.types import Receive

from toolpolicy.errors import GatewayError

T = TypeVar("T")


class ClientGone(GatewayError):
    """The client disconnected before the answer was ready; the work was cancelled."""

    status = 499  # nginx's "client closed request": what the access log and metrics see; the client sees nothing
    code = "client_disconnected"


async def unless_disconnected(receive: Receive, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it and raising ClientGone if the client disconnects first.

    Call it once the request body has been read: from then on `receive()` only reports the disconnect.
    """
    done: list[T] = []
    failed: list[Exception] = []
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            group.cancel_scope.cancel()

        group.start_soon(watch)
        try:
            done.append(await work)
        except Exception as exc:
            failed.append(exc)  # raised below, as itself rather than inside the task group's ExceptionGroup
        group.cancel_scope.cancel()
    if failed:
        raise failed[0]
    if not done:
        raise ClientGone("the client disconnected before the tool call ended; the call was cancelled")
    return done[0]
