"""Which rules apply to a call, what a block says, and what the audit records and metrics hold."""

from __future__ import annotations

import pytest

from toolpolicy.audit import AuditRecord
from toolpolicy.errors import GuardrailBlocked
from toolpolicy.guardrails import Guardrails, GuardrailSettings
from toolpolicy.telemetry.metrics import Metrics
from toolpolicy.types import Principal

RULES = [
    GuardrailSettings(name="no-secrets", detect="secrets", action="block", default=True),
    GuardrailSettings(name="pii", detect="pii", entities=["email", "credit_card"], action="redact"),
    GuardrailSettings(name="pii-out", detect="pii", entities=["email"], apply_to=["output"], action="log"),
    GuardrailSettings(name="codename", detect="regex", patterns=[r"(?i)project\s+falcon"], action="block"),
]


def _names(guardrails: Guardrails, principal: Principal | None, surface: str, server: str | None = None) -> list[str]:
    return [rule.name for rule in guardrails.rules_for(principal, surface, server).rules]  # type: ignore[arg-type]


def test_rules_resolve_from_defaults_lists_skips_surfaces_and_servers() -> None:
    guardrails = Guardrails(RULES, servers={"crm": ["pii"]})
    plain = Principal("k1", "plain")
    support = Principal("k2", "support", guardrails=("pii", "codename", "pii-out"))
    skipper = Principal("k3", "skipper", guardrails=("pii",), skip_guardrails=("no-secrets", "pii"))
    assert _names(guardrails, plain, "input") == ["no-secrets"]
    assert _names(guardrails, support, "input") == ["no-secrets", "pii", "codename"]
    assert _names(guardrails, support, "output") == ["no-secrets", "pii", "pii-out", "codename"]
    assert _names(guardrails, skipper, "input") == []
    assert _names(guardrails, plain, "tool_input", "crm") == ["no-secrets", "pii"]
    assert _names(guardrails, skipper, "tool_output", "crm") == ["pii"]  # a server's rules always apply


def test_keys_surfaces_and_servers_resolving_to_the_same_rules_share_one_rule_set() -> None:
    guardrails = Guardrails(RULES, servers={"crm": ["pii"]})
    support = Principal("k2", "support", guardrails=("pii",))
    other = Principal("k3", "other", guardrails=("pii", "pii-out"))  # pii-out is output only
    shared = guardrails.rules_for(support, "input")
    assert guardrails.rules_for(other, "input") is shared
    assert guardrails.rules_for(Principal("k1", "plain"), "tool_input", "crm") is shared
    assert guardrails.rules_for(other, "output") is not shared


def test_no_rule_means_no_scan() -> None:
    assert Guardrails([]).scan(Principal("k", "k"), "input", request_id="r", target="m") is None
    assert not Guardrails([]).active
    skipper = Principal("k", "k", skip_guardrails=("no-secrets",))
    assert Guardrails(RULES).scan(skipper, "input", request_id="r", target="m") is None


def test_a_block_names_the_rule_never_the_text_and_is_audited_without_it() -> None:
    records: list[AuditRecord] = []
    guardrails = Guardrails(RULES, emit=records.append)
    principal = Principal("kid", "support", team="t", customer="c", guardrails=("pii",))
    scan = guardrails.scan(principal, "input", request_id="req-1", target="openai/gpt-4o")
    assert scan is not None
    secret = "AKIAIOSFODNN7EXAMPLE"
    with pytest.raises(GuardrailBlocked) as caught:
        scan.json({"messages": [{"role": "user", "content": f"mail a@b.example my key {secret}"}]})
    error = caught.value
    assert (error.status, error.code, error.rule) == (400, "guardrail_blocked", "no-secrets")
    assert "no-secrets" in error.message and secret not in error.message
    by_rule = {record.details["rule"]: record for record in records}
    assert set(by_rule) == {"no-secrets", "pii"}
    block = by_rule["no-secrets"]
    assert (block.kind, block.decision, block.status, block.request_id) == ("guardrail", "block", 400, "req-1")
    assert (block.key_id, block.key_name, block.team, block.customer) == ("kid", "support", "t", "c")
    assert block.details == {
        "rule": "no-secrets",
        "action": "block",
        "surface": "input",
        "entities": {"aws_access_key": 1},
        "hits": 1,
    }
    assert by_rule["pii"].details["entities"] == {"email": 1}
    for record in records:
        assert secret not in repr(record) and "a@b.example" not in repr(record)


def test_json_bodies_are_redacted_in_text_fields_only() -> None:
    guardrails = Guardrails(RULES)
    scan = guardrails.scan(Principal("k", "k", guardrails=("pii",)), "input", request_id="r", target="m")
    assert scan is not None
    body = {
        "model": "a@b.example",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "write to a@b.example"}]},
            {"role": "assistant", "tool_calls": [{"id": "x", "function": {"arguments": '{"to": "c@d.example"}'}}]},
        ],
    }
    scan.json(body)
    assert body["model"] == "a@b.example"
    assert body["messages"][0]["content"][0]["text"] == "write to [REDACTED:email]"
    assert body["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"to": "[REDACTED:email]"}'


def test_log_changes_nothing_but_counts_and_reports_once() -> None:
    records: list[AuditRecord] = []
    guardrails = Guardrails(RULES, emit=records.append)
    scan = guardrails.scan(Principal("k", "k", guardrails=("pii-out",)), "output", request_id="r", target="m")
    assert scan is not None
    assert scan.text("x@y.example and z@w.example") == "x@y.example and z@w.example"
    scan.report()
    scan.report()
    assert [(r.decision, r.details["entities"]) for r in records] == [("log", {"email": 2})]


def test_metrics_count_hits_by_rule_action_and_surface() -> None:
    metrics = Metrics()
    guardrails = Guardrails(RULES, emit=metrics.observe)
    scan = guardrails.scan(Principal("k", "k", guardrails=("pii",)), "input", request_id="r", target="m")
    assert scan is not None
    scan.text("a@b.example, c@d.example, 4111 1111 1111 1111")
    scan.report()
    value = metrics.registry.get_sample_value(
        "isthmus_guardrail_hits_total", {"rule": "pii", "action": "redact", "surface": "input"}
    )
    assert value == 3
    assert metrics.registry.get_sample_value("isthmus_requests_total", {"kind": "guardrail"}) is None
