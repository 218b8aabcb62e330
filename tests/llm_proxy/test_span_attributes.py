"""The request span's attributes at its end: every one with a value, none without, in a fixed order."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from llm_proxy.pipeline import Exchange, Pipeline
from toolpolicy.governor import Usage
from toolpolicy.types import Principal


def pipeline() -> Pipeline:
    router: Any = SimpleNamespace(adapters={"openai": SimpleNamespace(kind="openai")})
    governance: Any = None
    return Pipeline(governance, router)


def exchange(**given: Any) -> Exchange:
    made = Exchange(request_id="r1", api="openai", endpoint="chat")
    for name, value in given.items():
        setattr(made, name, value)
    return made


def test_a_served_request_has_every_attribute_in_order() -> None:
    served = exchange(
        requested="openai/gpt-4o",
        principal=Principal(key_id="k1", key_name="dev-key", team="dev", customer="acme"),
        usage=Usage(tokens_in=12, tokens_out=0),
        cost=Decimal("0.25"),
        details={"agent": {"steps": 3}},
        status=200,
    )
    served.trace.route, served.trace.attempts = "openai/gpt-4o", 2
    assert list(pipeline()._span_attributes(served).items()) == [
        ("gen_ai.request.model", "openai/gpt-4o"),
        ("gen_ai.provider.name", "openai"),
        ("gen_ai.response.model", "gpt-4o"),
        ("gen_ai.usage.input_tokens", 12),
        ("gen_ai.usage.output_tokens", 0),
        ("http.response.status_code", 200),
        ("isthmus.route", "openai/gpt-4o"),
        ("isthmus.attempts", 2),
        ("isthmus.key.name", "dev-key"),
        ("isthmus.team", "dev"),
        ("isthmus.customer", "acme"),
        ("isthmus.cost_usd", 0.25),
        ("isthmus.agent.steps", 3),
    ]


@pytest.mark.parametrize(
    ("given", "route", "expected"),
    [
        # refused before any key was resolved or route tried: only what every request has
        ({"status": 401}, None, {"http.response.status_code": 401, "isthmus.attempts": 0}),
        # a key without team or customer, a route whose provider is not configured, no model after the provider
        (
            {"requested": "gpt", "principal": Principal(key_id="k", key_name="solo"), "status": 502},
            "elsewhere/",
            {
                "gen_ai.request.model": "gpt",
                "http.response.status_code": 502,
                "isthmus.route": "elsewhere/",
                "isthmus.attempts": 0,
                "isthmus.key.name": "solo",
            },
        ),
        # agent details without steps, an empty route (kept: it is a value)
        (
            {"details": {"agent": {}}, "status": 200},
            "",
            {"http.response.status_code": 200, "isthmus.route": "", "isthmus.attempts": 0},
        ),
    ],
)
def test_attributes_without_a_value_are_left_out(given: dict[str, Any], route: str | None, expected: Any) -> None:
    made = exchange(**given)
    made.trace.route = route
    assert pipeline()._span_attributes(made) == expected
