"""How callers present credentials, the same on every route of both halves: a virtual key, or the admin key."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from toolpolicy.errors import AuthenticationError, PermissionDenied
from toolpolicy.keys import KeyResolver
from toolpolicy.settings import GatewaySettings


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key from `Authorization: Bearer …` or `x-api-key: …` (headers with lower-case names)."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer":
            token = token.strip()
            if token:
                return token
    return headers.get("x-api-key") or None


async def require_admin(settings: GatewaySettings, keys: KeyResolver, headers: Mapping[str, str]) -> None:
    """Accept only the configured admin key; a virtual key gets 403, anything else 401."""
    token = presented_key(headers)
    admin_key = settings.admin_key
    expected = admin_key.get_secret_value() if admin_key is not None else ""
    if token and expected and hmac.compare_digest(token.encode(), expected.encode()):
        return
    if token:
        try:
            await keys.resolve(token)
        except AuthenticationError:
            pass
        else:
            raise PermissionDenied("a virtual key cannot use the admin API; use the admin key")
    if not expected:
        raise AuthenticationError("the admin API is disabled: set admin_key in the configuration")
    raise AuthenticationError("missing or wrong admin key: send 'Authorization: Bearer <admin_key>'")


async def require_metrics_reader(settings: GatewaySettings, keys: KeyResolver, headers: Mapping[str, str]) -> None:
    """Accept the metrics token or the admin key (the metrics name keys and customers and show their budgets)."""
    token = presented_key(headers)
    metrics_token = settings.metrics_token.get_secret_value() if settings.metrics_token is not None else ""
    if token and metrics_token and hmac.compare_digest(token.encode(), metrics_token.encode()):
        return
    try:
        await require_admin(settings, keys, headers)
    except PermissionDenied:
        raise PermissionDenied("a virtual key cannot read /metrics; use the metrics token or the admin key") from None
    except AuthenticationError:
        admin_key = settings.admin_key.get_secret_value() if settings.admin_key is not None else ""
        if not metrics_token and not admin_key:
            raise AuthenticationError(
                "/metrics is closed: set metrics_token (or admin_key) in the configuration"
            ) from None
        raise AuthenticationError("missing or wrong token: send 'Authorization: Bearer <metrics_token>'") from None
