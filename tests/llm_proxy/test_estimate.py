"""The admission estimate of a request's input: every field counts, images at a bounded cost, other scripts by bytes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from llm_proxy import estimate, tokens

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


def user(content: Any) -> dict[str, Any]:
    return {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": content}]}


@settings(max_examples=200, deadline=None)
@given(JSON, JSON)
def test_adding_anything_to_a_request_never_lowers_its_estimate(first: Any, added: Any) -> None:
    body = user(first)
    grown = {**body, "messages": [*body["messages"], {"role": "user", "content": added}], "tools": [added]}
    assert estimate.request_input(grown) >= estimate.request_input(body) + estimate.TOKENS_PER_MESSAGE


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=0, max_value=5), st.integers(min_value=0, max_value=200_000))
def test_an_image_costs_the_bound_whatever_its_data(count: int, size: int) -> None:
    openai_image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * size}}
    anthropic_image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * size}}
    text_only = estimate.request_input(user([{"type": "text", "text": "what is this?"}]))
    for image in (openai_image, anthropic_image):
        with_images = estimate.request_input(user([{"type": "text", "text": "what is this?"}, *[image] * count]))
        assert with_images == text_only + count * estimate.IMAGE_TOKENS


@pytest.mark.parametrize(
    "text",
    [
        "人工智能网关在转发请求之前会先预留预算，并在供应商返回实际用量之后进行结算。" * 20,
        "Шлюз резервирует бюджет до отправки запроса и пересчитывает его по фактическому расходу. " * 20,
        "ゲートウェイはリクエストを転送する前に予算を確保します。" * 20,
    ],
    ids=["chinese", "russian", "japanese"],
)
def test_other_scripts_are_not_underestimated(text: str) -> None:
    counted = len(tokens.encoding("o200k_base").encode_ordinary(text))
    assert estimate.text_tokens(text) >= counted
    assert len(text) // 4 < counted  # what four characters a token alone would have reserved


def test_a_deeply_nested_body_is_walked_without_recursion() -> None:
    nested: Any = "leaf"
    for _ in range(100_000):
        nested = [nested]
    assert estimate.request_input(user(nested)) >= 1
