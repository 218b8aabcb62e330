"""Numbers in the config are finite and within what the gateway can count: each bad one is named."""

from __future__ import annotations

import pytest

from toolpolicy.config import ConfigError, load_config_text


def problem_paths(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, environ={})
    return {problem.path: problem.message for problem in caught.value.problems}


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1e309", "2e9"])
def test_a_budget_that_is_not_a_finite_amount_is_a_config_error_naming_the_field(value: str) -> None:
    text = f"virtual_keys:\n  - name: k\n    budgets: [{{max_usd: {value}}}]\n"
    problems = problem_paths(text)
    assert list(problems) == ["virtual_keys[0].budgets[0].max_usd"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("mcp_servers.t.timeout", ".inf"), ("llm.read_timeout", ".nan"), ("audit.flush_interval", ".inf")],
)
def test_infinite_seconds_are_a_config_error_naming_the_field(field: str, value: str) -> None:
    section, *rest = field.split(".")
    if section == "mcp_servers":
        text = f"mcp_servers:\n  t:\n    url: http://127.0.0.1:9/mcp\n    timeout: {value}\n"
    else:
        text = f"{section}:\n  {rest[0]}: {value}\n"
    assert list(problem_paths(text)) == [field]


@pytest.mark.parametrize("rate", ["99999999999999999999/1m", "10000000000000/1m", "1/400d", "1/9999999999d", "٣/1m"])
def test_a_rate_the_counters_cannot_hold_is_a_config_error(rate: str) -> None:
    text = f"virtual_keys:\n  - name: k\n    rate_limit: {{requests: '{rate}'}}\n"
    assert list(problem_paths(text)) == ["virtual_keys[0].rate_limit.requests"]


def test_large_but_real_limits_still_load() -> None:
    text = "virtual_keys:\n  - name: k\n    budgets: [{max_usd: 1000000}]\n    rate_limit: {tokens: 1000000000/30d}\n"
    assert load_config_text(text, environ={}).virtual_keys[0].budgets[0].max_usd == 1_000_000
