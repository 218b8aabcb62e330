"""Token counting with the encodings shipped in the package: no download, SHA-256 checked."""

from __future__ import annotations

import pytest

from llm_proxy import tokens

pytestmark = pytest.mark.anyio


async def test_the_shipped_encodings_count_like_openais(monkeypatch: pytest.MonkeyPatch) -> None:
    import tiktoken.load

    def no_network(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("tiktoken tried to download an encoding")

    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    o200k = await tokens.load("o200k_base")
    cl100k = await tokens.load("cl100k_base")
    assert o200k.encode("Hello, world!") == [13225, 11, 2375, 0]
    assert cl100k.encode("Hello, world!") == [9906, 11, 1917, 0]
    assert o200k.n_vocab == 200019


def test_models_map_to_their_encoding() -> None:
    assert tokens.encoding_name("openai/gpt-4o-mini") == "o200k_base"
    assert tokens.encoding_name("gpt-4-turbo") == "cl100k_base"
    assert tokens.encoding_name("mock/text-embedding-3-small") == "cl100k_base"
    assert tokens.encoding_name("anthropic/claude-haiku-4-5") == "o200k_base"


def test_a_tampered_encoding_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    digest, pattern, special = tokens._ENCODINGS["cl100k_base"]
    monkeypatch.setitem(tokens._ENCODINGS, "cl100k_base", ("0" * 64, pattern, special))
    monkeypatch.setattr(tokens, "_loaded", {})
    with pytest.raises(tokens.EncodingDataError, match="SHA-256"):
        tokens.encoding("cl100k_base")


async def test_chat_input_is_counted_with_openais_per_message_overhead() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello, world!"}]
    enc = await tokens.load("o200k_base")
    expected = len(enc.encode("Be brief.")) + len(enc.encode("Hello, world!")) + 3 * 2 + 3
    assert await tokens.count_chat_input("gpt-4o", messages) == expected


def test_texts_come_from_strings_parts_and_tool_calls() -> None:
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}]},
        {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]},
    ]
    assert tokens.chat_texts(messages) == ["a", "f", "{}"]
