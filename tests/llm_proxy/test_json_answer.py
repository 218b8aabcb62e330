"""`json_answer` gives exactly the response Starlette's `Response(..., media_type="application/json")` gives."""

from __future__ import annotations

import pytest
from starlette.responses import Response

from llm_proxy.json_answer import json_answer

BODY = b'{"id":"chatcmpl-1","choices":[]}'


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 200),
        ({"x-request-id": "r1", "x-isthmus-attempts": "2", "x-isthmus-route": "openai/gpt-4o"}, 200),
        ({"X-Request-Id": "r1", "Retry-After": "3"}, 429),
        ({"x-request-id": "r1", "Content-Type": "application/problem+json"}, 400),
        ({"content-length": "99"}, 200),
        ({"x-request-id": "r1"}, 204),
        ({"x-request-id": "r1"}, 304),
        ({"x-request-id": "caf\u00e9"}, 500),
    ],
)
def test_the_same_response_as_starlettes(headers: dict[str, str], status: int) -> None:
    ours = json_answer(BODY, headers, status)
    theirs = Response(BODY, status_code=status, headers=headers, media_type="application/json")
    assert ours.raw_headers == theirs.raw_headers
    assert (ours.status_code, ours.body, ours.media_type, ours.background) == (
        theirs.status_code,
        theirs.body,
        theirs.media_type,
        theirs.background,
    )
    assert ours.headers == theirs.headers


@pytest.mark.anyio
async def test_it_sends_what_starlette_sends() -> None:
    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}
    await json_answer(BODY, {"x-request-id": "r1"})(scope, receive, send)
    expected: list[dict[str, object]] = []

    async def keep(message: dict[str, object]) -> None:
        expected.append(message)

    await Response(BODY, headers={"x-request-id": "r1"}, media_type="application/json")(scope, receive, keep)
    assert sent == expected
