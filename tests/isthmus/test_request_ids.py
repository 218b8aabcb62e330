"""An `x-request-id` the store could not take is replaced by a fresh one: echoed and audited alike."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.isthmus.conftest import GatewayFactory
from toolpolicy.store.schema import AuditRow

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("presented", ["x" * 65, "a b", "r\u00e9q", "req-123_ABC.def:1/2"])
async def test_unauthenticated_requests_with_any_request_id_are_audited(
    gateway_factory: GatewayFactory, presented: str
) -> None:
    async with gateway_factory() as (governance, client):
        # No valid key needed: failed authentications are audited too.
        response = await client.post(
            "/v1/authorize",
            json={"model": "openai/gpt-4o-mini"},
            headers={"authorization": "Bearer isk-wrong", "x-request-id": presented.encode("latin-1")},
        )
        assert response.status_code == 401
        echoed = response.headers["x-request-id"]
        kept = presented == "req-123_ABC.def:1/2"
        assert (echoed == presented) is kept and len(echoed) <= 64
        await governance.audit.flush()
        assert governance.audit.writer.quarantined == 0
        async with governance.store.session() as session:
            stored = (await session.execute(select(AuditRow.request_id))).scalars().all()
        assert stored == [echoed]
