"""OpenAI wire shapes: usage, completions and chunks built by translators, and the stream usage policy."""

from __future__ import annotations

import base64
import struct
import time
from typing import Any

from toolpolicy.governor import Usage

FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "function_call")


def usage_of(usage: Any) -> Usage | None:
    """Usage from an OpenAI `usage` object (chat or embeddings); None when absent."""
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens") or 0
    if not isinstance(prompt, int):
        return None
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    out_details = usage.get("completion_tokens_details")
    thoughts = out_details.get("reasoning_tokens") if isinstance(out_details, dict) else None
    # By position (tokens in, out, cached, cost, reasoning): a class called with keywords builds a dict of them.
    return Usage(
        prompt,
        completion if isinstance(completion, int) else 0,
        cached if isinstance(cached, int) else 0,
        None,
        thoughts if isinstance(thoughts, int) else 0,
    )


def response_usage_of(usage: Any) -> Usage | None:
    """Usage from a Responses API `usage` object (`input_tokens`, `output_tokens`); None when absent."""
    if not isinstance(usage, dict) or not isinstance(usage.get("input_tokens"), int):
        return None
    output = usage.get("output_tokens")
    details = usage.get("input_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Usage(
        tokens_in=usage["input_tokens"],
        tokens_out=output if isinstance(output, int) else 0,
        cached_tokens=cached if isinstance(cached, int) else 0,
    )


def response_usage_body(usage: Usage, *, reasoning_tokens: int = 0) -> dict[str, Any]:
    """A Responses API `usage` object. Cache writes are not tracked apart from input tokens: reported as 0, since the
    SDK's `Response` model requires the field."""
    return {
        "input_tokens": usage.tokens_in,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.tokens_out,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": usage.tokens_in + usage.tokens_out,
    }


def usage_body(usage: Usage) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt_tokens": usage.tokens_in,
        "completion_tokens": usage.tokens_out,
        "total_tokens": usage.tokens_in + usage.tokens_out,
    }
    if usage.cached_tokens:
        body["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens:
        body["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return body


def completion(
    completion_id: str,
    model: str,
    choices: list[dict[str, Any]],
    usage: Usage | None,
    *,
    created: int | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = usage_body(usage)
    return body


def chunk(
    completion_id: str,
    model: str,
    created: int,
    choices: list[dict[str, Any]],
    usage: Usage | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = usage_body(usage)
    return body


def delta_choice(delta: dict[str, Any], finish_reason: str | None = None, index: int = 0) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def wants_usage(body: dict[str, Any]) -> bool:
    """Whether the client asked for the final usage chunk (`stream_options.include_usage`)."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def strip_usage(chunk_body: dict[str, Any]) -> dict[str, Any] | None:
    """A chunk as a client that did not ask for usage expects it: the usage-only chunk dropped, `usage` removed."""
    if "usage" not in chunk_body:
        return chunk_body
    if not chunk_body.get("choices"):
        return None
    return {name: value for name, value in chunk_body.items() if name != "usage"}


def encode_embedding(vector: list[float], encoding_format: Any) -> list[float] | str:
    """An embedding as the client asked: floats, or little-endian float32 in base64 (the openai SDK's default)."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def embeddings_body(model: str, vectors: list[list[float]], tokens: int, encoding_format: Any) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": encode_embedding(vector, encoding_format)}
            for index, vector in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def embedding_inputs(value: Any) -> list[str] | None:
    """Embeddings `input` as a list of strings; None for token arrays (which only OpenAI-compatible servers take)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    return None
