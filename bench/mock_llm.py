"""A mock OpenAI-compatible provider: `POST /v1/chat/completions` (plain and streamed) and `GET /v1/models`.

Answers are fixed apart from the echoed model name, and built once per model, so the mock costs a JSON parse
and a write per request. A stream is always `chunks` content chunks, a final chunk with `finish_reason`, a usage
chunk when `stream_options.include_usage` is set, then `[DONE]`. A model whose name ends in `-paced` streams its
chunks `gap_ms` apart, so a client can check that a gateway passes each chunk on as it comes instead of holding
chunks back; every other model streams as fast as the socket takes it. A model whose name ends in `-one` streams
one content chunk, whatever `chunks` says: a stream whose cost is nearly all the gateway's fixed cost per stream
(what it does before the first event, and its end), not the relay of each chunk.

    python -m bench.mock_llm --port 18080 [--chunks 16] [--gap-ms 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.httpserver import LAST_CHUNK, Reply, Request, chunk, chunked_head, response, run

PROMPT_TOKENS = 12
COMPLETION_TOKENS = 8
CREATED = 1_700_000_000
PACED_SUFFIX = "-paced"
ONE_SUFFIX = "-one"


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _error(status: int, message: str) -> bytes:
    return response(status, _dumps({"error": {"message": message, "type": "invalid_request_error"}}))


@dataclass
class MockProvider:
    """The request handler, with its per-model response cache."""

    chunks: int = 16
    gap_ms: float = 2.0
    pause: Callable[[int], Awaitable[None]] | None = None
    """Waits before content chunk `index` of a paced stream; default: sleep `gap_ms`. Tests pass a gate."""
    _plain: dict[str, bytes] = field(default_factory=dict)
    _stream: dict[tuple[str, bool], list[bytes]] = field(default_factory=dict)

    def __call__(self, request: Request) -> Reply:
        if request.path == "/v1/models" and request.method == "GET":
            return response(200, _dumps({"object": "list", "data": [{"id": "mock-gpt", "object": "model"}]}))
        if request.path != "/v1/chat/completions":
            return _error(404, f"no route {request.method} {request.path}")
        if request.method != "POST":
            return _error(405, "use POST")
        try:
            body = json.loads(request.body)
        except ValueError:
            return _error(400, "the body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not body.get("messages"):
            return _error(400, "the body needs 'model' and 'messages'")
        model: str = body["model"]
        if body.get("stream") is True:
            options = body.get("stream_options")
            usage = isinstance(options, dict) and options.get("include_usage") is True
            return self._streamed(model, usage)
        cached = self._plain.get(model)
        if cached is None:
            cached = self._plain[model] = response(200, _dumps(self._completion(model)))
        return cached

    def _completion(self, model: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "word " * COMPLETION_TOKENS},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": COMPLETION_TOKENS,
                "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            },
        }

    def stream_events(self, model: str, usage: bool) -> list[bytes]:
        """The SSE events of one stream, each already framed as one HTTP chunk."""
        cached = self._stream.get((model, usage))
        if cached is not None:
            return cached
        count = 1 if model.endswith(ONE_SUFFIX) else self.chunks
        base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": CREATED, "model": model}
        events: list[dict[str, Any]] = [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
        ]
        events += [
            {**base, "choices": [{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}]}
            for i in range(count)
        ]
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if usage:
            totals = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": count}
            events.append({**base, "choices": [], "usage": {**totals, "total_tokens": sum(totals.values())}})
        framed = [chunk(b"data: " + _dumps(event) + b"\n\n") for event in events]
        framed.append(chunk(b"data: [DONE]\n\n"))
        self._stream[(model, usage)] = framed
        return framed

    async def _streamed(self, model: str, usage: bool) -> AsyncIterator[bytes]:
        events = self.stream_events(model, usage)
        yield chunked_head(200, "text/event-stream", {"cache-control": "no-cache"})
        if not model.endswith(PACED_SUFFIX):
            yield b"".join(events) + LAST_CHUNK
            return
        # Paced: the role chunk at once, then one content chunk per gap, like tokens from a model.
        for index, event in enumerate(events):
            if 0 < index <= self.chunks:
                await (self.pause(index) if self.pause is not None else asyncio.sleep(self.gap_ms / 1000))
            yield event
        yield LAST_CHUNK


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=16, help="content chunks per stream")
    parser.add_argument("--gap-ms", type=float, default=2.0, help="milliseconds between chunks of -paced models")
    args = parser.parse_args(argv)
    run(MockProvider(chunks=args.chunks, gap_ms=args.gap_ms), args.host, args.port)


if __name__ == "__main__":
    main()
