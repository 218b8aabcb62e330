"""Golden files for every translation direction: a request and the expected upstream body, an upstream answer
and the expected client body, each streaming event type. `tests/fixtures/llm_proxy/*.json` hold input and expected
output side by side; a change in a translation shows up as a diff of one of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.llm_proxy.golden import run_case

pytestmark = pytest.mark.anyio
FIXTURES = Path(__file__).parents[1] / "fixtures" / "llm_proxy"
CASES = sorted(FIXTURES.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text())
    return case


@pytest.mark.parametrize("path", CASES, ids=[path.stem for path in CASES])
async def test_translation_matches_its_golden_file(path: Path) -> None:
    case = load(path)
    assert await run_case(case) == case["expected"]


def test_every_direction_and_stream_event_type_has_a_golden_file() -> None:
    cases = [load(path) for path in CASES]
    directions = {case["direction"] for case in cases}
    assert {
        "chat_to_messages",
        "message_to_completion",
        "events_to_chunks",
        "events_to_chunks_error",
        "messages_to_chat",
        "completion_to_message",
        "chunks_to_events",
        "chat_to_gemini",
        "gemini_to_completion",
        "gemini_to_chunks",
        "adapter",
    } <= directions
    anthropic_events = {e["type"] for c in cases if c["direction"].startswith("events_to") for e in c["input"]}
    assert anthropic_events >= {
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "error",
    }
    produced = {e["type"] for c in cases if c["direction"] == "chunks_to_events" for e in c["expected"]}
    assert produced == anthropic_events - {"error"}
    adapters = {case["kind"] for case in cases if case["direction"] == "adapter"}
    assert adapters == {"openai", "anthropic", "gemini", "azure"}
