"""Relaying an opened stream to the client as SSE, while reading its usage, then settling and auditing.

Items are sent as they come. After the first byte there is no failover: an error becomes the API's error event. A
client that leaves cancels the producer (see `streaming.EventStreamResponse`), which closes the upstream request;
the usage seen so far, or counted from the text relayed, is settled under a shield so that cancellation cannot skip
it, and the audit record says 499.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Any

from llm_proxy.burst import shielded
from llm_proxy.guard import StreamGuard
from llm_proxy.pipeline import Exchange, Pipeline, counted_usage
from llm_proxy.streaming import DONE, data_frame, event_frame, relayed_event_frame, relayed_frame
from llm_proxy.webhook_hold import WebhookHold
from llm_proxy.wire import anthropic, openai
from llm_proxy.wire.errors import anthropic_error, openai_error, status_of
from toolpolicy.errors import GatewayError
from toolpolicy.governor import Usage

logger = logging.getLogger(__name__)

CLIENT_CLOSED = 499
_SETTLE_TIMEOUT = 10.0


class ClientDisconnected(GatewayError):
    status = CLIENT_CLOSED
    code = "client_disconnected"


class UsageTap:
    """Watches items go by: the provider's usage when it reports it, and the text, to count when it does not."""

    def __init__(self, api: str) -> None:
        self.api = api
        self.text: list[str] = []
        self.openai_usage: Usage | None = None
        self.anthropic_usage: dict[str, Any] = {}
        self.anthropic_final = False
        """Whether `message_delta` came: before it, Anthropic's usage has no real output count."""

    def see(self, item: dict[str, Any]) -> None:
        if self.api == "openai":
            self.see_chunk(item)
            return
        kind = item.get("type")
        if kind == "message_start":
            self.anthropic_usage.update((item.get("message") or {}).get("usage") or {})
        elif kind == "message_delta":
            self.anthropic_final = True
            self.anthropic_usage.update({k: v for k, v in (item.get("usage") or {}).items() if v is not None})
        elif kind == "content_block_delta":
            delta = item.get("delta") or {}
            self.text.append(str(delta.get("text") or delta.get("partial_json") or ""))

    def see_chunk(self, item: dict[str, Any]) -> None:
        """`see` for an OpenAI chunk."""
        reported = item.get("usage")
        if reported is not None:
            usage = openai.usage_of(reported)
            if usage is not None:
                self.openai_usage = usage
        for choice in item.get("choices") or ():
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str):
                self.text.append(content)
            calls = delta.get("tool_calls")
            if calls:
                for call in calls:
                    self.text.append(str((call.get("function") or {}).get("arguments") or ""))

    def usage(self) -> Usage | None:
        if self.api == "openai":
            return self.openai_usage
        return anthropic.usage_of(self.anthropic_usage) if self.anthropic_final else None


class StreamRelay:
    """Turns an opened stream into SSE frames; `close()` settles and audits exactly once, however the stream ends."""

    def __init__(
        self,
        pipeline: Pipeline,
        exchange: Exchange,
        items: AsyncGenerator[dict[str, Any], None],
        first: dict[str, Any],
        *,
        keep_usage: bool,
        messages: Any,
        guard: StreamGuard | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.exchange = exchange
        self.items = items
        self.first = first
        self.keep_usage = keep_usage
        self.messages = messages
        """Chat-shaped messages, counted when the provider reports no usage."""
        self.tap = UsageTap(exchange.api)
        self.guard = guard
        """Output guardrails, when any apply: items pass through it before they are framed."""
        self.hold = WebhookHold.of(guard.scan if guard is not None else None, exchange.api)
        """Webhook output rules, when any apply: what the guard lets out waits for their verdict."""
        self._started = False
        self._closed = False

    async def frames(self) -> AsyncGenerator[bytes, None]:
        exchange = self.exchange
        self._started = True
        openai_api = exchange.api == "openai"
        strip = openai_api and not self.keep_usage
        guard, hold = self.guard, self.hold
        see = self.tap.see_chunk if openai_api else self.tap.see
        frame = data_frame if openai_api else event_frame
        try:
            if guard is None and hold is None:
                # Nothing rewrites a chunk in place on this path (the guard does), so a chunk passed on whole is
                # framed from the provider's bytes; and no list is made per item.
                unchanged = relayed_frame if openai_api else relayed_event_frame
                # `__anext__` awaited directly: `anext(items, None)` wraps each step in an awaitable of its own.
                next_item = self.items.__anext__
                chunk = self.first
                sent_one = False
                while True:
                    see(chunk)
                    sent = openai.strip_usage(chunk) if strip and "usage" in chunk else chunk
                    if sent is not None:
                        yield unchanged(sent)
                        if not sent_one:  # the time to the first byte is the first frame's
                            sent_one = True
                            exchange.mark_first_byte()
                    try:
                        chunk = await next_item()
                    except StopAsyncIteration:
                        break
            else:
                item: dict[str, Any] | None = self.first
                while item is not None:
                    see(item)
                    outs = guard.feed(item) if guard is not None else [item]
                    for out in await hold.feed(outs) if hold is not None else outs:
                        sent = openai.strip_usage(out) if strip else out
                        if sent is not None:
                            yield frame(sent)
                            exchange.mark_first_byte()
                    item = await anext(self.items, None)
                outs = guard.end() if guard is not None else []
                for out in await hold.end(outs) if hold is not None else outs:
                    sent = openai.strip_usage(out) if strip else out
                    if sent is not None:
                        yield frame(sent)
                        exchange.mark_first_byte()
            if openai_api:
                yield DONE
        except GatewayError as exc:
            logger.warning("stream %s failed after its first byte: %s", exchange.request_id, exc.message)
            self._failed(exc, status_of(exc))
            yield frame(openai_error(exc) if exchange.api == "openai" else anthropic_error(exc))
        except Exception:
            logger.exception("stream %s broke", exchange.request_id)
            error = GatewayError("internal error while streaming; the gateway logged the details")
            self._failed(error, 500)
            yield frame(openai_error(error) if exchange.api == "openai" else anthropic_error(error))
        except BaseException:
            self.pipeline.fail(exchange, ClientDisconnected("the client closed the stream"), CLIENT_CLOSED)
            raise
        finally:
            await self.close()

    def _failed(self, error: GatewayError, status: int) -> None:
        self.exchange.trace.failures.append(f"{self.exchange.trace.route}: {error.message}")
        self.pipeline.fail(self.exchange, error, status)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        exchange = self.exchange
        if not self._started:
            self.pipeline.fail(exchange, ClientDisconnected("the client left before the stream started"), CLIENT_CLOSED)
        await shielded(self._settle(), _SETTLE_TIMEOUT)
        if self.guard is not None:
            self.guard.scan.report()
        self.pipeline.finish(exchange)

    async def _settle(self) -> None:
        exchange = self.exchange
        try:
            await self.items.aclose()
            model = exchange.trace.route or exchange.requested
            usage = self.tap.usage() or await counted_usage(model, self.messages, self.tap.text)
            await self.pipeline.settle(exchange, usage)
        except Exception:
            logger.exception("settling stream %s failed", exchange.request_id)
