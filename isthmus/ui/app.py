"""The dashboard's routes and rendering, assembled in one place."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles

from isthmus.ui.guard import Page, SecurityHeaders, SignedIn, signed_in
from isthmus.ui.session import CSRF_FIELD, SessionCodec
from toolpolicy.settings import GatewaySettings

if TYPE_CHECKING:
    from starlette.templating import Jinja2Templates

HERE = Path(__file__).parent
NAV = (
    ("Overview", "/ui/overview"),
    ("Keys", "/ui/keys"),
    ("Teams", "/ui/teams"),
    ("MCP servers", "/ui/mcp"),
    ("Logs", "/ui/logs"),
    ("Audit", "/ui/audit"),
    ("Playground", "/ui/playground"),
)


class Dashboard:
    """Holds what every page needs: the session codec, the templates, the page size and the clock."""

    def __init__(self, settings: GatewaySettings, *, clock: Callable[[], float] = time.time) -> None:
        assert settings.admin_key is not None
        self.codec = SessionCodec(settings.admin_key.get_secret_value(), ttl=settings.ui.session_ttl, clock=clock)
        self._templates: Jinja2Templates | None = None
        self.page_size = settings.ui.page_size
        self.clock = clock

    @property
    def templates(self) -> Jinja2Templates:
        """Loaded on the first page served: a gateway nobody opens the dashboard of never imports Jinja2."""
        if self._templates is None:
            from starlette.templating import Jinja2Templates

            self._templates = Jinja2Templates(directory=HERE / "templates")
        return self._templates

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def page(self, handler: Page) -> Callable[[Request], Any]:
        return signed_in(self.codec, handler)

    def render(
        self,
        request: Request,
        who: SignedIn | None,
        template: str,
        *,
        status_code: int = 200,
        **context: Any,
    ) -> Response:
        context.update(
            nav=NAV,
            path=request.url.path,
            csrf=who.csrf if who is not None else "",
            csrf_field=CSRF_FIELD,
        )
        return self.templates.TemplateResponse(request, template, context, status_code=status_code)

    def routes(self) -> list[BaseRoute]:
        from isthmus.ui import audit, entities, logs, overview, playground, servers, signin

        async def home(request: Request) -> Response:
            return RedirectResponse("/ui/overview", status_code=303)

        return [
            Route("/", home, methods=["GET"]),
            Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
            *signin.routes(self),
            *overview.routes(self),
            *entities.routes(self),
            *servers.routes(self),
            *logs.routes(self),
            *audit.routes(self),
            *playground.routes(self),
        ]


def dashboard(settings: GatewaySettings, *, clock: Callable[[], float] = time.time) -> Mount | None:
    """The `/ui` mount, or None when `ui.enabled` is false or no admin key is configured."""
    if not settings.ui.enabled or settings.admin_key is None or not settings.admin_key.get_secret_value():
        return None
    ui = Dashboard(settings, clock=clock)
    return Mount("/ui", app=SecurityHeaders(Router(ui.routes())))
