"""Relaying a Responses stream to the client as SSE (`event: <type>` and `data: {...}`), storing its response.

The terminal event (`response.completed` or `response.incomplete`) is held until the response is stored, so a client
that has seen it can retrieve the response or continue from it at once. An error after the first event becomes an
`error` event then `response.failed` (with the items finished so far), numbered after the last event sent. Usage is
the terminal event's, or counted from the text relayed; it is settled, and the exchange audited, exactly once,
however the stream ends (see `llm_proxy.relay` for the same rules on chat streams).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import anyio

from llm_proxy.errors import UpstreamBadResponse
from llm_proxy.pipeline import Exchange, Pipeline
from llm_proxy.relay import CLIENT_CLOSED, ClientDisconnected
from llm_proxy.responses.guard import ResponsesStreamGuard
from llm_proxy.responses.operation import usage_of_event
from llm_proxy.streaming import event_frame
from llm_proxy.webhook_hold import WebhookHold
from llm_proxy.wire.errors import openai_type, status_of
from toolpolicy.errors import GatewayError
from toolpolicy.governor import Usage

logger = logging.getLogger(__name__)

TERMINAL = frozenset({"response.completed", "response.incomplete"})
_SNAPSHOTS = frozenset({"response.created", "response.in_progress"})
_DELTAS = frozenset({"response.output_text.delta", "response.function_call_arguments.delta"})
_SETTLE_TIMEOUT = 10.0


class ResponsesRelay:
    """Turns an opened stream of Responses events into SSE frames; `close()` settles and audits once."""

    def __init__(
        self,
        pipeline: Pipeline,
        exchange: Exchange,
        events: AsyncGenerator[dict[str, Any], None],
        first: dict[str, Any],
        *,
        save: Callable[[dict[str, Any]], Awaitable[None]],
        count: Callable[[str, list[str]], Awaitable[Usage]],
        settles: bool = True,
        guard: ResponsesStreamGuard | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.exchange = exchange
        self.events = events
        self.first = first
        self.save = save
        """Stores a finished response (a no-op for `store: false`)."""
        self.count = count
        """Counts usage from (model, texts) when the stream reported none."""
        self.settles = settles
        """Whether `close` settles the exchange (False when the stream's producer settles, as agent mode does)."""
        self.guard = guard
        """Output guardrails, when any apply: events pass through it before they are seen and framed."""
        self.hold = WebhookHold.of(guard.scan if guard is not None else None, "responses")
        """Webhook output rules, when any apply: what the guard lets out waits for their verdict."""
        self.usage: Usage | None = None
        self.texts: list[str] = []
        self.snapshot: dict[str, Any] = {}
        self.output: list[dict[str, Any]] = []
        self.sequence = -1
        self._started = False
        self._closed = False

    def _see(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        number = event.get("sequence_number")
        self.sequence = number if isinstance(number, int) else self.sequence + 1
        if kind in _SNAPSHOTS and isinstance(event.get("response"), dict):
            self.snapshot = event["response"]
        elif kind in _DELTAS and isinstance(event.get("delta"), str):
            self.texts.append(event["delta"])
        elif kind == "response.output_item.done" and isinstance(event.get("item"), dict):
            self.output.append(event["item"])
        elif kind in TERMINAL or kind == "response.failed":
            self.usage = usage_of_event(event)
            if kind == "response.failed":
                error = (event.get("response") or {}).get("error") or {}
                self._failed(UpstreamBadResponse(f"the provider failed the response: {error.get('message')}"), 502)

    async def frames(self) -> AsyncGenerator[bytes, None]:
        exchange = self.exchange
        self._started = True
        try:
            event: dict[str, Any] | None = self.first
            while event is not None:
                outs = self.guard.feed(event) if self.guard is not None else [event]
                for out in await self.hold.feed(outs) if self.hold is not None else outs:
                    self._see(out)
                    if out.get("type") in TERMINAL and isinstance(out.get("response"), dict):
                        await self.save(out["response"])
                    yield event_frame(out)
                    exchange.mark_first_byte()
                event = await anext(self.events, None)
            outs = self.guard.end() if self.guard is not None else []
            for out in await self.hold.end(outs) if self.hold is not None else outs:
                self._see(out)
                if out.get("type") in TERMINAL and isinstance(out.get("response"), dict):
                    await self.save(out["response"])  # held until the webhook's verdict
                yield event_frame(out)
                exchange.mark_first_byte()
        except GatewayError as exc:
            logger.warning("stream %s failed after its first event: %s", exchange.request_id, exc.message)
            self._failed(exc, status_of(exc))
            for frame in self._error_events(exc):
                yield event_frame(frame)
        except Exception:
            logger.exception("stream %s broke", exchange.request_id)
            error = GatewayError("internal error while streaming; the gateway logged the details")
            self._failed(error, 500)
            for frame in self._error_events(error):
                yield event_frame(frame)
        except BaseException:
            self.pipeline.fail(exchange, ClientDisconnected("the client closed the stream"), CLIENT_CLOSED)
            raise
        finally:
            await self.close()

    def _error_events(self, error: GatewayError) -> list[dict[str, Any]]:
        """`error`, then `response.failed` with what was finished, numbered after the last event sent."""
        code = error.code or openai_type(error)
        failure = {"type": "error", "sequence_number": self.sequence + 1, "code": code, "message": error.message}
        failure["param"] = error.param
        response = {**self.snapshot, "status": "failed", "output": self.output}
        response["error"] = {"code": "server_error", "message": error.message}
        failed = {"type": "response.failed", "sequence_number": self.sequence + 2, "response": response}
        return [failure, failed]

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
        with anyio.CancelScope(shield=True), anyio.move_on_after(_SETTLE_TIMEOUT):
            try:
                await self.events.aclose()
                if self.settles:
                    model = exchange.trace.route or exchange.requested
                    usage = self.usage or await self.count(model, self.texts)
                    await self.pipeline.settle(exchange, usage)
            except Exception:
                logger.exception("settling stream %s failed", exchange.request_id)
        if self.guard is not None:
            self.guard.scan.report()
        self.pipeline.finish(exchange)
