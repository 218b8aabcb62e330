"""`openai.usage_of`: each count of an OpenAI `usage` object lands in its own `Usage` field."""

from __future__ import annotations

from llm_proxy.wire import openai
from toolpolicy.governor import Usage


def test_every_count_lands_in_its_own_field() -> None:
    usage = {
        "prompt_tokens": 30,
        "completion_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 11},
        "completion_tokens_details": {"reasoning_tokens": 5},
    }
    assert openai.usage_of(usage) == Usage(tokens_in=30, tokens_out=7, cached_tokens=11, reasoning_tokens=5)
    assert openai.usage_of(usage).cost_usd is None  # type: ignore[union-attr]


def test_counts_that_are_not_numbers_count_as_none_and_no_prompt_is_no_usage() -> None:
    odd = {"prompt_tokens": 4, "completion_tokens": "x", "prompt_tokens_details": {"cached_tokens": None}}
    assert openai.usage_of(odd) == Usage(tokens_in=4)
    assert openai.usage_of({"completion_tokens": 3}) is None
    assert openai.usage_of(None) is None
