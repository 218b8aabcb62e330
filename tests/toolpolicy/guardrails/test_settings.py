"""The `guardrails:` config shape of issue 15, and its errors."""

from __future__ import annotations

import pytest

from toolpolicy.config import ConfigError, load_config_text

CONFIG = """\
guardrails:
  - name: no-secrets
    detect: secrets
    action: block
    default: true
  - name: pii
    detect: pii
    entities: [email, credit_card, phone, iban, ssn, ip_address]
    action: redact
  - name: pii-out
    detect: pii
    entities: [email, credit_card]
    apply_to: [output, tool_output]
    action: redact
  - name: codename
    detect: regex
    patterns: ['(?i)project\\s+falcon']
    action: block
customers:
  - name: acme
    guardrails: [pii-out]
teams:
  - name: support
    skip_guardrails: [no-secrets]
virtual_keys:
  - name: support-bot
    guardrails: [pii, codename]
    skip_guardrails: []
mcp_servers:
  crm: {url: "http://127.0.0.1:9/mcp", guardrails: [pii]}
"""


def test_the_issue_shape_loads() -> None:
    settings = load_config_text(CONFIG, environ={})
    assert [rule.name for rule in settings.guardrails] == ["no-secrets", "pii", "pii-out", "codename"]
    assert settings.guardrails[2].apply_to == ["output", "tool_output"]
    assert settings.guardrails[1].apply_to == ["input", "output", "tool_input", "tool_output"]
    assert settings.virtual_keys[0].guardrails == ["pii", "codename"]
    assert settings.mcp_servers["crm"].guardrails == ["pii"]
    assert settings.customers[0].guardrails == ["pii-out"] and settings.teams[0].skip_guardrails == ["no-secrets"]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("guardrails: [pii, codename]", "guardrails: [pii, nope]"), "virtual_keys[0].guardrails"),
        (("skip_guardrails: [no-secrets]", "skip_guardrails: [gone]"), "teams[0].skip_guardrails"),
        (("guardrails: [pii]}", "guardrails: [nada]}"), "mcp_servers.crm.guardrails"),
        (("entities: [email, credit_card]\n", "entities: [email, passport]\n"), "passport"),
        (("detect: regex\n    patterns: ['(?i)project\\s+falcon']", "detect: regex\n    patterns: ['(a)\\1']"), "RE2"),
        (("- name: pii-out", "- name: pii"), "duplicate rule name 'pii'"),
        (("action: redact\n  - name: codename", "action: redact\n    patterns: [x]\n  - name: codename"), "only for"),
        (("detect: secrets", "detect: webhook"), "detect: webhook needs `webhook`"),
    ],
)
def test_config_errors_name_what_is_wrong(edit: tuple[str, str], expected: str) -> None:
    old, new = edit
    assert old in CONFIG
    with pytest.raises(ConfigError) as caught:
        load_config_text(CONFIG.replace(old, new, 1), environ={})
    assert expected in str(caught.value)
