"""A request's end on the LLM edge: its answer sent first, its audit record, metrics and span made after.

`finishing` is the end of a request answered in one piece (an error, or a whole completion). `stream_opener` is the
opening of a streamed answer for `streaming.OpeningEventStream`: the first target along the chain that opens a
stream, relayed, or the error to answer when none does; a client that leaves meanwhile releases the reservation and
leaves a 499 record.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from llm_proxy.pipeline import Exchange, Pipeline
from llm_proxy.relay import CLIENT_CLOSED, ClientDisconnected
from llm_proxy.streaming import BODY_FOLLOWS, Opened, Opener
from toolpolicy.errors import GatewayError

logger = logging.getLogger(__name__)

First = TypeVar("First")


class ThenFinish(Response):
    """`response` as it is, then `then()`, which runs even when sending failed or was cancelled."""

    def __init__(self, response: Response, then: Callable[[], None]) -> None:
        self.response = response
        self.then = then
        self.status_code = response.status_code
        self.background = None
        self.body = response.body
        self.raw_headers = response.raw_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = self.response
        try:
            if type(response) is Response and response.background is None and scope["type"] == "http":
                # What `Response.__call__` sends, without a coroutine of its own (every whole answer comes here).
                # Its body follows at once: the server may write the head with it (`BODY_FOLLOWS`).
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status_code,
                        "headers": response.raw_headers,
                        BODY_FOLLOWS: True,
                    }
                )
                await send({"type": "http.response.body", "body": response.body})
            else:
                await response(scope, receive, send)
        finally:
            self.then()


def finishing(pipeline: Pipeline, exchange: Exchange, response: Response) -> Response:
    """`response` as the request's end (its latency is measured to here); its audit record, metrics and span are
    made once it is out, so the client does not wait for them."""
    pipeline.end(exchange)
    return ThenFinish(response, lambda: pipeline.finish(exchange))


def stream_opener(
    pipeline: Pipeline,
    exchange: Exchange,
    first: Callable[[], Awaitable[First]],
    relay: Callable[[First], Opened],
    error: Callable[[GatewayError], Response],
) -> Opener:
    """Opens a stream: `first()` (the stream up to its first item; a target failing before it fails over to the
    next) then `relay` of it; when none opens, the `error` answer, with its status, as nothing has been sent yet.
    `first()` cleans up after itself when it raises or is cancelled (nothing it opened stays open)."""

    async def open() -> Opened | Response:
        try:
            opened = await first()
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await pipeline.release(exchange)
            if isinstance(exc, GatewayError):
                return finishing(pipeline, exchange, error(exc))
            if isinstance(exc, Exception):
                logger.exception("unhandled error opening a stream (request %s)", exchange.request_id)
                failed = GatewayError("internal error; the gateway logged the details")
                return finishing(pipeline, exchange, error(failed))
            pipeline.fail(exchange, ClientDisconnected("the client left before the stream started"), CLIENT_CLOSED)
            pipeline.finish(exchange)
            raise
        return relay(opened)

    return open
