"""What every upstream OAuth flow offers the transports, and who the hub is calling for.

`Credentials` is one server's source of bearer tokens. The transports ask it per request (`token()`), tell it when
the server answered 401 (`rejected()`), and the upstream asks it before connecting and before each call
(`ready_for_connection()`, `ready_for_call()`), so that a missing or unobtainable token is an error raised in the
caller's task, with a message naming the server, rather than a failure deep inside the SDK's transport.

`ACTING` is the key a request is made for, set around each call (`acting_as`); the SDK's Streamable HTTP client
sends a request in its sender's context, so the bearer is chosen per request on the one pooled connection.
"""

from __future__ import annotations

import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from mcp_hub.upstreams.oauth.endpoints import AuthServerClient, OAuthClient
from toolpolicy.audit import AuditRecord
from toolpolicy.types import Principal
from toolpolicy.upstream_oauth.settings import OAuthAuth
from toolpolicy.upstream_oauth.tokens import TokenSet

logger = logging.getLogger(__name__)

ACTING: ContextVar[Principal | None] = ContextVar("isthmus_upstream_acting_key", default=None)


@contextmanager
def acting_as(principal: Principal) -> Iterator[None]:
    """Upstream requests made inside are made for `principal`'s key."""
    token = ACTING.set(principal)
    try:
        yield
    finally:
        ACTING.reset(token)


Emit = Callable[[AuditRecord], None]


class OAuthAudit:
    """One audit record (kind `upstream_oauth`) per token decision: fetched, refreshed, failed, authorization
    started, completed or required. Never a token, a code or a secret."""

    def __init__(self, emit: Emit, server: str, flow: str) -> None:
        self._emit = emit
        self.server = server
        self.flow = flow

    def event(
        self,
        event: str,
        *,
        ok: bool = True,
        key_id: str | None = None,
        key_name: str | None = None,
        team: str | None = None,
        customer: str | None = None,
        error: str | None = None,
        status: int | None = None,
    ) -> None:
        details: dict[str, object] = {"event": event, "flow": self.flow, "server": self.server}
        if error is not None:
            details["error"] = error
        self._emit(
            AuditRecord(
                request_id=uuid.uuid4().hex,
                kind="upstream_oauth",
                target=self.server,
                decision="allow" if ok else "deny",
                status=status or (200 if ok else 502),
                latency_ms=0.0,
                key_id=key_id,
                key_name=key_name,
                team=team,
                customer=customer,
                reason=None if ok else event,
                details=details,
            )
        )

    def for_key(self, event: str, principal: Principal | None, **kwargs: object) -> None:
        if principal is None:
            self.event(event, **kwargs)  # type: ignore[arg-type]
            return
        self.event(
            event,
            key_id=principal.key_id,
            key_name=principal.key_name,
            team=principal.team,
            customer=principal.customer,
            **kwargs,  # type: ignore[arg-type]
        )


class Credentials(ABC):
    """One upstream server's bearer tokens (`auth: {type: oauth}`)."""

    def __init__(
        self,
        server: str,
        settings: OAuthAuth,
        server_url: str,
        *,
        endpoints: AuthServerClient,
        audit: OAuthAudit,
        clock: Callable[[], float],
    ) -> None:
        self.server = server
        self.settings = settings
        self.server_url = server_url
        self.endpoints = endpoints
        self.audit = audit
        self.clock = clock

    def configured_client(self) -> OAuthClient | None:
        """The client `client_id` and `client_secret` configure, if any."""
        settings = self.settings
        if settings.client_id is None:
            return None
        secret = settings.client_secret.get_secret_value() if settings.client_secret else None
        return OAuthClient(settings.client_id, secret, settings.auth_method)

    def fresh(self, tokens: TokenSet) -> bool:
        """Usable for at least `refresh_before` more seconds."""
        return tokens.fresh(self.clock(), self.settings.refresh_before)

    per_key = False
    """Whether the token differs per key (so a 2025-era server needs a session per key)."""

    @property
    def resource(self) -> str | None:
        """The RFC 8707 resource indicator to send, if any."""
        if self.settings.resource is None:
            return self.server_url
        return self.settings.resource or None

    @abstractmethod
    async def token(self) -> str | None:
        """The access token for a request made now (for `ACTING`'s key, or the connection's own), or None."""

    @abstractmethod
    async def rejected(self, token: str) -> str | None:
        """The server answered 401 to `token`: a new token to retry with once, or None."""

    @abstractmethod
    async def ready_for_connection(self) -> None:
        """Raise `UpstreamAuthFailed` when the connection cannot get a token (the reason naming the server)."""

    @abstractmethod
    async def ready_for_call(self) -> None:
        """Raise `AuthorizationRequired` or `UpstreamAuthFailed` when a call for `ACTING`'s key cannot be made."""
