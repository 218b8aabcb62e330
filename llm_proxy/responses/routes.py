"""The HTTP edge of the Responses API: create (streamed or not), retrieve, delete, and list a response's input items.

`POST /v1/responses` runs the same pipeline as chat completions (key, allowlist, admission of the worst case with
`max_output_tokens`, routing with failover, settlement, one audit record with `endpoint: responses`). A response is
stored, unless the request says `store: false`, before the client receives it. Stored responses are read and deleted
per virtual key: another key's response answers 404, as one that does not exist. Errors use OpenAI's envelope.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from llm_proxy import estimate, offload
from llm_proxy.agent import AgentLoop
from llm_proxy.cache.lookup import OFF, Lookup
from llm_proxy.endpoints import header_map, request_body
from llm_proxy.finishing import finishing, stream_opener
from llm_proxy.guard import check_body, input_scan, output_scan
from llm_proxy.json_answer import json_answer
from llm_proxy.operations import first_stream
from llm_proxy.pipeline import Exchange, Pipeline, fallbacks_of, requested_model
from llm_proxy.responses import request as checks
from llm_proxy.responses.agent import ResponsesAgent, hosted_request
from llm_proxy.responses.guard import ResponsesStreamGuard
from llm_proxy.responses.listing import page
from llm_proxy.responses.operation import Responses
from llm_proxy.responses.relay import ResponsesRelay
from llm_proxy.responses.shapes import RESPONSE_PREFIX, new_id
from llm_proxy.streaming import Opened, OpeningEventStream
from llm_proxy.upstream import dumps
from llm_proxy.wire.errors import error_headers, openai_error, status_of
from toolpolicy.errors import GatewayError, InvalidRequest, NotFound
from toolpolicy.guardrails import Scan
from toolpolicy.jsonbody import decode_json_object
from toolpolicy.names import model_name
from toolpolicy.store.responses import ResponseStore, StoredResponse
from toolpolicy.types import ModelTarget, Principal

if TYPE_CHECKING:
    from llm_proxy.cache import ResponseCache

logger = logging.getLogger(__name__)


class ResponseNotFound(NotFound):
    code = "response_not_found"


class PreviousResponseNotFound(NotFound):
    code = "previous_response_not_found"


def _json(body: Any, headers: Mapping[str, str], status: int = 200) -> Response:
    return json_answer(dumps(body), headers, status)


class ResponsesRoutes:
    """`/v1/responses` and its stored responses, over the LLM proxy's pipeline and a `ResponseStore`."""

    def __init__(self, pipeline: Pipeline, store: ResponseStore, *, clock: Callable[[], float] = time.time) -> None:
        self.pipeline = pipeline
        self.router = pipeline.router
        self.store = store
        self.clock = clock
        """Wall-clock seconds for `created_at` (injected by tests)."""
        self.limit = pipeline.router.settings.max_request_bytes
        self.agent: ResponsesAgent | None = None
        """Agent mode (a key's `agent` block, hosted `mcp` tools), once `host_agent` gave it the loop."""
        self.cache: ResponseCache | None = None
        """The response cache, when configured (`docs/cache.md`); agent-mode requests are never cached."""

    def host_agent(self, loop: AgentLoop) -> None:
        """Serve agent mode with `loop`: keys in agent mode, and requests with `mcp` tools."""
        self.agent = ResponsesAgent(self.pipeline, loop, self._save)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/responses", self.create, methods=["POST"]),
            Route("/v1/responses/{response_id}", self.retrieve, methods=["GET"]),
            Route("/v1/responses/{response_id}", self.delete, methods=["DELETE"]),
            Route("/v1/responses/{response_id}/input_items", self.input_items, methods=["GET"]),
        ]

    # --- create --------------------------------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        headers = header_map(request)
        exchange = self.pipeline.begin(headers, "openai", "responses")
        try:
            response, relayed = await self._respond(request, headers, exchange)
        except BaseException:
            self.pipeline.finish(exchange)
            raise
        if not relayed:
            return finishing(self.pipeline, exchange, response)
        return response

    async def _respond(self, request: Request, headers: Mapping[str, str], exchange: Exchange) -> tuple[Response, bool]:
        try:
            principal = await self.pipeline.authenticate(exchange, headers)
            body = decode_json_object(await request_body(request, headers, self.limit))
            exchange.requested = model_name(requested_model(body))
            fallbacks = [model_name(name, param=f"fallbacks[{i}]") for i, name in enumerate(fallbacks_of(body))]
            checks.check_request(body)
            scan = input_scan(self.pipeline, exchange)
            try:
                if scan is not None:
                    scan.json(body)  # before the items are read out of it
                operation, own = await self._operation(principal, body, scan)
                if scan is not None:
                    await scan.remote({"instructions": body.get("instructions"), "input": operation.items})
            finally:
                if scan is not None:
                    scan.report()
            exchange.stream = body.get("stream") is True
            if self.agent is not None and (principal.agent is not None or hosted_request(body, own)):
                error = partial(self._error, exchange)
                served = await self.agent.respond(exchange, principal, operation, own, fallbacks, error)
                if served is not None:
                    return served
            elif hosted_request(body, own):
                raise InvalidRequest(
                    "mcp tools are served only with the gateway's MCP hub (isthmus serve)", param="tools"
                )
            # The cache is read after input rules and the allowlist, before admission: a hit reserves nothing.
            lookup = await self._lookup(exchange, headers, body, principal, operation, fallbacks)
            if lookup.response is not None:
                return lookup.response  # type: ignore[no-any-return]
            declared = headers.get("content-length") or ""
            size = int(declared) if declared.isdigit() else 0
            input_tokens = await offload.run(size, estimate.request_input, operation.chat_body())
            plan = await self.pipeline.admit(
                exchange,
                fallbacks,
                input_tokens=input_tokens,
                max_output_tokens=checks.max_output_tokens(body),
            )
            if exchange.stream:
                return await self._stream(exchange, plan.targets, operation, principal, lookup), True
            return await self._complete(exchange, plan.targets, operation, principal, lookup), False
        except GatewayError as exc:
            return self._error(exchange, exc), False
        except Exception:
            logger.exception("unhandled error on %s (request %s)", request.url.path, exchange.request_id)
            return self._error(exchange, GatewayError("internal error; the gateway logged the details")), False

    async def _lookup(
        self,
        exchange: Exchange,
        headers: Mapping[str, str],
        body: dict[str, Any],
        principal: Principal,
        op: Responses,
        fallbacks: list[str],
    ) -> Lookup:
        if self.cache is None:
            return OFF

        async def save(response: dict[str, Any]) -> None:
            await self._save(principal, op, response)

        return await self.cache.lookup(exchange, "responses", headers, body, save, fallbacks=fallbacks)

    async def _operation(
        self, principal: Principal, body: dict[str, Any], scan: Scan | None
    ) -> tuple[Responses, list[dict[str, Any]]]:
        """The operation (over the whole chain) and the request's own input items."""
        own = checks.input_items(body)
        history: list[dict[str, Any]] = []
        previous = checks.previous_response_id(body)
        if previous is not None:
            stored = await self.store.get(principal.key_id, previous)
            if stored is None:
                raise PreviousResponseNotFound(
                    f"previous response with id {previous!r} not found", param="previous_response_id"
                )
            history = [*stored.input_items, *stored.response.get("output", [])]
            if scan is not None:  # the provider sees the chain too: input rules apply to it as to the request
                scan.json(history)
        if len(history) + len(own) > checks.MAX_ITEMS:
            raise InvalidRequest(f"the conversation has more than {checks.MAX_ITEMS} items", param="input")
        operation = Responses(
            body,
            [*history, *own],
            chained=previous is not None,
            response_id=new_id(RESPONSE_PREFIX),
            created_at=int(self.clock()),
        )
        return operation, own

    async def _save(self, principal: Principal, operation: Responses, response: dict[str, Any]) -> None:
        """Store `response` unless the request said `store: false`; a store failure is logged, not the client's."""
        if not checks.stores(operation.body):
            return
        stored = StoredResponse(
            id=str(response.get("id") or operation.skeleton["id"]),
            key_id=principal.key_id,
            created_at=datetime.fromtimestamp(self.clock(), UTC),
            model=str(response.get("model") or operation.body["model"]),
            previous_response_id=checks.previous_response_id(operation.body),
            response=response,
            input_items=operation.items,
        )
        try:
            await self.store.put(stored)
        except Exception:
            logger.exception("storing response %s failed", stored.id)

    async def _complete(
        self,
        exchange: Exchange,
        targets: list[ModelTarget],
        operation: Responses,
        principal: Principal,
        lookup: Lookup = OFF,
    ) -> Response:
        assert exchange.admission is not None
        try:
            reply = await self.router.run(
                targets, exchange.admission, exchange.trace, operation.send, operation.supports
            )
        except BaseException:
            await self.pipeline.release(exchange)
            raise
        assert reply.usage is not None
        await self.pipeline.settle(exchange, reply.usage)
        await check_body(output_scan(self.pipeline, exchange), reply.body)  # before it is stored
        await self._save(principal, operation, reply.body)
        lookup.store(reply.body)
        exchange.mark_first_byte()
        return _json(reply.body, exchange.headers())

    async def _stream(
        self,
        exchange: Exchange,
        targets: list[ModelTarget],
        operation: Responses,
        principal: Principal,
        lookup: Lookup = OFF,
    ) -> Response:
        admission = exchange.admission
        assert admission is not None

        async def save(response: dict[str, Any]) -> None:
            await self._save(principal, operation, response)

        def relay(opened: tuple[AsyncGenerator[dict[str, Any], None], dict[str, Any]]) -> Opened:
            events, first = lookup.watch(*opened)
            scan = output_scan(self.pipeline, exchange)
            guard = ResponsesStreamGuard(scan) if scan is not None else None
            relayed = ResponsesRelay(
                self.pipeline, exchange, events, first, save=save, count=operation.count, guard=guard
            )
            return Opened(relayed.frames(), exchange.headers(), relayed.close)

        def first() -> Awaitable[tuple[AsyncGenerator[dict[str, Any], None], dict[str, Any]]]:
            return first_stream(self.router, targets, admission, exchange.trace, operation)

        open = stream_opener(self.pipeline, exchange, first, relay, partial(self._error, exchange))
        return await OpeningEventStream.start(open)

    def _error(self, exchange: Exchange, error: GatewayError) -> Response:
        status = status_of(error)
        self.pipeline.fail(exchange, error, status)
        return _json(openai_error(error), {**exchange.headers(), **error_headers(error)}, status)

    # --- stored responses ----------------------------------------------------------------------------------------

    async def _stored(self, request: Request) -> tuple[Exchange, StoredResponse | Response]:
        """The calling key's stored response named in the path, or the error response to send."""
        exchange = self.pipeline.begin(request.headers, "openai", "responses")
        try:
            principal = await self.pipeline.authenticate(exchange, request.headers)
            response_id = request.path_params["response_id"]
            stored = await self.store.get(principal.key_id, response_id)
            if stored is None:
                raise ResponseNotFound(f"no response with id {response_id!r}", param="response_id")
            return exchange, stored
        except GatewayError as exc:
            response = self._error(exchange, exc)
            self.pipeline.finish(exchange)
            return exchange, response

    async def retrieve(self, request: Request) -> Response:
        """`GET /v1/responses/{id}`."""
        exchange, stored = await self._stored(request)
        if isinstance(stored, Response):
            return stored
        return _json(stored.response, {"x-request-id": exchange.request_id})

    async def delete(self, request: Request) -> Response:
        """`DELETE /v1/responses/{id}`: OpenAI's deletion object; the response is gone for every later call."""
        exchange, stored = await self._stored(request)
        if isinstance(stored, Response):
            return stored
        await self.store.delete(stored.key_id, stored.id)
        body = {"id": stored.id, "object": "response.deleted", "deleted": True}
        return _json(body, {"x-request-id": exchange.request_id})

    async def input_items(self, request: Request) -> Response:
        """`GET /v1/responses/{id}/input_items`, paginated with `after`, `limit` and `order` as OpenAI does."""
        exchange, stored = await self._stored(request)
        if isinstance(stored, Response):
            return stored
        try:
            listing = page(stored.input_items, request.query_params)
        except GatewayError as exc:
            response = self._error(exchange, exc)
            self.pipeline.finish(exchange)
            return response
        return _json(listing, {"x-request-id": exchange.request_id})
