"""Regressions: hostile JSON, oversized bodies and unfit tool names on `/mcp` and the REST routes get a 4xx in the
route's envelope (JSON-RPC, OpenAI), before any upstream call or audit record, and the hub keeps serving."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from mcp.shared.exceptions import MCPError

from tests.mcp_hub.conftest import FULL_KEY, Gateway
from tests.mcp_hub.test_bad_input import modern_call, modern_headers, still_serving

pytestmark = pytest.mark.anyio
CALL_HEADERS = modern_headers("tools/call", **{"mcp-name": "fx__echo"})


def echo_call(arguments: bytes) -> bytes:
    """A 2026-07-28 `tools/call` of fx__echo whose arguments are written as given."""
    text = json.dumps(modern_call("tools/call", {"name": "fx__echo", "arguments": "ARGUMENTS"})).encode()
    return text.replace(b'"ARGUMENTS"', arguments)


HOSTILE_ARGUMENTS = {
    "nan": b'{"text": NaN}',
    "infinity": b'{"text": "x", "n": Infinity}',
    "overflowing-float": b'{"text": "x", "n": 1e309}',
    "lone-surrogate": b'{"text": "\\ud800"}',
    "deep-nesting": b'{"text": ' + b"[" * 20_000 + b"}",
    "big-int": b'{"text": "x", "n": ' + b"1" * 5000 + b"}",
}


@pytest.mark.parametrize("arguments", HOSTILE_ARGUMENTS.values(), ids=HOSTILE_ARGUMENTS.keys())
async def test_hostile_json_on_mcp_gets_a_json_rpc_parse_error(gateway: Gateway, arguments: bytes) -> None:
    async with gateway.http(FULL_KEY) as http:
        response = await http.post("/mcp", content=echo_call(arguments), headers=CALL_HEADERS)
    assert response.status_code == 400
    body = response.json()
    assert body["jsonrpc"] == "2.0" and body["error"]["code"] == -32700
    await still_serving(gateway)


async def test_an_oversized_mcp_body_gets_413_with_a_json_rpc_error_even_undeclared(gateway: Gateway) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    async with gateway.http(FULL_KEY) as http:
        response = await http.post("/mcp", content=chunks(), headers=CALL_HEADERS)
    assert response.status_code == 413
    assert response.json()["jsonrpc"] == "2.0" and response.json()["error"]["code"] == -32600
    await still_serving(gateway)


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "fx__echo", "arguments": {"text": NaN}}',
        b'{"name": "fx__echo", "arguments": {"text": "\\ud800"}}',
        b'{"name": "fx__\\ud800"}',
        b'{"name": "fx__echo", "arguments": ' + b"[" * 100_000 + b"}",
        b'{"name": "fx__echo", "arguments": {"n": ' + b"1" * 1_000_000 + b"}}",
    ],
    ids=["nan", "lone-surrogate-argument", "lone-surrogate-name", "deep-nesting", "million-digit-int"],
)
async def test_hostile_json_on_rest_gets_400_in_the_openai_envelope(gateway: Gateway, body: bytes) -> None:
    async with gateway.http(FULL_KEY) as http:
        response = await http.post("/v1/mcp/tools/call", content=body)
    assert response.status_code in (400, 413)
    assert response.json()["error"]["type"] == "invalid_request_error"
    await still_serving(gateway)


@pytest.mark.parametrize("name", ["fx__a\x00b", "fx__echo\r\n", "fx__" + "a" * 300, "\u202eoche__xf"])
async def test_a_tool_name_that_cannot_be_a_tool_is_refused_with_400_before_any_audit(
    gateway: Gateway, name: str
) -> None:
    before = len(await gateway.audit())
    async with gateway.http(FULL_KEY) as http:
        rest = await http.post("/v1/mcp/tools/call", json={"name": name, "arguments": {}})
    assert rest.status_code == 400 and rest.json()["error"]["param"] == "name"
    # a 2025-era session: a 2026-07-28 request must repeat the name in a header, which these names cannot be
    async with gateway.client(FULL_KEY, "legacy") as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool(name, {})
    assert refused.value.error.code == -32602 and "name" in refused.value.error.message
    assert len(await gateway.audit()) == before
    await still_serving(gateway)


async def test_an_unfit_request_id_is_not_echoed_by_rest(gateway: Gateway) -> None:
    async with gateway.http(FULL_KEY) as http:
        response = await http.post(
            "/v1/mcp/tools/call",
            json={"name": "fx__echo", "arguments": {"text": "ok"}},
            headers={"x-request-id": "x" * 5000},
        )
    assert response.status_code == 200 and 0 < len(response.headers["x-request-id"]) <= 128
