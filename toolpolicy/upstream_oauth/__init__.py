"""Upstream OAuth, the protocol-free half: settings, token sets, encryption at rest, sealed authorization links.

The HTTP half (discovery, token requests, the per-request bearer, the `/oauth/upstream/...` routes) is
`mcp_hub.upstreams.oauth`; the store of token sets is `toolpolicy.store.upstream_tokens`.
"""

from toolpolicy.upstream_oauth.cipher import CipherKeyError, Sealed, TokenCipher
from toolpolicy.upstream_oauth.links import LinkError, Links, Pending, Ticket, pkce_challenge, pkce_verifier
from toolpolicy.upstream_oauth.settings import HeadersAuth, OAuthAuth, UpstreamAuth, UpstreamOAuthSettings
from toolpolicy.upstream_oauth.tokens import TokenResponseError, TokenSet, parse_token_response

__all__ = [
    "CipherKeyError",
    "HeadersAuth",
    "LinkError",
    "Links",
    "OAuthAuth",
    "Pending",
    "Sealed",
    "Ticket",
    "TokenCipher",
    "TokenResponseError",
    "TokenSet",
    "UpstreamAuth",
    "UpstreamOAuthSettings",
    "parse_token_response",
    "pkce_challenge",
    "pkce_verifier",
]
