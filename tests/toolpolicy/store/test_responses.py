"""Stored responses on SQLite and PostgreSQL: written, read and deleted only under the key that created them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from tests.conftest import StoreTarget
from toolpolicy.store import Store
from toolpolicy.store.responses import ResponseStore, StoredResponse

pytestmark = pytest.mark.anyio
CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
async def responses(store_target: StoreTarget) -> AsyncIterator[ResponseStore]:
    store = Store.open(store_target.url, connect_args=store_target.connect_args)
    await store.migrate()
    try:
        yield ResponseStore(store)
    finally:
        await store.close()


def stored(response_id: str = "resp_1", key_id: str = "k1", text: str = "hi") -> StoredResponse:
    return StoredResponse(
        id=response_id,
        key_id=key_id,
        created_at=CREATED,
        model="p/m",
        previous_response_id=None,
        response={"id": response_id, "output": [{"type": "message", "content": [{"text": text}]}]},
        input_items=[{"id": "msg_1", "type": "message", "role": "user", "content": "héllo"}],
    )


async def test_a_response_is_read_back_whole_by_its_key_only(responses: ResponseStore) -> None:
    await responses.put(stored())
    found = await responses.get("k1", "resp_1")
    assert found == stored()
    assert await responses.get("k2", "resp_1") is None
    assert await responses.get("k1", "resp_2") is None


async def test_delete_is_scoped_to_the_key(responses: ResponseStore) -> None:
    await responses.put(stored())
    assert await responses.delete("k2", "resp_1") is False
    assert await responses.get("k1", "resp_1") is not None
    assert await responses.delete("k1", "resp_1") is True
    assert await responses.get("k1", "resp_1") is None
    assert await responses.delete("k1", "resp_1") is False


async def test_a_rewrite_replaces_and_another_keys_id_is_refused(responses: ResponseStore) -> None:
    await responses.put(stored())
    await responses.put(stored(text="again"))
    found = await responses.get("k1", "resp_1")
    assert found is not None and found.response["output"][0]["content"][0]["text"] == "again"
    with pytest.raises(ValueError, match="taken"):
        await responses.put(stored(key_id="k2"))
    assert (await responses.get("k1", "resp_1")) == stored(text="again")
