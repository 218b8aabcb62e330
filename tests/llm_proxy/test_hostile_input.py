"""Regressions: hostile JSON and names on the LLM routes get a 4xx in the route's envelope before any provider call,
never a 500 or a dropped connection, and nothing raw reaches a response header."""

from __future__ import annotations

import httpx2
import pytest

from llm_proxy.upstream import retry_after
from tests.llm_proxy.conftest import KEY, Gateway
from tests.llm_proxy.mock_provider import MockProvider

pytestmark = pytest.mark.anyio
AUTH = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
HELLO = b'[{"role": "user", "content": "hello"}]'

HOSTILE = {
    "deep-nesting": b'{"model": "mock/x", "messages": ' + b"[" * 100_000,
    "million-digit-int": b'{"model": "mock/x", "messages": ' + HELLO + b', "max_tokens": ' + b"1" * 1_000_000 + b"}",
    "nan": b'{"model": "mock/x", "messages": ' + HELLO + b', "temperature": NaN}',
    "infinity-literal": b'{"model": "mock/x", "messages": ' + HELLO + b', "temperature": -Infinity}',
    "overflowing-float": b'{"model": "mock/x", "messages": ' + HELLO + b', "temperature": 1e309}',
    "lone-surrogate": b'{"model": "mock/x", "messages": [{"role": "user", "content": "\\ud800"}]}',
    "lone-surrogate-model": b'{"model": "mock/\\ud800", "messages": ' + HELLO + b"}",
    "invalid-utf8": b'{"model": "mock/x", "messages": [{"role": "user", "content": "\xff"}]}',
    "message-not-an-object": b'{"model": "mock/x", "messages": [1, 2]}',
}
BAD_MODELS = {
    "nul": b"mock/a\\u0000b",
    "crlf": b"mock/a\\r\\nx-evil: 1",
    "absurd-length": b"mock/" + b"a" * 100_000,
}


async def post(gateway: Gateway, path: str, body: bytes, **headers: str) -> httpx2.Response:
    async with httpx2.AsyncClient(base_url=gateway.v1, headers=AUTH, timeout=30) as client:
        return await client.post(path, content=body, headers=headers)


async def assert_still_serving(gateway: Gateway) -> None:
    response = await post(gateway, "/chat/completions", b'{"model": "mock/x", "messages": ' + HELLO + b"}")
    assert response.status_code == 200


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.parametrize("path", ["/chat/completions", "/messages", "/messages/count_tokens"])
async def test_hostile_json_gets_400_in_the_route_envelope(
    gateway: Gateway, mock: MockProvider, path: str, body: bytes
) -> None:
    response = await post(gateway, path, body)
    assert response.status_code == 400, response.text[:200]
    if path == "/chat/completions":
        assert response.json()["error"]["type"] == "invalid_request_error"
    else:
        assert response.json()["type"] == "error"
        assert response.json()["error"]["type"] == "invalid_request_error"
    assert mock.seen == []
    await assert_still_serving(gateway)


@pytest.mark.parametrize("model", BAD_MODELS.values(), ids=BAD_MODELS.keys())
@pytest.mark.parametrize("field", ["model", "fallbacks"])
async def test_a_model_name_that_cannot_be_a_route_is_refused_before_any_upstream_call(
    gateway: Gateway, mock: MockProvider, model: bytes, field: str
) -> None:
    named = b'"' + model + b'"' if field == "model" else b'"mock/x", "fallbacks": ["' + model + b'"]'
    response = await post(gateway, "/chat/completions", b'{"model": ' + named + b', "messages": ' + HELLO + b"}")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == ("model" if field == "model" else "fallbacks[0]")
    assert mock.seen == []
    await assert_still_serving(gateway)


async def test_anthropic_content_of_the_wrong_type_is_a_400(gateway: Gateway, mock: MockProvider) -> None:
    body = b'{"model": "mock/x", "max_tokens": 5, "messages": [{"role": "user", "content": {"a": 1}}]}'
    response = await post(gateway, "/messages", body)
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    assert "messages[0].content" in response.json()["error"]["message"]
    assert mock.seen == []


async def test_count_tokens_answers_internal_trouble_in_anthropics_envelope(gateway: Gateway) -> None:
    response = await post(gateway, "/messages/count_tokens", b"[" * 100_000)
    assert response.status_code == 400 and response.json()["type"] == "error"


async def test_an_unfit_request_id_is_replaced_not_echoed(gateway: Gateway) -> None:
    body = b'{"model": "mock/x", "messages": ' + HELLO + b"}"
    for unfit in (b"x" * 129, b"has space", b"caf\xe9"):  # h11 lets obs-text bytes through
        async with httpx2.AsyncClient(base_url=gateway.v1, timeout=30) as client:
            response = await client.post(
                "/chat/completions",
                content=body,
                headers={**AUTH, "x-request-id": unfit},  # type: ignore[dict-item]
            )
        assert response.status_code == 200
        echoed = response.headers["x-request-id"]
        assert echoed.encode() != unfit and echoed.isascii() and len(echoed) <= 128
    fine = await post(gateway, "/chat/completions", body, **{"x-request-id": "req-123"})
    assert fine.headers["x-request-id"] == "req-123"


@pytest.mark.parametrize("value", ["inf", "-inf", "1e309", "nan", "Infinity"])
def test_a_provider_retry_after_that_is_not_finite_is_ignored(value: str) -> None:
    # an infinite Retry-After would reach `round()` when the error is rendered: a 500 instead of the provider's 429
    assert retry_after({"retry-after": value}) is None
    assert retry_after({"retry-after-ms": value}) is None
    assert retry_after({"retry-after": "2"}) == 2.0
