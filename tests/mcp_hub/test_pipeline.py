"""The audit details of a tool call's arguments and result."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

import mcp_types as types
import pytest
from hypothesis import given, settings, strategies as st

from mcp_hub.access import Caller
from mcp_hub.errors import UnknownTool
from mcp_hub.pipeline import CallRecord, _call_attributes, argument_details, json_length
from toolpolicy.errors import PermissionDenied
from toolpolicy.types import Principal

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def test_arguments_with_a_lone_surrogate_are_hashed_not_refused() -> None:
    # Code Mode's sandbox can build such a string; the call must still be audited.
    details = argument_details({"query": "\ud800"}, record=False)
    canonical = '{"query":"\ud800"}'.encode(errors="surrogatepass")
    assert details["arguments_sha256"] == hashlib.sha256(canonical).hexdigest()
    assert details["arguments_size"] == len(canonical) and "arguments" not in details


@settings(max_examples=100, deadline=None, database=None)
@given(st.dictionaries(st.text(), json_values, max_size=5))
def test_any_arguments_get_a_size_and_a_stable_digest(arguments: dict[str, Any]) -> None:
    first = argument_details(arguments, record=True)
    assert first == argument_details(dict(reversed(list(arguments.items()))), record=True)
    assert first["arguments_size"] >= 2 and len(first["arguments_sha256"]) == 64
    assert first["arguments"] == arguments


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(st.text(), max_size=3), st.none() | st.dictionaries(st.text(), json_values, max_size=3))
def test_a_results_size_is_the_length_of_its_json_text(texts: list[str], structured: dict[str, Any] | None) -> None:
    result = types.CallToolResult(
        content=[types.TextContent(type="text", text=text) for text in texts], structured_content=structured
    )
    assert json_length(result) == len(result.model_dump_json(by_alias=True, exclude_none=True))


def test_a_result_in_other_scripts_counts_characters_not_bytes() -> None:
    result = types.CallToolResult(content=[types.TextContent(type="text", text="h\u00e9 \u2603 \U0001f600")])
    dumped = result.model_dump_json(by_alias=True, exclude_none=True)
    assert json_length(result) == len(dumped) < len(dumped.encode())


@pytest.mark.parametrize(
    ("team", "customer", "via", "run_id"),
    [(None, None, None, None), ("eng", "acme", "code_mode", "run-1"), (None, "acme", None, "run-2")],
)
def test_a_calls_span_attributes_leave_out_what_has_no_value_in_the_order_of_the_full_set(
    team: str | None, customer: str | None, via: str | None, run_id: str | None
) -> None:
    principal = Principal(key_id="k1", key_name="k", team=team, customer=customer)
    full = {
        "mcp.method.name": "tools/call",
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "docs__search",
        "isthmus.key.name": "k",
        "isthmus.team": team,
        "isthmus.customer": customer,
        "isthmus.via": via,
        "isthmus.run_id": run_id,
    }
    attributes = _call_attributes(Caller(principal, "secret"), "docs__search", via, run_id)
    assert list(attributes.items()) == [(key, value) for key, value in full.items() if value is not None]


def test_a_calls_audit_record_puts_each_value_in_its_own_field() -> None:
    # `CallRecord.build` makes the record by position: a value given in the wrong place fails here.
    principal = Principal(key_id="k1", key_name="key one", team="eng", customer="acme")
    record = CallRecord("req-1", Caller(principal, "secret"), "fx/echo", {"server": "fx", "tool": "echo"})
    refusal = UnknownTool("fx__echo", hidden=True)
    record.deny(refusal)
    record.cost_usd = Decimal("0.25")
    built = record.build(0.5)
    assert (built.request_id, built.kind, built.target, built.decision) == ("req-1", "tool_call", "fx/echo", "deny")
    assert (built.status, built.latency_ms, built.reason) == (PermissionDenied.status, 500.0, refusal.reason)
    assert (built.key_id, built.key_name, built.team, built.customer) == ("k1", "key one", "eng", "acme")
    assert (built.tokens_in, built.tokens_out, built.cost_usd) == (None, None, Decimal("0.25"))
    assert built.details == {"server": "fx", "tool": "echo", "outcome": "denied"}
