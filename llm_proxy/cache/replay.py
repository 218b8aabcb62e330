"""A stored answer (the route's non-stream body) replayed as the route's own stream items, usage included.

- chat: a role-and-content chunk, a tool-calls chunk, a finish chunk per choice, then the usage chunk (empty
  `choices`) when the client asked for it with `stream_options.include_usage`;
- Messages: `message_start`, each content block's start, delta(s) and stop, `message_delta` with the stop reason
  and usage, `message_stop`;
- Responses: `response.created`, `response.in_progress`, each output item's events, `response.completed`, numbered
  from 0. The response and every output item get fresh ids (a replayed response is a new response).

The stored body is never changed: each replay copies what it sends.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from llm_proxy.responses.shapes import FUNCTION_CALL_PREFIX, MESSAGE_PREFIX, RESPONSE_PREFIX, new_id
from llm_proxy.wire import openai


def chat_chunks(body: dict[str, Any], *, include_usage: bool) -> list[dict[str, Any]]:
    completion_id, model, created = str(body.get("id")), str(body.get("model")), int(body.get("created") or 0)
    chunks: list[dict[str, Any]] = []

    def chunk(choice: dict[str, Any]) -> None:
        chunks.append(openai.chunk(completion_id, model, created, [choice]))

    for choice in body.get("choices") or ():
        index = int(choice.get("index", 0))
        message = choice.get("message") or {}
        chunk(openai.delta_choice({"role": "assistant", "content": message.get("content")}, index=index))
        calls = message.get("tool_calls") or []
        if calls:
            deltas = [{"index": position, **copy.deepcopy(call)} for position, call in enumerate(calls)]
            chunk(openai.delta_choice({"tool_calls": deltas}, index=index))
        chunk(openai.delta_choice({}, choice.get("finish_reason"), index=index))
    if include_usage:
        chunks.append({**openai.chunk(completion_id, model, created, []), "usage": copy.deepcopy(body.get("usage"))})
    return chunks


def message_events(body: dict[str, Any]) -> list[dict[str, Any]]:
    usage = dict(body.get("usage") or {})
    start = {name: copy.deepcopy(value) for name, value in body.items() if name not in ("content", "usage")}
    start.update(content=[], stop_reason=None, stop_sequence=None, usage={**usage, "output_tokens": 1})
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(body.get("content") or ()):
        events += _block_events(index, block)
    delta = {"stop_reason": body.get("stop_reason"), "stop_sequence": body.get("stop_sequence")}
    events.append({"type": "message_delta", "delta": delta, "usage": usage})
    events.append({"type": "message_stop"})
    return events


def _block_events(index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
    kind = block.get("type")
    deltas: list[dict[str, Any]] = []
    if kind == "text":
        opening: dict[str, Any] = {**copy.deepcopy(block), "text": ""}
        deltas.append({"type": "text_delta", "text": block.get("text") or ""})
    elif kind == "tool_use":
        opening = {**copy.deepcopy(block), "input": {}}
        deltas.append({"type": "input_json_delta", "partial_json": json.dumps(block.get("input") or {})})
    elif kind == "thinking":
        opening = {**copy.deepcopy(block), "thinking": "", "signature": ""}
        deltas.append({"type": "thinking_delta", "thinking": block.get("thinking") or ""})
        deltas.append({"type": "signature_delta", "signature": block.get("signature") or ""})
    else:
        opening = copy.deepcopy(block)
    events: list[dict[str, Any]] = [{"type": "content_block_start", "index": index, "content_block": opening}]
    events += [{"type": "content_block_delta", "index": index, "delta": delta} for delta in deltas]
    events.append({"type": "content_block_stop", "index": index})
    return events


def fresh_response(body: dict[str, Any], created_at: int) -> dict[str, Any]:
    """A copy of a stored response with a new id, creation time and output item ids."""
    response = copy.deepcopy(body)
    response["id"], response["created_at"] = new_id(RESPONSE_PREFIX), created_at
    for item in response.get("output") or ():
        if item.get("type") == "message":
            item["id"] = new_id(MESSAGE_PREFIX)
        elif item.get("type") == "function_call":
            item["id"] = new_id(FUNCTION_CALL_PREFIX)
    return response


def response_events(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The events of `response` (already given fresh ids by `fresh_response`)."""
    events: list[dict[str, Any]] = []

    def event(kind: str, **fields: Any) -> None:
        events.append({"type": kind, "sequence_number": len(events), **fields})

    pending = {**copy.deepcopy(response), "status": "in_progress", "output": [], "usage": None}
    event("response.created", response=pending)
    event("response.in_progress", response=copy.deepcopy(pending))
    for index, item in enumerate(response.get("output") or ()):
        kind = item.get("type")
        if kind == "message":
            event(
                "response.output_item.added", output_index=index, item={**item, "content": [], "status": "in_progress"}
            )
            for part_index, part in enumerate(item.get("content") or ()):
                where = {"item_id": item["id"], "output_index": index, "content_index": part_index}
                text = str(part.get("text") or part.get("refusal") or "")
                empty = {**part, "text": ""} if part.get("type") == "output_text" else {**part, "refusal": ""}
                event("response.content_part.added", **where, part=empty)
                if part.get("type") == "output_text":
                    event("response.output_text.delta", **where, delta=text, logprobs=[])
                    event("response.output_text.done", **where, text=text, logprobs=[])
                else:
                    event("response.refusal.delta", **where, delta=text)
                    event("response.refusal.done", **where, refusal=text)
                event("response.content_part.done", **where, part=copy.deepcopy(part))
        elif kind == "function_call":
            event(
                "response.output_item.added",
                output_index=index,
                item={**item, "arguments": "", "status": "in_progress"},
            )
            where = {"item_id": item["id"], "output_index": index}
            event("response.function_call_arguments.delta", **where, delta=item.get("arguments") or "")
            event(
                "response.function_call_arguments.done", **where, name=item.get("name"), arguments=item.get("arguments")
            )
        else:
            event("response.output_item.added", output_index=index, item=copy.deepcopy(item))
        event("response.output_item.done", output_index=index, item=copy.deepcopy(item))
    event("response.completed", response=copy.deepcopy(response))
    return events
