"""One audit record per token decision (kind `oauth`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from toolpolicy.audit import AuditRecord
from toolpolicy.types import Principal

Emit = Callable[[AuditRecord], None]

EVENTS = frozenset(
    {
        "issued",
        "refreshed",
        "denied",
        "revoked",
        "reuse_detected",
        "registered",
        "external_accepted",
        "external_refused",
    }
)


def token_event(
    emit: Emit,
    event: str,
    *,
    principal: Principal | None = None,
    client_id: str | None = None,
    subject: str | None = None,
    issuer: str | None = None,
    reason: str | None = None,
    status: int = 200,
    request_id: str = "",
    **details: Any,
) -> None:
    assert event in EVENTS, event
    denied = event in ("denied", "external_refused", "reuse_detected")
    extra = {k: v for k, v in {"client_id": client_id, "subject": subject, "issuer": issuer}.items() if v}
    emit(
        AuditRecord(
            request_id=request_id,
            kind="oauth",
            target=f"oauth/{event}",
            decision="deny" if denied else "allow",
            status=status,
            latency_ms=0.0,
            key_id=principal.key_id if principal else None,
            key_name=principal.key_name if principal else None,
            team=principal.team if principal else None,
            customer=principal.customer if principal else None,
            reason=reason,
            details={"event": event, **extra, **details},
        )
    )
