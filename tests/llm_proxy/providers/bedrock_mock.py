"""A fake of Bedrock's runtime API on 127.0.0.1: Converse, ConverseStream and InvokeModel, with AWS's own checks.

Every request must carry a SigV4 signature that the mock recomputes with botocore from the secret it knows for the
access key id (and the session token that goes with it), or a Bedrock API key as a bearer token: an unknown key id
answers 403 `UnrecognizedClientException`, a wrong signature 403 `InvalidSignatureException`, as AWS does.
ConverseStream answers real `application/vnd.amazon.eventstream` frames, encoded here independently of botocore
(prelude, headers, payload and both CRC32s), which the gateway decodes with botocore.
"""

from __future__ import annotations

import binascii
import hmac
import json
import re
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "us-east-1"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TEMP_ACCESS_KEY = "ASIAIOSFODNN7EXAMPLE"
TEMP_SECRET_KEY = "temporary/secret/key/of/an/sts/session"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLE//session+token=="
API_KEY = "ABSKQmVkcm9ja0FQSUtleS1leGFtcGxl"
USAGE = {"inputTokens": 21, "outputTokens": 8, "totalTokens": 29}

_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})"
)

Behaviour = Callable[[web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    raw_path: str
    headers: dict[str, str]
    body: dict[str, Any]
    auth: str
    """`sigv4:<access key id>` or `bearer:<api key>`."""


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event stream message: total length, headers length, prelude CRC, headers, payload, message CRC."""
    encoded = b"".join(
        struct.pack("!B", len(name)) + name.encode() + struct.pack("!BH", 7, len(value.encode())) + value.encode()
        for name, value in headers.items()
    )
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    prelude += struct.pack("!I", binascii.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack("!I", binascii.crc32(message))


def event(kind: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, json.dumps(payload).encode())


def exception(kind: str, message: str) -> bytes:
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return frame(headers, json.dumps({"message": message}).encode())


def text_events(text: str, *, usage: dict[str, Any] | None = None, stop: str = "end_turn") -> list[bytes]:
    """A streamed text answer, cut into two deltas, then the stop and the usage."""
    half = len(text) // 2
    return [
        event("messageStart", {"role": "assistant"}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text[:half]}}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text[half:]}}),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("messageStop", {"stopReason": stop}),
        event("metadata", {"usage": usage or USAGE, "metrics": {"latencyMs": 42}}),
    ]


def tool_events(tool_id: str, name: str, arguments: str) -> list[bytes]:
    """A streamed tool call: a short text, then the call's input in two fragments."""
    cut = len(arguments) // 2
    start = {"toolUse": {"toolUseId": tool_id, "name": name}}
    return [
        event("messageStart", {"role": "assistant"}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Let me check."}}),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("contentBlockStart", {"contentBlockIndex": 1, "start": start}),
        event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": arguments[:cut]}}}),
        event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": arguments[cut:]}}}),
        event("contentBlockStop", {"contentBlockIndex": 1}),
        event("messageStop", {"stopReason": "tool_use"}),
        event("metadata", {"usage": USAGE}),
    ]


def converse_answer(content: list[dict[str, Any]], stop: str = "end_turn", usage: dict[str, Any] | None = None) -> Any:
    body = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": usage or USAGE,
        "metrics": {"latencyMs": 42},
    }

    async def answer(request: web.Request, seen: dict[str, Any]) -> web.StreamResponse:
        return web.json_response(body)

    return answer


def aws_error(status: int, kind: str, message: str) -> Behaviour:
    async def answer(request: web.Request, seen: dict[str, Any]) -> web.StreamResponse:
        headers = {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
        return web.json_response({"message": message}, status=status, headers=headers)

    return answer


def stream_of(frames: list[bytes], *, split: int | None = None) -> Behaviour:
    """A ConverseStream answer of `frames`, written in pieces of `split` bytes (frames cut anywhere) if given."""

    async def answer(request: web.Request, seen: dict[str, Any]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "application/vnd.amazon.eventstream"})
        await response.prepare(request)
        data = b"".join(frames)
        step = split or len(data) or 1
        for start in range(0, len(data), step):
            await response.write(data[start : start + step])
        await response.write_eof()
        return response

    return answer


@dataclass
class BedrockMock:
    """Bedrock's runtime API; `queue` answers the next requests in order, else the default echo answers."""

    secrets: dict[str, tuple[str, str | None]] = field(
        default_factory=lambda: {ACCESS_KEY: (SECRET_KEY, None), TEMP_ACCESS_KEY: (TEMP_SECRET_KEY, SESSION_TOKEN)}
    )
    api_keys: set[str] = field(default_factory=lambda: {API_KEY})
    seen: list[Seen] = field(default_factory=list)
    queue: list[Behaviour] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/model/{model_id}/{action}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        refusal, auth = self._authenticate(request, raw)
        if refusal is not None:
            return refusal
        body = json.loads(raw)
        self.seen.append(Seen(request.raw_path, dict(request.headers), body, auth))
        if self.queue:
            return await self.queue.pop(0)(request, body)
        action = request.match_info["action"]
        if action == "invoke":
            return _embed(body)
        text = f"echo:{_last_user_text(body)}"
        if action == "converse-stream":
            return await stream_of(text_events(text))(request, body)
        return await converse_answer([{"text": text}])(request, body)

    def _authenticate(self, request: web.Request, body: bytes) -> tuple[web.Response | None, str]:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            if header[7:] in self.api_keys:
                return None, f"bearer:{header[7:]}"
            return _refuse(
                403, "UnrecognizedClientException", "Invalid API Key format: Must start with pre-defined prefix"
            ), ""
        match = _AUTH.fullmatch(header)
        if match is None:
            return _refuse(403, "MissingAuthenticationTokenException", "Missing Authentication Token"), ""
        known = self.secrets.get(match["key"])
        if known is None or match["service"] != "bedrock" or match["region"] != REGION:
            return _refuse(
                403, "UnrecognizedClientException", "The security token included in the request is invalid."
            ), ""
        secret, token = known
        if token is not None and request.headers.get("X-Amz-Security-Token") != token:
            return _refuse(
                403, "UnrecognizedClientException", "The security token included in the request is invalid."
            ), ""
        signed = match["signed"].split(";")
        if not {"host", "x-amz-date"} <= set(signed) or (token and "x-amz-security-token" not in signed):
            return _refuse(403, "InvalidSignatureException", "host, x-amz-date and the token must be signed"), ""
        aws = AWSRequest(
            method=request.method,
            url=f"http://{request.host}{request.raw_path}",
            data=body,
            headers={name: request.headers[name] for name in signed},
        )
        aws.context["timestamp"] = request.headers["X-Amz-Date"]
        signer = SigV4Auth(Credentials(match["key"], secret, token), "bedrock", REGION)
        expected = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
        if not hmac.compare_digest(expected, match["signature"]):
            message = (
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
            )
            return _refuse(403, "InvalidSignatureException", message), ""
        return None, f"sigv4:{match['key']}"


def _refuse(status: int, kind: str, message: str) -> web.Response:
    headers = {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.coral.service/"}
    return web.json_response({"message": message}, status=status, headers=headers)


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            return "".join(block.get("text", "") for block in message["content"])
    return ""


def _embed(body: dict[str, Any]) -> web.Response:
    if "inputText" in body:
        size = body.get("dimensions") or 4
        vector = [float(len(body["inputText"]))] + [0.5] * (size - 1)
        return web.json_response({"embedding": vector, "inputTextTokenCount": len(body["inputText"].split())})
    vectors = [[float(len(text)), 0.25, 0.75] for text in body["texts"]]
    return web.json_response(
        {"id": "e1", "embeddings": vectors, "texts": body["texts"], "response_type": "embeddings_floats"}
    )
