"""Reading a list page's filter form (GET parameters; empty fields mean no filter) into an audit query, and the
page of records it selects (the log and audit pages)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from isthmus.admin import parse_time
from toolpolicy.errors import InvalidRequest
from toolpolicy.store.audit_log import AuditQuery

if TYPE_CHECKING:
    from isthmus.ui.app import Dashboard
    from isthmus.ui.guard import SignedIn

REQUEST_KINDS = ("llm", "tool_call")
STATUS_CLASSES = {"ok": (None, 399), "error": (400, None)}


def text(params: QueryParams, name: str) -> str | None:
    value = params.get(name, "").strip()
    return value or None


def utc_time(params: QueryParams, name: str) -> datetime | None:
    """A `datetime-local` field (read as UTC) or an ISO 8601 time with its offset."""
    raw = text(params, name)
    return parse_time(raw, name, naive_is_utc=True) if raw is not None else None


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
        since=utc_time(params, "since"),
        until=utc_time(params, "until"),
        limit=limit,
        cursor=text(params, "cursor"),
    )


AUDIT_TEXT_FILTERS = ("key", "team", "customer", "kind", "decision", "target")


def audit_query(params: QueryParams, limit: int) -> AuditQuery:
    filters: dict[str, Any] = {name: text(params, name) for name in AUDIT_TEXT_FILTERS}
    return AuditQuery(
        **filters,
        since=utc_time(params, "since"),
        until=utc_time(params, "until"),
        limit=limit,
        cursor=text(params, "cursor"),
    )


def without_cursor(params: QueryParams) -> dict[str, str]:
    """The filters as given (for the next page's link and the export links)."""
    return {name: value for name, value in params.items() if name != "cursor" and value.strip()}


QueryBuilder = Callable[[QueryParams, int], AuditQuery]


async def records_page(ui: Dashboard, request: Request, who: SignedIn, template: str, build: QueryBuilder) -> Response:
    """A page of audit records, newest first, by the filters in the query string (a bad filter: 400 naming it)."""
    filters = without_cursor(request.query_params)
    try:
        rows, next_cursor = await who.governance.audit_log.query(build(request.query_params, ui.page_size))
    except InvalidRequest as error:
        return ui.render(
            request, who, template, status_code=400, rows=[], next_cursor=None, filters=filters, error=error.message
        )
    return ui.render(request, who, template, rows=rows, next_cursor=next_cursor, filters=filters, error=None)
