"""An identity provider for tests: keys generated per test, its JWKS served on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.mcp_hub.conftest import free_port, uvicorn_serving


class TestIdp:
    __test__ = False

    def __init__(self, port: int) -> None:
        self.issuer = f"http://127.0.0.1:{port}"
        self.jwks_uri = f"{self.issuer}/jwks"
        self.keys: list[RSAKey] = [self.new_key()]
        self.fetches = 0
        self.documents: dict[str, dict[str, Any]] = {}
        """Client ID metadata documents served at `/clients/<name>` (this server doubles as a client's site)."""

    @staticmethod
    def new_key() -> RSAKey:
        key = RSAKey.generate_key(2048)
        key.ensure_kid()
        return key

    def rotate(self) -> None:
        self.keys = [self.new_key()]

    def token(self, claims: dict[str, Any], *, key: RSAKey | None = None, alg: str = "RS256") -> str:
        signer = key or self.keys[0]
        return jwt.encode({"alg": alg, "kid": signer.kid}, {"iss": self.issuer, **claims}, signer, algorithms=[alg])

    async def jwks(self, request: Request) -> JSONResponse:
        self.fetches += 1
        return JSONResponse({"keys": [{**key.as_dict(private=False), "alg": "RS256"} for key in self.keys]})


async def document(request: Request) -> JSONResponse:
    provider: TestIdp = request.app.state.provider
    found = provider.documents.get(request.path_params["name"])
    return JSONResponse(found) if found is not None else JSONResponse({}, status_code=404)


@asynccontextmanager
async def idp() -> AsyncIterator[TestIdp]:
    port = free_port()
    provider = TestIdp(port)
    app = Starlette(routes=[Route("/jwks", provider.jwks), Route("/clients/{name}", document)])
    app.state.provider = provider
    async with uvicorn_serving(app, port, lifespan="off"):
        yield provider
