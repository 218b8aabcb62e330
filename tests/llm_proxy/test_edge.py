"""Bad input gets a clear 4xx in the right envelope and the gateway keeps serving; a client leaving a stream, in
the middle or before its first event, cancels the upstream request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests.llm_proxy.conftest import KEY, Gateway, serve_gateway, settings_for
from tests.llm_proxy.leaving import leave_while_thinking
from tests.llm_proxy.mock_provider import MockProvider, json_reply

pytestmark = pytest.mark.anyio
AUTH = {"authorization": f"Bearer {KEY}"}
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def small(tmp_path: Path, mock: MockProvider) -> AsyncIterator[Gateway]:
    """Limits small enough to hit: 4 KiB requests, 2 KiB responses."""
    providers = {"mock": {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk"}]}}
    llm = {"max_request_bytes": 4096, "max_response_bytes": 2048, "max_retries": 0}
    async with serve_gateway(settings_for(tmp_path, providers, llm=llm)) as started:
        yield started


async def post(gateway: Gateway, path: str, **kwargs: Any) -> httpx2.Response:
    async with httpx2.AsyncClient(base_url=gateway.v1, headers=AUTH) as client:
        return await client.post(path, **kwargs)


@pytest.mark.parametrize(
    ("body", "status", "param", "words"),
    [
        (b'{"model": "mock/x", "messages": [', 400, None, "not valid JSON"),
        (b"", 400, None, "empty"),
        (b"[1, 2]", 400, None, "must be a JSON object"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "model", "'model' is required"),
        (b'{"model": "mock/x", "messages": []}', 400, "messages", "non-empty array"),
        (b'{"model": "mock/x", "messages": [{"role":"user","content":"x"}], "stream": "yes"}', 400, "stream", "true"),
        (b'{"model": "mock/x", "messages": [{"role":"user","content":"x"}], "max_tokens": -1}', 400, "max_tokens", ""),
        (b'{"model": "nowhere/x", "messages": [{"role":"user","content":"x"}]}', 404, "model", "no provider"),
        (b'{"model": "bare-name", "messages": [{"role":"user","content":"x"}]}', 404, "model", "alias"),
        (b'{"model": "mock/x", "messages": [{"role":"user","content":"x"}], "fallbacks": "a"}', 400, "fallbacks", ""),
    ],
)
async def test_bad_chat_requests_get_a_clear_openai_error(
    small: Gateway, mock: MockProvider, body: bytes, status: int, param: str | None, words: str
) -> None:
    response = await post(small, "/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and words in error["message"]
    assert mock.seen == []
    assert (await post(small, "/chat/completions", json={"model": "mock/x", "messages": HELLO})).status_code == 200


@pytest.mark.parametrize("value", [None, "", []])
async def test_an_embeddings_request_without_input_is_refused_naming_it(
    small: Gateway, mock: MockProvider, value: Any
) -> None:
    response = await post(small, "/embeddings", json={"model": "mock/x", "input": value})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "input" and "non-empty string or array" in error["message"]
    assert mock.seen == []


async def test_bad_messages_requests_get_anthropics_envelope(small: Gateway) -> None:
    response = await post(small, "/messages", content=b"{oops")
    assert response.status_code == 400
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == "invalid_request_error"


async def test_a_body_over_the_limit_is_refused_with_413_declared_or_not(small: Gateway, mock: MockProvider) -> None:
    big = {"model": "mock/x", "messages": [{"role": "user", "content": "x" * 5000}]}
    declared = await post(small, "/chat/completions", json=big)

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    undeclared = await post(small, "/chat/completions", content=chunked())
    for response in (declared, undeclared):
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
    assert mock.seen == []


async def test_a_body_sent_in_parts_is_read_whole(small: Gateway, mock: MockProvider) -> None:
    text = json.dumps({"model": "mock/x", "messages": [{"role": "user", "content": "y" * 1200}]}).encode()

    async def in_parts() -> AsyncIterator[bytes]:
        for start in range(0, len(text), 300):
            yield text[start : start + 300]

    response = await post(small, "/chat/completions", content=in_parts())
    assert response.status_code == 200
    assert mock.seen[0].body["messages"][0]["content"] == "y" * 1200


async def test_a_provider_answer_over_the_limit_is_a_502(small: Gateway, mock: MockProvider) -> None:
    mock.queue(json_reply({"choices": [], "padding": "x" * 5000}))
    response = await post(small, "/chat/completions", json={"model": "mock/x", "messages": HELLO})
    assert response.status_code == 502 and "limit 2048" in response.json()["error"]["message"]


async def test_a_provider_answer_of_the_wrong_shape_is_a_502(small: Gateway, mock: MockProvider) -> None:
    mock.queue(json_reply({"unexpected": True}))
    response = await post(small, "/chat/completions", json={"model": "mock/x", "messages": HELLO})
    assert response.status_code == 502 and "'choices'" in response.json()["error"]["message"]


async def test_a_missing_key_is_a_401_in_each_envelope(small: Gateway) -> None:
    async with httpx2.AsyncClient(base_url=small.v1) as client:
        openai_style = await client.post("/chat/completions", json={"model": "mock/x", "messages": HELLO})
        anthropic_style = await client.post("/messages", json={"model": "mock/x", "messages": HELLO})
        listing = await client.get("/models")
    assert openai_style.status_code == 401 and openai_style.json()["error"]["code"] == "missing_api_key"
    assert anthropic_style.status_code == 401 and anthropic_style.json()["error"]["type"] == "authentication_error"
    assert listing.status_code == 401
    assert [record.status for record in small.llm_records()][:2] == [401, 401]


async def test_a_client_leaving_mid_stream_cancels_the_upstream_request(tmp_path: Path, mock: MockProvider) -> None:
    providers = {"mock": {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk"}]}}
    async with serve_gateway(settings_for(tmp_path, providers)) as gateway:
        mock.queue(mock.slow_stream(chunks=400, delay=0.02))
        body = {"model": "mock/slow", "messages": HELLO, "stream": True}
        async with httpx2.AsyncClient(base_url=gateway.v1, headers=AUTH) as client:
            async with client.stream("POST", "/chat/completions", json=body) as response:
                assert response.status_code == 200
                lines = 0
                async for line in response.aiter_lines():
                    lines += line.startswith("data:")
                    if lines == 3:
                        break
        with anyio.fail_after(5):
            await mock.stream_closed.wait()
        record = (await gateway.wait_records(1))[0]
    assert record.status == 499 and record.reason == "client_disconnected"
    assert record.tokens_out is not None and 0 < record.tokens_out < 400


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/chat/completions", {"model": "mock/thinker", "messages": HELLO, "stream": True}),
        ("/messages", {"model": "mock/thinker", "messages": HELLO, "max_tokens": 64, "stream": True}),
        ("/responses", {"model": "mock/thinker", "input": "hello", "stream": True}),
    ],
)
async def test_a_client_leaving_before_the_first_event_cancels_the_upstream_request_then(
    tmp_path: Path, mock: MockProvider, route: str, body: dict[str, Any]
) -> None:
    # A reasoning model can think for minutes before its first token: the gateway does not wait for it to notice
    # that nobody is listening any more.
    providers = {"mock": {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk"}]}}
    async with serve_gateway(settings_for(tmp_path, providers)) as gateway:
        async with httpx2.AsyncClient(base_url=gateway.v1, headers=AUTH) as client:
            await leave_while_thinking(client, mock, route, body)
        record = (await gateway.wait_records(1))[0]
    assert record.status == 499 and record.reason == "client_disconnected"
    assert record.tokens_out is None and len(mock.seen) == 1  # nothing relayed, and no other attempt made
