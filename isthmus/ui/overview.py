"""The overview: traffic, errors, latency, tokens and spend per hour, read from the rollups only."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from isthmus.ui.guard import SignedIn
from toolpolicy.rollups import Totals, Window
from toolpolicy.rollups.fold import hour_of

if TYPE_CHECKING:
    from isthmus.ui.app import Dashboard

WINDOWS = {"24h": 24, "7d": 7 * 24, "30d": 30 * 24}
"""The periods the overview offers, in hours."""


def window_ending(now: datetime, hours: int) -> Window:
    """The last `hours` whole hours, the current (partial) one included."""
    until = hour_of(now) + timedelta(hours=1)
    return Window(until - timedelta(hours=hours), until)


def chart_data(series: dict[datetime, Totals], window: Window) -> dict[str, list[Any]]:
    """One column per measure, one row per hour of the window (hours with no traffic as zeros)."""
    data: dict[str, list[Any]] = {
        name: [] for name in ("t", "requests", "errors", "p50", "p95", "p99", "tokens_in", "tokens_out", "cost")
    }
    hour = window.since
    while hour < window.until:
        totals = series.get(hour, Totals())
        data["t"].append(int(hour.timestamp()))
        data["requests"].append(totals.requests)
        data["errors"].append(totals.errors)
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            value = totals.percentile(q)
            data[name].append(round(value, 3) if value is not None else None)
        data["tokens_in"].append(totals.tokens_in)
        data["tokens_out"].append(totals.tokens_out)
        data["cost"].append(float(totals.cost_usd))
        hour += timedelta(hours=1)
    return data


def summary(totals: Totals, guardrail_hits: int, llm: Totals) -> dict[str, Any]:
    return {
        "requests": totals.requests,
        "errors": totals.errors,
        "error_rate": totals.errors / totals.requests if totals.requests else None,
        "p50": totals.percentile(0.5),
        "p95": totals.percentile(0.95),
        "p99": totals.percentile(0.99),
        "tokens": totals.tokens_in + totals.tokens_out,
        "cost": totals.cost_usd,
        "cache_hits": llm.cache_hits,
        "cache_ratio": llm.cache_hits / llm.requests if llm.requests else None,
        "guardrail_hits": guardrail_hits,
    }


def routes(ui: Dashboard) -> list[Route]:
    async def overview(request: Request, who: SignedIn) -> Response:
        period = request.query_params.get("period", "24h")
        if period not in WINDOWS:
            period = "24h"
        window = window_ending(ui.now(), WINDOWS[period])
        rollups = who.governance.rollups
        series = await rollups.series(window)
        totals = await rollups.total(window)
        llm = await rollups.total(window, ("llm",))
        guardrails = await rollups.total(window, ("guardrail",))
        return ui.render(
            request,
            who,
            "overview.html",
            period=period,
            periods=list(WINDOWS),
            stats=summary(totals, guardrails.guardrail_hits, llm),
            chart_json=json.dumps(chart_data(series, window)).replace("</", "<\\/"),
            top_keys=await rollups.top("key_name", window),
            top_models=await rollups.top("target", window, kinds=("llm",)),
            top_tools=await rollups.top("target", window, kinds=("tool_call",)),
        )

    return [Route("/overview", ui.page(overview), methods=["GET"])]
