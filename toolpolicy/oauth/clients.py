"""OAuth clients: dynamic registration (RFC 7591), client ID metadata documents, and the redirect URI policy.

A redirect URI is accepted when it is in `oauth.redirect_uris` (Claude's and Cursor's by default; an entry
ending in `*` is a prefix), or a loopback http URI on any port (RFC 8252 section 7.3), or, for a client known by
its metadata document, an https URI on the document's own origin. Fragments never are.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from toolpolicy.oauth.errors import OAuthError
from toolpolicy.oauth.settings import OAuthSettings, is_loopback
from toolpolicy.oauth.store import OAuthStore
from toolpolicy.secrets import hash_secret, same_hash

FetchDocument = Callable[[str], Awaitable[dict[str, Any]]]
"""Fetch a client metadata document by URL (raises on failure; HTTP lives in `isthmus.oauth`)."""

AUTH_METHODS = ("none", "client_secret_post", "client_secret_basic")
MAX_REDIRECT_URIS = 16


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    auth_method: str
    secret_hash: str | None = None

    def check_secret(self, secret: str | None) -> None:
        """Confidential clients authenticate at the token endpoint; public ones (`none`) do not."""
        if self.secret_hash is None:
            return
        if not secret or not same_hash(self.secret_hash, hash_secret(secret)):
            raise OAuthError("invalid_client", "client authentication failed", status=401)


def redirect_allowed(settings: OAuthSettings, uri: str, *, origin: str | None = None) -> bool:
    parts = urlsplit(uri)
    if not parts.scheme or parts.fragment or "#" in uri:
        return False
    for allowed in settings.redirect_uris:
        if uri == allowed or (allowed.endswith("*") and uri.startswith(allowed[:-1])):
            return True
    if settings.loopback_redirects and parts.scheme == "http" and is_loopback(uri):
        return True
    return origin is not None and parts.scheme == "https" and f"{parts.scheme}://{parts.netloc}" == origin


def _redirect_uris(settings: OAuthSettings, value: object, *, origin: str | None = None) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or len(value) > MAX_REDIRECT_URIS:
        raise OAuthError("invalid_redirect_uri", f"redirect_uris must be a list of 1 to {MAX_REDIRECT_URIS} URIs")
    for uri in value:
        if not isinstance(uri, str) or len(uri) > 2048 or not redirect_allowed(settings, uri, origin=origin):
            raise OAuthError(
                "invalid_redirect_uri",
                f"redirect URI {str(uri)[:200]!r} is not allowed: use a loopback URI or one in oauth.redirect_uris",
            )
    return tuple(value)


def _name(metadata: dict[str, Any], default: str) -> str:
    name = metadata.get("client_name")
    return name[:256] if isinstance(name, str) and name.strip() else default


class Clients:
    def __init__(
        self,
        settings: OAuthSettings,
        store: OAuthStore,
        fetch: FetchDocument | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.store = store
        self.fetch = fetch
        self.clock = clock
        self._documents: dict[str, tuple[float, Client]] = {}

    async def register(self, metadata: dict[str, Any]) -> dict[str, Any]:
        """RFC 7591: validate the metadata, store the client, and answer its registration."""
        uris = _redirect_uris(self.settings, metadata.get("redirect_uris"))
        method = metadata.get("token_endpoint_auth_method") or "client_secret_basic"
        if method not in AUTH_METHODS:
            raise OAuthError("invalid_client_metadata", f"token_endpoint_auth_method must be one of {AUTH_METHODS}")
        grant_types = metadata.get("grant_types") or ["authorization_code", "refresh_token"]
        if not isinstance(grant_types, list) or not set(grant_types) <= {"authorization_code", "refresh_token"}:
            raise OAuthError("invalid_client_metadata", "grant_types may only be authorization_code and refresh_token")
        response_types = metadata.get("response_types") or ["code"]
        if response_types != ["code"]:
            raise OAuthError("invalid_client_metadata", "response_types must be ['code']")
        client_id = secrets.token_urlsafe(24)
        answer: dict[str, Any] = {
            "client_id": client_id,
            "client_id_issued_at": int(time.time()),
            "client_name": _name(metadata, client_id),
            "redirect_uris": list(uris),
            "grant_types": grant_types,
            "response_types": ["code"],
            "token_endpoint_auth_method": method,
            "scope": " ".join(self.settings.scopes),
        }
        for optional in ("client_uri", "logo_uri", "software_id", "software_version"):
            if isinstance(metadata.get(optional), str):
                answer[optional] = metadata[optional][:2048]
        stored = dict(answer)
        if method != "none":
            secret = secrets.token_urlsafe(32)
            answer.update(client_secret=secret, client_secret_expires_at=0)
            stored["secret_hash"] = hash_secret(secret)
        await self.store.add_client(client_id, answer["client_name"], list(uris), stored)
        return answer

    async def get(self, client_id: str) -> Client:
        """The client by id: registered here, or (an https URL) described by its metadata document."""
        if client_id.startswith(("https://", "http://")):
            return await self._document(client_id)
        stored = await self.store.client(client_id)
        if stored is None:
            raise OAuthError("invalid_client", "unknown client_id: register first (POST /oauth/register)", status=401)
        return Client(
            client_id,
            stored["client_name"],
            tuple(stored["redirect_uris"]),
            stored["token_endpoint_auth_method"],
            stored.get("secret_hash"),
        )

    async def _document(self, url: str) -> Client:
        cached = self._documents.get(url)
        if cached is not None and cached[0] > self.clock():
            return cached[1]
        parts = urlsplit(url)
        insecure_ok = self.settings.insecure_client_metadata and parts.scheme == "http" and is_loopback(url)
        if not self.settings.client_metadata_documents or self.fetch is None:
            raise OAuthError("invalid_client", "client ID metadata documents are not accepted here", status=401)
        if (parts.scheme != "https" and not insecure_ok) or parts.path in ("", "/") or parts.fragment:
            raise OAuthError("invalid_client", "a URL client_id must be an https URL with a path", status=401)
        try:
            document = await self.fetch(url)
        except Exception as exc:
            raise OAuthError(
                "invalid_client", f"the client metadata document could not be fetched: {exc}", status=401
            ) from None
        if not isinstance(document, dict) or document.get("client_id") != url:
            raise OAuthError(
                "invalid_client", "the client metadata document's client_id is not its own URL", status=401
            )
        method = document.get("token_endpoint_auth_method") or "none"
        if method != "none":
            raise OAuthError(
                "invalid_client", "a metadata-document client must use token_endpoint_auth_method none", status=401
            )
        origin = f"{parts.scheme}://{parts.netloc}"
        try:
            uris = _redirect_uris(self.settings, document.get("redirect_uris"), origin=origin)
        except OAuthError as exc:
            raise OAuthError("invalid_client", exc.description, status=401) from None
        client = Client(url, _name(document, parts.netloc), uris, "none")
        self._documents[url] = (self.clock() + self.settings.client_metadata_ttl, client)
        if len(self._documents) > 10_000:
            self._documents.clear()
        return client
