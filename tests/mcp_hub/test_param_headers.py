"""`Mcp-Param-*` headers of 2026-07-28 tool calls are checked against the upstream tool's schema (SEP-2243), under
whatever name the caller's endpoint gives the tool: a header that disagrees with the argument, or carries what a
header cannot, is refused with 400 and -32020 before anything reaches the upstream."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from tests.mcp_hub.conftest import FULL_KEY, Gateway

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
# The same tool of the fixture server over stdio, as `/mcp` and as `/mcp/fx` name it.
ENDPOINTS = [(None, "fx__region"), ("fx", "region")]


async def call(gateway: Gateway, server: str | None, name: str, region: str, header: str | None) -> Any:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": name, "arguments": {"region": region}, "_meta": META},
    }
    headers: dict[str, str | bytes] = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": name,
    }
    if header is not None:
        headers["mcp-param-region"] = header.encode()  # raw bytes: a header may carry what a client should not send
    path = "/mcp" + (f"/{server}" if server else "")
    async with gateway.http(FULL_KEY) as http:
        return await http.post(path, json=body, headers=headers)


@pytest.mark.parametrize(("server", "name"), ENDPOINTS)
async def test_a_header_that_matches_its_argument_is_served(gateway: Gateway, server: str | None, name: str) -> None:
    answer = await call(gateway, server, name, "eu-west-1", "eu-west-1")
    assert answer.status_code == 200, answer.text
    assert "region=eu-west-1" in answer.text


@pytest.mark.parametrize(("server", "name"), ENDPOINTS)
@pytest.mark.parametrize("header", ["us-east-1", None, "eu-west-1\u00e9"])
async def test_a_header_that_disagrees_or_is_missing_or_invalid_is_refused(
    gateway: Gateway, server: str | None, name: str, header: str | None
) -> None:
    answer = await call(gateway, server, name, "eu-west-1", header)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == -32020


# `=?base64?...` header values are encoded ones, compared decoded: left out so "equal" means equal.
VISIBLE_ASCII = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12).filter(
    lambda value: not value.startswith("=?")
)


@settings(max_examples=15, deadline=None)
@given(argument=VISIBLE_ASCII, other=st.none() | VISIBLE_ASCII)
async def test_only_the_argument_itself_passes_as_its_header(
    gateway: Gateway, argument: str, other: str | None
) -> None:
    """`other` None sends the argument itself."""
    header = argument if other is None else other
    answer = await call(gateway, "fx", "region", argument, header)
    assert (answer.status_code == 200) == (header == argument), answer.text
