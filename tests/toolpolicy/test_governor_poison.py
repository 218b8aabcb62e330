"""A bad spend entry must not turn budgeted requests into 500s when their counters are seeded from the ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import insert

from tests.conftest import REDIS_URL, StoreTarget, require_service
from tests.toolpolicy.limits_support import CENT, principal, running, settings
from toolpolicy.errors import LimitExceeded, ServiceUnavailable
from toolpolicy.governor import Call, Usage
from toolpolicy.runtime import Governance
from toolpolicy.store.ledger import SpendScope
from toolpolicy.store.schema import SpendRow
from toolpolicy.types import ModelTarget, Principal

pytestmark = [pytest.mark.anyio, pytest.mark.redis]
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def budgeted() -> dict[str, object]:
    keys = [
        {"name": name, "team": team, "value": f"isk-{name}", "models": ["*"], "budgets": [{"max_usd": 0.05}]}
        for name, team in (("alpha", "support"), ("beta", "support"), ("gamma", "sales"))
    ]
    return {"virtual_keys": keys}


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


async def charge(governance: Governance, who: Principal, request_id: str, target: str = "mock/model") -> None:
    """Admit, attempt and settle one call costing $0.01 (10 output tokens)."""
    admission = await governance.governor.admit(Call(request_id, who, ModelTarget.parse(target), max_output_tokens=10))
    await admission.attempt(ModelTarget.parse(target))
    await admission.settle(Usage(tokens_out=10))


async def test_a_poisoned_request_id_does_not_break_seeding(store_target: StoreTarget, redis_url: str) -> None:
    config = settings(store_target.url, redis=redis_url, **budgeted())
    async with running(config, store_target.connect_args) as governance:
        alpha, gamma = await principal(governance, "alpha"), await principal(governance, "gamma")
        # A request id longer than the ledger's column (the LLM proxy let 128 characters through), and a NUL:
        # PostgreSQL rejects both as they are.
        await charge(governance, alpha, "x" * 100)
        await charge(governance, alpha, "r-\x00")
        # gamma's budget counters do not exist yet: admitting it seeds them, flushing this replica's spend first.
        await charge(governance, gamma, "r-gamma")
        await governance.spend.flush()
        assert governance.spend.pending == 0
        assert await governance.ledger.total(SpendScope(key_id=alpha.key_id), EPOCH) == 2 * CENT


async def test_a_legacy_nan_row_is_left_out_of_the_seed(store_target: StoreTarget, redis_url: str) -> None:
    config = settings(store_target.url, redis=redis_url, **budgeted())
    async with running(config, store_target.connect_args) as governance:
        beta = await principal(governance, "beta")
        rows = [
            {"request_id": "old", "target": "mock/model", "cost_usd": Decimal("NaN"), "key_id": beta.key_id},
            {"request_id": "paid", "target": "mock/model", "cost_usd": Decimal("0.04"), "key_id": beta.key_id},
        ]
        if store_target.backend == "sqlite":
            rows = rows[1:]  # SQLite cannot hold NaN in the column at all
        async with governance.store.writing() as session:
            await session.execute(insert(SpendRow), rows)
        await charge(governance, beta, "r-1")  # $0.04 + $0.01 fits the $0.05 budget
        with pytest.raises(LimitExceeded, match=r"\$0.05 spent of \$0.05"):
            await charge(governance, beta, "r-2")


async def test_an_unreachable_ledger_is_a_clear_503(store_target: StoreTarget, redis_url: str) -> None:
    config = settings(store_target.url, redis=redis_url, **budgeted())
    async with running(config, store_target.connect_args) as governance:
        gamma = await principal(governance, "gamma")
        await governance.store.engine.dispose()
        original = governance.ledger.store
        governance.ledger.store = type(original).open("postgresql+asyncpg://postgres@127.0.0.1:1/none")
        try:
            with pytest.raises(ServiceUnavailable, match="spend ledger"):
                await charge(governance, gamma, "r-down")
        finally:
            await governance.ledger.store.close()
            governance.ledger.store = original
