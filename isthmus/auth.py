"""Who is calling: the virtual key on the gateway routes, the admin key on `/admin`."""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers
from starlette.requests import Request

from toolpolicy.errors import AuthenticationError, PermissionDenied
from toolpolicy.runtime import Governance
from toolpolicy.types import Principal


def presented_key(headers: Headers) -> str | None:
    """The key from `Authorization: Bearer …` or `x-api-key: …` (both halves accept both)."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return headers.get("x-api-key") or None


async def principal(request: Request) -> Principal:
    governance: Governance = request.app.state.governance
    return await governance.keys.resolve(presented_key(request.headers))


async def require_admin(request: Request) -> None:
    """Accept only the configured admin key; a virtual key gets 403, anything else 401."""
    governance: Governance = request.app.state.governance
    token = presented_key(request.headers)
    admin_key = governance.settings.admin_key
    expected = admin_key.get_secret_value() if admin_key is not None else ""
    if token and expected and hmac.compare_digest(token.encode(), expected.encode()):
        return
    if token:
        try:
            await governance.keys.resolve(token)
        except AuthenticationError:
            pass
        else:
            raise PermissionDenied("a virtual key cannot use the admin API; use the admin key")
    if not expected:
        raise AuthenticationError("the admin API is disabled: set admin_key in the configuration")
    raise AuthenticationError("missing or wrong admin key: send 'Authorization: Bearer <admin_key>'")
