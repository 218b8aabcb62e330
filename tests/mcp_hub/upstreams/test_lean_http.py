"""The fast path's HTTP client (`mcp_hub/upstreams/lean_http.py`) against raw servers that answer as scripted:
pooling, its limit, timeouts, TLS, and aiohttp's errors at aiohttp's steps."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mcp_hub.upstreams import lean_http
from mcp_hub.upstreams.lean_http import LeanHttp

pytestmark = pytest.mark.anyio

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


class Server:
    """A TCP server running `script` on each connection; it counts connections and keeps each request's head."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.heads: list[bytes] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.script(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def request(self, reader: asyncio.StreamReader) -> None:
        """Read one request; its head is kept."""
        self.heads.append(await read_request(reader))


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's head, its `content-length` body read past."""
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


@asynccontextmanager
async def serving(script: Script, tls: ssl.SSLContext | None = None) -> AsyncIterator[tuple[Server, int]]:
    server = Server(script)
    listening = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=tls)
    try:
        yield server, listening.sockets[0].getsockname()[1]
    finally:
        listening.close()


def client(port: int, *, read_timeout: float = 5, scheme: str = "http", tls: ssl.SSLContext | None = None) -> LeanHttp:
    return LeanHttp(
        f"{scheme}://localhost:{port}/mcp",
        {"x-from-settings": "yes"},
        connect_timeout=5,
        read_timeout=read_timeout,
        cookie_jar=aiohttp.CookieJar(),
        tls=tls,
    )


@asynccontextmanager
async def scripted(*answers: bytes, tls: ssl.SSLContext | None = None) -> AsyncIterator[tuple[Server, int]]:
    """A server answering each connection's requests with `answers`, one each, then waiting for the client to close."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            await server.request(reader)
            writer.write(answer)
            await writer.drain()
        await reader.read()

    async with serving(script, tls) as (server, port):
        yield server, port


async def bodies(http: LeanHttp, times: int) -> list[bytes]:
    """`times` POSTs one after another, each answer read to its end and released; then `http` is closed."""
    try:
        read = []
        for _ in range(times):
            answer = await http.request("POST", {}, b"{}")
            read.append(await answer.read())
            answer.release()
        return read
    finally:
        await http.aclose()


async def test_a_kept_alive_connection_carries_the_next_request_with_aiohttps_headers() -> None:
    async with scripted(OK, OK) as (server, port):
        http = client(port)
        try:
            for _ in range(2):
                answer = await http.request("POST", {"Mcp-Method": "tools/call"}, b'{"a":1}')
                assert (answer.status, answer.headers["content-type"], await answer.read()) == (
                    200,
                    "application/json",
                    b"{}",
                )
                answer.close()
        finally:
            await http.aclose()
    assert server.connections == 1
    head = server.heads[0].decode()
    assert head.startswith("POST /mcp HTTP/1.1\r\n")
    for line in (
        f"host: localhost:{port}",
        "x-from-settings: yes",
        "mcp-method: tools/call",
        "accept: */*",
        "accept-encoding: gzip, deflate",
        f"user-agent: {lean_http.SERVER_SOFTWARE}",
        "content-length: 7",
    ):
        assert f"\r\n{line}\r\n" in head


async def test_credentials_in_the_url_go_as_basic_authorization_and_nowhere_else() -> None:
    async with scripted(OK) as (server, port):
        http = LeanHttp(
            f"http://who:secret@localhost:{port}/mcp?x=1",
            {},
            connect_timeout=5,
            read_timeout=5,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        await bodies(http, 1)
    head = server.heads[0].decode()
    assert head.startswith("POST /mcp?x=1 HTTP/1.1\r\n")
    assert f"\r\nhost: localhost:{port}\r\n" in head
    assert "\r\nauthorization: Basic d2hvOnNlY3JldA==\r\n" in head
    assert "who" not in head.replace("d2hvOnNlY3JldA==", "")


async def test_an_answer_that_asks_to_close_or_is_not_read_to_its_end_is_not_pooled() -> None:
    closing = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}"
    async with scripted(closing) as (server, port):
        await bodies(client(port), 2)
    assert server.connections == 2
    unread = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}"  # the rest never comes
    async with scripted(unread) as (server, port):
        http = client(port)
        try:
            for _ in range(2):
                (await http.request("POST", {}, b"{}")).release()
        finally:
            await http.aclose()
    assert server.connections == 2


async def test_at_most_limit_connections_are_open_and_the_rest_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lean_http, "LIMIT", 1)
    async with scripted(OK, OK, OK) as (server, port):
        http = client(port)
        try:

            async def one() -> bytes:
                answer = await http.request("POST", {}, b"{}")
                try:
                    return await answer.read()
                finally:
                    answer.close()

            assert await asyncio.gather(one(), one(), one()) == [b"{}"] * 3
        finally:
            await http.aclose()
    assert server.connections == 1


async def test_an_event_stream_is_read_chunk_by_chunk_as_it_comes() -> None:
    go_on = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"8\r\ndata: 1\n\r\n")
        await writer.drain()
        await go_on.wait()
        writer.write(b"8\r\ndata: 2\n\r\n0\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with serving(script) as (server, port):
        http = client(port)
        try:
            answer = await http.request("POST", {}, b"{}")
            chunks = answer.chunks()
            assert await anext(chunks) == b"data: 1\n"  # before the rest is sent
            go_on.set()
            assert [chunk async for chunk in chunks] == [b"data: 2\n"]
            answer.close()
        finally:
            await http.aclose()


async def test_gzip_and_a_body_to_the_connections_end_are_read_whole() -> None:
    packed = gzip.compress(b'{"result":{}}')
    zipped = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n%s" % (len(packed), packed)
    async with scripted(zipped) as (_, port):
        assert await bodies(client(port), 1) == [b'{"result":{}}']

    async def until_closed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
        await writer.drain()

    async with serving(until_closed) as (server, port):
        assert await bodies(client(port), 1) == [b"all of it"]
    large = b"x" * (3 * lean_http.HIGH_WATER)  # more than a slowly read stream is let buffer
    async with scripted(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(large), large)) as (_, port):
        assert await bodies(client(port), 1) == [large]


async def failure(script: Script, read_timeout: float = 5) -> tuple[str, type[BaseException]]:
    """At which step a request to a server running `script` fails (awaiting its "head", reading its "body"), and
    with what."""
    async with serving(script) as (_, port):
        http = client(port, read_timeout=read_timeout)
        step = "head"
        try:
            answer = await http.request("POST", {}, b"{}")
            step = "body"
            await answer.read()
        except Exception as exc:
            return step, type(exc)
        finally:
            await http.aclose()
    raise AssertionError("the request did not fail")


async def test_failures_are_aiohttps_errors_at_aiohttps_steps() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async def hangs_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async def hangs_up_within_the_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{}")
        await writer.drain()

    async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        await reader.read()

    assert await failure(silent, read_timeout=0.05) == ("head", aiohttp.SocketTimeoutError)
    assert await failure(hangs_up) == ("head", aiohttp.ServerDisconnectedError)
    assert await failure(hangs_up_within_the_body) == ("body", aiohttp.ClientPayloadError)
    assert await failure(not_http) == ("head", aiohttp.ClientConnectionError)
    async with serving(silent) as (_, port):
        pass  # closed: nothing listens on the port any more
    http = client(port)
    with pytest.raises(aiohttp.ClientOSError):
        await http.request("POST", {}, b"{}")
    with pytest.raises(ValueError, match="Newline or carriage return"):
        await http.request("POST", {"x-bad": "a\r\nx-injected: 1"}, b"{}")
    await http.aclose()
    assert issubclass(aiohttp.SocketTimeoutError, aiohttp.ClientError)


async def test_a_cookie_the_upstream_set_goes_with_the_next_request() -> None:
    setting = b"HTTP/1.1 200 OK\r\nset-cookie: affinity=b2; Path=/\r\ncontent-length: 2\r\n\r\n{}"
    async with scripted(setting, OK) as (server, port):
        await bodies(client(port), 2)
    assert b"cookie:" not in server.heads[0]
    assert b"\r\ncookie: affinity=b2\r\n" in server.heads[1]


def _certificates(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context for `localhost` and a client context that trusts its self-signed certificate only."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=3650))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    trusting = ssl.create_default_context(cafile=str(cert_file))
    return server, trusting


async def test_https_is_verified_against_the_context(tmp_path: Path) -> None:
    server_tls, trusting = _certificates(tmp_path)
    async with scripted(OK, OK, tls=server_tls) as (server, port):
        assert await bodies(client(port, scheme="https", tls=trusting), 2) == [b"{}", b"{}"]
        assert server.connections == 1
        untrusting = client(port, scheme="https", tls=ssl.create_default_context())
        with pytest.raises(aiohttp.ClientOSError):  # the self-signed certificate is refused
            await untrusting.request("POST", {}, b"{}")
        await untrusting.aclose()


def test_it_runs_on_uvloop_the_gateways_loop() -> None:
    """uvloop's transports are not `asyncio.Transport` subclasses: the client must not insist that they are."""

    async def two_requests() -> int:
        async with scripted(OK, OK) as (server, port):
            assert await bodies(client(port), 2) == [b"{}", b"{}"]
            return server.connections

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(two_requests()) == 1
