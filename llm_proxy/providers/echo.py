"""The built-in `echo` provider: no key, no network, deterministic answers, so every endpoint can be tried.

Chat answers with the last user message's text, or the last tool result's (streamed word by word); when
`tool_choice` forces a tool, it calls that tool with `{}`. Embeddings are unit vectors derived from SHA-256 of each
input. Usage is counted with the shipped tiktoken encodings, as for a real provider.
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
from collections.abc import AsyncGenerator
from typing import Any, ClassVar

from llm_proxy import tokens
from llm_proxy.providers.base import Attempt, Op, Reply
from llm_proxy.upstream import Upstream
from llm_proxy.wire import openai
from toolpolicy.errors import InvalidRequest
from toolpolicy.governor import Usage
from toolpolicy.settings import ProviderSettings

DEFAULT_DIMENSIONS = 16
CREATED = 1_700_000_000
_WORDS = re.compile(r"\S+\s*|\s+")


def reply_text(messages: Any) -> str:
    """The last user message's text; after a tool result, that result (so an agent loop ends on it)."""
    listed = messages if isinstance(messages, list) else []
    if listed and isinstance(listed[-1], dict) and listed[-1].get("role") == "tool":
        return "".join(tokens.content_texts(listed[-1].get("content")))
    for message in reversed(listed):
        if isinstance(message, dict) and message.get("role") == "user":
            return "".join(tokens.content_texts(message.get("content")))
    return ""


def forced_tool(body: dict[str, Any]) -> str | None:
    """The tool `tool_choice` forces: a named function, or the first tool for `required`."""
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return str(choice["function"].get("name"))
    tools = body.get("tools") or []
    if choice == "required" and tools and isinstance(tools[0], dict):
        return str((tools[0].get("function") or {}).get("name"))
    return None


def vector(text: str, dimensions: int) -> list[float]:
    digest = b""
    counter = 0
    while len(digest) < dimensions * 4:
        digest += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    raw = [value / 2**31 - 1.0 for value in struct.unpack(f"<{dimensions}I", digest[: dimensions * 4])]
    norm = math.sqrt(sum(value * value for value in raw)) or 1.0
    return [round(value / norm, 6) for value in raw]


class EchoAdapter:
    kind: ClassVar[str] = "echo"
    ops: ClassVar[frozenset[Op]] = frozenset({"chat", "embeddings"})
    needs_key: ClassVar[bool] = False
    default_models: ClassVar[tuple[str, ...]] = ("echo-1", "echo-embed")
    lists_models: ClassVar[bool] = False

    def __init__(self, name: str, settings: ProviderSettings, upstream: Upstream) -> None:
        self.name = name

    async def _usage(self, attempt: Attempt, output: list[str]) -> Usage:
        tokens_in = await tokens.count_chat_input(attempt.model, attempt.body.get("messages"))
        return Usage(tokens_in=tokens_in, tokens_out=await tokens.count_output(attempt.model, output))

    def _message(self, attempt: Attempt) -> tuple[dict[str, Any], str]:
        tool = forced_tool(attempt.body)
        if tool is not None:
            call = {"id": "call_echo_0", "type": "function", "function": {"name": tool, "arguments": "{}"}}
            return {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None}, "tool_calls"
        return {"role": "assistant", "content": reply_text(attempt.body.get("messages")), "refusal": None}, "stop"

    async def send(self, attempt: Attempt) -> Reply:
        if attempt.op == "embeddings":
            return await self._embed(attempt)
        message, finish = self._message(attempt)
        usage = await self._usage(attempt, [message["content"] or ""])
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        return Reply(openai.completion("chatcmpl-echo", attempt.model, [choice], usage, created=CREATED), usage)

    async def stream(self, attempt: Attempt) -> AsyncGenerator[dict[str, Any], None]:
        message, finish = self._message(attempt)

        def chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
            return openai.chunk("chatcmpl-echo", attempt.model, CREATED, [openai.delta_choice(delta, reason)])

        yield chunk({"role": "assistant", "content": ""})
        if message.get("tool_calls"):
            yield chunk({"tool_calls": [{"index": 0, **message["tool_calls"][0]}]})
        for word in _WORDS.findall(message["content"] or ""):
            yield chunk({"content": word})
        yield chunk({}, finish)
        usage = await self._usage(attempt, [message["content"] or ""])
        yield openai.chunk("chatcmpl-echo", attempt.model, CREATED, [], usage)

    async def list_models(self, key: str | None) -> list[str]:
        return list(self.default_models)

    async def _embed(self, attempt: Attempt) -> Reply:
        value = attempt.body.get("input")
        texts = openai.embedding_inputs(value)
        if texts is None:
            texts = [str(item) for item in value] if isinstance(value, list) else None
        if not texts:
            raise InvalidRequest("'input' must be a non-empty string or array", param="input")
        dimensions = attempt.body.get("dimensions")
        size = dimensions if isinstance(dimensions, int) and 0 < dimensions <= 4096 else DEFAULT_DIMENSIONS
        used = await tokens.count_output(attempt.model, texts)
        body = openai.embeddings_body(
            attempt.model, [vector(text, size) for text in texts], used, attempt.body.get("encoding_format")
        )
        return Reply(body, Usage(tokens_in=used))
