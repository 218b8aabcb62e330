"""`/ready` shows each writer's backlog, and a backlog past `audit.max_backlog` makes the replica unready."""

from __future__ import annotations

import pytest

from tests.isthmus.conftest import GatewayFactory
from toolpolicy.audit import AuditRecord

pytestmark = pytest.mark.anyio


def record(index: int) -> AuditRecord:
    return AuditRecord(f"r{index}", "authorize", "openai/gpt-4o-mini", "allow", 200, 1.0)


async def test_a_backlog_past_the_bound_is_not_ready(gateway_factory: GatewayFactory) -> None:
    # A long flush interval: what is emitted stays waiting until flushed, as it does while the store refuses writes.
    async with gateway_factory(audit={"flush_interval": 60, "max_backlog": 3}) as (governance, client):
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["writers"]["audit"]["pending"] == 0

        for index in range(4):
            governance.audit.emit(record(index))
        ready = await client.get("/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "not ready"
        audit = ready.json()["writers"]["audit"]
        assert (audit["pending"], audit["written"], audit["quarantined"], audit["dropped"]) == (4, 0, 0, 0)
        assert audit["over_bound"] and not ready.json()["writers"]["spend"]["over_bound"]

        await governance.audit.flush()
        ready = await client.get("/ready")
        assert ready.status_code == 200 and ready.json()["writers"]["audit"]["written"] == 4
