"""Reading a list page's filter form (GET parameters; empty fields mean no filter) into an audit query."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import QueryParams

from toolpolicy.errors import InvalidRequest
from toolpolicy.store.audit_log import AuditQuery

REQUEST_KINDS = ("llm", "tool_call")
STATUS_CLASSES = {"ok": (None, 399), "error": (400, None)}


def text(params: QueryParams, name: str) -> str | None:
    value = params.get(name, "").strip()
    return value or None


def utc_time(params: QueryParams, name: str, label: str) -> datetime | None:
    """A `datetime-local` field (read as UTC) or an ISO 8601 time with its offset."""
    raw = text(params, name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"{label} must be a date and time, e.g. 2026-12-05T10:00", param=name) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def status_range(raw: str | None) -> tuple[int | None, int | None]:
    if raw is None:
        return None, None
    if raw in STATUS_CLASSES:
        return STATUS_CLASSES[raw]
    if raw.isdigit() and 100 <= int(raw) <= 599:
        return int(raw), int(raw)
    raise InvalidRequest(f"status must be ok, error or an HTTP status such as 429, not {raw!r}", param="status")


def log_query(params: QueryParams, limit: int) -> AuditQuery:
    """The request log: LLM requests and tool calls, by key, route (a model or `server/tool` prefix), status, time."""
    kind = text(params, "kind")
    if kind is not None and kind not in REQUEST_KINDS:
        raise InvalidRequest(f"kind must be one of {', '.join(REQUEST_KINDS)}", param="kind")
    min_status, max_status = status_range(text(params, "status"))
    return AuditQuery(
        key=text(params, "key"),
        target_prefix=text(params, "route"),
        kinds=(kind,) if kind else REQUEST_KINDS,
        min_status=min_status,
        max_status=max_status,
        since=utc_time(params, "since", "Since"),
        until=utc_time(params, "until", "Until"),
        limit=limit,
        cursor=text(params, "cursor"),
    )


AUDIT_TEXT_FILTERS = ("key", "team", "customer", "kind", "decision", "target")


def audit_query(params: QueryParams, limit: int) -> AuditQuery:
    filters: dict[str, Any] = {name: text(params, name) for name in AUDIT_TEXT_FILTERS}
    return AuditQuery(
        **filters,
        since=utc_time(params, "since", "Since"),
        until=utc_time(params, "until", "Until"),
        limit=limit,
        cursor=text(params, "cursor"),
    )


def without_cursor(params: QueryParams) -> dict[str, str]:
    """The filters as given (for the next page's link and the export links)."""
    return {name: value for name, value in params.items() if name != "cursor" and value.strip()}
