"""The built-in authorization server's flows: authorization code with PKCE S256, refresh with rotation, revocation.

A code and its tokens are bound to the virtual key pasted on the consent page, at that key's current version.
Presenting a refresh token that was already rotated revokes its whole family (RFC 9700 section 4.14.2): one of
the two holders is not the client.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from toolpolicy.errors import AuthenticationError
from toolpolicy.keys import KeyResolver
from toolpolicy.oauth.audit import Emit, token_event
from toolpolicy.oauth.clients import Client, Clients
from toolpolicy.oauth.errors import OAuthError
from toolpolicy.oauth.key_state import KeyStates
from toolpolicy.oauth.settings import OAuthSettings
from toolpolicy.oauth.store import Grant, OAuthStore, PendingCode
from toolpolicy.oauth.tokens import TokenSigner
from toolpolicy.types import Principal

VERIFIER_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class RedirectError(Exception):
    """An authorization error to send back to the client's (already validated) redirect URI."""

    def __init__(self, location: str, error: OAuthError) -> None:
        super().__init__(error.description)
        self.location = location
        self.error = error


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    client: Client
    redirect_uri: str
    state: str | None
    code_challenge: str
    resource: str
    scope: str

    def params(self) -> dict[str, str]:
        """What the consent form carries back, signed."""
        values = {"client_id": self.client.client_id, "redirect_uri": self.redirect_uri, "state": self.state}
        values |= {"code_challenge": self.code_challenge, "resource": self.resource, "scope": self.scope}
        return {k: v for k, v in values.items() if v is not None}


class AuthorizationServer:
    def __init__(
        self,
        settings: OAuthSettings,
        store: OAuthStore,
        clients: Clients,
        signer: TokenSigner,
        keys: KeyResolver,
        key_states: KeyStates,
        emit: Emit,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clients = clients
        self.signer = signer
        self.keys = keys
        self.key_states = key_states
        self.emit = emit
        self.clock = clock

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def redirect(self, redirect_uri: str, params: dict[str, str | None]) -> str:
        """The redirect URI with the response parameters and `iss` (RFC 9207)."""
        query = urlencode({k: v for k, v in {**params, "iss": self.settings.issuer}.items() if v is not None})
        return f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{query}"

    # -- authorization endpoint ------------------------------------------------------------------------------

    async def check_authorize(self, params: dict[str, str]) -> AuthorizeRequest:
        """Validate an authorization request. Errors before the redirect URI is trusted raise `OAuthError` (shown
        to the person); later ones raise `RedirectError` (sent to the client)."""
        client = await self.clients.get(params.get("client_id") or _missing("client_id"))
        redirect_uri = params.get("redirect_uri")
        if redirect_uri is None and len(client.redirect_uris) == 1:
            redirect_uri = client.redirect_uris[0]
        if redirect_uri is None or redirect_uri not in client.redirect_uris:
            raise OAuthError("invalid_request", "redirect_uri is missing or not registered for this client")
        state = params.get("state")

        def fail(error: str, description: str) -> RedirectError:
            location = self.redirect(redirect_uri, {"error": error, "error_description": description, "state": state})
            return RedirectError(location, OAuthError(error, description))

        if params.get("response_type") != "code":
            raise fail("unsupported_response_type", "only response_type=code is supported")
        challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
        if not challenge:
            raise fail("invalid_request", "PKCE is required: send code_challenge with code_challenge_method=S256")
        if method != "S256":
            raise fail("invalid_request", "code_challenge_method must be S256 (plain is not accepted)")
        if not 43 <= len(challenge) <= 128:
            raise fail("invalid_request", "code_challenge must be 43 to 128 characters")
        resource = (params.get("resource") or self.settings.resource).rstrip("/")
        if resource != self.settings.resource and not resource.startswith(f"{self.settings.resource}/"):
            raise fail("invalid_target", f"resource must be {self.settings.resource!r}")
        requested = (params.get("scope") or " ".join(self.settings.scopes)).split()
        unknown = [scope for scope in requested if scope not in self.settings.scopes]
        if unknown:
            raise fail("invalid_scope", f"unknown scope {unknown[0]!r}; supported: {' '.join(self.settings.scopes)}")
        return AuthorizeRequest(client, redirect_uri, state, challenge, self.settings.resource, " ".join(requested))

    async def approve(self, request: AuthorizeRequest, api_key: str) -> tuple[Principal, str]:
        """The key's principal and the redirect carrying a new code (raises `AuthenticationError` for a bad key)."""
        try:
            principal = await self.keys.resolve(api_key.strip())
        except AuthenticationError as exc:
            token_event(
                self.emit, "denied", client_id=request.client.client_id, reason=exc.reason, status=401, stage="consent"
            )
            raise
        version = await self.key_states.version_of(principal.key_id)
        code = secrets.token_urlsafe(32)
        grant = Grant(request.client.client_id, principal.key_id, version, request.resource, request.scope)
        expires = self._now() + timedelta(seconds=self.settings.code_ttl)
        await self.store.add_code(code, PendingCode(grant, request.redirect_uri, request.code_challenge, expires))
        return principal, self.redirect(request.redirect_uri, {"code": code, "state": request.state})

    def deny(self, request: AuthorizeRequest) -> str:
        token_event(
            self.emit, "denied", client_id=request.client.client_id, reason="access_denied", status=403, stage="consent"
        )
        description = "the person declined"
        return self.redirect(
            request.redirect_uri, {"error": "access_denied", "error_description": description, "state": request.state}
        )

    def emit_registered(self, answer: dict[str, Any]) -> None:
        token_event(
            self.emit,
            "registered",
            client_id=answer["client_id"],
            client_name=answer["client_name"],
            redirect_uris=answer["redirect_uris"],
        )

    # -- token endpoint --------------------------------------------------------------------------------------

    async def token(self, form: dict[str, str], basic: tuple[str, str] | None) -> dict[str, Any]:
        client_id = basic[0] if basic else form.get("client_id") or _missing("client_id")
        client = await self.clients.get(client_id)
        client.check_secret(basic[1] if basic else form.get("client_secret"))
        grant_type = form.get("grant_type")
        try:
            if grant_type == "authorization_code":
                return await self._code(client, form)
            if grant_type == "refresh_token":
                return await self._refresh(client, form)
        except OAuthError as exc:
            token_event(
                self.emit,
                "denied",
                client_id=client.client_id,
                reason=exc.error,
                status=exc.status,
                stage=grant_type,
                error_description=exc.description,
            )
            raise
        raise OAuthError("unsupported_grant_type", "grant_type must be authorization_code or refresh_token")

    async def _code(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        pending = await self.store.take_code(form.get("code") or _missing("code"), self._now())
        if pending is None or pending.expires_at <= self._now() or pending.grant.client_id != client.client_id:
            raise OAuthError("invalid_grant", "the authorization code is invalid, expired or already used")
        if form.get("redirect_uri", pending.redirect_uri) != pending.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
        verifier = form.get("code_verifier") or ""
        if not 43 <= len(verifier) <= 128 or not set(verifier) <= VERIFIER_CHARS:
            raise OAuthError("invalid_grant", "code_verifier is missing or malformed (RFC 7636: 43-128 characters)")
        if not hmac.compare_digest(s256(verifier), pending.code_challenge):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        self._check_resource(form, pending.grant)
        return await self._issue(pending.grant, secrets.token_hex(16), "issued")

    async def _refresh(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        token = form.get("refresh_token") or _missing("refresh_token")
        record = await self.store.rotate_refresh(token, self._now())
        if record is None or record.grant.client_id != client.client_id:
            raise OAuthError("invalid_grant", "the refresh token is invalid")
        if record.rotated and not record.revoked:
            await self.store.revoke_family(record.family_id, self._now())
            token_event(
                self.emit,
                "reuse_detected",
                client_id=client.client_id,
                reason="refresh_token_reuse",
                status=400,
                family=record.family_id,
            )
        if record.rotated or record.revoked:
            raise OAuthError("invalid_grant", "the refresh token was already used or revoked; sign in again")
        if record.expires_at <= self._now():
            raise OAuthError("invalid_grant", "the refresh token has expired")
        self._check_resource(form, record.grant)
        try:
            await self.key_states.current(key_id=record.grant.key_id, version=record.grant.key_version)
        except AuthenticationError as exc:
            await self.store.revoke_family(record.family_id, self._now())
            raise OAuthError("invalid_grant", f"the key behind this grant cannot be used: {exc.message}") from None
        return await self._issue(record.grant, record.family_id, "refreshed")

    def _check_resource(self, form: dict[str, str], grant: Grant) -> None:
        resource = form.get("resource")
        if (
            resource is not None
            and resource.rstrip("/") != grant.resource
            and not resource.startswith(f"{grant.resource}/")
        ):
            raise OAuthError("invalid_target", f"resource must be {grant.resource!r}")

    async def _issue(self, grant: Grant, family_id: str, event: str) -> dict[str, Any]:
        principal = await self.key_states.current(key_id=grant.key_id, version=grant.key_version)
        subject = principal.key_name
        ttl = self.settings.access_token_ttl
        access = await self.signer.access_token(grant, subject=subject, family_id=family_id, ttl=ttl)
        refresh = secrets.token_urlsafe(32)
        expires = self._now() + timedelta(seconds=self.settings.refresh_token_ttl)
        await self.store.add_refresh(refresh, grant, family_id, expires)
        token_event(
            self.emit,
            event,
            principal=principal,
            client_id=grant.client_id,
            subject=subject,
            issuer=self.settings.issuer,
            family=family_id,
        )
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ttl,
            "refresh_token": refresh,
            "scope": grant.scope,
        }

    # -- revocation endpoint (RFC 7009) ----------------------------------------------------------------------

    async def revoke(self, form: dict[str, str], basic: tuple[str, str] | None) -> None:
        """Revoke a refresh token's family, or an access token's; unknown tokens are not an error (RFC 7009)."""
        client_id = basic[0] if basic else form.get("client_id") or _missing("client_id")
        client = await self.clients.get(client_id)
        client.check_secret(basic[1] if basic else form.get("client_secret"))
        token = form.get("token") or _missing("token")
        family = await self._family_of(token, client.client_id)
        if family is not None:
            await self.store.revoke_family(family, self._now())
            token_event(self.emit, "revoked", client_id=client.client_id, family=family)

    async def _family_of(self, token: str, client_id: str) -> str | None:
        record = await self.store.find_refresh(token)
        if record is not None:
            return record.family_id if record.grant.client_id == client_id else None
        try:
            claims = await self.signer.verify_access_token(token, self.settings.resource)
        except AuthenticationError:
            return None
        return str(claims["fam"]) if claims.get("client_id") == client_id else None


def _missing(name: str) -> str:
    raise OAuthError("invalid_request", f"{name} is required")
