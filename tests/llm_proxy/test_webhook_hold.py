"""`WebhookHold`: which streams wait for a verdict, on which text, and what goes out when (each API's item shapes),
against an in-process service that flags any text containing "bad"."""

from __future__ import annotations

from typing import Any

import pytest

from llm_proxy.webhook_hold import WebhookHold
from toolpolicy.errors import GuardrailBlocked
from toolpolicy.guardrails import Guardrails, GuardrailSettings, Scan

pytestmark = pytest.mark.anyio


class Service:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def __call__(self, url: str, headers: dict[str, str], body: dict[str, Any], timeout: float) -> dict[str, Any]:
        self.asked.append((url, body["input"]))
        return {"results": [{"flagged": "bad" in body["input"], "categories": {"hate": True}}]}


def scan_of(service: Service, *rules: tuple[str, str, int | None]) -> Scan:
    settings = [
        GuardrailSettings.model_validate(
            {
                "name": name,
                "detect": "webhook",
                "action": action,
                "default": True,
                "webhook": {"kind": "openai_moderation", "url": f"http://svc/{name}", "stream_window": window},
            }
        )
        for name, action, window in rules
    ]
    scan = Guardrails(settings, post=service).scan(None, "output", request_id="r", target="m")
    assert scan is not None
    return scan


def chat(content: str, index: int = 0) -> dict[str, Any]:
    return {"choices": [{"index": index, "delta": {"content": content}, "finish_reason": None}]}


def test_no_webhook_rule_means_no_hold() -> None:
    rules = [GuardrailSettings(name="pii", detect="pii", action="redact", default=True)]
    scan = Guardrails(rules).scan(None, "output", request_id="r", target="m")
    assert WebhookHold.of(scan, "openai") is None
    assert WebhookHold.of(None, "openai") is None


async def test_a_blocking_rule_holds_everything_until_the_end_and_judges_each_choice_apart() -> None:
    service = Service()
    hold = WebhookHold(scan_of(service, ("mod", "block", None)), "openai")
    items = [chat("hel"), chat("lo", index=1), chat("lo")]
    assert [await hold.feed([item]) for item in items] == [[], [], []]
    assert service.asked == []
    assert await hold.end([]) == items
    assert service.asked == [("http://svc/mod", "hello\nlo")]


async def test_a_block_at_the_end_raises_and_keeps_what_was_held() -> None:
    service = Service()
    scan = scan_of(service, ("mod", "block", None))
    hold = WebhookHold(scan, "anthropic")
    event = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a bad idea"}}
    assert await hold.feed([event]) == []
    with pytest.raises(GuardrailBlocked) as caught:
        await hold.end([])
    assert caught.value.rule == "mod"


async def test_windows_release_judged_text_and_only_blocking_rules_are_asked_before_the_end() -> None:
    service = Service()
    hold = WebhookHold(scan_of(service, ("mod", "block", 64), ("watch", "log", None)), "responses")
    delta = {"type": "response.output_text.delta", "output_index": 0, "content_index": 0}
    first = {**delta, "delta": "x" * 40}
    second = {**delta, "delta": "y" * 30}
    done = {"type": "response.output_text.done", "text": "ignored: a snapshot"}
    assert await hold.feed([first]) == []
    assert await hold.feed([second]) == [first, second]  # 70 characters: a verdict, then out
    assert service.asked == [("http://svc/mod", "x" * 40 + "y" * 30)]
    assert await hold.feed([{**delta, "delta": "z"}]) == []
    assert await hold.end([done]) == [{**delta, "delta": "z"}, done]
    whole = "x" * 40 + "y" * 30 + "z"
    assert service.asked[1:] == [("http://svc/mod", whole), ("http://svc/watch", whole)]


async def test_a_window_verdict_on_the_whole_answer_is_not_asked_again_at_the_end() -> None:
    service = Service()
    hold = WebhookHold(scan_of(service, ("mod", "block", 64), ("watch", "log", None)), "openai")
    item = chat("x" * 64)
    assert await hold.feed([item]) == [item]
    assert await hold.end([]) == []
    assert service.asked == [("http://svc/mod", "x" * 64), ("http://svc/watch", "x" * 64)]


async def test_a_rule_without_a_window_holds_the_whole_answer_whatever_the_others_say() -> None:
    hold = WebhookHold(scan_of(Service(), ("a", "block", 64), ("b", "block", None)), "openai")
    assert hold.window is None
    assert await hold.feed([chat("x" * 200)]) == []


async def test_log_rules_alone_let_items_flow_and_judge_at_the_end() -> None:
    service = Service()
    scan = scan_of(service, ("watch", "log", None))
    hold = WebhookHold(scan, "openai")
    call = {
        "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"q": "bad"}'}}]}}]
    }
    assert await hold.feed([call]) == [call]
    assert await hold.end([]) == []
    assert service.asked == [("http://svc/watch", '{"q": "bad"}')]
    assert scan.hits == {"watch": {"hate": 1}}
