"""How the hub authenticates to one upstream MCP server (`mcp_servers.<name>.auth`), and the hub-wide
`upstream_oauth:` block. The models only describe and validate; the environment is read at the edge (`isthmus.cli`).

```yaml
mcp_servers:
  reports:                      # a service account: one token for the server, shared by every key
    url: https://reports.example.com/mcp
    auth: {type: oauth, flow: client_credentials, token_url: https://idp.example.com/token,
           client_id: isthmus, client_secret: "${REPORTS_SECRET}", scopes: [reports.read]}
  github:                       # acts for a person: one token set per (virtual key, server)
    url: https://api.githubcopilot.com/mcp/
    auth: {type: oauth, flow: authorization_code, client_id: Iv1.abc, client_secret: "${GH_SECRET}"}
  static:
    url: https://static.example.com/mcp
    auth: {type: headers, headers: {Authorization: "Bearer ${STATIC_TOKEN}"}}
```
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

__all__ = ["HeadersAuth", "OAuthAuth", "UpstreamAuth", "UpstreamOAuthSettings"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)


class HeadersAuth(_Model):
    """Static credentials: HTTP headers sent with every request to the server (an API token, say)."""

    type: Literal["headers"]
    """`headers`."""
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    """Headers added to those of the server's `headers:` (these win on a clash)."""


class OAuthAuth(_Model):
    """OAuth 2.1: the hub gets its own access tokens for the server (the client's own token never goes upstream)."""

    type: Literal["oauth"]
    """`oauth`."""
    flow: Literal["client_credentials", "authorization_code"]
    """`client_credentials`: a service account, one token for the server shared by every key.
    `authorization_code`: the server acts for a person; each virtual key's owner authorizes once in a browser and
    the hub keeps that key's token set (encrypted in the store)."""
    token_url: str | None = None
    """Token endpoint of the authorization server; null discovers it (RFC 9728 protected resource metadata from the
    server, then RFC 8414 / OpenID metadata of the authorization server it names)."""
    authorization_url: str | None = None
    """Authorization endpoint (`authorization_code` only); null discovers it like `token_url`."""
    registration_url: str | None = None
    """Dynamic client registration endpoint (RFC 7591), used when `client_id` is null; null discovers it."""
    client_id: str | None = None
    """The hub's client id at the authorization server. Required for `client_credentials`; for
    `authorization_code`, null registers a client dynamically (once, kept in the store)."""
    client_secret: SecretStr | None = None
    """The client's secret; null for a public client (`token_auth_method: none`)."""
    token_auth_method: Literal["client_secret_basic", "client_secret_post", "none"] | None = None
    """How the client authenticates at the token endpoint: HTTP Basic (the default with a secret), the secret in
    the form body, or not at all (the default without one: a public client relying on PKCE)."""
    scopes: list[str] = Field(default_factory=list)
    """Scopes requested; empty requests none (the authorization server's default)."""
    resource: str | None = None
    """RFC 8707 resource indicator sent with authorization and token requests; null sends the server's URL (what
    the MCP authorization spec asks for). Set `""` to send none, for servers that reject it."""
    refresh_before: float = Field(default=60.0, ge=0)
    """Seconds before a token's expiry at which the hub gets a new one (refresh token, or a new client-credentials
    token), so no call goes out with a token about to lapse."""

    @model_validator(mode="after")
    def _flow_needs(self) -> OAuthAuth:
        if self.flow == "client_credentials" and not self.client_id:
            raise ValueError("flow 'client_credentials' needs a 'client_id' (and usually a 'client_secret')")
        if self.flow == "client_credentials" and (self.authorization_url or self.registration_url):
            raise ValueError("'authorization_url' and 'registration_url' apply to flow 'authorization_code' only")
        if self.token_auth_method in ("client_secret_basic", "client_secret_post") and self.client_secret is None:
            raise ValueError(f"token_auth_method {self.token_auth_method!r} needs a 'client_secret'")
        for name in ("token_url", "authorization_url", "registration_url"):
            url = getattr(self, name)
            if url is not None and not url.startswith(("https://", "http://")):
                raise ValueError(f"{name} must be an http(s) URL, got {url!r}")
        return self

    @property
    def auth_method(self) -> Literal["client_secret_basic", "client_secret_post", "none"]:
        """The token endpoint authentication method in effect."""
        if self.token_auth_method is not None:
            return self.token_auth_method
        return "client_secret_basic" if self.client_secret is not None else "none"


UpstreamAuth = Annotated[HeadersAuth | OAuthAuth, Field(discriminator="type")]


class UpstreamOAuthSettings(_Model):
    """Hub-wide options of upstream OAuth (the `upstream_oauth:` block)."""

    public_url: str | None = None
    """The gateway's public base URL (`https://gateway.example.com`): authorization links and the OAuth callback
    (`<public_url>/oauth/upstream/callback`, to register at the upstream's authorization server) are built on it.
    Null uses `http://<listen>`."""
    encryption_key: SecretStr | None = None
    """32-byte AES-256-GCM key (base64 or 64 hex digits) that encrypts stored upstream token sets; null takes
    `$ISTHMUS_OAUTH_ENCRYPTION_KEY`. Required as soon as one server uses flow `authorization_code`; every replica
    needs the same key."""
    link_window: float = Field(default=600.0, gt=0)
    """Seconds an authorization link stays valid. A key calling a server it has not authorized gets the link once
    per window; calls within it are told the authorization is pending, without a new link."""
    request_timeout: float = Field(default=20.0, gt=0)
    """Seconds a request to an authorization server (metadata, token, registration) may take."""

    @model_validator(mode="after")
    def _public_url(self) -> UpstreamOAuthSettings:
        if self.public_url is not None and not self.public_url.startswith(("https://", "http://")):
            raise ValueError(f"public_url must be an http(s) URL, got {self.public_url!r}")
        return self
