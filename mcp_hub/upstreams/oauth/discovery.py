"""Where an upstream's authorization server is: RFC 9728 protected resource metadata (named by the server's 401
`WWW-Authenticate: Bearer resource_metadata=...`, else at its well-known URLs), then RFC 8414 authorization server
metadata (or OpenID Connect discovery). Without protected resource metadata the server's origin is taken as its
authorization server, as the 2025-03-26 MCP spec did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import httpx2
from mcp.client.auth.utils import (
    build_oauth_authorization_server_metadata_discovery_urls,
    build_protected_resource_metadata_discovery_urls,
    extract_resource_metadata_from_www_auth,
)
from mcp.shared.auth import OAuthMetadata, ProtectedResourceMetadata
from pydantic import ValidationError

from mcp_hub.errors import UpstreamAuthFailed

M = TypeVar("M", ProtectedResourceMetadata, OAuthMetadata)


@dataclass(frozen=True, slots=True)
class AuthServer:
    """What the hub uses of an authorization server's metadata."""

    issuer: str
    token_endpoint: str
    authorization_endpoint: str | None = None
    registration_endpoint: str | None = None
    discovered: bool = True
    """From the server's metadata (so `issuer` is its real issuer), not from configured URLs."""


async def discover(http: httpx2.AsyncClient, server: str, server_url: str) -> AuthServer:
    """The authorization server of the MCP server at `server_url` (named `server` in errors)."""
    challenge: str | None = None
    try:
        probe = await http.post(
            server_url,
            json={"jsonrpc": "2.0", "id": 0, "method": "ping"},
            headers={"accept": "application/json, text/event-stream"},
        )
        if probe.status_code == 401:
            challenge = extract_resource_metadata_from_www_auth(probe)
    except httpx2.HTTPError:
        pass  # the well-known URLs may still answer
    issuer_url: str | None = None
    for url in build_protected_resource_metadata_discovery_urls(challenge, server_url):
        metadata = await _get(http, url, ProtectedResourceMetadata)
        if metadata is not None and metadata.authorization_servers:
            issuer_url = str(metadata.authorization_servers[0])
            break
    for url in build_oauth_authorization_server_metadata_discovery_urls(issuer_url, server_url):
        found = await _get(http, url, OAuthMetadata)
        if found is not None:
            return AuthServer(
                issuer=str(found.issuer),
                token_endpoint=str(found.token_endpoint),
                authorization_endpoint=str(found.authorization_endpoint) if found.authorization_endpoint else None,
                registration_endpoint=str(found.registration_endpoint) if found.registration_endpoint else None,
            )
    where = issuer_url or "the server's origin"
    raise UpstreamAuthFailed(
        server, f"no authorization server metadata found for {where}; set 'token_url' (and 'authorization_url')"
    )


async def _get(http: httpx2.AsyncClient, url: str, model: type[M]) -> M | None:
    try:
        response = await http.get(url, headers={"accept": "application/json"})
    except httpx2.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        return model.model_validate_json(response.content)
    except ValidationError:
        return None
