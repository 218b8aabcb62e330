"""The HTTP edge: OpenAI-compatible `/v1/chat/completions`, `/v1/embeddings`, `/v1/models`, and Anthropic's
`/v1/messages`. Bodies are parsed once into plain dicts; errors are rendered here, once, in the API's envelope.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from llm_proxy import estimate, offload, tokens
from llm_proxy.agent import AgentEdge
from llm_proxy.cache.lookup import OFF, Lookup
from llm_proxy.errors import PayloadTooLarge
from llm_proxy.finishing import finishing, stream_opener
from llm_proxy.guard import check_body, input_scan, output_scan, stream_guard
from llm_proxy.json_answer import json_answer, raw_json_answer
from llm_proxy.operations import Direct, Messages, Operation, first_stream
from llm_proxy.pipeline import (
    Api,
    Exchange,
    Pipeline,
    choices_of,
    counted_usage,
    fallbacks_of,
    max_output_tokens,
    requested_model,
)
from llm_proxy.providers.base import Reply
from llm_proxy.relay import StreamRelay
from llm_proxy.streaming import Opened, OpeningEventStream, event_stream_head
from llm_proxy.upstream import dumps
from llm_proxy.wire import anthropic, openai
from llm_proxy.wire.errors import anthropic_error, error_headers, openai_error, status_of
from toolpolicy.decide import authorize
from toolpolicy.errors import GatewayError, InvalidRequest
from toolpolicy.governor import Usage
from toolpolicy.jsonbody import decode_json_object, receive_body
from toolpolicy.names import model_name
from toolpolicy.types import ModelTarget

if TYPE_CHECKING:
    from llm_proxy.cache import ResponseCache

logger = logging.getLogger(__name__)


def _stream_flag(body: dict[str, Any]) -> bool:
    value = body.get("stream", False)
    if not isinstance(value, bool):
        raise InvalidRequest("'stream' must be true or false", param="stream")
    return value


def _messages(body: dict[str, Any]) -> list[Any]:
    value = body.get("messages")
    if not isinstance(value, list) or not value:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages")
    for index, message in enumerate(value):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{index}] must be an object with a 'role'", param=f"messages[{index}]")
    return value


def _model(body: dict[str, Any]) -> str:
    """The requested model, refused before anything routes on it if it cannot name one."""
    return model_name(requested_model(body))


def _fallbacks(body: dict[str, Any]) -> list[str]:
    fallbacks = fallbacks_of(body)
    if not fallbacks:  # nearly every request: no list to walk
        return fallbacks
    return [model_name(name, param=f"fallbacks[{index}]") for index, name in enumerate(fallbacks)]


def header_map(request: Request) -> dict[str, str]:
    """The request's headers as a plain dict, built once: lower-case names (as ASGI gives them), the first value of
    a repeated header (as `Headers.get` answers). Each lookup in Starlette's `Headers` walks and re-encodes them all."""
    raw = request.scope["headers"]
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in raw}
    if len(headers) == len(raw):
        return headers
    # A repeated header (rare): the comprehension kept its last value; the first one is wanted.
    headers = {}
    for name, value in raw:
        key = name.decode("latin-1")
        if key not in headers:
            headers[key] = value.decode("latin-1")
    return headers


def _input_messages(endpoint: str, body: dict[str, Any]) -> list[Any]:
    """The chat-shaped messages of a chat or Messages request (none for embeddings), refused when missing."""
    if endpoint != "embeddings":
        return _messages(body)
    if body.get("input") in (None, "", []):
        raise InvalidRequest("'input' must be a non-empty string or array", param="input")
    return []


def _declared(headers: Mapping[str, str]) -> int:
    """The body's declared length, 0 when not plain digits."""
    declared = headers.get("content-length") or ""
    return int(declared) if declared.isdigit() else 0


def _operation(
    headers: Mapping[str, str], endpoint: str, body: dict[str, Any], messages: list[Any], input_tokens: int
) -> tuple[Operation, Any]:
    """The operation, and the chat-shaped messages to count tokens of."""
    if endpoint == "embeddings":
        return Direct("embeddings", body), None
    if endpoint == "chat":
        return Direct("chat", body), messages
    system = body.get("system")
    counted = [{"role": "system", "content": system}, *messages] if system else messages
    return Messages(body, headers, input_tokens=input_tokens), counted


def request_body(request: Request, headers: Mapping[str, str], limit: int) -> Awaitable[bytes]:
    """The body (`receive_body`, refused as `PayloadTooLarge` past `limit`), from the request's ASGI messages; the
    reader's own coroutine, not one of ours awaiting it."""
    return receive_body(request.receive, headers, limit, too_large=PayloadTooLarge, disconnected=ClientDisconnect)


class Endpoints:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.router = pipeline.router
        self.limit = pipeline.router.settings.max_request_bytes
        self.agent: AgentEdge | None = None
        """Agent mode, when a tool host was given (`LlmProxy.run_tools_with`)."""
        self.cache: ResponseCache | None = None
        """The response cache, when configured (`docs/cache.md`)."""

    def routes(self) -> list[BaseRoute]:
        # `_handle` itself is the endpoint of the three: no method of ours in between, a coroutine frame less for a
        # request's task to pass through each time it resumes (each upstream read, each chunk of a stream).
        handle = self._handle
        return [
            Route(
                "/v1/chat/completions",
                partial(handle, api="openai", endpoint="chat"),
                methods=["POST"],
                name="chat_completions",
            ),
            Route(
                "/v1/embeddings",
                partial(handle, api="openai", endpoint="embeddings"),
                methods=["POST"],
                name="embeddings",
            ),
            Route(
                "/v1/messages", partial(handle, api="anthropic", endpoint="messages"), methods=["POST"], name="messages"
            ),
            Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
        ]

    async def _handle(self, request: Request, api: Api, endpoint: str) -> Response:
        headers = header_map(request)
        exchange = self.pipeline.begin(headers, api, endpoint)
        try:
            response, relayed = await self._respond(request, headers, exchange, endpoint)
        except BaseException:
            self.pipeline.finish(exchange)
            raise
        if not relayed:
            return finishing(self.pipeline, exchange, response)  # the request ends here; a stream finishes it itself
        return response

    async def _respond(
        self, request: Request, headers: Mapping[str, str], exchange: Exchange, endpoint: str
    ) -> tuple[Response, bool]:
        """The response, and whether a stream relay took the exchange over (it then finishes it)."""
        try:
            await self.pipeline.authenticate(exchange, headers)
            body = decode_json_object(await request_body(request, headers, self.limit))
            exchange.requested = _model(body)
            scan = input_scan(self.pipeline, exchange)  # before the operation copies anything out of the body
            if scan is not None:  # most keys: no rule, and no coroutine made to learn it
                await check_body(scan, body)
            messages = _input_messages(endpoint, body)
            # The admission estimate of the input (0 when it has no use), linear in the body: a large one is walked
            # off the event loop. Awaited only when made: no coroutine for the requests that need none.
            estimated = self._estimated(exchange, endpoint)
            input_tokens = await offload.run(_declared(headers), estimate.request_input, body) if estimated else 0
            operation, messages = _operation(headers, endpoint, body, messages, input_tokens)
            exchange.stream = endpoint != "embeddings" and _stream_flag(body)
            if self.agent is not None and endpoint != "embeddings" and exchange.principal is not None:
                if exchange.principal.agent is not None:
                    error = partial(self._error, exchange)
                    served = await self.agent.respond(exchange, endpoint, body, _fallbacks(body), input_tokens, error)
                    if served is not None:
                        return served
            # The worst case: input, then `max_tokens` for each of `n` choices; embeddings generate no output.
            chat = endpoint != "embeddings"
            # The cache is read after input rules and the allowlist, before admission: a hit reserves nothing.
            lookup = OFF
            if self.cache is not None:
                lookup = await self.cache.lookup(exchange, endpoint, headers, body, fallbacks=_fallbacks(body))
            if lookup.response is not None:
                return lookup.response  # type: ignore[no-any-return]
            plan = await self.pipeline.admit(
                exchange,
                _fallbacks(body),
                input_tokens=input_tokens,
                max_output_tokens=max_output_tokens(body) if chat else 0,
                choices=choices_of(body) if chat else 1,
            )
            if exchange.stream:
                return await self._stream(exchange, plan.targets, operation, body, messages, lookup), True
            return await self._complete(exchange, plan.targets, operation, body, messages, lookup), False
        except GatewayError as exc:
            return self._error(exchange, exc), False
        except Exception:
            logger.exception("unhandled error on %s (request %s)", request.url.path, exchange.request_id)
            return self._error(exchange, GatewayError("internal error; the gateway logged the details")), False

    def _estimated(self, exchange: Exchange, endpoint: str) -> bool:
        """Whether the request's input-token estimate has a use: the Messages translation reports it as the stream's
        input usage, agent mode and a governed key's admission reserve it. For any other request (a key with no
        rate limit or budget anywhere) the body is not walked for it."""
        principal = exchange.principal
        if endpoint == "messages" or principal is None or principal.governed:
            return True
        return self.agent is not None and principal.agent is not None

    async def _complete(
        self,
        exchange: Exchange,
        targets: list[ModelTarget],
        operation: Operation,
        body: dict[str, Any],
        messages: Any,
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
        usage = reply.usage or await self._count(exchange, reply, body, messages)
        await self.pipeline.settle(exchange, usage)
        exchange.mark_first_byte()
        scan = output_scan(self.pipeline, exchange)
        if scan is not None:
            await check_body(scan, reply.body)  # a block answers the error: the provider's tokens are still charged
        if (scan is None or not scan.changed) and reply.raw is not None and reply.usage is not None:
            content = reply.raw
        else:
            if reply.usage is None:
                reply.body["usage"] = self._usage_body(exchange, usage)
            content = dumps(reply.body)
        lookup.store(reply.body)
        return raw_json_answer(content, exchange.raw_headers())

    @staticmethod
    def _usage_body(exchange: Exchange, usage: Usage) -> dict[str, Any]:
        """The counted usage in the client's shape, for an answer whose provider reported none."""
        if exchange.api == "anthropic":
            return anthropic.usage_body(usage)
        if exchange.endpoint == "embeddings":
            return {"prompt_tokens": usage.tokens_in, "total_tokens": usage.tokens_in}
        return openai.usage_body(usage)

    async def _count(self, exchange: Exchange, reply: Reply, body: dict[str, Any], messages: Any) -> Usage:
        model = exchange.trace.route or exchange.requested
        if exchange.endpoint == "embeddings":
            texts = openai.embedding_inputs(body.get("input")) or []
            return Usage(tokens_in=await tokens.count_output(model, texts))
        if exchange.api == "openai":
            output = tokens.chat_texts([choice.get("message") for choice in reply.body.get("choices") or ()])
        else:
            output = tokens.content_texts(reply.body.get("content"))
        return await counted_usage(model, messages, output)

    async def _stream(
        self,
        exchange: Exchange,
        targets: list[ModelTarget],
        operation: Operation,
        body: dict[str, Any],
        messages: Any,
        lookup: Lookup = OFF,
    ) -> Response:
        admission = exchange.admission
        assert admission is not None

        def relay(opened: tuple[AsyncGenerator[dict[str, Any], None], dict[str, Any]]) -> Opened:
            items, first = lookup.watch(*opened)
            relayed = StreamRelay(
                self.pipeline,
                exchange,
                items,
                first,
                keep_usage=openai.wants_usage(body),
                messages=messages,
                guard=stream_guard(self.pipeline, exchange),
            )
            # Raw from the exchange's own headers; a cache's may name anything, so they go through the merge.
            head = exchange.headers() if exchange.response_headers else event_stream_head(exchange.raw_headers())
            return Opened(relayed.frames(), head, relayed.close)

        def first() -> Awaitable[tuple[AsyncGenerator[dict[str, Any], None], dict[str, Any]]]:
            return first_stream(self.router, targets, admission, exchange.trace, operation)

        open = stream_opener(self.pipeline, exchange, first, relay, partial(self._error, exchange))
        return await OpeningEventStream.start(open)

    def _error(self, exchange: Exchange, error: GatewayError) -> Response:
        status = status_of(error)
        self.pipeline.fail(exchange, error, status)
        body = openai_error(error) if exchange.api == "openai" else anthropic_error(error)
        headers = {**exchange.headers(), **error_headers(error)}
        return json_answer(dumps(body), headers, status)

    async def count_tokens(self, request: Request) -> Response:
        """`POST /v1/messages/count_tokens`: an estimate with the shipped encodings (coding agents call it)."""
        exchange = self.pipeline.begin(request.headers, "anthropic", "count_tokens")
        try:
            principal = await self.pipeline.authenticate(exchange, request.headers)
            body = decode_json_object(await request_body(request, request.headers, self.limit))
            exchange.requested = self.router.resolve(_model(body), principal)
            authorize(principal, ModelTarget.parse(exchange.requested)).raise_if_denied()
            messages = _messages(body)
            system = body.get("system")
            counted = [{"role": "system", "content": system}, *messages] if system else messages
            count = await tokens.count_chat_input(exchange.requested, counted)
            return JSONResponse({"input_tokens": count}, headers={"x-request-id": exchange.request_id})
        except GatewayError as exc:
            response = self._error(exchange, exc)
            self.pipeline.finish(exchange)
            return response
        except Exception:
            logger.exception("unhandled error on %s (request %s)", request.url.path, exchange.request_id)
            response = self._error(exchange, GatewayError("internal error; the gateway logged the details"))
            self.pipeline.finish(exchange)
            return response

    async def models(self, request: Request) -> Response:
        """`GET /v1/models`: the models and aliases the calling key may use, in the caller's API's shape."""
        exchange = self.pipeline.begin(request.headers, "openai", "models")
        try:
            principal = await self.pipeline.authenticate(exchange, request.headers)
        except GatewayError as exc:
            response = self._error(exchange, exc)
            self.pipeline.finish(exchange)
            return response
        allowed = [(name, owner) for name, owner in self.router.listed_models() if principal.models.matches(name)]
        if "anthropic-version" in request.headers:
            listing: list[dict[str, Any]] = [
                {"type": "model", "id": name, "display_name": name, "created_at": "1970-01-01T00:00:00Z"}
                for name, _ in allowed
            ]
            first, last = (listing[0]["id"], listing[-1]["id"]) if listing else (None, None)
            return JSONResponse({"data": listing, "has_more": False, "first_id": first, "last_id": last})
        data = [{"id": name, "object": "model", "created": 0, "owned_by": owner} for name, owner in allowed]
        return JSONResponse({"object": "list", "data": data})
