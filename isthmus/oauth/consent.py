"""`/oauth/authorize`: the consent page, where a person signs a client in with a virtual key.

GET validates the request and shows which client asks, where the code goes, and for which scopes, with a form:
`api_key` (the virtual key), posted to the same URL. "Show tools" re-renders the page with the tools that key
allows, which are exactly the tools the client will get; "Allow" redirects to the client with `code`, `state` and
`iss`; "Deny" with `access_denied`. The form carries the request signed by the gateway's signing keys (valid for
15 minutes, on any replica), so a POST cannot change what is being approved; no cookie is involved, and the page
cannot be framed.
"""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from isthmus.oauth.endpoints import MAX_FORM_BYTES
from toolpolicy.errors import AuthenticationError
from toolpolicy.oauth.core import OAuthCore
from toolpolicy.oauth.errors import OAuthError
from toolpolicy.oauth.server import AuthorizeRequest, RedirectError
from toolpolicy.types import Principal

HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#222}"
    "code{background:#f3f3f3;padding:0 .2rem}.error{color:#a00}input[type=password]{width:100%;padding:.4rem}"
    "button{margin:.8rem .5rem 0 0;padding:.4rem 1rem}li{margin:.2rem 0}"
)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = f"<!doctype html><html><head><meta charset=utf-8><title>{escape(title)}</title><style>{STYLE}</style>"
    html += f"</head><body><h1>{escape(title)}</h1>{body}</body></html>"
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _tools(principal: Principal) -> str:
    if not principal.mcp:
        return "<p>This key allows <strong>no MCP tools</strong>.</p>"
    items = "".join(
        f"<li><code>{escape(server)}</code>: {', '.join(f'<code>{escape(g)}</code>' for g in globs.patterns)}</li>"
        for server, globs in sorted(principal.mcp.items())
    )
    name = escape(principal.key_name)
    return f"<p>Key <strong>{name}</strong> allows these tools (server: tool names):</p><ul>{items}</ul>"


def consent_page(
    request: AuthorizeRequest, state: str, *, error: str = "", api_key: str = "", tools: str = "", status: int = 200
) -> HTMLResponse:
    client = request.client
    body = f"<p><strong>{escape(client.name)}</strong> (<code>{escape(client.client_id)}</code>) asks to use "
    body += f"this gateway's MCP tools at <code>{escape(request.resource)}</code>.</p>"
    body += f"<p>It will receive the authorization at <code>{escape(request.redirect_uri)}</code>, "
    body += f"for the scopes <code>{escape(request.scope)}</code>.</p>"
    body += "<p>Paste your virtual key: the client gets exactly that key's tools, limits and budgets, and its calls "
    body += "are audited under that key. Revoking or rotating the key signs the client out.</p>"
    body += tools
    if error:
        body += f'<p class="error" role="alert">{escape(error)}</p>'
    body += '<form method="post"><label for="api_key">Virtual key</label><br>'
    body += f'<input type="password" id="api_key" name="api_key" autocomplete="off" value="{escape(api_key)}">'
    body += f'<input type="hidden" name="consent" value="{escape(state)}">'
    body += '<button type="submit" name="action" value="allow">Allow</button>'
    body += '<button type="submit" name="action" value="preview">Show tools</button>'
    body += '<button type="submit" name="action" value="deny">Deny</button></form>'
    return _page("Sign in to Isthmus", body, status)


def _error_page(error: OAuthError) -> HTMLResponse:
    body = f'<p class="error">{escape(error.description)}</p><p><code>{escape(error.error)}</code></p>'
    return _page("This sign-in request cannot be served", body, 400)


def consent_routes(core: OAuthCore) -> list[Route]:
    server, signer = core.server, core.signer

    async def authorize(request: Request) -> Response:
        try:
            if request.method == "GET":
                checked = await server.check_authorize(dict(request.query_params))
                return consent_page(checked, await signer.consent_state(checked.params()))
            return await _submitted(request)
        except RedirectError as exc:
            return RedirectResponse(exc.location, status_code=302, headers=HEADERS)
        except OAuthError as exc:
            return _error_page(exc)

    async def _submitted(request: Request) -> Response:
        if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
            raise OAuthError("invalid_request", "the form is too large")
        form = await request.form()
        state = form.get("consent")
        if not isinstance(state, str):
            raise OAuthError("invalid_request", "the consent form is missing its state; start the sign-in again")
        try:
            params = await signer.open_consent_state(state)
        except AuthenticationError:
            raise OAuthError(
                "invalid_request", "the consent form expired or was altered; start the sign-in again"
            ) from None
        checked = await server.check_authorize({**params, "response_type": "code", "code_challenge_method": "S256"})
        action = form.get("action") or "allow"
        if action == "deny":
            return RedirectResponse(server.deny(checked), status_code=303, headers=HEADERS)
        api_key = form.get("api_key")
        if not isinstance(api_key, str) or not api_key.strip():
            return consent_page(checked, state, error="Paste a virtual key first.", status=400)
        try:
            if action == "preview":
                principal = await core.server.keys.resolve(api_key.strip())
                return consent_page(checked, state, api_key=api_key, tools=_tools(principal))
            _, location = await server.approve(checked, api_key)
        except AuthenticationError as exc:
            return consent_page(checked, state, error=f"That key cannot be used: {exc.message}", status=401)
        return RedirectResponse(location, status_code=303, headers=HEADERS)

    return [Route("/oauth/authorize", authorize, methods=["GET", "POST"])]
