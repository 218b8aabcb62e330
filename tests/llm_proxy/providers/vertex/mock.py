"""A fake of Google's OAuth token endpoint and of Vertex AI's Gemini, Claude and embedding routes, on 127.0.0.1.

The token endpoint takes only the JWT-bearer grant, and only from the service account it was made for: it checks the
assertion's RS256 signature against that account's public key (with `cryptography`, not google-auth, which signs),
and its `iss`, `aud` (Google's token audience, as Google's endpoints require wherever they are reached), `scope`,
`iat` and `exp`; anything else gets Google's `invalid_grant`. The model routes take
only tokens it issued and still honours (`revoke_tokens()` plays their expiry), answering 401 `UNAUTHENTICATED` as
Vertex does otherwise.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.llm_proxy.mock_provider import Seen, anthropic_messages, gemini, json_reply, listen

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
AUDIENCE = "https://oauth2.googleapis.com/token"
"""The audience Google's token service requires of an assertion, at whichever URL (`token_uri`) it is reached."""
PROJECT = "isthmus-test"
EMAIL = f"gateway@{PROJECT}.iam.gserviceaccount.com"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def service_account_file(path: Path, key: rsa.RSAPrivateKey, token_uri: str, *, email: str = EMAIL) -> Path:
    """A service-account JSON as the Cloud console downloads it, with `key` and `token_uri`."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    info = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "test-key-1",
        "private_key": pem.decode(),
        "client_email": email,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }
    path.write_text(json.dumps(info))
    return path


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@dataclass
class Grant:
    """One assertion the token endpoint received, and what it found wrong with it (None: accepted)."""

    claims: dict[str, Any]
    problem: str | None


@dataclass
class VertexMock:
    account_key: rsa.RSAPrivateKey
    """The service account whose public key the token endpoint trusts."""
    email: str = EMAIL
    expires_in: int = 3600
    seen: list[Seen] = field(default_factory=list)
    grants: list[Grant] = field(default_factory=list)
    fail_next: list[tuple[int, str]] = field(default_factory=list)
    """(status, Google error status) answers for the next model requests, in order."""
    port: int = 0
    _valid: set[str] = field(default_factory=set)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def issued(self) -> int:
        return sum(grant.problem is None for grant in self.grants)

    def revoke_tokens(self) -> None:
        self._valid.clear()

    def check(self, assertion: str) -> tuple[dict[str, Any], str | None]:
        try:
            head, payload, signature = assertion.split(".")
            header, claims = json.loads(_b64(head)), json.loads(_b64(payload))
        except ValueError:
            return {}, "not a JWT"
        if header.get("alg") != "RS256":
            return claims, f"alg {header.get('alg')}"
        try:
            self.account_key.public_key().verify(
                _b64(signature), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            return claims, "Invalid JWT Signature."
        now = time.time()  # the mock checks the assertion's freshness as Google does; tests never assert on time
        if claims.get("iss") != self.email:
            return claims, f"iss {claims.get('iss')!r}"
        if claims.get("aud") != AUDIENCE:
            return claims, f"aud {claims.get('aud')!r}"
        if SCOPE not in str(claims.get("scope", "")).split():
            return claims, f"scope {claims.get('scope')!r}"
        if not (claims.get("iat", 0) - 300 <= now <= claims.get("exp", 0) <= claims.get("iat", 0) + 3600):
            return claims, "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
        return claims, None

    async def _token(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if form.get("grant_type") != JWT_BEARER:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        claims, problem = self.check(str(form.get("assertion", "")))
        self.grants.append(Grant(claims, problem))
        if problem is not None:
            return web.json_response({"error": "invalid_grant", "error_description": problem}, status=400)
        token = f"ya29.mock-{len(self.grants)}"
        self._valid.add(token)
        return web.json_response({"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"})

    async def _model(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else {}
        self.seen.append(Seen(request.path, dict(request.headers), body, dict(request.query)))
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in self._valid:
            error = {
                "code": 401,
                "message": "Request had invalid authentication credentials.",
                "status": "UNAUTHENTICATED",
            }
            return web.json_response({"error": error}, status=401)
        if self.fail_next:
            code, status = self.fail_next.pop(0)
            return web.json_response(
                {"error": {"code": code, "message": f"mock {status}", "status": status}}, status=code
            )
        publisher = request.match_info["publisher"]
        model, _, method = request.match_info["target"].partition(":")
        if publisher == "anthropic":
            return await anthropic_messages(request, {**body, "model": model})
        if method == "predict":
            predictions = [
                {"embeddings": {"values": [0.25, -0.5, float(index)], "statistics": {"token_count": 3}}}
                for index, _ in enumerate(body["instances"])
            ]
            return await json_reply({"predictions": predictions})(request, body)
        return await gemini(request, body)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post(
            "/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{target}", self._model
        )
        self._runner = web.AppRunner(app, access_log=None)
        self.port = await listen(self._runner)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
