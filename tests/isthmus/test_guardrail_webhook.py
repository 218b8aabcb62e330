"""`detect: webhook` against local mock services in OpenAI moderation and Azure Content Safety shapes: verdicts
block or log, a service that hangs past the timeout fails open or closed per rule, and a chat request is refused
through the whole gateway. Streamed answers (read through the openai SDK) are held for a blocking rule's verdict,
whole or window by window, and flow under a logging one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import anyio
import openai
import pytest
from aiohttp import web

from isthmus.guardrail_webhook import AiohttpWebhookPost
from tests.llm_proxy.conftest import KEY, Gateway, serve_gateway, settings_for
from tests.llm_proxy.mock_provider import MockProvider, openai_frames, stream_frames
from toolpolicy.audit import AuditRecord
from toolpolicy.errors import GuardrailBlocked
from toolpolicy.guardrails import Guardrails, GuardrailSettings

pytestmark = pytest.mark.anyio


class Services:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any], str | None]] = []
        self.url = ""
        self.release = asyncio.Event()

    async def moderations(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.seen.append(("openai", body, request.headers.get("Authorization")))
        hit = "forbidden" in body["input"]
        return web.json_response(
            {"id": "modr-1", "results": [{"flagged": hit, "categories": {"harassment": hit, "violence": False}}]}
        )

    async def analyze(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.seen.append(("azure", body, request.headers.get("Ocp-Apim-Subscription-Key")))
        severity = 4 if "forbidden" in body["text"] else 0
        return web.json_response({"categoriesAnalysis": [{"category": "Violence", "severity": severity}]})

    async def hang(self, request: web.Request) -> web.Response:
        await self.release.wait()  # never set: the client's timeout ends the call
        return web.json_response({})


@pytest.fixture
async def services() -> AsyncIterator[Services]:
    found = Services()
    app = web.Application()
    app.router.add_post("/v1/moderations", found.moderations)
    app.router.add_post("/contentsafety/text:analyze", found.analyze)
    app.router.add_post("/hang", found.hang)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    found.url = f"http://127.0.0.1:{port}"
    try:
        yield found
    finally:
        found.release.set()
        await runner.cleanup()


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    provider = MockProvider()
    await provider.start()
    try:
        yield provider
    finally:
        await provider.close()


def rule(name: str, action: str, webhook: dict[str, Any]) -> GuardrailSettings:
    return GuardrailSettings.model_validate(
        {"name": name, "detect": "webhook", "action": action, "default": True, "webhook": webhook}
    )


async def test_openai_moderation_shape_blocks_and_audits_its_categories(services: Services) -> None:
    records: list[AuditRecord] = []
    post = AiohttpWebhookPost()
    hook = {"kind": "openai_moderation", "url": f"{services.url}/v1/moderations", "headers": {"Authorization": "B x"}}
    guardrails = Guardrails(
        [rule("moderation", "block", {**hook, "model": "omni-moderation-latest"})], post=post, emit=records.append
    )
    try:
        scan = guardrails.scan(None, "input", request_id="r", target="m")
        assert scan is not None
        await scan.remote({"messages": [{"role": "user", "content": "all fine"}]})
        with pytest.raises(GuardrailBlocked) as caught:
            await scan.remote({"messages": [{"role": "user", "content": "something forbidden"}]})
    finally:
        await post.close()
    assert caught.value.rule == "moderation" and "forbidden" not in caught.value.message
    assert services.seen[0] == ("openai", {"input": "all fine", "model": "omni-moderation-latest"}, "B x")
    (record,) = records
    assert record.details["entities"] == {"harassment": 1} and "forbidden" not in repr(record)


async def test_azure_content_safety_shape_logs_by_severity(services: Services) -> None:
    records: list[AuditRecord] = []
    post = AiohttpWebhookPost()
    hook = {
        "kind": "azure_content_safety",
        "url": f"{services.url}/contentsafety/text:analyze",
        "headers": {"Ocp-Apim-Subscription-Key": "az"},
        "categories": ["Violence"],
        "threshold": 4,
    }
    guardrails = Guardrails([rule("safety", "log", hook)], post=post, emit=records.append)
    try:
        scan = guardrails.scan(None, "tool_output", request_id="r", target="fx/echo")
        assert scan is not None
        await scan.remote({"content": ["a forbidden thing"]}, everything=True)
        scan.report()
    finally:
        await post.close()
    assert services.seen == [("azure", {"text": "a forbidden thing", "categories": ["Violence"]}, "az")]
    assert [(r.decision, r.details["entities"]) for r in records] == [("log", {"Violence": 1})]


@pytest.mark.parametrize(("on_error", "blocked"), [("allow", False), ("block", True)])
async def test_a_service_that_times_out_fails_open_or_closed(services: Services, on_error: str, blocked: bool) -> None:
    post = AiohttpWebhookPost()
    hook = {"kind": "openai_moderation", "url": f"{services.url}/hang", "timeout": 0.2, "on_error": on_error}
    guardrails = Guardrails([rule("moderation", "block", hook)], post=post)
    scan = guardrails.scan(None, "input", request_id="r", target="m")
    assert scan is not None
    try:
        if blocked:
            with pytest.raises(GuardrailBlocked):
                await scan.remote({"input": "anything"})
            assert scan.hits == {}  # reported with the block
        else:
            await scan.remote({"input": "anything"})
            assert scan.hits == {}
    finally:
        await post.close()


async def test_a_chat_request_is_refused_through_the_gateway(
    tmp_path: Path, mock: MockProvider, services: Services
) -> None:
    providers = {"mock": {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-mock"}]}}
    hook = {"kind": "openai_moderation", "url": f"{services.url}/v1/moderations"}
    rules = [{"name": "moderation", "detect": "webhook", "action": "block", "default": True, "webhook": hook}]
    async with serve_gateway(settings_for(tmp_path, providers, guardrails=rules)) as gateway:
        async with openai.AsyncOpenAI(base_url=gateway.v1, api_key=KEY, max_retries=0) as sdk:
            ok = await sdk.chat.completions.create(model="mock/m", messages=[{"role": "user", "content": "hi"}])
            with pytest.raises(openai.BadRequestError) as caught:
                await sdk.chat.completions.create(
                    model="mock/m", messages=[{"role": "user", "content": "forbidden words"}]
                )
    assert ok.choices[0].message.content == "echo:hi"
    assert caught.value.code == "guardrail_blocked" and "moderation" in caught.value.message
    assert len(mock.seen) == 1
    # The answer went to the service too (output), and both texts as the client and model wrote them.
    assert [body.get("input") for _, body, _ in services.seen] == ["hi", "echo:hi", "forbidden words"]


# --- streamed answers ------------------------------------------------------------------------------------------------


async def guardrail_records(gateway: Gateway, count: int) -> list[AuditRecord]:
    with anyio.fail_after(30):
        while len(found := [r for r in gateway.records if r.kind == "guardrail"]) < count:
            await anyio.sleep(0.01)
    return found


def output_rule(services: Services, action: str, **hook: Any) -> list[dict[str, Any]]:
    webhook = {"kind": "openai_moderation", "url": f"{services.url}/v1/moderations", **hook}
    return [
        {"name": "moderation", "detect": "webhook", "action": action, "apply_to": ["output"], "default": True}
        | {"webhook": webhook}
    ]


def gateway_for(tmp_path: Path, mock: MockProvider, rules: list[dict[str, Any]]) -> Any:
    providers = {"mock": {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-mock"}]}}
    return serve_gateway(settings_for(tmp_path, providers, guardrails=rules))


async def stream_chat(gateway: Gateway, text: str) -> tuple[str, openai.APIError | None]:
    """What a streamed chat answer showed before it ended, and the error it ended with, if any."""
    received = ""
    async with openai.AsyncOpenAI(base_url=gateway.v1, api_key=KEY, max_retries=0) as sdk:
        stream = await sdk.chat.completions.create(
            model="mock/m", messages=[{"role": "user", "content": text}], stream=True
        )
        try:
            async for chunk in stream:
                received += "".join(choice.delta.content or "" for choice in chunk.choices)
        except openai.APIError as exc:
            return received, exc
    return received, None


async def test_a_blocking_webhook_holds_a_streamed_answer_for_one_verdict_on_the_whole_of_it(
    tmp_path: Path, mock: MockProvider, services: Services
) -> None:
    async with gateway_for(tmp_path, mock, output_rule(services, "block")) as gateway:
        passed, none = await stream_chat(gateway, "hello there friend")
        shown, error = await stream_chat(gateway, "a forbidden word")
        records = await guardrail_records(gateway, 1)
    assert (passed, none) == ("echo:hellotherefriend", None)  # the mock streams a word per chunk, spaces dropped
    assert shown == ""  # held, then refused: not a word of the answer went out
    assert error is not None and "moderation" in error.message and "forbidden" not in error.message
    # One verdict per answer, on the whole of it.
    assert [body["input"] for _, body, _ in services.seen] == ["echo:hellotherefriend", "echo:aforbiddenword"]
    (record,) = records
    assert (record.decision, record.details["surface"], record.details["entities"]) == (
        "block",
        "output",
        {"harassment": 1},
    )


async def test_a_stream_window_lets_judged_text_out_and_cuts_the_stream_at_the_window_that_is_flagged(
    tmp_path: Path, mock: MockProvider, services: Services
) -> None:
    words = [f"word{index:02d}" for index in range(40)]
    text = " ".join([*words, "forbidden", "tail"])
    mock.queue(stream_frames(openai_frames({"model": "m"}, text)))
    async with gateway_for(tmp_path, mock, output_rule(services, "block", stream_window=64)) as gateway:
        shown, error = await stream_chat(gateway, "anything")
    judged = [body["input"] for _, body, _ in services.seen]
    assert error is not None and "moderation" in error.message
    assert "forbidden" in judged[-1] and all("forbidden" not in seen for seen in judged[:-1])
    # Each verdict is on the whole answer so far, a window further on; what went out was judged clean first.
    assert len(judged) >= 3 and all(later.startswith(earlier) for earlier, later in pairwise(judged))
    windows = judged[:-1]  # the last verdict may be the end's, on less than a window more
    assert all(len(later) - len(earlier) >= 64 for earlier, later in pairwise(windows))
    assert shown and "forbidden" not in shown and judged[-2].startswith(shown)


async def test_a_logging_webhook_lets_the_stream_flow_and_audits_its_verdict_at_the_end(
    tmp_path: Path, mock: MockProvider, services: Services
) -> None:
    async with gateway_for(tmp_path, mock, output_rule(services, "log")) as gateway:
        shown, error = await stream_chat(gateway, "a forbidden word")
        (record,) = await guardrail_records(gateway, 1)
    assert (shown, error) == ("echo:aforbiddenword", None)
    assert [body["input"] for _, body, _ in services.seen] == ["echo:aforbiddenword"]
    assert (record.decision, record.details["surface"], record.details["entities"]) == (
        "log",
        "output",
        {"harassment": 1},
    )


async def test_a_blocked_responses_stream_fails_without_its_text_and_a_clean_one_completes(
    tmp_path: Path, mock: MockProvider, services: Services
) -> None:
    async with gateway_for(tmp_path, mock, output_rule(services, "block")) as gateway:
        async with openai.AsyncOpenAI(base_url=gateway.v1, api_key=KEY, max_retries=0) as sdk:
            clean = [event async for event in await sdk.responses.create(model="mock/m", input="fine", stream=True)]
            blocked = [
                event async for event in await sdk.responses.create(model="mock/m", input="forbidden", stream=True)
            ]
    assert clean[-1].type == "response.completed" and clean[-1].response.output_text == "echo:fine"
    assert [event.sequence_number for event in clean] == list(range(len(clean)))
    kinds = [event.type for event in blocked]
    assert kinds[-2:] == ["error", "response.failed"]
    assert not any(kind.startswith("response.output_text") for kind in kinds)
    assert "forbidden" not in repr(blocked[-2:]) and "moderation" in blocked[-2].message  # type: ignore[union-attr]
    assert [event.sequence_number for event in blocked] == list(range(len(blocked)))
