"""Guardrail lists on customers, teams and keys: stored, validated against the config, merged for the key."""

from __future__ import annotations

import pytest

from toolpolicy.errors import InvalidRequest
from toolpolicy.keys import principal_from_record
from toolpolicy.secrets import hash_secret
from toolpolicy.store import Store
from toolpolicy.store.directory import Directory
from toolpolicy.store.schema import KeyRow

pytestmark = pytest.mark.anyio


async def test_a_keys_principal_carries_its_own_its_teams_and_its_customers_rules(migrated_store: Store) -> None:
    directory = Directory(migrated_store, guardrails={"pii", "pii-out", "codename", "no-secrets"})
    await directory.create_customer({"name": "acme", "guardrails": ["pii-out"]})
    await directory.create_team({"name": "support", "customer": "acme", "skip_guardrails": ["no-secrets"]})
    record, secret = await directory.create_key({"name": "bot", "team": "support", "guardrails": ["pii", "codename"]})
    assert record["guardrails"] == ["pii", "codename"] and record["skip_guardrails"] == []
    principal = principal_from_record(await directory.find_key(hash_secret(secret)) or {})
    assert principal.guardrails == ("pii", "codename", "pii-out")
    assert principal.skip_guardrails == ("no-secrets",)
    updated = await directory.update(KeyRow, "bot", {"guardrails": []})
    assert updated["guardrails"] == []


async def test_an_unknown_rule_is_refused_naming_the_field(migrated_store: Store) -> None:
    directory = Directory(migrated_store, guardrails={"pii"})
    with pytest.raises(InvalidRequest) as caught:
        await directory.create_key({"name": "bot", "skip_guardrails": ["nope"]})
    assert caught.value.param == "skip_guardrails" and "'nope'" in caught.value.message
