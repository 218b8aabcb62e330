"""Entries as stored (vectors packed, older rows' JSON lists still read) and the LRU's expiry sweep."""

from __future__ import annotations

import json

from llm_proxy.cache.entries import Entry, MemoryEntries, matching, pack_vector, unpack_vector
from tests.llm_proxy.cache.conftest import Clock


def entry(key: str, expires_at: float, **more: object) -> Entry:
    fields: dict[str, object] = {
        "key": key,
        "route": "chat",
        "model": "mock/gpt-test",
        "key_name": "dev-key",
        "answered_by": "mock/gpt-test",
        "body": {"choices": []},
        "tokens_in": 1,
        "tokens_out": 2,
        "cost_usd": "0",
        "created_at": 0.0,
        "expires_at": expires_at,
        **more,
    }
    return Entry(**fields)  # type: ignore[arg-type]


def test_a_vector_is_stored_packed_and_reads_back_as_float32() -> None:
    stored = entry("a", 10.0, group="g", vector=[0.1, -2.5, 3.0])
    data = json.loads(json.dumps(stored.to_json()))
    assert isinstance(data["vector"], str)
    restored = Entry.from_json(data)
    assert restored.vector == unpack_vector(pack_vector([0.1, -2.5, 3.0]))
    assert restored.vector is not None and abs(restored.vector[0] - 0.1) < 1e-7
    assert restored.vector[1:] == [-2.5, 3.0]
    assert restored.searchable


def test_an_entry_stored_with_its_vector_as_a_json_list_still_reads() -> None:
    data = {**entry("a", 10.0, group="g").to_json(), "vector": [1.0, 2.0]}
    assert Entry.from_json(data).vector == [1.0, 2.0]
    assert not entry("b", 10.0, group="g").searchable


def test_expire_removes_what_is_due_and_tells_the_index() -> None:
    clock = Clock(0.0)
    removed: list[str] = []
    memory = MemoryEntries(10, clock, on_remove=removed.append)
    memory.put(entry("soon", 5.0))
    memory.put(entry("later", 50.0))
    memory.put(entry("renewed", 5.0))
    memory.put(entry("renewed", 60.0))  # replaced: its first expiry is stale
    assert memory.expire() == 0
    clock.now = 10.0
    assert memory.expire() == 1
    assert removed == ["soon"]
    assert memory.peek("renewed") is not None and memory.peek("later") is not None
    clock.now = 55.0
    assert memory.expire() == 1
    assert removed == ["soon", "later"]


def test_matching_follows_the_admin_filters() -> None:
    stored = entry("a", 10.0)
    assert matching(None, None)(stored)
    assert matching("dev-key", "mock/gpt-test")(stored)
    assert not matching("ops-key", None)(stored)
    assert not matching(None, "mock/other")(stored)
