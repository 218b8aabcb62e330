"""`/oauth/token`, `/oauth/register`, `/oauth/revoke` and `/oauth/jwks`: RFC 6749 errors as JSON, never cached."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from toolpolicy.oauth.core import OAuthCore
from toolpolicy.oauth.errors import OAuthError

MAX_FORM_BYTES = 16 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error(error: OAuthError) -> Response:
    headers = dict(NO_STORE)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="isthmus-oauth"'
    return JSONResponse(error.as_json(), status_code=error.status, headers=headers)


async def _body(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise OAuthError("invalid_request", f"the request body is larger than {MAX_FORM_BYTES} bytes", status=413)
    return body


async def form_of(request: Request) -> dict[str, str]:
    """The urlencoded form; a parameter given twice is an error (RFC 6749 section 3.1)."""
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        raise OAuthError("invalid_request", "send the parameters as application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl((await _body(request)).decode(), keep_blank_values=False, strict_parsing=False)
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "the form is not UTF-8") from None
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            raise OAuthError("invalid_request", f"parameter {name!r} is given more than once")
        values[name] = value
    return values


def basic_auth(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "malformed Basic credentials", status=401) from None
    if not sep:
        raise OAuthError("invalid_client", "malformed Basic credentials", status=401)
    return unquote(user), unquote(password)


def _handled(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except OAuthError as exc:
            return oauth_error(exc)

    return endpoint


def endpoint_routes(core: OAuthCore) -> list[Route]:
    server = core.server

    async def token(request: Request) -> Response:
        answer = await server.token(await form_of(request), basic_auth(request))
        return JSONResponse(answer, headers=NO_STORE)

    async def revoke(request: Request) -> Response:
        await server.revoke(await form_of(request), basic_auth(request))
        return Response(status_code=200, headers=NO_STORE)

    async def register(request: Request) -> Response:
        try:
            metadata = json.loads(await _body(request))
        except (ValueError, UnicodeDecodeError):
            raise OAuthError("invalid_client_metadata", "the body must be a JSON object") from None
        if not isinstance(metadata, dict):
            raise OAuthError("invalid_client_metadata", "the body must be a JSON object")
        answer = await core.clients.register(metadata)
        core.server.emit_registered(answer)
        return JSONResponse(answer, status_code=201, headers=NO_STORE)

    async def jwks(request: Request) -> Response:
        return JSONResponse(await core.signing.jwks(), headers={"Cache-Control": "public, max-age=300"})

    return [
        Route("/oauth/token", _handled(token), methods=["POST"]),
        Route("/oauth/revoke", _handled(revoke), methods=["POST"]),
        Route("/oauth/register", _handled(register), methods=["POST"]),
        Route("/oauth/jwks", jwks, methods=["GET"]),
    ]
