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


def walked_tally(value: Any) -> tuple[int, int, int, int]:
    """`(chars, extra UTF-8 bytes, images, numbers)` by the walk as first written, every value pushed and popped:
    the reference the estimate keeps to."""
    chars = extra_bytes = images = numbers = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            chars += len(item)
            if not item.isascii():
                extra_bytes += len(item.encode("utf-8", "surrogatepass")) - len(item)
        elif isinstance(item, dict):
            if item.get("type") in estimate.IMAGE_PARTS:
                images += 1
                continue
            for key, child in item.items():
                stack.append(key)
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, int | float):
            numbers += 1
    return chars, extra_bytes, images, numbers


class Name(str):
    """A `str` subclass: counted as a string, as before, wherever it is."""


TEXT = st.text() | st.text(alphabet="ab\u00e9\u4eba\U0001f600\ud800", max_size=8)


def with_names(value: Any) -> Any:
    """`value` with its odd-length strings as `Name`s, keys included (made after drawing: Hypothesis's own string
    choices must stay plain `str`)."""
    if isinstance(value, str):
        return Name(value) if len(value) % 2 else value
    if isinstance(value, list):
        return [with_names(item) for item in value]
    if isinstance(value, dict):
        return {with_names(key): with_names(item) for key, item in value.items()}
    return value


PART = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}),
    st.fixed_dictionaries(
        {"type": st.sampled_from(sorted(estimate.IMAGE_PARTS)), "image_url": st.fixed_dictionaries({"url": TEXT})}
    ),
)
MESSAGE = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["system", "user", "assistant", "tool"]),
        "content": TEXT | st.lists(PART, max_size=4) | st.none(),
    },
    optional={"name": TEXT, "tool_call_id": TEXT},
)
ODD = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT | st.decimals(allow_nan=False) | st.tuples(TEXT),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(TEXT | st.integers() | st.booleans() | st.none(), children, max_size=4)
    ),
    max_leaves=20,
)
CHAT_BODY = st.fixed_dictionaries(
    {"model": TEXT, "messages": st.lists(MESSAGE, max_size=6)},
    optional={
        "max_tokens": st.integers(),
        "temperature": st.floats(),
        "stream": st.booleans(),
        "tools": ODD,
        "extra": ODD,
    },
)


@settings(max_examples=500, deadline=None)
@given(CHAT_BODY | st.dictionaries(TEXT, ODD, max_size=5) | JSON)
def test_the_estimate_counts_what_the_first_walk_counted(body: Any) -> None:
    """Plain strings counted where they are found, not pushed: the same sums, for chat bodies and odd values alike
    (keys that are not strings, `str` subclasses, tuples and decimals, which count nothing, lone surrogates)."""
    for value in (body, with_names(body)):
        tally = estimate._Tally().add(value)
        assert (tally.chars, tally.extra_bytes, tally.images, tally.numbers) == walked_tally(value)
    if isinstance(body, dict):
        messages = body.get("messages")
        overhead = (
            estimate.TOKENS_PER_MESSAGE * len(messages) + estimate.REPLY_PRIMING if isinstance(messages, list) else 0
        )
        assert estimate.request_input(body) == tally.tokens() + overhead


@pytest.mark.parametrize("kind", [["image"], {"url": "x"}])
def test_an_unhashable_part_type_is_refused_as_before(kind: Any) -> None:
    body = user([{"type": "text", "text": "hi"}, {"type": kind}])
    with pytest.raises(TypeError, match="unhashable"):
        walked_tally(body)
    with pytest.raises(TypeError, match="unhashable"):
        estimate.request_input(body)
