"""Audit: records with filters, the hash chain's verification (`AuditLog.verify`), and export."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from isthmus.ui.filters import audit_query, records_page
from isthmus.ui.guard import SignedIn
from toolpolicy.audit_export import CONTENT_TYPES, ExportFormat, export_lines

if TYPE_CHECKING:
    from isthmus.ui.app import Dashboard


def routes(ui: Dashboard) -> list[Route]:
    async def audit(request: Request, who: SignedIn) -> Response:
        return await records_page(ui, request, who, "audit.html", audit_query)

    async def verify(request: Request, who: SignedIn) -> Response:
        """The chain walked whole (loaded after the page, so a long chain never holds the list up)."""
        await who.governance.audit.flush()  # what this replica recorded so far is part of what is checked
        report = await who.governance.audit_log.verify()
        return ui.render(request, who, "audit_verify.html", report=report)

    async def export(request: Request, who: SignedIn) -> Response:
        fmt: ExportFormat = "csv" if request.query_params.get("format") == "csv" else "jsonl"
        query = audit_query(request.query_params, ui.page_size)
        lines = export_lines(who.governance.audit_log.export(query), fmt)
        headers = {"content-disposition": f'attachment; filename="isthmus-audit.{fmt}"'}
        return StreamingResponse(lines, media_type=CONTENT_TYPES[fmt], headers=headers)

    return [
        Route("/audit", ui.page(audit), methods=["GET"]),
        Route("/audit/verify", ui.page(verify), methods=["GET"]),
        Route("/audit/export", ui.page(export), methods=["GET"]),
    ]
