"""Runs one golden translation case: each direction's input through the code, to a JSON-comparable result."""

from __future__ import annotations

import json
from typing import Any

from llm_proxy.errors import UpstreamError
from llm_proxy.providers._registry import PROVIDERS
from llm_proxy.providers.base import Attempt
from llm_proxy.wire import anthropic, anthropic_inbound, gemini
from llm_proxy.wire.anthropic_stream import ChunksToEvents, EventsToChunks
from toolpolicy.settings import ProviderSettings


def _chunks_to_events(case: dict[str, Any]) -> list[dict[str, Any]]:
    translate = ChunksToEvents(case["model"], input_tokens=case["input_tokens"], message_id="msg_golden")
    events = [event for chunk in case["input"] for event in translate.feed(chunk)]
    return events + translate.finish()


def _events_to_chunks(case: dict[str, Any]) -> list[dict[str, Any]]:
    translate = EventsToChunks(case.get("json_tool"), created=0)
    return [chunk for event in case["input"] for chunk in translate.feed(event)]


def _events_error(case: dict[str, Any]) -> dict[str, Any]:
    try:
        _events_to_chunks(case)
    except UpstreamError as exc:
        return {"error": type(exc).__name__, "status": getattr(exc, "upstream_status", None), "retry": exc.retry_target}
    raise AssertionError("an error event must raise")


def _gemini_chunks(case: dict[str, Any]) -> list[dict[str, Any]]:
    translate = gemini.GeminiToChunks(case["model"], created=0)
    return [chunk for response in case["input"] for chunk in translate.feed(response)] + translate.finish()


class FakeUpstream:
    """Stands in for the aiohttp client: records what an adapter posts and answers a canned JSON object."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.posted: list[dict[str, Any]] = []

    async def post_json(self, provider: str, url: str, headers: Any, payload: Any) -> tuple[dict[str, Any], bytes]:
        self.posted.append({"url": url, "headers": dict(headers), "body": payload})
        return self.answer, json.dumps(self.answer).encode()


async def _through_adapter(case: dict[str, Any], kind: str, op: str) -> dict[str, Any]:
    data = case["input"]
    upstream = FakeUpstream(data["response"])
    settings = ProviderSettings.model_validate({"kind": kind, **data.get("provider", {})})
    adapter = PROVIDERS[kind]("p", settings, upstream)  # type: ignore[arg-type]
    reply = await adapter.send(Attempt(op, case["model"], data["request"], "secret-key"))  # type: ignore[arg-type]
    usage = None if reply.usage is None else [reply.usage.tokens_in, reply.usage.tokens_out, reply.usage.cached_tokens]
    body = dict(reply.body)
    if "created" in body and "created" not in data["response"]:
        body["created"] = 0  # stamped at translation time
    return {"upstream_request": upstream.posted[0], "client_response": body, "usage": usage}


async def run_case(case: dict[str, Any]) -> Any:
    direction = case["direction"]
    data = case["input"]
    if direction == "chat_to_messages":
        body, json_tool = anthropic.chat_to_messages(data, case["model"])
        return {"body": body, "json_tool": json_tool}
    if direction == "message_to_completion":
        return anthropic.message_to_completion(data, case.get("json_tool"), created=0)
    if direction == "events_to_chunks":
        return _events_to_chunks(case)
    if direction == "events_to_chunks_error":
        return _events_error(case)
    if direction == "messages_to_chat":
        return anthropic_inbound.messages_to_chat(data, case["model"])
    if direction == "completion_to_message":
        return anthropic_inbound.completion_to_message(data, case["model"])
    if direction == "chunks_to_events":
        return _chunks_to_events(case)
    if direction == "chat_to_gemini":
        return gemini.chat_to_gemini(data)
    if direction == "gemini_to_completion":
        return gemini.gemini_to_completion(data, case["model"], created=0)
    if direction == "gemini_to_chunks":
        return _gemini_chunks(case)
    if direction == "adapter":
        return await _through_adapter(case, case["kind"], case["op"])
    raise ValueError(f"unknown golden direction {direction!r}")


if __name__ == "__main__":
    # `python -m tests.llm_proxy.golden`: rewrite every fixture's `expected` after an intended change; review the diff.
    import asyncio
    from pathlib import Path

    for path in sorted((Path(__file__).parents[1] / "fixtures" / "llm_proxy").glob("*.json")):
        case = json.loads(path.read_text())
        case["expected"] = asyncio.run(run_case(case))
        path.write_text(json.dumps(case, indent=2, ensure_ascii=False) + "\n")
