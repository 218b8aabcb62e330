"""Stopping the governance core writes everything its writers hold: audit chain, rollups and spend, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import anyio
import pytest
from pydantic import ValidationError

from tests.conftest import StoreTarget
from tests.toolpolicy.limits_support import settings
from toolpolicy.audit import AuditRecord
from toolpolicy.rollups import Window
from toolpolicy.runtime import ROLLUP_BATCH_SIZE, Governance
from toolpolicy.store.ledger import SpendEntry, SpendScope

pytestmark = pytest.mark.anyio
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def record(index: int) -> AuditRecord:
    return AuditRecord(
        f"r{index}",
        "llm",
        "mock/model",
        "allow",
        200 if index % 10 else 502,
        1.5 + index % 7,
        key_name="alpha",
        team="support",
        tokens_in=3,
        cost_usd=Decimal("0.001"),
        ts=T0 + timedelta(milliseconds=index),
    )


async def test_stop_writes_every_record_emitted_even_past_a_batch_and_between_flushes(
    store_target: StoreTarget,
) -> None:
    count = 3 * 200 + 17  # several audit batches, one partial; fewer than a rollup batch, so no early wake
    assert count < ROLLUP_BATCH_SIZE
    governance = Governance(
        settings(store_target.url, audit={"batch_size": 200, "flush_interval": 3600}),
        store_connect_args=store_target.connect_args,
    )
    await governance.start()
    try:
        for index in range(count):
            governance.audit.emit(record(index))
            entry = SpendEntry(f"r{index}", "mock/model", Decimal("0.001"), key_id="k", created_at=T0)
            governance.spend.emit(entry)
    finally:
        await governance.stop()

    reopened = Governance(settings(store_target.url), store_connect_args=store_target.connect_args)
    try:
        report = await reopened.audit_log.verify()
        assert report.ok and report.checked == count
        assert report.emissions is not None and not report.emissions.unconfirmed
        totals = await reopened.rollups.total(Window(T0.replace(minute=0), T0 + timedelta(hours=1)))
        assert (totals.requests, totals.errors, totals.tokens_in) == (count, count // 10 + 1, 3 * count)
        assert totals.cost_usd == Decimal("0.001") * count
        assert await reopened.ledger.total(SpendScope(key_id="k"), T0) == Decimal("0.001") * count
    finally:
        await reopened.store.close()


BUCKET = "rl:k:-:requests:3600:3600s@1"


def hand_over(governance: Governance, writer: str) -> None:
    """One entry to `writer` (the spend ledger's or the rate journal's): 0.5 spent, or 3 requests counted."""
    if writer == "spend":
        governance.spend.emit(SpendEntry("r1", "mock/model", Decimal("0.5"), key_id="k", created_at=T0))
    else:
        governance.rate_journal.record(BUCKET, 3, T0.timestamp(), T0.timestamp() + 3600)


async def written(governance: Governance, writer: str) -> object:
    """What the store holds of `hand_over`'s entry: the spend total, or the bucket's journaled usage."""
    if writer == "spend":
        return await governance.ledger.total(SpendScope(key_id="k"), T0)
    return await governance.rate_journal.totals([BUCKET])


WRITERS = {
    "spend": ("spend_flush_interval", 0, Decimal("0.5")),
    "rate journal": ("rate_journal_flush_interval", {}, {BUCKET: 3}),
}


@pytest.mark.parametrize("writer", WRITERS)
async def test_a_governed_writer_waits_its_own_interval_and_stop_still_writes_what_it_holds(
    store_target: StoreTarget, writer: str
) -> None:
    setting, nothing, entry = WRITERS[writer]
    audit = {"flush_interval": 0.05, setting: 3600}
    governance = Governance(settings(store_target.url, audit=audit), store_connect_args=store_target.connect_args)
    await governance.start()
    try:
        hand_over(governance, writer)
        governance.audit.emit(record(1))
        await governance.audit.flush()  # the audit writer's interval is not this writer's
        await anyio.sleep(0.5)  # twice the interval the writer had before it was a setting
        assert await written(governance, writer) == nothing
    finally:
        await governance.stop()
    reopened = Governance(settings(store_target.url), store_connect_args=store_target.connect_args)
    try:
        assert await written(reopened, writer) == entry
    finally:
        await reopened.store.close()


@pytest.mark.parametrize("setting", ["spend_flush_interval", "rate_journal_flush_interval"])
@pytest.mark.parametrize("seconds", [0, -1])
def test_a_writer_flush_interval_that_is_not_positive_is_refused_by_name(setting: str, seconds: float) -> None:
    with pytest.raises(ValidationError, match=setting):
        settings("sqlite+aiosqlite://", audit={setting: seconds})
