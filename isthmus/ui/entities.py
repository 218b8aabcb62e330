"""Keys, teams and customers: lists with usage, create, edit, rotate, revoke and delete, through the admin API's
operations (`isthmus.admin`)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from isthmus.admin import ENTITIES, create_entity, delete_entity, revoke, rotate, update_entity
from isthmus.ui.entity_forms import entity_data, form_values
from isthmus.ui.guard import SignedIn
from toolpolicy.errors import GatewayError
from toolpolicy.rollups import Window
from toolpolicy.store.schema import CustomerRow, TeamRow

if TYPE_CHECKING:
    from isthmus.ui.app import Dashboard

NOUNS = {"keys": "key", "teams": "team", "customers": "customer"}
OPTIONS_LIMIT = 1000
"""Teams and customers offered in a form's select (the admin API takes any name beyond these)."""


async def _options(who: SignedIn) -> dict[str, list[str]]:
    directory = who.governance.directory
    teams = await directory.page(TeamRow, limit=OPTIONS_LIMIT)
    customers = await directory.page(CustomerRow, limit=OPTIONS_LIMIT)
    return {"teams": [row["name"] for row in teams], "customers": [row["name"] for row in customers]}


def routes(ui: Dashboard) -> list[Route]:
    async def form_page(
        request: Request,
        who: SignedIn,
        collection: str,
        *,
        values: dict[str, str],
        record: dict[str, Any] | None = None,
        error: str | None = None,
        status_code: int = 200,
        fragment: bool = False,
    ) -> Response:
        return ui.render(
            request,
            who,
            "entity_form_fragment.html" if fragment else "entity_edit.html",
            status_code=status_code,
            collection=collection,
            noun=NOUNS[collection],
            values=values,
            record=record,
            error=error,
            options=await _options(who),
            saved=request.query_params.get("saved") == "1",
        )

    def for_collection(collection: str) -> list[Route]:
        row_type, noun = ENTITIES[collection], NOUNS[collection]

        async def listing(request: Request, who: SignedIn) -> Response:
            after = request.query_params.get("after") or None
            rows = await who.governance.directory.page(row_type, limit=ui.page_size + 1, after=after)
            page, more = rows[: ui.page_size], len(rows) > ui.page_size
            usage = {}
            if collection == "keys":
                until = ui.now()
                window = Window(until - timedelta(hours=24), until + timedelta(hours=1))
                usage = await who.governance.rollups.by_key([row["name"] for row in page], window)
            return ui.render(
                request,
                who,
                "entities.html",
                collection=collection,
                noun=noun,
                rows=page,
                usage=usage,
                next_cursor=page[-1]["name"] if more else None,
                after=after,
            )

        async def new(request: Request, who: SignedIn) -> Response:
            fragment = bool(request.headers.get("hx-request"))
            return await form_page(request, who, collection, values=form_values({}), fragment=fragment)

        async def create(request: Request, who: SignedIn) -> Response:
            form = await request.form()
            try:
                record = await create_entity(who.governance, collection, entity_data(collection, form, None))
            except GatewayError as error:
                values = {name: str(value) for name, value in form.items() if isinstance(value, str)}
                return await form_page(
                    request, who, collection, values={**form_values({}), **values}, error=error.message, status_code=400
                )
            if collection == "keys":
                return ui.render(request, who, "key_secret.html", record=record, secret=record["key"], action="created")
            return RedirectResponse(f"/ui/{collection}", status_code=303)

        async def edit(request: Request, who: SignedIn) -> Response:
            record = await who.governance.directory.get(row_type, request.path_params["name"])
            return await form_page(request, who, collection, values=form_values(record), record=record)

        async def update(request: Request, who: SignedIn) -> Response:
            name = request.path_params["name"]
            record = await who.governance.directory.get(row_type, name)
            form = await request.form()
            try:
                await update_entity(who.governance, collection, name, entity_data(collection, form, record))
            except GatewayError as error:
                values = {key: str(value) for key, value in form.items() if isinstance(value, str)}
                return await form_page(
                    request,
                    who,
                    collection,
                    values={**form_values(record), **values},
                    record=record,
                    error=error.message,
                    status_code=400,
                )
            return RedirectResponse(f"/ui/{collection}/{name}?saved=1", status_code=303)

        async def remove(request: Request, who: SignedIn) -> Response:
            name = request.path_params["name"]
            try:
                await delete_entity(who.governance, collection, name)
            except GatewayError as error:
                record = await who.governance.directory.get(row_type, name)
                return await form_page(
                    request, who, collection, values=form_values(record), record=record, error=error.message,
                    status_code=error.status,
                )  # fmt: skip
            return RedirectResponse(f"/ui/{collection}", status_code=303)

        base = f"/{collection}"
        return [
            Route(base, ui.page(listing), methods=["GET"]),
            Route(base, ui.page(create), methods=["POST"]),
            Route(base + "/new", ui.page(new), methods=["GET"]),
            Route(base + "/{name}", ui.page(edit), methods=["GET"]),
            Route(base + "/{name}", ui.page(update), methods=["POST"]),
            Route(base + "/{name}/delete", ui.page(remove), methods=["POST"]),
        ]

    async def rotate_key(request: Request, who: SignedIn) -> Response:
        name = request.path_params["name"]
        try:
            record = await rotate(who.governance, name)
        except GatewayError as error:
            current = await who.governance.directory.get(ENTITIES["keys"], name)
            return await form_page(
                request, who, "keys", values=form_values(current), record=current, error=error.message,
                status_code=error.status,
            )  # fmt: skip
        return ui.render(request, who, "key_secret.html", record=record, secret=record["key"], action="rotated")

    async def revoke_key(request: Request, who: SignedIn) -> Response:
        name = request.path_params["name"]
        await revoke(who.governance, name)
        return RedirectResponse(f"/ui/keys/{name}?saved=1", status_code=303)

    return [
        Route("/keys/{name}/rotate", ui.page(rotate_key), methods=["POST"]),
        Route("/keys/{name}/revoke", ui.page(revoke_key), methods=["POST"]),
        *[route for collection in ENTITIES for route in for_collection(collection)],
    ]
