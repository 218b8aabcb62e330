"""A client that closes its connection while its request body is still arriving is no error of the gateway's: no
traceback is logged and nothing is raised to the server, on the routes dispatched directly (`/mcp`) and on those the
router finds (`/v1/authorize`, the admin API)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anyio
import pytest
from starlette.types import Message

from isthmus.app import create_app
from tests.conftest import StoreTarget
from tests.isthmus.conftest import ADMIN_KEY, BOT_KEY, base_settings
from tests.mcp_hub.conftest import FULL_KEY, hub_settings, serving
from toolpolicy.runtime import Governance

pytestmark = pytest.mark.anyio


async def post_then_leave(app: Any, path: str, key: str) -> list[Message]:
    """POST to `path` declaring 1,000 bytes of body, send 10 of them, then close the connection."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/json"),
            (b"accept", b"application/json, text/event-stream"),
            (b"content-length", b"1000"),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("gateway", 80),
    }
    arriving: list[Message] = [{"type": "http.request", "body": b'{"jsonrpc"', "more_body": True}]
    sent: list[Message] = []

    async def receive() -> Message:
        return arriving.pop(0) if arriving else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize(("path", "key"), [("/v1/authorize", BOT_KEY), ("/admin/keys", ADMIN_KEY)])
async def test_a_client_leaving_mid_body_is_logged_quietly_and_raises_nothing(
    store_target: StoreTarget, caplog: pytest.LogCaptureFixture, path: str, key: str
) -> None:
    governance = Governance(base_settings(store_target.url))
    await governance.start()
    try:
        app = create_app(governance.settings, governance=governance, components=[])
        with caplog.at_level(logging.DEBUG, logger="isthmus.errors"):
            sent = await post_then_leave(app, path, key)
    finally:
        await governance.stop()
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] in ([], [499])
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("the client left" in r.getMessage() for r in caplog.records)


async def test_a_client_leaving_mid_body_on_mcp_is_logged_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Over a real connection to uvicorn: `/mcp` is dispatched directly, past the router's middleware."""
    head = (
        "POST /mcp HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n"
        f"accept: application/json, text/event-stream\r\nauthorization: Bearer {FULL_KEY}\r\n"
        "content-length: 1000\r\n\r\n"
    )
    with caplog.at_level(logging.DEBUG):
        async with serving(hub_settings(tmp_path, {})) as gateway:
            port = int(gateway.base_url.rsplit(":", 1)[1])
            async with await anyio.connect_tcp("127.0.0.1", port) as connection:
                await connection.send(head.encode() + b'{"jsonrpc"')
            with anyio.fail_after(10):
                while not any("the client left" in r.getMessage() for r in caplog.records):
                    await anyio.sleep(0.01)
    ours = ("isthmus", "mcp_hub", "uvicorn")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith(ours)]
