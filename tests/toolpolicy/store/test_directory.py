from __future__ import annotations

import pytest

from tests.conftest import StoreTarget
from toolpolicy.errors import Conflict, InvalidRequest, NotFound
from toolpolicy.secrets import hash_secret
from toolpolicy.settings import GatewaySettings
from toolpolicy.store import Store
from toolpolicy.store.directory import Directory
from toolpolicy.store.engine import HEAD_REVISION
from toolpolicy.store.schema import CustomerRow, KeyRow, TeamRow

pytestmark = pytest.mark.anyio


@pytest.fixture
def directory(migrated_store: Store) -> Directory:
    return Directory(migrated_store)


async def test_migrations_are_idempotent(directory: Directory) -> None:
    await directory.store.migrate()
    assert await directory.store.revision() == HEAD_REVISION


async def test_hierarchy_round_trips(directory: Directory) -> None:
    await directory.create_customer({"name": "acme", "budgets": [{"max_usd": 50, "period": "1M"}]})
    await directory.create_team({"name": "support", "customer": "acme"})
    record, secret = await directory.create_key(
        {"name": "bot", "team": "support", "models": ["openai/*"], "mcp": {"docs": ["search_*"]}}
    )
    assert secret.startswith("isk-") and len(secret) > 40
    assert record["key_prefix"] == secret[:8]
    assert "key_hash" not in record and secret not in str(record)
    assert record["team"] == "support" and record["mcp"] == {"docs": ["search_*"]}

    found = await directory.find_key(hash_secret(secret))
    assert found is not None
    assert (found["name"], found["team"], found["customer"]) == ("bot", "support", "acme")
    assert found["customer_budgets"] == [{"max_usd": 50.0, "period": "1M", "rolling": False}]
    assert await directory.find_key(hash_secret("isk-wrong")) is None


async def test_duplicate_names_conflict(directory: Directory) -> None:
    await directory.create_customer({"name": "acme"})
    with pytest.raises(Conflict, match="already exists"):
        await directory.create_customer({"name": "acme"})


async def test_reference_to_a_missing_team_names_the_field_and_writes_nothing(directory: Directory) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await directory.create_key({"name": "bot", "team": "nope"})
    assert caught.value.param == "team"
    assert await directory.page(KeyRow) == []


async def test_unknown_and_mistyped_fields_name_the_field(directory: Directory) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await directory.create_key({"name": "bot", "modles": ["x"]})
    assert caught.value.param == "modles"
    with pytest.raises(InvalidRequest, match=r"budgets\[0\]\.max_usd"):
        await directory.create_customer({"name": "acme", "budgets": [{"max_usd": "lots"}]})
    with pytest.raises(InvalidRequest, match="value"):
        await directory.create_key({"name": "bot", "value": "isk-chosen-by-caller"})


async def test_update_validates_the_merged_entity_and_is_atomic(directory: Directory) -> None:
    await directory.create_team({"name": "support"})
    await directory.create_key({"name": "bot", "team": "support", "models": ["a/*"]})
    updated = await directory.update(KeyRow, "bot", {"models": ["b/*"], "metadata": {"owner": "ops"}})
    assert updated["models"] == ["b/*"] and updated["team"] == "support" and updated["metadata"] == {"owner": "ops"}

    with pytest.raises(InvalidRequest):
        await directory.update(KeyRow, "bot", {"models": ["c/*"], "team": "nope"})
    assert (await directory.get(KeyRow, "bot"))["models"] == ["b/*"]

    await directory.create_customer({"name": "acme"})
    with pytest.raises(InvalidRequest, match="team or directly to a customer"):
        await directory.update(KeyRow, "bot", {"customer": "acme"})


async def test_rename_into_an_existing_name_conflicts(directory: Directory) -> None:
    await directory.create_team({"name": "a"})
    await directory.create_team({"name": "b"})
    with pytest.raises(Conflict):
        await directory.update(TeamRow, "a", {"name": "b"})
    assert [team["name"] for team in await directory.page(TeamRow)] == ["a", "b"]


async def test_delete_refuses_while_dependents_exist(directory: Directory) -> None:
    await directory.create_customer({"name": "acme"})
    await directory.create_team({"name": "support", "customer": "acme"})
    with pytest.raises(Conflict, match="still has"):
        await directory.delete(CustomerRow, "acme")
    await directory.delete(TeamRow, "support")
    await directory.delete(CustomerRow, "acme")
    with pytest.raises(NotFound):
        await directory.get(CustomerRow, "acme")


async def test_rotate_replaces_the_secret_and_revoke_deactivates(directory: Directory) -> None:
    _, old = await directory.create_key({"name": "bot"})
    _, new = await directory.rotate_key("bot")
    assert new != old
    assert await directory.find_key(hash_secret(old)) is None
    assert (await directory.find_key(hash_secret(new)) or {}).get("name") == "bot"
    revoked = await directory.revoke_key("bot")
    assert revoked["active"] is False and revoked["revoked_at"] is not None


async def test_pages_follow_the_cursor(directory: Directory) -> None:
    for index in range(7):
        await directory.create_customer({"name": f"c{index}"})
    first = await directory.page(CustomerRow, limit=3)
    second = await directory.page(CustomerRow, limit=3, after=first[-1]["name"])
    third = await directory.page(CustomerRow, limit=3, after=second[-1]["name"])
    assert [c["name"] for c in first + second + third] == [f"c{i}" for i in range(7)]


def _config(**overrides: object) -> GatewaySettings:
    data: dict[str, object] = {
        "customers": [{"name": "acme"}],
        "teams": [{"name": "support", "customer": "acme"}],
        "virtual_keys": [
            {"name": "fixed", "team": "support", "value": "isk-fixed-secret", "models": ["openai/*"]},
            {"name": "generated", "customer": "acme"},
        ],
    }
    data.update(overrides)
    return GatewaySettings.model_validate(data)


async def test_seeding_is_idempotent_and_prints_generated_secrets_once(directory: Directory) -> None:
    generated = await directory.seed(_config())
    assert [name for name, _ in generated] == ["generated"]
    assert await directory.seed(_config()) == []
    assert len(await directory.page(KeyRow)) == 2
    assert len(await directory.page(CustomerRow)) == 1
    fixed = await directory.find_key(hash_secret("isk-fixed-secret"))
    assert fixed is not None and fixed["source"] == "config" and fixed["customer"] == "acme"
    assert await directory.find_key(hash_secret(generated[0][1])) is not None


async def test_seeding_applies_config_changes_but_keeps_a_revocation(directory: Directory) -> None:
    await directory.seed(_config())
    await directory.revoke_key("fixed")
    changed = _config(
        virtual_keys=[{"name": "fixed", "team": "support", "value": "isk-fixed-secret", "models": ["anthropic/*"]}]
    )
    await directory.seed(changed)
    record = await directory.get(KeyRow, "fixed")
    assert record["models"] == ["anthropic/*"]
    assert record["active"] is False


async def test_a_revoked_key_cannot_be_rotated(directory: Directory) -> None:
    await directory.create_key({"name": "bot"})
    await directory.revoke_key("bot")
    with pytest.raises(Conflict, match="revoked"):
        await directory.rotate_key("bot")


async def test_the_allowlist_may_only_name_configured_servers(store_target: StoreTarget) -> None:
    store = Store.open(store_target.url, connect_args=store_target.connect_args)
    await store.migrate()
    try:
        directory = Directory(store, mcp_servers={"docs"})
        await directory.create_key({"name": "ok", "mcp": {"docs": ["*"]}})
        with pytest.raises(InvalidRequest) as caught:
            await directory.create_key({"name": "bad", "mcp": {"files": ["*"]}})
        assert caught.value.param == "mcp.files"
    finally:
        await store.close()
