"""Who is calling: the virtual key on the gateway routes, the admin key on `/admin`."""

from __future__ import annotations

from starlette.requests import Request

from toolpolicy.credentials import presented_key, require_admin as check_admin
from toolpolicy.runtime import Governance
from toolpolicy.types import Principal


async def principal(request: Request) -> Principal:
    governance: Governance = request.app.state.governance
    return await governance.keys.resolve(presented_key(request.headers))


async def require_admin(request: Request) -> None:
    """Only the configured admin key opens `/admin` (a virtual key gets 403, anything else 401)."""
    governance: Governance = request.app.state.governance
    await check_admin(governance.settings, governance.keys, request.headers)
