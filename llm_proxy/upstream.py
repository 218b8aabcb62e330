"""The one pooled aiohttp client all provider traffic goes through, and the only place aiohttp errors exist.

Every failure leaves here as an UpstreamError that says which provider failed and how, so adapters and the router
never see an aiohttp exception. Timeouts and the response size cap come from `LlmSettings`.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

import aiohttp
import pydantic_core
from aiohttp.typedefs import StrOrURL

from llm_proxy.errors import UpstreamBadResponse, UpstreamStatusError, UpstreamUnavailable
from llm_proxy.inline_body import InlineBodyRequest
from llm_proxy.read_timeout import Connector
from llm_proxy.stream_timeout import StreamDeadline, StreamTimeouts
from llm_proxy.total_timeout import TotalTimeouts
from toolpolicy.settings import LlmSettings
from toolpolicy.telemetry.tracing import inject

_JSON_HEADERS = {"content-type": "application/json", "accept": "application/json"}
_SSE_HEADERS = {"content-type": "application/json", "accept": "text/event-stream"}


def _compact_encoder() -> Callable[[Any], str]:
    """`json.dumps(payload, separators=(",", ":"), ensure_ascii=False)`, the same text for half the time: the C
    encoder `dumps` builds on every call, built once, without the check for cycles (payloads hold parsed JSON)."""
    python = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return python.encode
    encode = make(None, python.default, json.encoder.encode_basestring, None, ":", ",", False, False, True)
    return lambda payload: "".join(encode(payload, 0))


_encode = _compact_encoder()


def dumps(payload: Any) -> bytes:
    """Compact JSON as UTF-8 bytes: request bodies to providers, stream frames, cached answers."""
    return _encode(payload).encode()


def _body(payload: Any) -> bytes:
    """The request body: JSON for a payload, or bytes already encoded (a signed request sends the bytes signed)."""
    return payload if isinstance(payload, bytes) else dumps(payload)


class Upstream:
    """A keep-alive connection pool with the configured timeouts; `start()` opens it, `close()` closes it."""

    def __init__(self, settings: LlmSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._whole: aiohttp.ClientSession | None = None
        """The session of `post_json`, on the same connections: its `total_timeout` is measured by `_totals`, and the
        JSON headers are its defaults, which aiohttp merges as `{**_JSON_HEADERS, **headers}` would, in a step less."""
        self._totals: TotalTimeouts | None = None
        self._streams: StreamTimeouts | None = None
        """The `total_timeout` of `post_stream`'s requests, which go to aiohttp with `_untimed`."""
        self._untimed: aiohttp.ClientTimeout | None = None

    async def start(self) -> None:
        if self._session is None:
            connector = Connector(limit=self.settings.max_connections, limit_per_host=0, ttl_dns_cache=300)
            timeout = aiohttp.ClientTimeout(
                total=self.settings.total_timeout,
                sock_connect=self.settings.connect_timeout,
                sock_read=self.settings.read_timeout,
            )
            # No cookie jar: one pool serves every caller, so a cookie a provider set in answer to one request
            # (Cloudflare's `__cf_bm` on api.openai.com, a load balancer's) would go with every later request, from
            # any key; and the jar's lookup costs each request a `SimpleCookie`. A small body goes out with its head
            # without a task of its own (`inline_body.py`).
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=timeout,
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                request_class=InlineBodyRequest,
            )
            untimed = self._untimed = aiohttp.ClientTimeout(
                sock_connect=timeout.sock_connect, sock_read=timeout.sock_read
            )
            self._whole = aiohttp.ClientSession(
                connector=connector,
                connector_owner=False,
                timeout=untimed,
                headers=_JSON_HEADERS,
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                request_class=InlineBodyRequest,
            )
            loop = asyncio.get_running_loop()
            self._totals = TotalTimeouts(loop, self.settings.total_timeout, timeout.ceil_threshold)
            self._streams = StreamTimeouts(loop, self.settings.total_timeout, timeout.ceil_threshold)

    async def close(self) -> None:
        if self._whole is not None:
            await self._whole.close()  # not the connector's owner: its connections close with `_session`
            self._whole = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._totals is not None:
            self._totals.close()
            self._totals = None
        if self._streams is not None:
            self._streams.close()
            self._streams = None

    @property
    def started(self) -> bool:
        return self._session is not None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the upstream client is not started (LlmProxy.start() was not called)")
        return self._session

    async def post_json(
        self, provider: str, url: StrOrURL, headers: Mapping[str, str], payload: Any
    ) -> tuple[dict[str, Any], bytes]:
        """POST a JSON body; return the JSON object answered and its bytes. A `yarl.URL(..., encoded=True)` is sent
        as it is, for a signed URL whose percent-escapes must reach the server unchanged."""
        session, totals = self._whole, self._totals
        if session is None or totals is None:
            raise RuntimeError("the upstream client is not started (LlmProxy.start() was not called)")
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a provider request must run in a task")  # as aiohttp's own timeout requires
        cancelling = task.cancelling()
        totals.enter(task)  # the request's `total_timeout` (`total_timeout.py`)
        try:
            try:
                outgoing = {**headers}  # after the session's own (`_JSON_HEADERS`), as `{**_JSON_HEADERS, **headers}`
                inject(outgoing)  # W3C traceparent of the current attempt span (nothing when tracing is off)
                # Released by hand rather than by `async with`, whose exit is three coroutines more per request: it
                # releases the same way, then waits for the request's body writer, which is done by the time there
                # is an answer (or was just cancelled by the release, when the provider answered before reading it
                # all).
                resp = await session.post(url, data=_body(payload), headers=outgoing)
                try:
                    raw = await self._read_all(provider, resp)
                    if resp.status >= 400:
                        raise status_error(provider, resp.status, resp.headers, raw)
                finally:
                    resp.release()
            except asyncio.CancelledError as exc:
                if totals.timed_out(task, cancelling):
                    raise TimeoutError from exc  # as aiohttp's own total timeout raises it
                raise
            finally:
                totals.leave(task)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._unavailable(provider, exc) from exc
        return parse_object(provider, raw), raw

    async def post_stream(
        self, provider: str, url: StrOrURL, headers: Mapping[str, str], payload: Any
    ) -> AsyncGenerator[bytes, None]:
        """POST a JSON body and yield the answer's bytes as they arrive (an error status raises before any)."""
        session, streams = self._session, self._streams
        if session is None or streams is None:
            raise RuntimeError("the upstream client is not started (LlmProxy.start() was not called)")
        limit = self.settings.max_response_bytes
        # The request's `total_timeout`: one timer for all streams, each wait on the provider marked (`stream_timeout`).
        deadline = StreamDeadline()
        streams.enter(deadline)
        try:
            try:
                outgoing = {**_SSE_HEADERS, **headers}
                inject(outgoing)
                # Released by hand, as `post_json` does, rather than by `async with`: its enter is two coroutines
                # more on the way to the first event (the request waited for through them), its exit two more.
                deadline.wait()
                resp = await session.post(url, data=_body(payload), headers=outgoing, timeout=self._untimed)
                deadline.waiting = None
                try:
                    if resp.status >= 400:
                        if deadline.expired and not resp.content.is_eof():
                            raise TimeoutError
                        deadline.wait()
                        raw = await self._read_all(provider, resp)
                        deadline.waiting = None
                        raise status_error(provider, resp.status, resp.headers, raw)
                    content = resp.content
                    received = 0
                    while True:
                        # `readany` itself (what `iter_any` calls): a coroutine less per read.
                        if deadline.expired:
                            chunk = _buffered(content)
                        else:
                            deadline.wait()
                            chunk = await content.readany()
                            deadline.waiting = None
                        if not chunk:
                            break
                        received += len(chunk)
                        if received > limit:
                            raise UpstreamBadResponse(f"provider {provider!r} streamed more than {limit} bytes")
                        yield chunk
                finally:
                    resp.release()
            except asyncio.CancelledError as exc:
                if deadline.is_timeout():
                    raise TimeoutError from exc  # as aiohttp's own total timeout raises it
                raise
            finally:
                streams.leave(deadline)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._unavailable(provider, exc) from exc

    async def get_json(
        self, provider: str, url: str, headers: Mapping[str, str], params: Mapping[str, str] | None = None
    ) -> Any:
        """GET a JSON document (a model listing); callers bound the time it may take."""
        try:
            outgoing = {"accept": "application/json", **headers}
            async with self.session.get(url, headers=outgoing, params=params) as resp:
                raw = await self._read_all(provider, resp)
                if resp.status >= 400:
                    raise status_error(provider, resp.status, resp.headers, raw)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._unavailable(provider, exc) from exc
        return parse_json(provider, raw)

    def _unavailable(self, provider: str, exc: BaseException) -> UpstreamUnavailable:
        settings = self.settings
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            reason = f"could not connect within connect_timeout ({settings.connect_timeout:g} s)"
        elif isinstance(exc, aiohttp.SocketTimeoutError):
            reason = f"stayed silent longer than read_timeout ({settings.read_timeout:g} s)"
        elif isinstance(exc, TimeoutError) and not isinstance(exc, aiohttp.ClientError):
            reason = f"took longer than total_timeout ({settings.total_timeout:g} s)"
        elif isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
            reason = f"dropped the connection ({describe(exc)})"
        else:
            reason = f"could not be reached ({describe(exc)})"
        return UpstreamUnavailable(f"provider {provider!r} {reason}")

    async def _read_all(self, provider: str, resp: aiohttp.ClientResponse) -> bytes:
        limit = self.settings.max_response_bytes
        if resp.content_length is not None:
            if resp.content_length > limit:
                raise UpstreamBadResponse(f"provider {provider!r} answered {resp.content_length} bytes (limit {limit})")
            if resp.content.is_eof():
                # The whole body came with the head (most answers): taken as it is, without `read()`'s waits.
                return resp.content.read_nowait()
            return await resp.read()
        parts: list[bytes] = []
        received = 0
        async for chunk in resp.content.iter_any():
            received += len(chunk)
            if received > limit:
                raise UpstreamBadResponse(f"provider {provider!r} answered more than {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)


def _buffered(content: aiohttp.StreamReader) -> bytes:
    """What a read past the stream's `total_timeout` gives, as aiohttp's timer decides: what is already buffered (or
    the end), and `TimeoutError` where the read would have to wait."""
    chunk = content.read_nowait()
    if not chunk and not content.is_eof():
        raise TimeoutError
    return chunk


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def parse_json(provider: str, raw: bytes) -> Any:
    try:
        # pydantic-core's parser (jiter) is about three times as fast as `json.loads` on an answer; what it does not
        # read (a UTF-16 body, a byte order mark, a lone surrogate escape, very deep nesting) goes to `json.loads` as
        # before, so the same answers are read, into the same values.
        return pydantic_core.from_json(raw, allow_inf_nan=True, cache_strings="keys")
    except ValueError:
        pass
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        snippet = raw[:80].decode("utf-8", "replace")
        raise UpstreamBadResponse(f"provider {provider!r} answered something that is not JSON: {snippet!r}") from None


def parse_object(provider: str, raw: bytes) -> dict[str, Any]:
    data = parse_json(provider, raw)
    if not isinstance(data, dict):
        raise UpstreamBadResponse(f"provider {provider!r} answered JSON that is not an object")
    return data


def status_error(provider: str, status: int, headers: Mapping[str, str], raw: bytes) -> UpstreamStatusError:
    message, kind = _error_detail(raw)
    # AWS names its error in a header: `x-amzn-ErrorType: UnrecognizedClientException:http://internal.amazon.com/...`
    aws_type = (headers.get("x-amzn-errortype") or "").partition(":")[0].strip()
    if aws_type:
        kind = aws_type
        message = f"{aws_type}: {message}"
    return UpstreamStatusError(
        f"provider {provider!r} answered {status}: {message}",
        upstream_status=status,
        retry_after=retry_after(headers),
        provider_type=kind,
    )


def _error_detail(raw: bytes) -> tuple[str, str | None]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # Gemini sometimes wraps its error in a list
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail") or json.dumps(error)[:300]
            kind = error.get("type") or error.get("status")
            return str(message), str(kind) if kind else None
        if isinstance(error, str):
            return error, None
    text = raw[:300].decode("utf-8", "replace").strip()
    return text or "(empty body)", None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date); None when absent or unreadable."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return _finite_seconds(millis) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return _finite_seconds(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _finite_seconds(text: str) -> float:
    """A non-negative number of seconds; `inf`, `nan` or `1e309` from a provider is as unreadable as `soon`."""
    seconds = float(text)
    if not math.isfinite(seconds):
        raise ValueError(f"not a finite number of seconds: {text!r}")
    return max(0.0, seconds)
