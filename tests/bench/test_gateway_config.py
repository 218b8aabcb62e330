"""Each Isthmus variant's config is valid for the gateway, and turns on exactly what the variant says."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.gateway import GOVERNED, PLAIN, TRACED, Upstreams, config
from toolpolicy.settings import GatewaySettings

UPSTREAMS = Upstreams(
    "http://127.0.0.1:1", "http://127.0.0.1:2", redis="redis://127.0.0.1:6379/15", otlp="http://127.0.0.1:3"
)


def _settings(data: dict[str, object]) -> GatewaySettings:
    return GatewaySettings.model_validate(data)


def test_the_plain_variant_has_a_key_and_no_limits(tmp_path: Path) -> None:
    settings = _settings(config(PLAIN, 8080, tmp_path / "db", "isk-x", UPSTREAMS))
    (key,) = settings.virtual_keys
    assert key.models == ["mock/*"] and key.mcp == {"mock": ["*"]}
    assert key.budgets == [] and key.rate_limit is None and settings.redis is None
    assert settings.providers["mock"].base_url == "http://127.0.0.1:1/v1"
    assert settings.mcp_servers["mock"].url == "http://127.0.0.1:2/mcp"
    assert settings.telemetry.otlp_endpoint is None


def test_the_governed_variant_checks_every_kind_of_limit_on_redis(tmp_path: Path) -> None:
    settings = _settings(config(GOVERNED, 8080, tmp_path / "db", "isk-x", UPSTREAMS))
    (key,) = settings.virtual_keys
    assert settings.redis == "redis://127.0.0.1:6379/15"
    assert key.budgets and key.rate_limit is not None and key.rate_limit.requests and key.rate_limit.tokens
    assert key.mcp_rate_limit is not None and key.mcp_rate_limit.per_server == {"mock": "1000000000/1m"}
    assert settings.customers[0].budgets and settings.teams[0].budgets
    assert settings.mcp_servers["mock"].cost_per_call_usd > 0 and "mock/*" in settings.pricing


def test_the_traced_variant_exports_to_the_sink(tmp_path: Path) -> None:
    settings = _settings(config(TRACED, 8080, tmp_path / "db", "isk-x", UPSTREAMS))
    assert settings.telemetry.otlp_endpoint == "http://127.0.0.1:3" and settings.telemetry.sample_ratio == 1


def test_a_variant_without_its_service_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs Redis"):
        config(GOVERNED, 8080, tmp_path / "db", "isk-x", Upstreams("http://127.0.0.1:1", "http://127.0.0.1:2"))
