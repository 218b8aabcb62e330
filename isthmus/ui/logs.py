"""Logs: recent LLM requests and tool calls (the audit records of those kinds), and one request's detail."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from isthmus.ui.filters import log_query, records_page
from isthmus.ui.guard import SignedIn
from toolpolicy.store.audit_log import AuditQuery

if TYPE_CHECKING:
    from isthmus.ui.app import Dashboard

DETAIL_LIMIT = 200
"""Records shown for one request id (its own, its tool calls, guardrail hits)."""


def routes(ui: Dashboard) -> list[Route]:
    async def logs(request: Request, who: SignedIn) -> Response:
        return await records_page(ui, request, who, "logs.html", log_query)

    async def detail(request: Request, who: SignedIn) -> Response:
        request_id = request.path_params["request_id"]
        records, _ = await who.governance.audit_log.query(AuditQuery(request_id=request_id, limit=DETAIL_LIMIT))
        records.reverse()  # oldest first: the request's own record comes after the tool calls it made
        main = next((record for record in records if record["kind"] == "llm"), records[-1] if records else None)
        return ui.render(
            request,
            who,
            "log_detail.html",
            status_code=200 if records else 404,
            request_id=request_id,
            main=main,
            tool_calls=[record for record in records if record["kind"] == "tool_call" and record is not main],
            others=[record for record in records if record["kind"] not in ("tool_call",) and record is not main],
        )

    return [
        Route("/logs", ui.page(logs), methods=["GET"]),
        Route("/logs/{request_id}", ui.page(detail), methods=["GET"]),
    ]
