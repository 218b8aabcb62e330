"""The playground page; the browser then talks to the gateway's own `/v1/models`, `/v1/chat/completions` and
`/v1/mcp/tools` with the virtual key it is given (`static/playground.js`), so every call is governed and audited
exactly as a client's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from isthmus.ui.guard import SignedIn

if TYPE_CHECKING:
    from isthmus.ui.app import Dashboard


def routes(ui: Dashboard) -> list[Route]:
    async def playground(request: Request, who: SignedIn) -> Response:
        return ui.render(request, who, "playground.html")

    return [Route("/playground", ui.page(playground), methods=["GET"])]
