"""A scriptable fake of the OpenAI (chat, embeddings, Responses), Anthropic, Gemini and Azure APIs on 127.0.0.1,
for the proxy's tests.

Each request is recorded (`seen`). Queued behaviours (`queue`) answer the next requests in order, whatever their
path; when none is queued the API's default answer is used: a realistic response saying `echo:<last user text>`,
streamed when asked.

Model listings (`GET /v1/models` in OpenAI's shape, or Anthropic's when the request has `anthropic-version`; `GET
/v1beta/models` in Gemini's) are apart: they list `models`, `page_size` a page, are recorded in `listings_seen`
and answered by `queue_listing` behaviours, so a gateway's background listing fetch never takes a queued answer.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Behaviour = Callable[[web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]
"""How the mock answers one request; None in the queue stands for the route's default answer."""

USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    query: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[7:]
        return self.headers.get("x-api-key") or self.headers.get("api-key") or self.headers.get("x-goog-api-key")


def last_user_text(body: dict[str, Any]) -> str:
    if isinstance(body.get("input"), str):
        return str(body["input"])
    for message in reversed(body.get("messages") or body.get("contents") or body.get("input") or []):
        if message.get("role") == "user":
            content = message.get("content", message.get("parts"))
            if isinstance(content, str):
                return content
            return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def sse(payload: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return head + f"data: {data}\n\n".encode()


async def send_stream(request: web.Request, frames: list[bytes], *, delay: float = 0.0) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    for frame in frames:
        await response.write(frame)
        if delay:
            await asyncio.sleep(delay)
    await response.write_eof()
    return response


# --- default answers -------------------------------------------------------------------------------------------


def openai_frames(body: dict[str, Any], text: str) -> list[bytes]:
    with_usage = (body.get("stream_options") or {}).get("include_usage") is True
    base = {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": body["model"]}
    extra = {"usage": None} if with_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse({**base, "choices": [choice], **extra})

    frames = [chunk({"role": "assistant", "content": ""})]
    frames += [chunk({"content": word}) for word in text.split(" ") if word]
    frames.append(chunk({}, "stop"))
    if with_usage:
        frames.append(sse({**base, "choices": [], "usage": USAGE}))
    return [*frames, sse("[DONE]")]


async def openai_chat(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    text = f"echo:{last_user_text(body)}"
    if body.get("stream"):
        return await send_stream(request, openai_frames(body, text))
    message = {"role": "assistant", "content": text, "refusal": None}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
    return web.json_response(
        {
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [choice],
            "usage": USAGE,
        }
    )


async def openai_embeddings(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data = []
    for index, _ in enumerate(inputs):
        vector = [0.5, -0.25, float(index)]
        if body.get("encoding_format") == "base64":
            encoded: Any = base64.b64encode(struct.pack("<3f", *vector)).decode()
        else:
            encoded = vector
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    usage = {"prompt_tokens": 5, "total_tokens": 5}
    return web.json_response({"object": "list", "data": data, "model": body["model"], "usage": usage})


def anthropic_frames(body: dict[str, Any], text: str) -> list[bytes]:
    message = {
        "id": "msg_mock",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 13, "output_tokens": 1},
    }
    events = [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        *[
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}}
            for word in [text[: len(text) // 2], text[len(text) // 2 :]]
        ],
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 9},
        },
        {"type": "message_stop"},
    ]
    return [sse(event, event["type"]) for event in events]


async def anthropic_messages(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    text = f"echo:{last_user_text(body)}"
    if body.get("stream"):
        return await send_stream(request, anthropic_frames(body, text))
    return web.json_response(
        {
            "id": "msg_mock",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 13, "output_tokens": 9},
        }
    )


async def gemini(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    model, _, method = request.match_info["target"].partition(":")
    text = f"echo:{last_user_text(body)}"
    usage = {"promptTokenCount": 4, "candidatesTokenCount": 3, "totalTokenCount": 7}
    if method == "batchEmbedContents":
        return web.json_response({"embeddings": [{"values": [0.1, 0.2]} for _ in body["requests"]]})
    if method == "streamGenerateContent":
        first = {
            "candidates": [{"content": {"role": "model", "parts": [{"text": text[:3]}]}, "index": 0}],
            "responseId": "r1",
        }
        last = {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": text[3:]}]}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": "r1",
        }
        return await send_stream(request, [sse(first), sse(last)])
    candidate = {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}
    return web.json_response(
        {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": "r1"}
    )


def response_events(body: dict[str, Any], text: str) -> list[dict[str, Any]]:
    """OpenAI's Responses stream for one text answer, numbered from 0."""
    item = {"id": "msg_mock", "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    part = {"type": "output_text", "text": "", "annotations": []}
    done_part = {**part, "text": text}
    done_item = {**item, "status": "completed", "content": [done_part]}
    at = {"item_id": "msg_mock", "output_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": responses_body(body, [], status="in_progress")},
        {"type": "response.in_progress", "response": responses_body(body, [], status="in_progress")},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.content_part.added", **at, "content_index": 0, "part": part},
        *[
            {"type": "response.output_text.delta", **at, "content_index": 0, "delta": word}
            for word in [text[: len(text) // 2], text[len(text) // 2 :]]
        ],
        {"type": "response.output_text.done", **at, "content_index": 0, "text": text},
        {"type": "response.content_part.done", **at, "content_index": 0, "part": done_part},
        {"type": "response.output_item.done", "output_index": 0, "item": done_item},
        {"type": "response.completed", "response": responses_body(body, [done_item])},
    ]
    return [{**event, "sequence_number": number} for number, event in enumerate(events)]


def responses_body(body: dict[str, Any], output: list[dict[str, Any]], status: str = "completed") -> dict[str, Any]:
    usage = {
        "input_tokens": 21,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 26,
    }
    return {
        "id": "resp_mock0001",
        "object": "response",
        "created_at": 1,
        "status": status,
        "model": body["model"],
        "output": output,
        "usage": usage if status == "completed" else None,
    }


async def openai_responses(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    text = f"native:{last_user_text(body)}"
    if body.get("stream"):
        events = response_events(body, text)
        return await send_stream(request, [sse(event, event["type"]) for event in events])
    part = {"type": "output_text", "text": text, "annotations": []}
    item = {"id": "msg_mock", "type": "message", "role": "assistant", "status": "completed", "content": [part]}
    return web.json_response(responses_body(body, [item]))


# --- scripted behaviours ---------------------------------------------------------------------------------------


def status(code: int, message: str = "mock failure", *, headers: dict[str, str] | None = None) -> Behaviour:
    async def answer(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        error = {"error": {"message": message, "type": "mock_error"}}
        return web.json_response(error, status=code, headers=headers)

    return answer


def drop() -> Behaviour:
    """Close the connection without answering."""

    async def answer(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()
        raise asyncio.CancelledError

    return answer


def hang(seconds: float) -> Behaviour:
    """Say nothing for a while, then answer normally (if anyone is still listening)."""

    async def answer(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return await openai_chat(request, body)

    return answer


def garbage(text: bytes = b"<html>502 Bad Gateway</html>") -> Behaviour:
    async def answer(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return web.Response(body=text, content_type="text/html")

    return answer


def json_reply(payload: dict[str, Any]) -> Behaviour:
    async def answer(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return web.json_response(payload)

    return answer


def stream_frames(frames: list[bytes], *, delay: float = 0.0) -> Behaviour:
    async def answer(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return await send_stream(request, frames, delay=delay)

    return answer


def tool_calls(*calls: tuple[str, dict[str, Any] | str], say: str | None = None) -> Behaviour:
    """The model asks for these tools (ids `call_0`, `call_1`, ...) with these arguments (an object, or the JSON
    text as the model writes it), saying `say` first if given; streamed (each call's name, then its arguments in
    two fragments) when the request streams. The one tool-call script of the mock: chat clients, the Responses
    translation and agent mode all use it, with `answer_with_tool_results` for the turn after."""

    async def answer(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        wire = [
            {
                "id": f"call_{index}",
                "type": "function",
                "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
            }
            for index, (name, args) in enumerate(calls)
        ]
        if not body.get("stream"):
            message = {"role": "assistant", "content": say, "refusal": None, "tool_calls": wire}
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls"}
            completion = {"id": "chatcmpl-tools", "object": "chat.completion", "created": 1, "model": body["model"]}
            return web.json_response({**completion, "choices": [choice], "usage": USAGE})
        with_usage = (body.get("stream_options") or {}).get("include_usage") is True
        base = {"id": "chatcmpl-tools", "object": "chat.completion.chunk", "created": 1, "model": body["model"]}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return sse({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

        frames = [chunk({"role": "assistant", "content": None})]
        if say:
            frames.append(chunk({"content": say}))
        for index, call in enumerate(wire):
            arguments = call["function"]["arguments"]
            head = {"index": index, "id": call["id"], "type": "function"}
            frames.append(chunk({"tool_calls": [{**head, "function": {"name": call["function"]["name"]}}]}))
            halves = (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :])
            frames.extend(chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]}) for part in halves)
        frames.append(chunk({}, "tool_calls"))
        if with_usage:
            frames.append(sse({**base, "choices": [], "usage": USAGE}))
        return await send_stream(request, [*frames, sse("[DONE]")])

    return answer


def tool_results_text(body: dict[str, Any]) -> str:
    """The contents of the tool messages after the last assistant message, joined by `|`."""
    results: list[str] = []
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "tool":
            break
        results.insert(0, str(message.get("content")))
    return "|".join(results)


def answer_with_tool_results() -> Behaviour:
    """The model answers `used:<tool results>`, using the tool results it received."""

    async def answer(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        text = f"used:{tool_results_text(body)}"
        if body.get("stream"):
            return await send_stream(request, openai_frames(body, text))
        message = {"role": "assistant", "content": text, "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
        completion = {"id": "chatcmpl-used", "object": "chat.completion", "created": 1, "model": body["model"]}
        return web.json_response({**completion, "choices": [choice], "usage": USAGE})

    return answer


def _page(models: list[str], size: int, after: str | None) -> tuple[list[str], bool]:
    start = models.index(after) + 1 if after in models else 0
    page = models[start : start + size]
    return page, start + size < len(models)


async def listen(runner: web.AppRunner) -> int:
    """Serve `runner`'s app on 127.0.0.1 at a free port; the port."""
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port: int = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return port


class MockProvider:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.pending: list[Behaviour | None] = []
        self.models: list[str] = []
        """Model ids the listing routes answer with (none by default)."""
        self.page_size = 1000
        self.listings_seen: list[Seen] = []
        self.listing_pending: list[Behaviour] = []
        self.stream_closed = asyncio.Event()
        """Set when a client went away in the middle of a `slow_stream`."""
        self.port = 0
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._route(openai_chat))
        app.router.add_post("/v1/embeddings", self._route(openai_embeddings))
        app.router.add_post("/v1/responses", self._route(openai_responses))
        app.router.add_post("/v1/messages", self._route(anthropic_messages))
        app.router.add_post("/v1beta/models/{target}", self._route(gemini))
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._route(openai_chat))
        app.router.add_post("/openai/deployments/{deployment}/embeddings", self._route(openai_embeddings))
        app.router.add_post("/openai/v1/chat/completions", self._route(openai_chat))
        app.router.add_post("/openai/v1/embeddings", self._route(openai_embeddings))
        app.router.add_post("/openai/v1/responses", self._route(openai_responses))
        app.router.add_get("/v1/models", self._listing(self._v1_models))
        app.router.add_get("/v1beta/models", self._listing(self._gemini_models))
        self._runner = web.AppRunner(app, access_log=None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def queue(self, *behaviours: Behaviour | None) -> None:
        self.pending.extend(behaviours)

    def slow_stream(self, chunks: int = 400, delay: float = 0.02) -> Behaviour:
        """An OpenAI stream that takes long; notes when its client leaves."""

        async def answer(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
            frames = openai_frames(body, " ".join(f"w{i}" for i in range(chunks)))
            try:
                return await send_stream(request, frames, delay=delay)
            except (ConnectionResetError, asyncio.CancelledError):
                self.stream_closed.set()
                raise

        return answer

    def thinking(self) -> Behaviour:
        """Sends nothing, not even its headers, until its client leaves (a reasoning model before its first token);
        notes when it does."""

        async def answer(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
            while request.transport is not None and not request.transport.is_closing():
                await asyncio.sleep(0.005)
            self.stream_closed.set()
            raise ConnectionResetError("the client left")

        return answer

    def queue_listing(self, *behaviours: Behaviour) -> None:
        """Answer the next model listing requests with these, in order."""
        self.listing_pending.extend(behaviours)

    async def _v1_models(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if "anthropic-version" not in request.headers:
            data = [{"id": name, "object": "model", "created": 1, "owned_by": "mock"} for name in self.models]
            return web.json_response({"object": "list", "data": data})
        size = int(request.query.get("limit", "20"))
        page, more = _page(self.models, min(size, self.page_size), request.query.get("after_id"))
        listed = [
            {"type": "model", "id": name, "display_name": name, "created_at": "2026-01-01T00:00:00Z"} for name in page
        ]
        first, last = (page[0], page[-1]) if page else (None, None)
        return web.json_response({"data": listed, "has_more": more, "first_id": first, "last_id": last})

    async def _gemini_models(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        size = int(request.query.get("pageSize", "50"))
        page, more = _page(self.models, min(size, self.page_size), request.query.get("pageToken"))
        methods = ["generateContent", "countTokens"]
        listed = [{"name": f"models/{name}", "supportedGenerationMethods": methods} for name in page]
        listed.append({"name": "models/tuning-only", "supportedGenerationMethods": ["createTunedModel"]})
        return web.json_response({"models": listed, **({"nextPageToken": page[-1]} if more else {})})

    def _listing(self, default: Behaviour) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.listings_seen.append(Seen(request.path, dict(request.headers), {}, dict(request.query)))
            behaviour = self.listing_pending.pop(0) if self.listing_pending else default
            return await behaviour(request, {})

        return handle

    def _route(self, default: Behaviour) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            raw = await request.read()
            body = json.loads(raw) if raw else {}
            self.seen.append(Seen(request.path, dict(request.headers), body, dict(request.query)))
            behaviour = self.pending.pop(0) if self.pending else None
            return await (behaviour or default)(request, body)

        return handle

    async def start(self) -> None:
        self.port = await listen(self._runner)

    async def close(self) -> None:
        await self._runner.cleanup()
