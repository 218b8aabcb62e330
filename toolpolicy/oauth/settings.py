"""`oauth:`: `/mcp` as an OAuth 2.1 protected resource, with a built-in authorization server and trusted IdPs."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CLAUDE_REDIRECT_URIS = ("https://claude.ai/api/mcp/auth_callback", "https://claude.com/api/mcp/auth_callback")
"""Where Claude's remote connectors (claude.ai, Claude Desktop) receive the authorization code."""
CURSOR_REDIRECT_URIS = ("cursor://anysphere.cursor-mcp/oauth/callback", "cursor://anysphere.cursor-retrieval/oauth/*")
"""Cursor's private-use scheme callbacks (RFC 8252 section 7.1): the documented one, and the older per-server form."""
Algorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
DEFAULT_ALGORITHMS: tuple[Algorithm, ...] = ("RS256", "ES256")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOOPBACK_HOSTS


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)


def _base_url(value: str, field: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{field} must be an absolute https URL, e.g. https://gateway.example.com")
    if parts.scheme == "http" and not is_loopback(value):
        raise ValueError(f"{field} must use https (plain http only on a loopback host, for local testing)")
    if parts.query or parts.fragment:
        raise ValueError(f"{field} may not have a query or a fragment")
    return value.rstrip("/")


class KeysByClaim(_Model):
    """Which virtual key's policy applies to an external token: a claim's value looked up in `map`."""

    claim: str = Field(min_length=1, max_length=256)
    """The claim to read (a string or a list of strings, e.g. `groups`); dotted paths reach nested objects."""
    map: dict[str, str] = Field(min_length=1)
    """Claim value -> virtual key name; the token's first value (in its own order) found here picks the key."""


class TrustedIssuer(_Model):
    """An external identity provider whose JWT access tokens `/mcp` accepts (resource-server mode)."""

    issuer: str
    """The IdP's issuer identifier, compared exactly with the token's `iss`."""
    jwks_uri: str
    """Where the IdP publishes its signing keys (fetched, cached, refetched when a token names an unknown `kid`)."""
    audience: str
    """The `aud` a token must carry: this gateway's resource, `<oauth.issuer>/mcp`."""
    keys_by_claim: KeysByClaim
    """How a token maps to a virtual key; no match is refused with 403."""
    algorithms: list[Algorithm] = Field(default_factory=lambda: list(DEFAULT_ALGORITHMS), min_length=1)
    """Signature algorithms accepted (asymmetric only: `none` and HMAC are never accepted)."""
    leeway: float = Field(default=30.0, ge=0, le=300)
    """Seconds of clock skew tolerated on `exp` and `nbf`."""

    @field_validator("issuer", "jwks_uri")
    @classmethod
    def _url(cls, value: str) -> str:
        _base_url(value, "issuer and jwks_uri")
        return value


class OAuthSettings(_Model):
    """OAuth 2.1 on `/mcp`: discovery, the built-in authorization server, and trusted external issuers."""

    issuer: str
    """The gateway's public base URL (e.g. `https://gateway.example.com`): its authorization server's issuer; the
    protected resource is `<issuer>/mcp`."""
    access_token_ttl: int = Field(default=600, ge=30, le=86_400)
    """Seconds an access token issued here is valid."""
    trusted_issuers: list[TrustedIssuer] = Field(default_factory=list)
    """External IdPs whose JWTs `/mcp` accepts."""
    refresh_token_ttl: int = Field(default=30 * 86_400, ge=60)
    """Seconds a refresh token is valid (each refresh issues a new one and retires the old)."""
    code_ttl: int = Field(default=60, ge=10, le=600)
    """Seconds an authorization code is valid (it is single-use)."""
    redirect_uris: list[str] = Field(default_factory=lambda: [*CLAUDE_REDIRECT_URIS, *CURSOR_REDIRECT_URIS])
    """Redirect URIs a client may register besides loopback ones; an entry ending in `*` is a prefix."""
    loopback_redirects: bool = True
    """Accept `http://127.0.0.1:<any port>/...` and `http://localhost:...` redirects (RFC 8252 native apps)."""
    client_metadata_documents: bool = True
    """Accept an https URL as `client_id`: the client's metadata document is fetched from it (and cached)."""
    insecure_client_metadata: bool = False
    """Also fetch client metadata documents over http from loopback hosts (tests only)."""
    client_metadata_ttl: float = Field(default=3600.0, ge=0)
    """Seconds a fetched client metadata document is cached."""
    signing_algorithm: Literal["ES256", "RS256"] = "ES256"
    """Algorithm of the access tokens issued here."""
    key_rotation_days: float = Field(default=30.0, gt=0)
    """A signing key older than this is replaced at the next issuance; the previous key keeps verifying."""
    token_cache_ttl: float = Field(default=5.0, ge=0)
    """Seconds a verified token is cached: the bound on how late a key revocation reaches a token."""
    scopes: list[str] = Field(default_factory=lambda: ["mcp"])
    """Scopes advertised and granted (a token's reach is its key's policy, whatever the scope)."""
    jwks_refresh_interval: float = Field(default=60.0, ge=0)
    """Seconds at least between two fetches of a trusted issuer's JWKS triggered by unknown `kid`s."""

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        return _base_url(value, "oauth.issuer")

    @property
    def resource(self) -> str:
        """The protected resource (RFC 8707 audience of every token issued here)."""
        return f"{self.issuer}/mcp"

    @model_validator(mode="after")
    def _audiences(self) -> OAuthSettings:
        for index, trusted in enumerate(self.trusted_issuers):
            if trusted.audience.rstrip("/") != self.resource:
                raise ValueError(f"trusted_issuers[{index}].audience must be this gateway's resource {self.resource!r}")
        return self
