"""What every dashboard response goes through: security headers, the session check, and CSRF on each change."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from isthmus.ui.session import COOKIE, CSRF_FIELD, CSRF_HEADER, Session, SessionCodec
from toolpolicy.runtime import Governance

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""Nothing from any other origin, no inline script: the page runs only the gateway's own files."""
SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
SAFE_METHODS = frozenset({"GET", "HEAD"})


class SecurityHeaders:
    """Pure ASGI: adds the headers above to every `/ui` response, and `no-store` to everything but static files."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith("/ui/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    headers.append(name.decode(), value.decode())
                if not static:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A request from a signed-in browser."""

    governance: Governance
    session: Session
    csrf: str


Page = Callable[[Request, SignedIn], Awaitable[Response]]


def same_origin(request: Request) -> bool:
    """The browser says the request comes from this origin (or says nothing, as non-browser clients do)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return True
    parts = urlsplit(origin)
    return (parts.scheme, parts.netloc) == (request.url.scheme, request.url.netloc)


def to_sign_in(request: Request) -> Response:
    if request.headers.get("hx-request"):
        # htmx follows this header with a full page load (a 303 would be swapped into the page).
        return Response(status_code=401, headers={"hx-redirect": "/ui/sign-in"})
    return RedirectResponse("/ui/sign-in", status_code=303)


def signed_in(codec: SessionCodec, page: Page) -> Callable[[Request], Awaitable[Response]]:
    """The page for a signed-in browser; others go to the sign-in page. Changes need the session's CSRF token."""

    async def endpoint(request: Request) -> Response:
        session = codec.open(request.cookies.get(COOKIE))
        if session is None:
            return to_sign_in(request)
        if request.method not in SAFE_METHODS:
            token = request.headers.get(CSRF_HEADER)
            if token is None:
                form = await request.form()
                value = form.get(CSRF_FIELD)
                token = value if isinstance(value, str) else None
            if not same_origin(request) or not codec.csrf_ok(session, token):
                return PlainTextResponse("CSRF check failed: reload the page and try again", status_code=403)
        governance: Governance = request.app.state.governance
        return await page(request, SignedIn(governance, session, codec.csrf_token(session)))

    endpoint.__name__ = page.__name__
    return endpoint
