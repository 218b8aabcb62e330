"""The admission estimate of a request's input tokens, reserved before the request is forwarded.

The governor holds input + choices × max output against rate limits and budgets and trues the hold up to the
provider's usage afterwards, so the estimate is on every governed request's path (a key with no limit or budget
anywhere skips it, unless agent mode or the Messages translation needs it) and deliberately cheap: no tokeniser, one
walk over the body. It leans high rather than low:

- every string of the body counts, object keys included: messages and `system`, but also tool definitions (their
  names, descriptions and JSON schemas are input the provider bills), `tool_choice`, `response_format` and any
  field passed on to the provider;
- ASCII text at four characters a token (OpenAI's rule of thumb, which real text beats: BPE merges whole words);
  other scripts can take a token or more per character, so each UTF-8 byte past a character's first counts as a
  token of its own;
- an image costs IMAGE_TOKENS whatever its size, and its URL or base64 data is not counted as text;
- a number counts as a token (embeddings' token arrays), and each chat message adds OpenAI's per-message overhead.
"""

from __future__ import annotations

from typing import Any

IMAGE_TOKENS = 1_600
"""The most one image costs at the providers' standard rates: OpenAI's high-detail formula at its largest (an
image scaled to 768 × 2048 is 8 tiles of 512 px: 85 + 170 × 8 = 1,445 tokens) and Anthropic's largest image (about
1,600 tokens: bigger images are scaled down to 1.15 megapixels first). Low detail costs less; this is a bound."""
IMAGE_PARTS = frozenset({"image_url", "image", "input_image"})
"""`type`s of the content parts that carry an image: OpenAI chat, Anthropic Messages, OpenAI Responses."""
TOKENS_PER_MESSAGE = 4
"""OpenAI's counting recipe: 3 tokens frame each chat message, and its role is at least one more."""
REPLY_PRIMING = 3
"""Tokens that open the assistant's reply, in the same recipe."""
_NUMBERS = (int, float)  # a tuple made once: `int | float` in the loop would build a union per value


def text_tokens(text: str) -> int:
    """The estimate for one string (for a body, `request_input` sums characters before dividing)."""
    return _Tally().add(text).tokens()


class _Tally:
    __slots__ = ("chars", "extra_bytes", "images", "numbers")

    def __init__(self) -> None:
        self.chars = self.extra_bytes = self.images = self.numbers = 0

    def add(self, value: Any) -> _Tally:
        # An explicit stack, not recursion: a deeply nested body must not raise RecursionError here. Locals, not
        # attributes, in the loop: it runs for every request. A dict's plain-string keys and values (most of a
        # body: roles, contents, model names) are counted where they are found, not pushed and popped; anything else
        # goes on the stack in the order it always did, so dicts are looked at in the same order.
        chars = extra_bytes = images = numbers = 0
        stack = [value]
        push = stack.append
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                chars += len(item)
                if not item.isascii():  # O(1) in CPython: ASCII text pays nothing more
                    extra_bytes += len(item.encode("utf-8", "surrogatepass")) - len(item)
            elif isinstance(item, dict):
                if item.get("type") in IMAGE_PARTS:
                    images += 1
                    continue
                for key, child in item.items():
                    if key.__class__ is not str:
                        push(key)
                    elif key.isascii():
                        chars += len(key)
                    else:  # a key in another script (rare): counted as a value is
                        chars += len(key)
                        extra_bytes += len(key.encode("utf-8", "surrogatepass")) - len(key)
                    if child.__class__ is str:
                        chars += len(child)
                        if not child.isascii():
                            extra_bytes += len(child.encode("utf-8", "surrogatepass")) - len(child)
                    else:
                        push(child)
            elif isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, _NUMBERS):
                numbers += 1
        self.chars += chars
        self.extra_bytes += extra_bytes
        self.images += images
        self.numbers += numbers
        return self

    def tokens(self) -> int:
        return -(-self.chars // 4) + self.extra_bytes + self.numbers + self.images * IMAGE_TOKENS


def request_input(body: dict[str, Any]) -> int:
    """Input tokens a chat, Messages or embeddings request may be billed for, leaning high."""
    tally = _Tally().add(body).tokens()
    messages = body.get("messages")
    if isinstance(messages, list):
        return tally + TOKENS_PER_MESSAGE * len(messages) + REPLY_PRIMING
    return tally
