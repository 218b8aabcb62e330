"""The `/admin` JSON API: customers, teams, virtual keys and the audit trail, behind the admin key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from isthmus.auth import require_admin
from isthmus.errors import json_object
from isthmus.lifecycle import Reloader
from toolpolicy.audit_export import CONTENT_TYPES, ExportFormat, export_lines
from toolpolicy.errors import InvalidRequest, NotFound
from toolpolicy.runtime import Governance
from toolpolicy.store.audit_log import AuditQuery
from toolpolicy.store.schema import CustomerRow, KeyRow, TeamRow

Endpoint = Callable[[Request], Awaitable[Response]]
ENTITIES: dict[str, type[CustomerRow] | type[TeamRow] | type[KeyRow]] = {
    "customers": CustomerRow,
    "teams": TeamRow,
    "keys": KeyRow,
}


def _governance(request: Request) -> Governance:
    governance: Governance = request.app.state.governance
    return governance


def _admin(endpoint: Endpoint) -> Endpoint:
    async def guarded(request: Request) -> Response:
        await require_admin(request)
        return await endpoint(request)

    guarded.__name__ = endpoint.__name__
    return guarded


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be a whole number, not {raw!r}", param=name) from None
    if value < 1:
        raise InvalidRequest(f"{name} must be at least 1", param=name)
    return value


def parse_time(raw: str, name: str, *, naive_is_utc: bool = False) -> datetime:
    """An ISO 8601 time; without an offset it is refused, or read as UTC with `naive_is_utc` (HTML's
    `datetime-local` fields send none)."""
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"{name} must be an ISO 8601 time, e.g. 2026-11-25T10:00:00Z", param=name) from None
    if value.tzinfo is None:
        if not naive_is_utc:
            raise InvalidRequest(f"{name} must include a UTC offset, e.g. 2026-11-25T10:00:00Z", param=name)
        value = value.replace(tzinfo=UTC)
    return value


def _time_param(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    return parse_time(raw, name) if raw is not None else None


# The operations behind the routes, shared with the dashboard (`isthmus.ui`): each change is seen at once here.


async def create_entity(governance: Governance, collection: str, data: dict[str, Any]) -> dict[str, Any]:
    """Create a customer, team or key; a key's record carries its secret under `key` (the only time it exists)."""
    row_type = ENTITIES[collection]
    if row_type is CustomerRow:
        record = await governance.directory.create_customer(data)
    elif row_type is TeamRow:
        record = await governance.directory.create_team(data)
    else:
        record, secret = await governance.directory.create_key(data)
        record["key"] = secret
    governance.changed()
    return record


async def update_entity(governance: Governance, collection: str, name: str, data: dict[str, Any]) -> dict[str, Any]:
    record = await governance.directory.update(ENTITIES[collection], name, data)
    governance.changed()
    return record


async def delete_entity(governance: Governance, collection: str, name: str) -> None:
    await governance.directory.delete(ENTITIES[collection], name)
    governance.changed()


async def rotate(governance: Governance, name: str) -> dict[str, Any]:
    """A new secret for the key (under `key`); the old one is refused from now on."""
    record, secret = await governance.directory.rotate_key(name)
    governance.changed()
    return {**record, "key": secret}


async def revoke(governance: Governance, name: str) -> dict[str, Any]:
    record = await governance.directory.revoke_key(name)
    governance.changed()
    return record


def entity_routes(collection: str) -> list[Route]:
    row_type = ENTITIES[collection]

    async def listing(request: Request) -> Response:
        limit = _int_param(request, "limit", 100)
        page = await _governance(request).directory.page(row_type, limit=limit, after=request.query_params.get("after"))
        next_cursor = page[-1]["name"] if len(page) == limit else None
        return JSONResponse({"data": page, "next_cursor": next_cursor})

    async def create(request: Request) -> Response:
        governance = _governance(request)
        data = await json_object(request, governance.settings.admin_max_body_bytes)
        return JSONResponse(await create_entity(governance, collection, data), status_code=201)

    async def read(request: Request) -> Response:
        return JSONResponse(await _governance(request).directory.get(row_type, request.path_params["name"]))

    async def update(request: Request) -> Response:
        governance = _governance(request)
        data = await json_object(request, governance.settings.admin_max_body_bytes)
        return JSONResponse(await update_entity(governance, collection, request.path_params["name"], data))

    async def delete(request: Request) -> Response:
        await delete_entity(_governance(request), collection, request.path_params["name"])
        return Response(status_code=204)

    base = f"/{collection}"
    return [
        Route(base, _admin(listing), methods=["GET"]),
        Route(base, _admin(create), methods=["POST"]),
        Route(base + "/{name}", _admin(read), methods=["GET"]),
        Route(base + "/{name}", _admin(update), methods=["PATCH"]),
        Route(base + "/{name}", _admin(delete), methods=["DELETE"]),
    ]


async def rotate_key(request: Request) -> Response:
    return JSONResponse(await rotate(_governance(request), request.path_params["name"]))


async def revoke_key(request: Request) -> Response:
    return JSONResponse(await revoke(_governance(request), request.path_params["name"]))


AUDIT_FILTERS = ("key", "team", "customer", "target", "decision", "kind")
AUDIT_PARAMS = {*AUDIT_FILTERS, "server", "tool", "since", "until", "limit", "cursor", "format"}


def _audit_query(request: Request) -> AuditQuery:
    params = request.query_params
    unknown = sorted(set(params) - AUDIT_PARAMS)
    if unknown:
        raise InvalidRequest(f"unknown query parameter {unknown[0]!r}", param=unknown[0])
    filters: dict[str, Any] = {name: params.get(name) for name in AUDIT_FILTERS}
    server, tool = params.get("server"), params.get("tool")
    if tool is not None and server is None:
        raise InvalidRequest("'tool' needs 'server' too", param="tool")
    if server is not None:
        if tool is not None:
            filters["target"] = f"{server}/{tool}"
        else:
            filters["target_prefix"] = f"{server}/"
    return AuditQuery(
        **filters,
        since=_time_param(request, "since"),
        until=_time_param(request, "until"),
        limit=_int_param(request, "limit", 100),
        cursor=params.get("cursor"),
    )


async def audit_events(request: Request) -> Response:
    if "format" in request.query_params:
        raise InvalidRequest("'format' belongs to /admin/audit/export", param="format")
    page, next_cursor = await _governance(request).audit_log.query(_audit_query(request))
    return JSONResponse({"data": page, "next_cursor": next_cursor})


async def audit_export(request: Request) -> Response:
    """Stream every matching record, oldest first, as JSON lines (default) or CSV."""
    raw = request.query_params.get("format", "jsonl")
    if raw not in CONTENT_TYPES:
        raise InvalidRequest(f"format must be jsonl or csv, not {raw!r}", param="format")
    fmt: ExportFormat = "csv" if raw == "csv" else "jsonl"
    lines = export_lines(_governance(request).audit_log.export(_audit_query(request)), fmt)
    filename = f"isthmus-audit.{fmt}"
    headers = {"content-disposition": f'attachment; filename="{filename}"'}
    return StreamingResponse(lines, media_type=CONTENT_TYPES[fmt], headers=headers)


def _cache(request: Request) -> Any:
    """The LLM proxy's response cache; 404 when none is configured."""
    for part in request.app.state.components:
        cache = getattr(part, "response_cache", None)
        if cache is not None:
            return cache
    raise NotFound("no response cache is configured (add a `cache:` block)", param="cache")


async def cache_stats(request: Request) -> Response:
    """`GET /admin/cache`: entries, hits, misses, stores and the hit ratio since start."""
    return JSONResponse(await _cache(request).describe())


async def cache_clear(request: Request) -> Response:
    """`DELETE /admin/cache`: every entry, or those a key stored (`?key=`), or of a model (`?model=`)."""
    cache = _cache(request)
    unknown = set(request.query_params) - {"key", "model"}
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidRequest(f"unknown parameter {name!r}: use key or model", param=name)
    removed = await cache.clear(request.query_params.get("key"), request.query_params.get("model"))
    return JSONResponse({"deleted": removed})


async def reload_config(request: Request) -> Response:
    """`POST /admin/reload`: re-read the config file and apply it whole, or answer 400 naming the problem."""
    reloader: Reloader = request.app.state.reloader
    return JSONResponse(await reloader.reload())


def admin_routes() -> list[Route]:
    routes = [route for collection in ENTITIES for route in entity_routes(collection)]
    routes += [
        Route("/keys/{name}/rotate", _admin(rotate_key), methods=["POST"]),
        Route("/keys/{name}/revoke", _admin(revoke_key), methods=["POST"]),
        Route("/reload", _admin(reload_config), methods=["POST"]),
        Route("/audit", _admin(audit_events), methods=["GET"]),
        Route("/cache", _admin(cache_stats), methods=["GET"]),
        Route("/cache", _admin(cache_clear), methods=["DELETE"]),
        Route("/audit/export", _admin(audit_export), methods=["GET"]),
    ]
    return routes
