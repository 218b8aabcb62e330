"""Requests to an upstream's authorization server: token requests (client credentials, authorization code,
refresh) and dynamic client registration (RFC 7591). httpx2 errors and error responses become `UpstreamAuthFailed`
naming the server and what the authorization server said; tokens and secrets are never in a message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import httpx2

from mcp_hub.errors import UpstreamAuthFailed
from toolpolicy.upstream_oauth.tokens import TokenResponseError, TokenSet, parse_token_response

logger = logging.getLogger(__name__)

AuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """The hub's client at one authorization server."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    method: AuthMethod = "none"

    def to_json(self) -> bytes:
        return json.dumps(
            {"client_id": self.client_id, "client_secret": self.client_secret, "method": self.method}
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> OAuthClient:
        data = json.loads(raw)
        return cls(data["client_id"], data.get("client_secret"), data.get("method", "none"))


class AuthServerClient:
    """Talks to authorization servers for one upstream server (`server` names it in every error)."""

    def __init__(self, server: str, http: httpx2.AsyncClient, clock: Callable[[], float]) -> None:
        self.server = server
        self.http = http
        self.clock = clock

    async def token(self, url: str, form: dict[str, str], client: OAuthClient) -> TokenSet:
        """POST a token request (`grant_type` and its parameters in `form`) authenticated as `client`."""
        form = {name: value for name, value in form.items() if value}
        options: dict[str, Any] = {}
        if client.method == "client_secret_basic":
            # RFC 6749 2.3.1: both parts form-urlencoded before Basic encoding.
            secret = client.client_secret or ""
            options["auth"] = httpx2.BasicAuth(quote(client.client_id, safe=""), quote(secret, safe=""))
        else:
            form["client_id"] = client.client_id
            if client.method == "client_secret_post":
                form["client_secret"] = client.client_secret or ""
        grant = form.get("grant_type", "")
        try:
            response = await self.http.post(url, data=form, headers={"accept": "application/json"}, **options)
        except httpx2.HTTPError as exc:
            raise UpstreamAuthFailed(self.server, f"token endpoint {url} unreachable: {type(exc).__name__}") from None
        body = _json(response)
        if response.status_code != 200:
            error = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), str) else None
            raise UpstreamAuthFailed(
                self.server, f"{grant} token request refused: {_oauth_error(response, body)}", error=error
            )
        try:
            return parse_token_response(body, self.clock())
        except TokenResponseError as exc:
            raise UpstreamAuthFailed(self.server, f"token endpoint {url}: {exc}") from None

    async def register(self, url: str, redirect_uri: str, scopes: list[str]) -> OAuthClient:
        """Register the hub as a client (authorization code with PKCE, our callback) and return it."""
        metadata: dict[str, Any] = {
            "client_name": "Isthmus MCP gateway",
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        }
        if scopes:
            metadata["scope"] = " ".join(scopes)
        try:
            response = await self.http.post(url, json=metadata, headers={"accept": "application/json"})
        except httpx2.HTTPError as exc:
            raise UpstreamAuthFailed(
                self.server, f"registration endpoint {url} unreachable: {type(exc).__name__}"
            ) from None
        body = _json(response)
        if response.status_code not in (200, 201) or not isinstance(body, dict) or not body.get("client_id"):
            raise UpstreamAuthFailed(self.server, f"client registration refused: {_oauth_error(response, body)}")
        secret = body.get("client_secret")
        said = body.get("token_endpoint_auth_method")
        method: AuthMethod = "client_secret_basic" if secret else "none"
        if said == "client_secret_post" or (said == "none" and not secret):
            method = said
        return OAuthClient(str(body["client_id"]), secret if isinstance(secret, str) else None, method)


def _json(response: httpx2.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _oauth_error(response: httpx2.Response, body: Any) -> str:
    """`HTTP 401 invalid_client (description)`, from an RFC 6749 5.2 error body when there is one."""
    text = f"HTTP {response.status_code}"
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        text += f" {body['error'][:100]}"
        description = body.get("error_description")
        if isinstance(description, str) and description:
            text += f" ({description[:200]})"
    return text
