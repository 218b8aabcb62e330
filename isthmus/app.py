"""The ASGI application: health, readiness, the decision API and the admin API on one Starlette app."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from isthmus import __version__
from isthmus.admin import admin_routes
from isthmus.auth import principal
from isthmus.component import Component
from isthmus.dispatch import Gateway
from isthmus.errors import error_response, handle_client_gone, handle_gateway_error, handle_unexpected, json_object
from isthmus.guardrail_webhook import AiohttpWebhookPost
from isthmus.lifecycle import Generation, Lifecycle, Load, Reloader, ReloadRefused, process_signals, settle
from isthmus.ui import dashboard
from isthmus.unknown_routes import http_error
from toolpolicy import sanitize
from toolpolicy.audit import AuditRecord
from toolpolicy.counters.base import CounterStoreError
from toolpolicy.credentials import require_metrics_reader
from toolpolicy.decide import authorize
from toolpolicy.errors import AuthenticationError, GatewayError, InvalidRequest, PermissionDenied
from toolpolicy.names import model_name, tool_name
from toolpolicy.runtime import Governance
from toolpolicy.settings import GatewaySettings
from toolpolicy.types import ModelTarget, Principal, Target, ToolTarget

if TYPE_CHECKING:
    from isthmus.oauth import OAuthGateway

logger = logging.getLogger(__name__)

YOUNG_GC_THRESHOLD = 10_000
"""Net container allocations (allocated minus freed) that start a young collection, for the server; CPython's default
is 700. A request allocates bursts of containers (frames, futures, dicts) that reference counting frees when it
ends: at 700 the bursts of the requests in flight set the collector off every dozen requests or so (about 0.1 ms a
collection, finding next to nothing: some 3% of the chat path's CPU). At 10 000 steady traffic stays under it;
objects left in reference cycles still start a collection once that many of them have piled up."""

DIRECT_PATHS = frozenset({"/v1/chat/completions", "/v1/messages", "/v1/responses", "/mcp", "/mcp/{server}"})
"""Route paths served by the direct dispatch in front of Starlette's middleware and router (`isthmus.dispatch`)."""

COUNTERS_PING_TIMEOUT = 0.5
"""Seconds `/ready` waits for the counter store (Redis) to answer a ping."""


async def metrics(request: Request) -> Response:
    """Prometheus text format, for the metrics token or the admin key: the metrics name keys and customers."""
    governance: Governance = request.app.state.governance
    await require_metrics_reader(governance.settings, governance.keys, request.headers)
    health = governance.metrics.upstream_health
    health.clear()  # states are read fresh at each scrape, so a server's old state does not linger
    for part in request.app.state.components:
        for server, state in (part.readiness().get("servers") or {}).items():
            health.labels(server, state.get("state", "unknown")).set(1 if state.get("state") == "ready" else 0)
    return Response(generate_latest(governance.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "version": __version__})


async def ready(request: Request) -> Response:
    if request.app.state.lifecycle.draining:  # first: a stopping replica leaves the load balancer at once
        return JSONResponse({"status": "draining"}, status_code=503)
    governance: Governance = request.app.state.governance
    checks: dict[str, Any] = {}
    try:
        await governance.store.ping()
        checks["store"] = {"status": "ok", "backend": governance.store.backend}
    except Exception as exc:
        logger.warning("readiness: store unreachable: %s", exc)
        checks["store"] = {"status": "down", "backend": governance.store.backend, "error": type(exc).__name__}
    settings = governance.settings
    checks["providers"] = {
        name: {"kind": provider.kind, "keys": len(provider.usable_keys)}
        for name, provider in settings.providers.items()
    }
    checks["mcp_servers"] = {
        name: {"transport": server.remote_transport or "stdio", "enabled": server.enabled}
        for name, server in settings.mcp_servers.items()
    }
    checks["audit"] = {"pending": governance.audit.pending, "dropped": governance.audit.dropped}
    is_ready = checks["store"]["status"] == "ok"
    checks["counters"], counters_ok = await counters_check(governance)
    is_ready = is_ready and counters_ok
    # Writers whose backlog is past `audit.max_backlog` are not getting their records into the store.
    checks["writers"] = governance.writer_backlog()
    is_ready = is_ready and not any(writer["over_bound"] for writer in checks["writers"].values())
    for part in request.app.state.components:
        checks[part.name] = part.readiness()
        is_ready = is_ready and checks[part.name].get("status") != "down"
    return JSONResponse(
        {"status": "ready" if is_ready else "not ready", **checks}, status_code=200 if is_ready else 503
    )


async def counters_check(governance: Governance) -> tuple[dict[str, Any], bool]:
    """The counter store answers a ping; while it does not, only `on_counter_store_error: allow` keeps serving."""
    settings = governance.settings
    try:
        await governance.counters.ping(timeout=COUNTERS_PING_TIMEOUT)
        return {"status": "ok", "backend": "redis" if settings.redis else "memory"}, True
    except CounterStoreError as exc:
        logger.warning("readiness: counter store unreachable: %s", exc)
        serving = settings.on_counter_store_error == "allow"  # per-replica fallback counters
        check = {
            "status": "degraded" if serving else "down",
            "backend": "redis",
            "error": type(exc.__cause__ or exc).__name__,
        }
        return {**check, "on_counter_store_error": settings.on_counter_store_error}, serving


def _target(body: dict[str, Any]) -> Target:
    if isinstance(body.get("model"), str) and body["model"]:
        return ModelTarget.parse(model_name(body["model"]))
    server, tool = body.get("server"), body.get("tool")
    if isinstance(server, str) and server and isinstance(tool, str) and tool:
        return ToolTarget(tool_name(server, param="server"), tool_name(tool, param="tool"))
    raise InvalidRequest("give either 'model' (e.g. openai/gpt-4o-mini) or both 'server' and 'tool'", param="model")


async def authorize_endpoint(request: Request) -> Response:
    """`POST /v1/authorize`: ask the decision API whether the calling key may reach a model or a tool."""
    started = time.perf_counter()
    governance: Governance = request.app.state.governance
    request_id = sanitize.request_id(request.headers.get("x-request-id"))
    headers = {"x-request-id": request_id}
    caller: Principal | None = None
    target: Target | None = None
    denial: GatewayError | None = None
    try:
        caller = await principal(request)
        target = _target(await json_object(request, governance.settings.authorize_max_body_bytes))
        denial = authorize(caller, target).denial
    except (AuthenticationError, PermissionDenied) as refused:
        denial = refused  # failed authentications are audited too: security teams look for them
    if target is not None or isinstance(denial, AuthenticationError):
        governance.audit.emit(
            AuditRecord(
                request_id=request_id,
                kind="authorize",
                target=target.name if target is not None else "",
                decision="allow" if denial is None else "deny",
                reason=denial.reason if denial is not None else None,
                status=200 if denial is None else denial.status,
                latency_ms=(time.perf_counter() - started) * 1000,
                key_id=caller.key_id if caller else None,
                key_name=caller.key_name if caller else None,
                team=caller.team if caller else None,
                customer=caller.customer if caller else None,
            )
        )
    if denial is not None:
        response = error_response(denial)
        response.headers.update(headers)
        return response
    assert caller is not None and target is not None
    body = {"allowed": True, "key": caller.key_name, "team": caller.team, "customer": caller.customer}
    return JSONResponse({**body, "target": {"kind": target.kind, "name": target.name}}, headers=headers)


def default_components(governance: Governance, oauth: OAuthGateway | None = None) -> list[Component]:
    """The halves served by `isthmus serve` (with `oauth`, `/mcp` takes its tokens too)."""
    from isthmus.agent_tools import HubAgentTools
    from llm_proxy import LlmProxy
    from llm_proxy.inprocess import InProcessChat
    from mcp_hub import McpHub

    proxy = LlmProxy(governance)
    hub = (
        McpHub(governance)
        if oauth is None
        else McpHub(governance, credentials=oauth.credentials, challenge=oauth.challenge)
    )
    hub.sample_with(InProcessChat(proxy.pipeline))  # gateway-served sampling runs through the proxy, in-process
    proxy.run_tools_with(HubAgentTools(hub))  # agent mode's tools run through the hub's governed path
    return [proxy, hub]


def create_app(
    settings: GatewaySettings,
    *,
    governance: Governance | None = None,
    components: list[Component] | None = None,
    make_components: Callable[[Governance], list[Component]] | None = None,
    freeze_after_start: bool = False,
    direct: bool = True,
    oauth: OAuthGateway | None = None,
    reload_from: Load | None = None,
    own_process: bool = False,
) -> Starlette:
    """The gateway app. Its lifespan starts the governance core, then the components, and stops them in reverse.

    Pass `governance` to share one (tests do, to start it themselves), and `components` to serve other parts
    (`make_components` builds them for a governance, so a reload can build them anew; the default components
    are used when neither is given).
    `freeze_after_start` (the server's, not tests') moves everything built at start-up (settings, routes, imported
    modules: most of the heap) out of the cyclic garbage collector's sight, so its full collections, which would
    otherwise walk all of it every few thousand requests and stall every request in flight, see only request
    garbage. Objects are still freed by reference counting as before. Young collections then start later
    (`YOUNG_GC_THRESHOLD`), until the app stops.
    `oauth` serves `/mcp` as an OAuth protected resource (built from `settings.oauth` when not given; tests pass
    one to share it with the components they pass).
    `direct=False` sends the hot routes through Starlette's middleware and router too (`isthmus.dispatch`): the
    same responses, more work per request; tests compare the two.
    `reload_from` re-reads the configuration for `POST /admin/reload` and SIGHUP (`isthmus.lifecycle.reload`);
    `own_process` (the server's) installs the signal handlers and makes sure the process exits after a shutdown
    step had to be abandoned.
    """
    governance = governance or Governance(settings)

    def gateway_components(view: Governance) -> list[Component]:
        """The default halves, behind the OAuth gateway when `oauth:` is configured (its signing key exists
        before the hub serves, so it starts first)."""
        gate = oauth if view is governance else None
        if gate is None and view.settings.oauth is not None:
            from isthmus.oauth import OAuthGateway

            gate = OAuthGateway(view)
        parts = default_components(view, gate)
        return parts if gate is None else [gate, *parts]

    factory = make_components or (gateway_components if components is None else None)
    webhook_post = AiohttpWebhookPost()

    def build(view: Governance) -> Generation:
        if factory is None:
            raise ValueError("this app serves components it was given, which a reload cannot build anew")
        if view.guardrails.has_webhooks and view.guardrails.post is None:
            view.guardrails.post = webhook_post
        parts = factory(view)
        return Generation(view, parts, _routes(parts, view.settings))

    if components is None:
        first = build(governance)
    else:
        gate = oauth
        if gate is None and settings.oauth is not None:
            from isthmus.oauth import OAuthGateway

            gate = OAuthGateway(governance)
        given = components if gate is None else [gate, *components]
        first = Generation(governance, given, _routes(given, settings))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        lifecycle: Lifecycle = app.state.lifecycle
        reloader: Reloader = app.state.reloader
        async with contextlib.AsyncExitStack() as stack:
            if not governance.started:
                await governance.start()
                stack.push_async_callback(_flush, lifecycle, governance)
            if governance.guardrails.has_webhooks and governance.guardrails.post is None:
                governance.guardrails.post = webhook_post
            stack.push_async_callback(webhook_post.close)
            stack.push_async_callback(lifecycle.stop)  # every generation's components, before the writers flush
            for part in first.components:
                await part.start()
            if own_process:
                stack.enter_context(process_signals(lifecycle.begin_drain, lambda: _reload_on_signal(reloader)))
            if freeze_after_start:
                gc.collect()
                gc.freeze()
                stack.callback(gc.set_threshold, *gc.get_threshold())
                gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
            yield
        if own_process:
            lifecycle.exit_if_stuck()

    app = Gateway(
        routes=first.routes,
        exception_handlers={
            GatewayError: handle_gateway_error,
            HTTPException: http_error,
            ClientDisconnect: handle_client_gone,
            Exception: handle_unexpected,
        },
        lifespan=lifespan,
        direct_paths=DIRECT_PATHS,
        direct=direct,
    )
    app.install(first)
    app.state.lifecycle = lifecycle = Lifecycle(app, first, settings.server)
    app.state.reloader = Reloader(lifecycle, reload_from, build)
    return app


def _routes(parts: list[Component], settings: GatewaySettings) -> list[BaseRoute]:
    ui = dashboard(settings)
    return [
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/v1/authorize", authorize_endpoint, methods=["POST"]),
        *[route for part in parts for route in part.routes()],
        Mount("/admin", routes=admin_routes()),
        *([ui] if ui is not None else []),
    ]


async def _flush(lifecycle: Lifecycle, governance: Governance) -> None:
    """The last shutdown step: the audit, spend and rate journal writers flush, then the store closes."""
    step = "flushing the audit and spend writers"
    if not await settle(step, governance.stop(), lifecycle.server.stop_timeout):
        lifecycle.abandoned = True


def _reload_on_signal(reloader: Reloader) -> None:
    async def run() -> None:
        try:
            outcome = await reloader.reload()
        except ReloadRefused as refused:
            logger.error("SIGHUP: %s", refused.message)
            return
        except Exception:
            logger.exception("SIGHUP: reload failed")
            return
        for name, secret in (outcome.get("generated_keys") or {}).items():
            print(f"isthmus: generated key {name!r}: {secret}  (shown once; store it now)", file=sys.stderr)

    task = asyncio.get_running_loop().create_task(run(), name="isthmus-sighup-reload")
    _SIGNAL_TASKS.add(task)
    task.add_done_callback(_SIGNAL_TASKS.discard)


_SIGNAL_TASKS: set[asyncio.Task[None]] = set()
