"""The semantic index: nearest within a group only, removals keep the rest searchable, growth past the buffer."""

from __future__ import annotations

import pytest

from llm_proxy.cache import vectors
from llm_proxy.cache.semantic import question_text
from llm_proxy.cache.vectors import VectorIndex


def test_search_is_within_a_group_and_follows_removals() -> None:
    index = VectorIndex()
    for number in range(20):
        index.add("a", f"k{number}", [1.0, float(number), 0.0])
    index.add("b", "other", [0.0, 1.0, 0.0])
    key, similarity = index.search("a", [0.0, 1.0, 0.0]) or ("", 0.0)
    assert key == "k19" and similarity == pytest.approx(19 / (1 + 19**2) ** 0.5, rel=1e-5)
    index.remove("k19")
    assert (index.search("a", [0.0, 1.0, 0.0]) or ("",))[0] == "k18"
    assert (index.search("b", [1.0, 0.0, 0.0]) or ("",))[0] == "other"
    assert index.search("c", [1.0, 0.0, 0.0]) is None
    for number in range(19):
        index.remove(f"k{number}")
    assert index.search("a", [1.0, 0.0, 0.0]) is None and len(index) == 1


def test_a_zero_vector_is_never_indexed_nor_matched() -> None:
    index = VectorIndex()
    index.add("a", "zero", [0.0, 0.0])
    assert len(index) == 0 and index.search("a", [1.0, 0.0]) is None


def test_question_text_takes_text_conversations_up_to_the_limit() -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "system": "brief"}
    assert question_text("messages", body, 2) == "system: brief\nuser: hi"
    assert question_text("chat", {"messages": [{"role": "user", "content": "a"}] * 3}, 2) is None
    image = {"type": "image_url", "image_url": {"url": "data:,"}}
    assert question_text("chat", {"messages": [{"role": "user", "content": [image]}]}, 2) is None
    assert (
        question_text("responses", {"input": "hello", "instructions": "be kind"}, 2) == "system: be kind\nuser: hello"
    )


def test_a_group_past_the_brute_force_size_searches_by_hnsw(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vectors, "BRUTE_FORCE_MAX", 16)
    index = VectorIndex()
    for number in range(64):
        vector = [0.0] * 64
        vector[number] = 1.0
        index.add("a", f"k{number}", vector)
    probe = [0.0] * 64
    probe[40], probe[41] = 1.0, 0.2
    key, similarity = index.search("a", probe) or ("", 0.0)
    assert key == "k40" and similarity == pytest.approx(1 / (1.04**0.5), rel=1e-3)
    index.remove("k40")
    assert (index.search("a", probe) or ("",))[0] == "k41"
    assert len(index) == 63
