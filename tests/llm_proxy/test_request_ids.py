"""The proxy keeps a plain `x-request-id` and replaces one the store could not take, in the echo and the record."""

from __future__ import annotations

import aiohttp
import pytest

from tests.llm_proxy.conftest import KEY, Gateway

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("presented", ["req-123", "x" * 100, "has space"])
async def test_the_echoed_and_audited_request_id_is_storable(gateway: Gateway, presented: str) -> None:
    body = {"model": "mock/gpt-test", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {KEY}", "x-request-id": presented}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.v1}/chat/completions", json=body, headers=headers) as response,
    ):
        assert response.status == 200
        echoed = response.headers["x-request-id"]
    assert (echoed == presented) is (presented == "req-123") and len(echoed) <= 64
    [record] = await gateway.wait_records(1)
    assert record.request_id == echoed
    await gateway.governance.audit.flush()
    assert gateway.governance.audit.writer.quarantined == 0
