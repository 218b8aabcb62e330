"""`webhook` guardrail rules on a streamed answer: a verdict before the text goes out, or at its end.

A verdict comes from a remote service and text sent cannot be taken back, so under a blocking webhook rule the
stream's items (already through the in-process rules) are held: until the stream ends, then one verdict on the whole
answer; or, when every blocking rule sets `stream_window`, until that many characters of answer came, then a verdict
on the whole answer so far (blocking rules only) and everything held goes out. A block ends the stream with the
API's error event and nothing held is sent. Under `log` rules alone nothing is held: the verdict comes at the end.
Either way the end asks every webhook rule about the whole answer, as a non-streamed answer would be (a blocking
rule whose last window verdict was on the whole answer already is not asked again).

The answer's text is read from the items per API: chat content and tool-call arguments per choice, Messages block
deltas, Responses text and argument deltas; each part (a choice, block, output part) joined on its own.
"""

from __future__ import annotations

from typing import Any

from toolpolicy.guardrails import Scan

_MESSAGES_FIELDS = ("text", "partial_json", "thinking")
_RESPONSES_DELTAS = frozenset({"response.output_text.delta", "response.function_call_arguments.delta"})


class WebhookHold:
    """One stream's hold; `feed` and `end` take the items the stream guard let out and return those to send."""

    def __init__(self, scan: Scan, api: str) -> None:
        self.scan = scan
        self.api = api
        windows = [rule.settings.stream_window for rule in scan.rules.webhooks if rule.action == "block"]
        self.holds = bool(windows)
        """Whether items wait for a verdict (a blocking rule applies) or flow (only `log` rules)."""
        sized = [window for window in windows if window is not None]
        self.window = min(sized) if windows and len(sized) == len(windows) else None
        """Characters of answer between verdicts; None: one verdict, at the end."""
        self.parts: dict[Any, list[str]] = {}
        self.held: list[dict[str, Any]] = []
        self.unjudged = 0

    @classmethod
    def of(cls, scan: Scan | None, api: str) -> WebhookHold | None:
        """The hold for a stream, or None when no webhook rule applies to its answer."""
        return cls(scan, api) if scan is not None and scan.rules.webhooks else None

    @property
    def text(self) -> str:
        """The answer so far: each part's text, parts one per line."""
        return "\n".join("".join(pieces) for pieces in self.parts.values())

    async def feed(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for item in items:
            self._read(item)
        if not self.holds:
            return items
        self.held.extend(items)
        if self.window is None or self.unjudged < self.window:
            return []
        await self.scan.judge(self.text, blocking=True)
        self.unjudged = 0
        released, self.held = self.held, []
        return released

    async def end(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The stream ended (`items`: what the stream guard let out last): the verdict of every rule on the whole
        answer, then what was held; raises `GuardrailBlocked`."""
        for item in items:
            self._read(item)
        # A window's verdict on this very text stands for the blocking rules; the others are asked once, here.
        judged = self.window is not None and self.unjudged == 0
        await self.scan.judge(self.text, blocking=False if judged else None)
        released, self.held = [*self.held, *items], []
        return released

    def _read(self, item: dict[str, Any]) -> None:
        for key, piece in _pieces(self.api, item):
            if piece:
                self.parts.setdefault(key, []).append(piece)
                self.unjudged += len(piece)


def _pieces(api: str, item: dict[str, Any]) -> list[tuple[Any, str]]:
    """(part, text) of the answer text in one streamed item."""
    found: list[tuple[Any, str]] = []
    if api == "openai":
        for choice in item.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            index = choice.get("index", 0)
            if isinstance(delta.get("content"), str):
                found.append(((index, -1), delta["content"]))
            for call in delta.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    found.append(((index, call.get("index", 0)), function["arguments"]))
    elif api == "anthropic":
        delta = item.get("delta")
        if item.get("type") == "content_block_delta" and isinstance(delta, dict):
            index = item.get("index", 0)
            found.extend((index, delta[field]) for field in _MESSAGES_FIELDS if isinstance(delta.get(field), str))
    elif item.get("type") in _RESPONSES_DELTAS and isinstance(item.get("delta"), str):
        found.append(((item.get("output_index"), item.get("content_index")), item["delta"]))
    return found
