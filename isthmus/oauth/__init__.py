"""OAuth 2.1 on `/mcp` at the HTTP edge: `OAuthGateway` is the one entry point `isthmus.app` mounts.

It serves discovery (RFC 9728, RFC 8414), the consent page, the token, registration, revocation and JWKS
endpoints, and hands the MCP hub `credentials` (virtual keys or tokens) and `challenge` (the 401's
`WWW-Authenticate` naming the resource metadata). The logic is `toolpolicy.oauth`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.routing import BaseRoute

from isthmus.oauth.consent import consent_routes
from isthmus.oauth.discovery import discovery_routes
from isthmus.oauth.endpoints import endpoint_routes
from isthmus.oauth.fetch import DocumentFetcher
from toolpolicy.oauth.core import OAuthCore
from toolpolicy.oauth.resolver import McpCredentials
from toolpolicy.runtime import Governance


class OAuthGateway:
    """A Component: the OAuth routes, with the fetcher they share opened and closed with the app."""

    name = "oauth"

    def __init__(
        self,
        governance: Governance,
        *,
        fetcher: DocumentFetcher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        settings = governance.settings.oauth
        if settings is None:
            raise ValueError("OAuthGateway needs an `oauth:` block in the configuration")
        self.settings = settings
        self.fetcher = fetcher or DocumentFetcher()
        self.core = OAuthCore(
            settings,
            governance.directory,
            governance.keys,
            lambda record: governance.audit.emit(record),
            fetch_jwks=self.fetcher,
            fetch_document=self.fetcher if settings.client_metadata_documents else None,
            key_cache_ttl=governance.settings.key_cache_ttl,
            clock=clock,
        )
        governance.change_listeners.append(self.core.tokens.invalidate)

    @property
    def credentials(self) -> McpCredentials:
        return self.core.credentials

    def challenge(self, server: str | None) -> str:
        """`WWW-Authenticate` of a 401 on `/mcp` or `/mcp/<server>` (RFC 9728 section 5.1)."""
        suffix = f"/{server}" if server else ""
        url = f"{self.settings.issuer}/.well-known/oauth-protected-resource/mcp{suffix}"
        return f'Bearer resource_metadata="{url}", scope="{" ".join(self.settings.scopes)}"'

    def routes(self) -> list[BaseRoute]:
        return [*discovery_routes(self.core), *consent_routes(self.core), *endpoint_routes(self.core)]

    async def start(self) -> None:
        await self.core.signing.jwks()  # create the first signing key now, not on the first sign-in

    async def stop(self) -> None:
        await self.fetcher.aclose()

    def readiness(self) -> dict[str, Any]:
        return {"status": "ok", "issuer": self.settings.issuer, "trusted_issuers": len(self.settings.trusted_issuers)}
