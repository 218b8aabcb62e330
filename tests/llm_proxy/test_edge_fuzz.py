"""Fuzzing the LLM routes with hostile JSON: every answer is under 500, in the route's own error envelope, with
headers that carry nothing raw, and the gateway keeps serving after each one.

The gateway routes to the built-in `echo` provider, so whatever passes the edge's checks runs the whole way:
admission, the Anthropic-to-chat translation, the provider, token counting, settlement, the audit record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from hypothesis import given, strategies as st

from tests.json_fuzz_support import FUZZ, WEIRD_TEXT, bodies, plain_values, shaped
from tests.llm_proxy.conftest import KEY, Gateway, serve_gateway, settings_for

pytestmark = pytest.mark.anyio

VALID_MODEL = st.sampled_from(["echo/echo-1", "echo-alias"])
MODEL = st.one_of(VALID_MODEL, VALID_MODEL, VALID_MODEL, st.sampled_from(["echo/", "echo/nope", "nope"]), WEIRD_TEXT)
TEXT = st.text(max_size=20)
ROLE = st.one_of(st.sampled_from(["user", "assistant", "system", "tool", "developer"]), WEIRD_TEXT)
OPENAI_PART = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(["text", "image_url", "input_audio"]), TEXT), "text": TEXT}
)
OPENAI_MESSAGE = st.fixed_dictionaries(
    {"role": ROLE, "content": st.one_of(TEXT, st.lists(OPENAI_PART, max_size=3), plain_values())}
)
ANTHROPIC_BLOCK = st.fixed_dictionaries(
    {
        "type": st.one_of(st.sampled_from(["text", "image", "tool_use", "tool_result", "thinking", "document"]), TEXT),
        "text": plain_values(),
        "source": plain_values(),
        "content": plain_values(),
        "input": plain_values(),
        "id": TEXT,
        "tool_use_id": TEXT,
        "name": TEXT,
    }
)
ANTHROPIC_MESSAGE = st.fixed_dictionaries(
    {"role": ROLE, "content": st.one_of(TEXT, st.lists(ANTHROPIC_BLOCK, max_size=3), plain_values())}
)
TOKENS = st.one_of(st.integers(min_value=1, max_value=4096), st.integers(min_value=-5, max_value=2**70))
TOOLS = st.lists(
    st.one_of(
        st.fixed_dictionaries({"type": st.just("function"), "function": plain_values()}),
        st.fixed_dictionaries({"name": TEXT, "input_schema": plain_values(), "description": plain_values()}),
    ),
    max_size=2,
)

CHAT = shaped(
    {"model": MODEL, "messages": st.lists(OPENAI_MESSAGE, min_size=1, max_size=3)},
    {
        "stream": st.booleans(),
        "max_tokens": TOKENS,
        "fallbacks": st.lists(MODEL, max_size=2),
        "tools": TOOLS,
        "tool_choice": st.one_of(st.sampled_from(["auto", "required", "none"]), plain_values()),
        "stream_options": plain_values(),
    },
)
MESSAGES = shaped(
    {"model": MODEL, "max_tokens": TOKENS, "messages": st.lists(ANTHROPIC_MESSAGE, min_size=1, max_size=3)},
    {
        "system": st.one_of(TEXT, st.lists(ANTHROPIC_BLOCK, max_size=2)),
        "metadata": plain_values(),
        "tools": TOOLS,
        "tool_choice": plain_values(),
        "stop_sequences": plain_values(),
        "stream": st.booleans(),
    },
)
EMBEDDINGS = shaped(
    {
        "model": st.one_of(st.just("echo/echo-embed"), MODEL),
        "input": st.one_of(TEXT, st.lists(TEXT, max_size=3), st.lists(st.integers(), max_size=3), plain_values()),
    },
    {
        "dimensions": TOKENS,
        "encoding_format": plain_values(),
    },
)
VALID_CHAT = {"model": "echo/echo-1", "messages": [{"role": "user", "content": "still here"}]}


@pytest.fixture
async def echo_gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = settings_for(
        tmp_path,
        {"echo": {"kind": "echo"}},
        models={"echo-alias": {"targets": ["echo/echo-1"]}},
        llm={"max_request_bytes": 2 * 1024 * 1024},
    )
    async with serve_gateway(settings) as started:
        yield started


def assert_headers_are_clean(response: httpx2.Response) -> None:
    for name, value in response.headers.items():
        assert value.isascii() and value.isprintable(), (name, value)
    assert 0 < len(response.headers["x-request-id"]) <= 128


def assert_openai_error(response: httpx2.Response) -> None:
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str)


def assert_anthropic_error(response: httpx2.Response) -> None:
    body = response.json()
    assert body["type"] == "error"
    assert isinstance(body["error"]["type"], str) and isinstance(body["error"]["message"], str)


async def exchange(gateway: Gateway, path: str, body: bytes) -> httpx2.Response:
    async with httpx2.AsyncClient(base_url=gateway.v1, timeout=30) as client:
        response = await client.post(
            path, content=body, headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"}
        )
        assert response.status_code < 500, (path, body[:300], response.status_code, response.text[:300])
        assert_headers_are_clean(response)
        served = await client.post("/chat/completions", json=VALID_CHAT, headers={"authorization": f"Bearer {KEY}"})
        assert served.status_code == 200 and served.json()["choices"][0]["message"]["content"] == "still here"
    return response


@FUZZ
@given(body=bodies(CHAT))
async def test_chat_completions_answer_hostile_json_in_openai_envelope(echo_gateway: Gateway, body: bytes) -> None:
    response = await exchange(echo_gateway, "/chat/completions", body)
    if response.status_code >= 400:
        assert_openai_error(response)


@FUZZ
@given(body=bodies(EMBEDDINGS))
async def test_embeddings_answer_hostile_json_in_openai_envelope(echo_gateway: Gateway, body: bytes) -> None:
    response = await exchange(echo_gateway, "/embeddings", body)
    if response.status_code >= 400:
        assert_openai_error(response)


@FUZZ
@given(body=bodies(MESSAGES), path=st.sampled_from(["/messages", "/messages/count_tokens"]))
async def test_anthropic_routes_answer_hostile_json_in_anthropic_envelope(
    echo_gateway: Gateway, body: bytes, path: str
) -> None:
    response = await exchange(echo_gateway, path, body)
    if response.status_code >= 400:
        assert_anthropic_error(response)
