from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from toolpolicy.decide import authorize
from toolpolicy.errors import ExpiredKey, GatewayError, ModelNotAllowed, ToolNotAllowed
from toolpolicy.globs import GlobSet
from toolpolicy.types import ModelTarget, Principal, ToolTarget

PRINCIPAL = Principal(
    key_id="k1",
    key_name="bot",
    models=GlobSet.of(["openai/gpt-4o-mini", "openai/text-embedding-*"]),
    mcp={"time": GlobSet.of(["*"]), "docs": GlobSet.of(["search_*", "get_page"])},
)


@pytest.mark.parametrize(
    ("model", "allowed"),
    [
        ("openai/gpt-4o-mini", True),
        ("openai/text-embedding-3-small", True),
        ("openai/gpt-4o", False),
        ("anthropic/gpt-4o-mini", False),
        ("gpt-4o-mini", False),
    ],
)
def test_models_are_matched_by_glob_over_provider_and_model(model: str, allowed: bool) -> None:
    decision = authorize(PRINCIPAL, ModelTarget.parse(model))
    assert decision.allowed is allowed
    if not allowed:
        assert isinstance(decision.denial, ModelNotAllowed)


@pytest.mark.parametrize(
    ("server", "tool", "allowed"),
    [
        ("time", "get_current_time", True),
        ("docs", "search_pages", True),
        ("docs", "get_page", True),
        ("docs", "delete_page", False),
        ("files", "read", False),  # a server the key does not name gives nothing
    ],
)
def test_tools_are_denied_by_default(server: str, tool: str, allowed: bool) -> None:
    assert authorize(PRINCIPAL, ToolTarget(server, tool)).allowed is allowed


def test_a_key_with_no_models_may_use_none() -> None:
    assert not authorize(Principal(key_id="k", key_name="k"), ModelTarget.parse("openai/x")).allowed


def test_denials_carry_what_each_edge_renders() -> None:
    denial = authorize(PRINCIPAL, ModelTarget.parse("openai/gpt-4o")).denial
    assert denial is not None
    assert (denial.status, denial.openai_type, denial.jsonrpc_code) == (403, "permission_error", -32043)
    assert "bot" in denial.message and "openai/gpt-4o" in denial.message
    tool_denial = authorize(PRINCIPAL, ToolTarget("docs", "delete_page")).denial
    assert isinstance(tool_denial, ToolNotAllowed) and tool_denial.reason == "tool_not_allowed"
    with pytest.raises(GatewayError):
        authorize(PRINCIPAL, ToolTarget("docs", "delete_page")).raise_if_denied()


def test_an_expired_principal_is_denied() -> None:
    now = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    expiring = Principal(key_id="k", key_name="k", models=GlobSet.of(["*"]), expires_at=now + timedelta(seconds=1))
    assert authorize(expiring, ModelTarget.parse("a/b"), now=now).denial is None
    assert isinstance(authorize(expiring, ModelTarget.parse("a/b"), now=now + timedelta(seconds=1)).denial, ExpiredKey)
