"""Route label values come from the configuration only: every other name is `other`."""

from __future__ import annotations

from hypothesis import given, strategies as st

from toolpolicy.audit import AuditRecord
from toolpolicy.settings import GatewaySettings
from toolpolicy.telemetry.labels import MAX_TOOL_LABELS, RouteLabels
from toolpolicy.telemetry.metrics import Metrics

SETTINGS = GatewaySettings.model_validate(
    {
        "providers": {
            "work": {"kind": "openai", "keys": [{"value": "k"}], "models": ["house-model"]},
            "echo": {"kind": "echo"},
        },
        "mcp_servers": {"docs": {"url": "http://127.0.0.1:9/mcp"}},
        "models": {"fast": {"targets": ["echo/echo-fast"]}},
        "pricing": {"work/priced-here": {"input": 1, "output": 2}, "work/glob-*": {"input": 1, "output": 2}},
    }
)
LABELS = RouteLabels(SETTINGS)
KNOWN = {
    "llm": {"work/house-model", "work/priced-here", "work/gpt-4o-mini", "echo/echo-fast", "echo/gpt-4o"},
    "tool_call": {"docs/search"},
}
name_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


def test_configured_priced_and_aliased_models_and_configured_tools_are_their_own_labels() -> None:
    for kind, routes in KNOWN.items():
        for route in routes:
            assert LABELS.route(kind, route) == route
    assert LABELS.route("llm", "work/glob-anything") == "work/other"  # a glob prices it, but names no model
    assert LABELS.route("llm", "nowhere/house-model") == "other"
    assert LABELS.route("tool_call", "nowhere/search") == "other"
    assert LABELS.route("authorize", None) == "-"


@given(kind=st.sampled_from(["llm", "tool_call", "authorize"]), owner=name_text, name=name_text)
def test_any_other_name_maps_to_a_bounded_value(kind: str, owner: str, name: str) -> None:
    route = f"{owner}/{name}"
    bounded = {"-", "other", "work/other", "echo/other", "docs/other"} | KNOWN["llm"] | KNOWN["tool_call"]
    label = RouteLabels(SETTINGS).route(kind, route)
    assert label in bounded or (kind == "tool_call" and owner == "docs" and label == route)


def test_tools_of_a_configured_server_are_capped() -> None:
    labels = RouteLabels(SETTINGS)
    seen = {labels.route("tool_call", f"docs/tool-{index}") for index in range(MAX_TOOL_LABELS + 50)}
    assert len(seen) == MAX_TOOL_LABELS + 1 and "docs/other" in seen


def test_metrics_count_made_up_models_under_one_series() -> None:
    metrics = Metrics(RouteLabels(SETTINGS))
    for index in range(1000):
        metrics.observe(
            AuditRecord(
                request_id=str(index),
                kind="llm",
                target=f"echo/made-up-{index}",
                decision="allow",
                status=200,
                latency_ms=1.0,
                tokens_in=3,
                tokens_out=2,
                details={"route": f"echo/made-up-{index}", "ttfb_ms": 1.0},
            )
        )
    routes = {
        sample.labels["route"]
        for family in metrics.registry.collect()
        for sample in family.samples
        if "route" in sample.labels
    }
    assert routes == {"echo/other"}
