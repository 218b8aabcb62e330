"""The browser and REST side of flow `authorization_code`, under `/oauth/upstream/`:

- `GET /oauth/upstream/<server>/start?ticket=...`: the link a key's owner got; redirects (302) to the upstream's
  authorization server with PKCE S256 and a sealed state bound to the key;
- `GET /oauth/upstream/callback?code=...&state=...`: exchanges the code, stores the key's token set, says so;
- `GET /oauth/upstream/<server>/link` with the virtual key as bearer token: `{"server", "authorized",
  "authorize_url"}`, for a first authorization before the server's tools are listed, or to re-authorize;
  `DELETE` on the same URL forgets the key's token set (the key's owner disconnects the server).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mcp_hub.errors import UnknownServer, UpstreamAuthFailed
from mcp_hub.rest import error_response
from mcp_hub.upstreams.oauth.personal import PersonalCredentials
from toolpolicy.credentials import presented_key
from toolpolicy.errors import GatewayError
from toolpolicy.keys import KeyResolver
from toolpolicy.upstream_oauth.links import LinkError, Links

logger = logging.getLogger(__name__)

NO_STORE = {"cache-control": "no-store", "referrer-policy": "no-referrer"}


def _page(title: str, text: str, status: int) -> HTMLResponse:
    title, text = html.escape(title), html.escape(text)
    style = "font-family:system-ui;max-width:36rem;margin:4rem auto"
    body = (
        f"<!doctype html><meta charset=utf-8><title>{title}</title><body style='{style}'><h1>{title}</h1><p>{text}</p>"
    )
    return HTMLResponse(body, status_code=status, headers=NO_STORE)


class UpstreamOAuthRoutes:
    def __init__(self, servers: Mapping[str, PersonalCredentials], links: Links, keys: KeyResolver) -> None:
        self.servers = servers
        self.links = links
        self.keys = keys

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/oauth/upstream/callback", self.callback, methods=["GET"]),
            Route("/oauth/upstream/{server}/start", self.start, methods=["GET"]),
            Route("/oauth/upstream/{server}/link", self.link, methods=["GET", "DELETE"]),
        ]

    async def start(self, request: Request) -> Response:
        server = request.path_params["server"]
        credentials = self.servers.get(server)
        if credentials is None:
            return _page("Unknown server", f"No MCP server named {server!r} authorizes per key here.", 404)
        try:
            ticket = self.links.open_ticket(request.query_params.get("ticket", ""))
        except LinkError as exc:
            return _page("Link not valid", str(exc), 400)
        if ticket.server != server:
            return _page("Link not valid", "This link is for another server.", 400)
        try:
            target = await credentials.authorize_url(ticket)
        except UpstreamAuthFailed as exc:
            return _page("Cannot authorize now", exc.message, 502)
        return RedirectResponse(target, status_code=302, headers=NO_STORE)

    async def callback(self, request: Request) -> Response:
        query = request.query_params
        try:
            pending = self.links.open_state(query.get("state", ""))
        except LinkError as exc:
            return _page("Authorization not completed", str(exc), 400)
        credentials = self.servers.get(pending.ticket.server)
        if credentials is None:
            return _page("Unknown server", "The server of this authorization is no longer configured.", 404)
        if "error" in query:
            error = query.get("error", "")[:100]
            credentials.audit.event(
                "authorization_failed",
                ok=False,
                key_id=pending.ticket.key_id,
                key_name=pending.ticket.key_name,
                error=f"the authorization server answered {error}",
                status=400,
            )
            return _page("Authorization not completed", f"The authorization server answered: {error}.", 400)
        code = query.get("code")
        if not code:
            return _page("Authorization not completed", "The authorization server sent no code.", 400)
        try:
            await credentials.complete(pending, code, query.get("iss"))
        except UpstreamAuthFailed as exc:
            return _page("Authorization not completed", exc.message, 502)
        return _page(
            "Authorized",
            f"Isthmus may now use MCP server {credentials.server!r} for this key. You can close this window.",
            200,
        )

    async def link(self, request: Request) -> Response:
        server = request.path_params["server"]
        try:
            principal = await self.keys.resolve(presented_key(request.headers))
            credentials = self.servers.get(server)
            if credentials is None or server not in principal.mcp:
                raise UnknownServer(server)
            if request.method == "DELETE":
                await credentials.disconnect(principal)
                return JSONResponse({"server": server, "authorized": False}, headers=NO_STORE)
            authorized = await credentials.tokens_for(principal.key_id) is not None
        except GatewayError as exc:
            return error_response(exc)
        body = {"server": server, "authorized": authorized, "authorize_url": credentials.link(principal)}
        return JSONResponse(body, headers=NO_STORE)
