"""The LLM edge's JSON answers (every non-streamed completion, every error), built as Starlette builds them.

`Response(content, status_code, headers, media_type="application/json")` renders the content through its type checks
and finds its headers through a general path (a list of names to search, the media type's charset rule): about as
long again as the rest of building the answer. `json_answer` gives the same response (status, body, the same raw
headers in the same order) directly, and leaves anything unusual to Starlette.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import Response

_SET_HERE = frozenset({"content-length", "content-type"})
_CONTENT_TYPE = (b"content-type", b"application/json")


def json_answer(content: bytes, headers: Mapping[str, str], status_code: int = 200) -> Response:
    """What `Response(content, status_code, headers, media_type="application/json")` gives."""
    if status_code < 200 or status_code in (204, 304) or not _SET_HERE.isdisjoint(map(str.lower, headers)):
        return Response(content, status_code, headers, media_type="application/json")  # no length, or given ones
    answer = Response.__new__(Response)
    answer.status_code = status_code
    answer.media_type = "application/json"
    answer.background = None
    answer.body = content
    raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    raw.append((b"content-length", str(len(content)).encode("latin-1")))
    raw.append(_CONTENT_TYPE)
    answer.raw_headers = raw
    return answer


def raw_json_answer(content: bytes, raw_headers: list[tuple[bytes, bytes]]) -> Response:
    """What `json_answer(content, headers)` gives for a 200 whose `headers`, neither a length nor a type, are given
    already as raw headers (the list is taken, not copied)."""
    answer = Response.__new__(Response)
    answer.status_code = 200
    answer.media_type = "application/json"
    answer.background = None
    answer.body = content
    raw_headers.append((b"content-length", b"%d" % len(content)))
    raw_headers.append(_CONTENT_TYPE)
    answer.raw_headers = raw_headers
    return answer
