"""Request bodies at every JSON edge: read under a size limit, then decoded with bounds, or refused with a 4xx.

One reader and one decoder serve `/v1/authorize`, the admin API, the LLM routes (from their ASGI messages:
`receive_body`), the MCP REST routes and `/mcp`, so no edge can turn hostile JSON into a 500 or a dropped
connection:

- the size limit is checked against `Content-Length` first and then while the body streams in, so an oversized
  body is never held in memory whole;
- decoding is pydantic-core's (jiter): nesting is bounded (`MAX_DEPTH`), integers past Python's 4300-digit
  conversion limit are refused, and so are invalid UTF-8 and lone UTF-16 surrogate escapes (`"\\ud800"`), which
  no provider, upstream or store could encode later;
- `NaN`, `Infinity` and literals that overflow to infinity (`1e309`) are refused, naming where they are.

This module reads only what it is given (a body source with `headers` and `stream()`), so it imports no web
framework.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol

import pydantic_core

from toolpolicy.errors import InvalidRequest, PayloadTooLarge
from toolpolicy.validation import loc_path

MAX_DEPTH = 200
"""How deep arrays and objects may nest: pydantic-core's fixed recursion limit, far above any real request."""

# A non-finite number can only come from `NaN`, `Infinity`, an exponent of three digits or more, or 309 digits in a
# row; a body without any is not walked at all. The last two are looked for in a copy of the body with every digit
# made `0`, `E` made `e` and `-` made `+` (`bytes.translate` and substring search: a few nanoseconds a byte, where a
# regular expression takes tens). The searches are `find`, not `in`: `bytes.__contains__` first tries its argument as
# an integer (a byte value) and raises, formats and clears a TypeError before searching for a bytes argument, which
# cost more than the search itself, five times a request.
_FOLD = bytes.maketrans(b"0123456789E-", b"0000000000e+")
_LONG_DIGITS = b"0" * 309


def _maybe_non_finite(raw: bytes) -> bool:
    if raw.find(b"NaN") != -1 or raw.find(b"Infinity") != -1:
        return True
    folded = raw.translate(_FOLD)
    return folded.find(b"e000") != -1 or folded.find(b"e+000") != -1 or folded.find(_LONG_DIGITS) != -1


class BodySource(Protocol):
    """What the edges' requests offer (a Starlette `Request` is one)."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    def stream(self) -> AsyncIterator[bytes]: ...


async def read_body(source: BodySource, limit: int, *, too_large: type[PayloadTooLarge] = PayloadTooLarge) -> bytes:
    """The whole body, or `too_large` as soon as it is known to be over `limit` bytes."""
    _refuse_declared(source.headers, limit, too_large)
    body = bytearray()
    async for chunk in source.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(_over_limit(limit))
    return bytes(body)


async def receive_body(
    receive: Callable[[], Awaitable[Mapping[str, Any]]],
    headers: Mapping[str, str],
    limit: int,
    *,
    too_large: type[PayloadTooLarge] = PayloadTooLarge,
    disconnected: type[Exception],
) -> bytes:
    """`read_body` of an ASGI request, from its `receive` and its headers: each `http.request` message's body up to
    the last one, `disconnected` raised if the client leaves first (the web framework's exception).

    The messages are taken here, in the caller's own coroutine, rather than through an async generator (Starlette's
    `Request.stream`): the event loop's hooks add each generator to a `WeakSet` and drop it again, and it is stepped
    through for each chunk and the empty one it ends with; with `read_body`'s copy out of a `bytearray`, about 13,000
    instructions a chat completion, 1.3% of what the gateway spends on it (`bench.instructions`)."""
    _refuse_declared(headers, limit, too_large)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise too_large(_over_limit(limit))
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        elif kind == "http.disconnect":
            raise disconnected()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _refuse_declared(headers: Mapping[str, str], limit: int, too_large: type[PayloadTooLarge]) -> None:
    """Raise `too_large` when the declared `Content-Length` is over `limit`, before any of the body is read."""
    declared = headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise too_large(f"the request body is {declared} bytes; the limit is {limit}")


def _over_limit(limit: int) -> str:
    """What `too_large` says of a body found over `limit` as it streamed in."""
    return f"the request body is over the limit of {limit} bytes"


def decode_json(raw: bytes, *, what: str = "the request body") -> Any:
    """`raw` as JSON within the bounds above, or an InvalidRequest saying what is wrong with it."""
    if not raw or raw.isspace():
        raise InvalidRequest(f"{what} is empty; send a JSON object")
    try:
        value = pydantic_core.from_json(raw, allow_inf_nan=True, cache_strings=False)
    except ValueError as exc:
        raise InvalidRequest(_describe(str(exc), what)) from None
    if _maybe_non_finite(raw):
        _refuse_non_finite(value)
    return value


def decode_json_object(raw: bytes, *, what: str = "the request body") -> dict[str, Any]:
    value = decode_json(raw, what=what)
    if not isinstance(value, dict):
        raise InvalidRequest(f"{what} must be a JSON object, not {_json_type(value)}")
    return value


async def read_json_object(
    source: BodySource, limit: int, *, too_large: type[PayloadTooLarge] = PayloadTooLarge
) -> dict[str, Any]:
    """The body as a JSON object, read under `limit` bytes and decoded with `decode_json`."""
    return decode_json_object(await read_body(source, limit, too_large=too_large))


def _describe(problem: str, what: str) -> str:
    if problem.startswith("recursion limit exceeded"):
        return f"{what} nests arrays or objects deeper than {MAX_DEPTH} levels"
    if problem.startswith("number out of range"):
        return f"{what} has a number too large to represent ({problem})"
    if problem.startswith("invalid unicode code point"):
        return f"{what} is not UTF-8 text ({problem})"
    if "surrogate" in problem or problem.startswith("unexpected end of hex escape"):
        return f"{what} has a \\u escape that is not a character (a lone UTF-16 surrogate): {problem}"
    return f"{what} is not valid JSON: {problem}"


def _refuse_non_finite(value: Any) -> None:
    """Raise naming a NaN or infinite number, e.g. `budgets[0].max_usd: ...`."""
    pending: list[tuple[Any, tuple[int | str, ...]]] = [(value, ())]
    while pending:
        item, path = pending.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                where = loc_path(path)
                raise InvalidRequest(
                    f"{where or 'the request body'}: numbers must be finite (NaN, Infinity and overflowing "
                    "literals such as 1e309 are not accepted)",
                    param=where or None,
                )
        elif isinstance(item, dict):
            pending.extend((child, (*path, key)) for key, child in item.items())
        elif isinstance(item, list):
            pending.extend((child, (*path, index)) for index, child in enumerate(item))


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"
