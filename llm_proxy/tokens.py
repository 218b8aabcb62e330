"""Token counting for providers that report no usage, with tiktoken encodings shipped in this package.

tiktoken fetches its BPE files from the internet on first use; the gateway must work offline, so the two encodings
it needs live in `encodings/` (gzipped, as published by OpenAI) and are checked against OpenAI's SHA-256 before use.
An encoding is loaded once per process, off the event loop (about 0.3 s for o200k_base). Counting a large text
runs in a worker thread too (`offload`): tiktoken takes about 25 ms a megabyte, the event loop none of it.

The admission estimate is not here but in `estimate`: it must be cheap, as it is on every request's path.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import threading
from collections.abc import Iterable
from importlib import resources
from typing import Any

import anyio
import tiktoken

from llm_proxy import offload

_ENDOFTEXT = "<|endoftext|>"
_ENDOFPROMPT = "<|endofprompt|>"

_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|"""
    r"""\s+(?!\S)|\s"""
)

_ENCODINGS: dict[str, tuple[str, str, dict[str, int]]] = {
    # name: (SHA-256 of the uncompressed file as OpenAI publishes it, split pattern, special tokens)
    "o200k_base": (
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        _O200K_PATTERN,
        {_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
    ),
    "cl100k_base": (
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        _CL100K_PATTERN,
        {
            _ENDOFTEXT: 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            _ENDOFPROMPT: 100276,
        },
    ),
}
_CL100K_MODELS = ("gpt-4-", "gpt-3.5", "text-embedding-ada", "text-embedding-3")
_load_lock = threading.Lock()
_loaded: dict[str, tiktoken.Encoding] = {}

# Per-message and per-reply overheads of OpenAI's chat format, as in OpenAI's own counting recipe.
_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_REPLY = 3


class EncodingDataError(RuntimeError):
    """A shipped encoding file is missing or does not match its published SHA-256."""


def encoding_name(model: str) -> str:
    """The encoding for a model; models of other vendors are counted with o200k_base (an approximation)."""
    bare = model.rpartition("/")[2]
    return "cl100k_base" if bare.startswith(_CL100K_MODELS) or bare == "gpt-4" else "o200k_base"


def _load(name: str) -> tiktoken.Encoding:
    expected, pattern, special = _ENCODINGS[name]
    try:
        packed = resources.files("llm_proxy").joinpath("encodings", f"{name}.tiktoken.gz").read_bytes()
    except OSError as exc:
        raise EncodingDataError(f"the {name} encoding file is missing from llm_proxy/encodings: {exc}") from exc
    data = gzip.decompress(packed)
    if hashlib.sha256(data).hexdigest() != expected:
        raise EncodingDataError(f"llm_proxy/encodings/{name}.tiktoken.gz does not match OpenAI's published SHA-256")
    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in data.splitlines() if line)}
    return tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special)


def encoding(name: str) -> tiktoken.Encoding:
    """The named encoding, loaded on first use (blocking: from async code, use `load`)."""
    loaded = _loaded.get(name)
    if loaded is None:
        with _load_lock:
            loaded = _loaded.get(name)
            if loaded is None:
                loaded = _loaded[name] = _load(name)
    return loaded


async def load(name: str) -> tiktoken.Encoding:
    """The named encoding; the first time, loaded in a worker thread so the event loop keeps serving."""
    loaded = _loaded.get(name)
    return loaded if loaded is not None else await anyio.to_thread.run_sync(encoding, name)


def count_text(enc: tiktoken.Encoding, texts: Iterable[str]) -> int:
    return sum(_count_one(enc, text) for text in texts if text)


def _count_one(enc: tiktoken.Encoding, text: str) -> int:
    """`len(enc.encode_ordinary(text))`, without the list: building a Python int per token holds the GIL (about
    25 ms for a 5 MB text, while tiktoken's encoding itself releases it), so a count in a worker thread would still
    stall the event loop. tiktoken's packed encoder (what `encode_to_numpy` uses) returns uint32s in one buffer.
    Special tokens' text counts as ordinary text, as in `encode_ordinary`: no special token is allowed."""
    encode_packed = getattr(getattr(enc, "_core_bpe", None), "encode_to_tiktoken_buffer", None)
    if encode_packed is None:  # a tiktoken without it: the same count, the slower way
        return len(enc.encode_ordinary(text))
    try:
        packed = encode_packed(text, set())
    except UnicodeEncodeError:  # lone surrogates, replaced as tiktoken's own `encode_ordinary` does
        packed = encode_packed(text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"), set())
    return memoryview(packed).nbytes // 4


def chat_texts(messages: Any) -> list[str]:
    """The text of chat messages (OpenAI shape): contents, text parts, tool call names and arguments."""
    texts: list[str] = []
    if not isinstance(messages, list):
        return texts
    for message in messages:
        if not isinstance(message, dict):
            continue
        texts.extend(content_texts(message.get("content")))
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                texts.extend(str(function.get(field) or "") for field in ("name", "arguments"))
    return texts


def content_texts(content: Any) -> list[str]:
    """Text of a string content or of a list of parts (OpenAI `text` parts, Anthropic `text` blocks)."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)]
    return []


async def count_output(model: str, texts: Iterable[str]) -> int:
    """Tokens of the texts; a large total is counted in a worker thread so the event loop keeps serving."""
    enc = await load(encoding_name(model))
    listed = [text for text in texts if text]
    return await offload.run(sum(map(len, listed)), count_text, enc, listed)


async def count_chat_input(model: str, messages: Any) -> int:
    count = len(messages) if isinstance(messages, list) else 0
    return await count_output(model, chat_texts(messages)) + _TOKENS_PER_MESSAGE * count + _TOKENS_PER_REPLY
