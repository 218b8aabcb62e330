"""`OAuthCore`: the OAuth pieces wired together once per process (the HTTP edge is `isthmus.oauth`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from toolpolicy.keys import KeyResolver
from toolpolicy.oauth.audit import Emit
from toolpolicy.oauth.clients import Clients, FetchDocument
from toolpolicy.oauth.external import ExternalIssuers, FetchJwks
from toolpolicy.oauth.key_state import KeyStates
from toolpolicy.oauth.resolver import McpCredentials, TokenResolver
from toolpolicy.oauth.server import AuthorizationServer
from toolpolicy.oauth.settings import OAuthSettings
from toolpolicy.oauth.signing import SigningKeys
from toolpolicy.oauth.store import OAuthStore
from toolpolicy.oauth.tokens import TokenSigner
from toolpolicy.store.directory import Directory


class OAuthCore:
    def __init__(
        self,
        settings: OAuthSettings,
        directory: Directory,
        keys: KeyResolver,
        emit: Emit,
        *,
        fetch_jwks: FetchJwks,
        fetch_document: FetchDocument | None,
        key_cache_ttl: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = OAuthStore(directory.store)
        self.signing = SigningKeys(
            self.store,
            algorithm=settings.signing_algorithm,
            rotate_after=settings.key_rotation_days * 86_400,
            clock=clock,
        )
        self.signer = TokenSigner(self.signing, settings.issuer, clock=clock)
        self.key_states = KeyStates(directory.find_key_by_id, directory.find_key_by_name, ttl=key_cache_ttl)
        self.external = ExternalIssuers(
            settings.trusted_issuers, fetch_jwks, refresh_interval=settings.jwks_refresh_interval, clock=clock
        )
        self.tokens = TokenResolver(
            settings, self.signer, self.external, self.key_states, self.store, emit, clock=clock
        )
        self.credentials = McpCredentials(keys, self.tokens)
        self.clients = Clients(settings, self.store, fetch_document)
        self.server = AuthorizationServer(
            settings, self.store, self.clients, self.signer, keys, self.key_states, emit, clock=clock
        )

    def authorization_server_metadata(self) -> dict[str, Any]:
        """RFC 8414."""
        issuer = self.settings.issuer
        methods = ["none", "client_secret_post", "client_secret_basic"]
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/oauth/authorize",
            "token_endpoint": f"{issuer}/oauth/token",
            "registration_endpoint": f"{issuer}/oauth/register",
            "revocation_endpoint": f"{issuer}/oauth/revoke",
            "jwks_uri": f"{issuer}/oauth/jwks",
            "scopes_supported": list(self.settings.scopes),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": methods,
            "revocation_endpoint_auth_methods_supported": methods,
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
            "client_id_metadata_document_supported": self.settings.client_metadata_documents,
        }

    def protected_resource_metadata(self, suffix: str = "") -> dict[str, Any]:
        """RFC 9728, for `/mcp` (suffix empty) or `/mcp/<server>`."""
        servers = [self.settings.issuer] + [t.issuer for t in self.settings.trusted_issuers]
        return {
            "resource": f"{self.settings.resource}{suffix}",
            "authorization_servers": servers,
            "scopes_supported": list(self.settings.scopes),
            "bearer_methods_supported": ["header"],
            "resource_name": "Isthmus MCP hub",
        }
