"""A REST tool call whose client disconnects is cancelled, upstream too, as a cancelled `/mcp` call is.

A real uvicorn server and a raw TCP client: the client sends the whole request, waits until the upstream's `slow`
tool has started, and closes its socket. The upstream's timeout is 120 s here, so the tool seeing its cancellation
within the test's deadline can only come from the disconnect.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import pytest

from tests.mcp_hub.conftest import FULL_KEY, Gateway, fixture_server, hub_settings, serving

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    settings = hub_settings(tmp_path_factory.mktemp("disconnect"), {"fx": fixture_server(timeout=120)})
    async with serving(settings) as started:
        yield started


def raw_call(host: str, body: bytes, request_id: str) -> bytes:
    head = (
        "POST /v1/mcp/tools/call HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"Authorization: Bearer {FULL_KEY}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"x-request-id: {request_id}\r\n"
        "\r\n"
    )
    return head.encode() + body


async def test_a_client_that_disconnects_cancels_the_upstream_call(gateway: Gateway, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    request_id = uuid.uuid4().hex
    body = json.dumps({"name": "fx__slow", "arguments": {"seconds": 100, "marker": str(marker)}}).encode()
    address = urlsplit(gateway.base_url)
    assert address.hostname is not None and address.port is not None
    client = await anyio.connect_tcp(address.hostname, address.port)
    await client.send(raw_call(address.netloc, body, request_id))
    with anyio.fail_after(15):
        while not marker.exists():
            await anyio.sleep(0.02)
    await client.aclose()

    with anyio.fail_after(15):
        while marker.read_text() != "cancelled":
            await anyio.sleep(0.02)
        while not (records := [r for r in await gateway.audit(target="fx/slow") if r["request_id"] == request_id]):
            await anyio.sleep(0.05)
    assert [(r["status"], r["details"]["outcome"]) for r in records] == [(499, "cancelled")]
