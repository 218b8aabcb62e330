"""What `Upstream.post_json` sends: byte for byte what aiohttp's session sends for the merged headers and the
compact JSON body, though it goes through a session of its own (the JSON headers its defaults, `total=None`)."""

from __future__ import annotations

import asyncio
import re

import anyio
import pytest

from llm_proxy.upstream import Upstream
from toolpolicy.settings import LlmSettings

pytestmark = pytest.mark.anyio


class _Recorder(asyncio.Protocol):
    """A provider that keeps each request's bytes and answers `{"choices": []}`."""

    def __init__(self, seen: list[bytes]) -> None:
        self.seen = seen

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head, found, rest = self.buffer.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1)) if found else -1  # type: ignore[union-attr]
        if not found or len(rest) < length:
            return  # the request is not all here yet
        self.seen.append(head + found + rest[:length])
        self.buffer = rest[length:]
        body = b'{"choices": []}'
        self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer k"}, {"Content-Type": "application/json; charset=utf-8", "x-api-key": "k"}],
)
async def test_the_request_goes_out_byte_for_byte_as_aiohttps_default_session_sends_it(headers: dict[str, str]) -> None:
    seen: list[bytes] = []
    server = await asyncio.get_running_loop().create_server(lambda: _Recorder(seen), "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions"
    upstream = Upstream(LlmSettings())
    await upstream.start()
    try:
        with anyio.fail_after(10):
            await upstream.post_json("p", url, headers, {"model": "m"})
            # What `post_json` sent before it had a session of its own: the merged headers on the shared session.
            outgoing = {"content-type": "application/json", "accept": "application/json", **headers}
            async with upstream.session.post(url, data=b'{"model":"m"}', headers=outgoing) as response:
                await response.read()
    finally:
        await upstream.close()
        server.close()
    assert len(seen) == 2 and seen[0] == seen[1]
