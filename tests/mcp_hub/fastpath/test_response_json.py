"""A 2025-era session call's answer is written, and kept for replay, as its `JSONRPCResponse` would be."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings, strategies as st
from mcp_types import JSONRPCResponse

from mcp_hub.fastpath.session_call import response_json
from mcp_hub.resume import SessionEventStore, message_json, stored_message
from tests.json_fuzz_support import PLAIN_SCALARS, WEIRD_TEXT

pytestmark = pytest.mark.anyio

RESULTS = st.dictionaries(
    st.one_of(st.text(max_size=8), WEIRD_TEXT),
    st.recursive(
        st.one_of(PLAIN_SCALARS, WEIRD_TEXT),
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
        max_leaves=12,
    ),
    max_size=4,
)
IDS = st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.text(max_size=12))


@settings(max_examples=500, deadline=None, database=None)
@given(request_id=IDS, result=RESULTS)
def test_an_answers_json_is_its_models_and_reads_back_as_it(request_id: int | str, result: dict[str, Any]) -> None:
    ours = response_json(request_id, result)
    if ours is None:  # a lone surrogate: left to the model, which replaces it
        assert any(0xD800 <= ord(char) <= 0xDFFF for char in repr(result).encode().decode("unicode_escape"))
        return
    assert ours == message_json(JSONRPCResponse(jsonrpc="2.0", id=request_id, result=result))
    replayed = stored_message(ours)
    assert isinstance(replayed, JSONRPCResponse) and message_json(replayed) == ours


async def test_an_answer_kept_with_its_model_replays_the_model() -> None:
    store = SessionEventStore(max_events=10, max_bytes=10_000)
    first = await store.store_encoded("s1", "")
    model = JSONRPCResponse(jsonrpc="2.0", id=3, result={chr(0xD800): None, chr(0xDFFF): None})
    await store.store_encoded("s1", message_json(model), model)
    replayed: list[Any] = []

    async def send(event: Any) -> None:
        replayed.append(event.message)

    await store.replay_events_after(first, send)
    assert replayed == [model]


async def test_the_store_replays_the_messages_after_an_id_on_its_stream_and_counts_their_bytes() -> None:
    store = SessionEventStore(max_events=10, max_bytes=10_000)
    priming = await store.store_encoded("s1", "")
    answer = response_json(1, {"content": [], "isError": False})
    other = await store.store_encoded("s2", response_json(2, {"content": []}))
    await store.store_encoded("s1", answer)
    assert other and store.bytes == len(answer) + len(response_json(2, {"content": []}))
    replayed: list[str] = []

    async def send(event: Any) -> None:
        replayed.append(message_json(event.message))

    assert await store.replay_events_after(priming, send) == "s1"
    assert replayed == [answer]
