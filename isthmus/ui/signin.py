"""Signing in with the admin key, and out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from isthmus.ui.guard import SignedIn, same_origin
from isthmus.ui.session import COOKIE
from toolpolicy.credentials import require_admin
from toolpolicy.errors import AuthenticationError, PermissionDenied
from toolpolicy.runtime import Governance

if TYPE_CHECKING:
    from isthmus.ui.app import Dashboard


def routes(ui: Dashboard) -> list[Route]:
    async def form(request: Request) -> Response:
        if ui.codec.open(request.cookies.get(COOKIE)) is not None:
            return RedirectResponse("/ui/overview", status_code=303)
        return ui.render(request, None, "sign_in.html", error=None)

    async def sign_in(request: Request) -> Response:
        if not same_origin(request):
            return PlainTextResponse("sign-in from another origin refused", status_code=403)
        governance: Governance = request.app.state.governance
        submitted = (await request.form()).get("admin_key")
        key = submitted.strip() if isinstance(submitted, str) else ""
        try:
            # The admin API's own check: the same key, the same refusal of virtual keys.
            await require_admin(governance.settings, governance.keys, {"authorization": f"Bearer {key}"})
        except (AuthenticationError, PermissionDenied) as refused:
            error = "That is a virtual key, not the admin key." if isinstance(refused, PermissionDenied) else None
            return ui.render(
                request, None, "sign_in.html", status_code=401, error=error or "Wrong admin key. Try again."
            )
        _, cookie = ui.codec.issue()
        response = RedirectResponse("/ui/overview", status_code=303)
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=int(ui.codec.ttl),
            path="/ui",
            httponly=True,
            secure=request.url.scheme == "https",
            samesite="strict",
        )
        return response

    async def sign_out(request: Request, who: SignedIn) -> Response:
        response = RedirectResponse("/ui/sign-in", status_code=303)
        response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
        return response

    return [
        Route("/sign-in", form, methods=["GET"]),
        Route("/sign-in", sign_in, methods=["POST"]),
        Route("/sign-out", ui.page(sign_out), methods=["POST"]),
    ]
