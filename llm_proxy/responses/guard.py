"""Output guardrails on a streamed Responses answer.

Text and call-argument deltas go through a stream scanner per (output item, content part); the remainder goes out as
one more delta just before the part's (or call's) `.done` event. The snapshots a stream also carries (`.done`
events, finished items, the final response, which is what gets stored) are redacted whole, without counting again.
The guard numbers the events it lets out, as it may add deltas.
"""

from __future__ import annotations

from typing import Any

from toolpolicy.guardrails import Scan, StreamScanner

_TEXT_DELTA = "response.output_text.delta"
_ARGS_DELTA = "response.function_call_arguments.delta"
_DONE = {"response.output_text.done": _TEXT_DELTA, "response.function_call_arguments.done": _ARGS_DELTA}
_SNAPSHOTS = frozenset(
    {
        "response.output_text.done",
        "response.function_call_arguments.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
        "response.incomplete",
        "response.failed",
    }
)


class ResponsesStreamGuard:
    def __init__(self, scan: Scan) -> None:
        self.scan = scan
        self.scanners: dict[tuple[Any, Any], tuple[StreamScanner, dict[str, Any]]] = {}
        """(output index, content index) -> its scanner, and the last delta event (a template for the remainder)."""
        self.sequence = -1

    def _number(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for event in events:
            if "sequence_number" in event:
                self.sequence += 1
                event["sequence_number"] = self.sequence
        return events

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        if kind in (_TEXT_DELTA, _ARGS_DELTA) and isinstance(event.get("delta"), str):
            key = (event.get("output_index"), event.get("content_index"))
            entry = self.scanners.get(key)
            if entry is None:
                entry = self.scanners[key] = (self.scan.stream(), event)
            self.scanners[key] = (entry[0], event)
            event["delta"] = entry[0].feed(event["delta"])
            return self._number([event])
        out: list[dict[str, Any]] = []
        if kind in _DONE:
            out.extend(self._flush((event.get("output_index"), event.get("content_index"))))
        if kind in _SNAPSHOTS:
            for field in ("text", "arguments", "part", "item", "response"):
                if field in event:
                    event[field] = self._snapshot(field, event[field])
        return self._number([*out, event])

    def _snapshot(self, field: str, value: Any) -> Any:
        if isinstance(value, str):
            return self.scan.quiet(value)
        if field == "response" and isinstance(value, dict):
            value["output"] = self.scan.json(value.get("output") or [], quiet=True)
            return value
        return self.scan.json({"content": value}, quiet=True)["content"]

    def _flush(self, key: tuple[Any, Any]) -> list[dict[str, Any]]:
        entry = self.scanners.pop(key, None)
        if entry is None:
            return []
        rest = entry[0].flush()
        return [{**entry[1], "delta": rest}] if rest else []

    def end(self) -> list[dict[str, Any]]:
        """Deltas still held when the stream ends without their `.done` events."""
        return self._number([event for key in list(self.scanners) for event in self._flush(key)])
