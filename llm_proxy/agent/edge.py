"""Agent mode at the HTTP edge: `/v1/chat/completions` and `/v1/messages` for a key in agent mode.

Both run the loop in chat completions format. Messages requests are translated once (`messages_to_chat`), and the
answer back (`completion_to_message`; streamed, `ChunksToEvents`), whatever the provider: a Messages request in
agent mode reaches an Anthropic provider through its chat translation, not natively.

A stream is one ordinary stream of the client's API: the model's text as it comes (the text of every step, steps
set apart by a blank line), then the answer's tool calls if it asked for client tools, the finish, and the usage
(the sum over steps) when the client asked for it (chat: `stream_options.include_usage`; Messages: always, in
`message_delta`). While the gateway runs tools, the chat stream carries SSE comments naming them (`: agent ...`),
which SDKs skip and which keep idle proxies from closing the connection.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from functools import partial
from typing import Any

import anyio
from starlette.responses import Response

from llm_proxy.agent.events import AgentItem, Chunk, RunEnded, ToolCallFinished, ToolCallStarted
from llm_proxy.agent.loop import AgentLoop, AgentRun
from llm_proxy.finishing import stream_opener
from llm_proxy.guard import ChatStreamGuard, check_body, output_scan
from llm_proxy.json_answer import json_answer
from llm_proxy.pipeline import Exchange, Pipeline
from llm_proxy.relay import CLIENT_CLOSED, ClientDisconnected
from llm_proxy.streaming import DONE, Opened, OpeningEventStream, data_frame, event_frame
from llm_proxy.upstream import dumps
from llm_proxy.webhook_hold import WebhookHold
from llm_proxy.wire import anthropic_inbound, openai
from llm_proxy.wire.anthropic_stream import ChunksToEvents
from llm_proxy.wire.errors import anthropic_error, openai_error, status_of
from toolpolicy.errors import GatewayError

logger = logging.getLogger(__name__)

STEPS_HEADER = "x-isthmus-agent-steps"
STOPPED_HEADER = "x-isthmus-agent-stopped"


class AgentEdge:
    def __init__(self, pipeline: Pipeline, loop: AgentLoop) -> None:
        self.pipeline = pipeline
        self.loop = loop

    async def respond(
        self,
        exchange: Exchange,
        endpoint: str,
        body: dict[str, Any],
        fallbacks: list[str],
        input_tokens: int,
        error: Callable[[GatewayError], Response],
    ) -> tuple[Response, bool] | None:
        """The response and whether its stream finishes the exchange, or None when the loop does not take the
        request (serve it as usual). Errors before the response is made raise, for the caller to render; a stream's
        first model call is opened as the response is made (`OpeningEventStream`), and its errors are answered
        with `error`."""
        if endpoint == "messages":
            # Translated only when the loop will run: a request it does not take keeps the native Messages path.
            if exchange.principal is None or not self.loop.offers(exchange.principal):
                return None
        chat = body if endpoint == "chat" else anthropic_inbound.messages_to_chat(body, exchange.requested)
        run = self.loop.begin(exchange, chat, fallbacks)
        if run is None:
            return None
        scan = output_scan(self.pipeline, exchange)
        if not exchange.stream:
            completion = await run.complete()
            exchange.mark_first_byte()
            await check_body(scan, completion)  # the answer, in chat shape, before it is translated
            answer = (
                completion
                if endpoint == "chat"
                else anthropic_inbound.completion_to_message(completion, exchange.requested)
            )
            headers = {**exchange.headers(), STEPS_HEADER: str(run.steps), STOPPED_HEADER: str(run.stopped)}
            return json_answer(dumps(answer), headers), False

        def relay(items: AsyncGenerator[AgentItem, None]) -> Opened:
            # Every step's text reaches the client as one chat chunk stream: the output rules scan it as one text.
            guard = ChatStreamGuard(scan) if scan is not None else None
            hold = WebhookHold.of(scan, "openai")
            if endpoint == "chat":
                frames = self._chat_frames(exchange, items, guard, hold, wants_usage=openai.wants_usage(body))
            else:
                frames = self._messages_frames(exchange, items, guard, hold, input_tokens)
            stream = _Finisher(self.pipeline, exchange, run, items, guard)
            return Opened(stream.guard(frames), exchange.headers(), stream.close)

        open = stream_opener(self.pipeline, exchange, partial(first_step, run), relay, error)
        return await OpeningEventStream.start(open), True

    async def _chat_frames(
        self,
        exchange: Exchange,
        items: AsyncGenerator[AgentItem, None],
        guard: ChatStreamGuard | None,
        hold: WebhookHold | None,
        *,
        wants_usage: bool,
    ) -> AsyncGenerator[bytes, None]:
        async for item in items:
            if isinstance(item, Chunk | RunEnded):
                for data in await _guarded(item, guard, hold):
                    chunk = data if wants_usage else openai.strip_usage(data)
                    if chunk is not None:
                        yield data_frame(chunk)
                        exchange.mark_first_byte()
            elif isinstance(item, ToolCallStarted):
                yield f": agent step {item.step} calls {item.name}\n\n".encode()
            elif isinstance(item, ToolCallFinished):
                outcome = "error" if item.output.is_error else "ok"
                yield f": agent step {item.step} {item.name} {outcome}\n\n".encode()
        yield DONE

    async def _messages_frames(
        self,
        exchange: Exchange,
        items: AsyncGenerator[AgentItem, None],
        guard: ChatStreamGuard | None,
        hold: WebhookHold | None,
        input_tokens: int,
    ) -> AsyncGenerator[bytes, None]:
        translate = ChunksToEvents(exchange.requested, input_tokens=input_tokens)
        async for item in items:
            if isinstance(item, Chunk | RunEnded):
                for data in await _guarded(item, guard, hold):
                    for event in translate.feed(data):
                        yield event_frame(event)
                        exchange.mark_first_byte()
            if isinstance(item, RunEnded):
                for event in translate.finish():
                    yield event_frame(event)


async def first_step(run: AgentRun) -> AsyncGenerator[AgentItem, None]:
    """The run's items, its first model call admitted and opened; the run is closed if that fails or is cancelled
    (its reservation released, whatever it had opened closed)."""
    try:
        return await run.open_stream()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await run.close()
        raise


async def _guarded(
    item: Chunk | RunEnded, guard: ChatStreamGuard | None, hold: WebhookHold | None
) -> list[dict[str, Any]]:
    """The chunks to send for a chunk (or the run's end) of the answer, after the output rules and webhook rules."""
    if isinstance(item, Chunk):
        outs = guard.feed(item.data) if guard is not None else [item.data]
        return await hold.feed(outs) if hold is not None else outs
    outs = guard.end() if guard is not None else []
    return await hold.end(outs) if hold is not None else outs


class _Finisher:
    """Renders a failure after the first byte as the API's error event, and finishes the exchange exactly once."""

    def __init__(
        self,
        pipeline: Pipeline,
        exchange: Exchange,
        run: AgentRun,
        items: AsyncGenerator[AgentItem, None],
        guard: ChatStreamGuard | None,
    ) -> None:
        self.pipeline, self.exchange, self.run, self.items = pipeline, exchange, run, items
        self.output_guard = guard
        self._started = self._closed = False

    async def guard(self, frames: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
        exchange = self.exchange
        self._started = True
        try:
            async with aclosing(frames):
                async for frame in frames:
                    yield frame
        except GatewayError as exc:
            logger.warning("agent stream %s failed after its first byte: %s", exchange.request_id, exc.message)
            self.pipeline.fail(exchange, exc, status_of(exc))
            yield self._render(exc)
        except Exception:
            logger.exception("agent stream %s broke", exchange.request_id)
            error = GatewayError("internal error while streaming; the gateway logged the details")
            self.pipeline.fail(exchange, error, 500)
            yield self._render(error)
        except BaseException:
            self.pipeline.fail(exchange, ClientDisconnected("the client closed the stream"), CLIENT_CLOSED)
            raise
        finally:
            await self.close()

    def _render(self, error: GatewayError) -> bytes:
        if self.exchange.api == "openai":
            return data_frame(openai_error(error))
        return event_frame(anthropic_error(error))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._started:
            self.pipeline.fail(
                self.exchange, ClientDisconnected("the client left before the stream started"), CLIENT_CLOSED
            )
        await self.items.aclose()  # releases an open step's reservation (shielded inside)
        await self.run.close()  # the first step's, when the items never started
        if self.output_guard is not None:
            self.output_guard.scan.report()
        self.pipeline.finish(self.exchange)
