"""Fuzzing the hub's edges with hostile JSON: `/mcp` (2026-07-28 single requests and a 2025-era session) answers
under 500 with JSON-RPC errors, `/v1/mcp/tools/call` under 500 in the OpenAI envelope, and the hub keeps serving.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from hypothesis import given, strategies as st

from tests.json_fuzz_support import FUZZ, WEIRD_TEXT, bodies, plain_values, render, shaped
from tests.mcp_hub.conftest import FULL_KEY, Gateway
from tests.mcp_hub.test_bad_input import ACCEPT, modern_call, modern_headers

pytestmark = pytest.mark.anyio

SAFE_TOOLS = ["fx__echo", "fx__add", "fx__shout", "fx__weather", "web__echo", "time__get_current_time"]
TOOL = st.one_of(st.sampled_from(SAFE_TOOLS), st.sampled_from(SAFE_TOOLS), WEIRD_TEXT, st.text(max_size=10))
ARGUMENTS = st.one_of(
    st.fixed_dictionaries({"text": st.text(max_size=10)}),
    st.fixed_dictionaries({"a": plain_values(), "b": plain_values()}),
    st.dictionaries(st.text(max_size=6), plain_values(), max_size=3),
)
METHOD = st.sampled_from(
    ["tools/call", "tools/call", "tools/list", "prompts/get", "resources/read", "completion/complete"]
)
PARAMS = shaped({"name": TOOL, "arguments": ARGUMENTS}, {"uri": st.text(max_size=20), "cursor": plain_values()})
REST_BODY = shaped({"name": TOOL, "arguments": ARGUMENTS})


def json_rpc(modern: bool) -> st.SearchStrategy[dict[str, Any]]:
    def build(method: str, params: dict[str, Any], request_id: Any) -> dict[str, Any]:
        if modern:
            call = modern_call(method, params if isinstance(params, dict) else {})
            return {**call, "id": request_id}
        return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}

    return st.builds(build, METHOD, PARAMS, st.one_of(st.integers(min_value=1, max_value=2**31), st.text(max_size=8)))


def sent(message: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[tuple[dict[str, Any] | None, bytes]]:
    """A message with the body it is sent as, or (None, a hostile body): the 2026 headers repeat the message."""
    return st.one_of(message.map(lambda m: (m, render(m))), bodies(message).map(lambda body: (None, body)))


def modern_headers_for(message: dict[str, Any] | None) -> dict[str, str]:
    if message is None:
        return modern_headers("tools/call")
    method = str(message.get("method"))
    extra: dict[str, str] = {}
    params = message.get("params")
    name = params.get("name") if isinstance(params, dict) else None
    if method in ("tools/call", "prompts/get") and isinstance(name, str) and name.isascii() and name.isprintable():
        extra["mcp-name"] = name
    return modern_headers(method, **extra)


def assert_json_rpc_answers(response: httpx2.Response) -> None:
    """Under 500, and every message of the answer (a JSON body or SSE events) is JSON-RPC."""
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        # SSE lines end at CR or LF only (not at U+0085 and the like, which str.splitlines also splits on)
        lines = response.text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        # A priming event (SEP-1699) has an empty `data:` and is not a message.
        messages = [json.loads(line[5:]) for line in lines if line.startswith("data:") and line[5:].strip()]
    elif response.content:
        messages = [response.json()]
    else:
        messages = []
    for message in messages:
        assert message["jsonrpc"] == "2.0"
        assert "result" in message or isinstance(message["error"]["code"], int), message
    if response.status_code >= 400:
        assert messages and "error" in messages[0]


async def still_serving(http: httpx2.AsyncClient) -> None:
    call = modern_call("tools/call", {"name": "fx__echo", "arguments": {"text": "ok"}})
    response = await http.post("/mcp", json=call, headers=modern_headers("tools/call", **{"mcp-name": "fx__echo"}))
    assert response.status_code == 200 and response.json()["result"]["content"][0]["text"] == "ok"


@FUZZ
@given(example=sent(json_rpc(modern=True)))
async def test_mcp_single_requests_answer_hostile_json_with_json_rpc_errors(
    gateway: Gateway, example: tuple[dict[str, Any] | None, bytes]
) -> None:
    message, body = example
    async with gateway.http(FULL_KEY) as http:
        response = await http.post("/mcp", content=body, headers=modern_headers_for(message))
        assert_json_rpc_answers(response)
        await still_serving(http)


@pytest.fixture(scope="module")
def legacy_session() -> dict[str, str]:
    """Headers of one 2025-era session, opened by the first example that needs it."""
    return {}


async def open_session(http: httpx2.AsyncClient, session: dict[str, str]) -> dict[str, str]:
    if not session:
        initialize = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "fuzz", "version": "0"},
            },
        }
        opened = await http.post("/mcp", json=initialize, headers=ACCEPT)
        session.update({**ACCEPT, "mcp-session-id": opened.headers["mcp-session-id"]})
        session["mcp-protocol-version"] = "2025-11-25"
        done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await http.post("/mcp", json=done, headers=session)).status_code == 202
    return session


@FUZZ
@given(example=sent(json_rpc(modern=False)))
async def test_a_legacy_session_answers_hostile_json_with_json_rpc_errors(
    gateway: Gateway, legacy_session: dict[str, str], example: tuple[dict[str, Any] | None, bytes]
) -> None:
    _, body = example
    async with gateway.http(FULL_KEY) as http:
        headers = await open_session(http, legacy_session)
        response = await http.post("/mcp", content=body, headers=headers)
        assert_json_rpc_answers(response)
        await still_serving(http)


@FUZZ
@given(body=bodies(REST_BODY))
async def test_rest_tool_calls_answer_hostile_json_in_openai_envelope(gateway: Gateway, body: bytes) -> None:
    async with gateway.http(FULL_KEY) as http:
        response = await http.post("/v1/mcp/tools/call", content=body, headers={"content-type": "application/json"})
        assert response.status_code < 500, (body[:300], response.status_code, response.text[:300])
        if response.status_code >= 400:
            error = response.json()["error"]
            assert isinstance(error["message"], str) and isinstance(error["type"], str)
        else:
            assert isinstance(response.json()["isError"], bool)
        assert all(value.isascii() and value.isprintable() for value in response.headers.values())
        await still_serving(http)
