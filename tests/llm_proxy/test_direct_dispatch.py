"""Chat completions and messages answer the same with the direct dispatch on and off (`create_app(direct=...)`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.llm_proxy.conftest import KEY, LIMITED_KEY, serve_gateway, settings_for
from tests.llm_proxy.mock_provider import MockProvider, status

pytestmark = pytest.mark.anyio

CHAT = {"model": "mock/gpt", "messages": [{"role": "user", "content": "hello"}]}
MESSAGES = {"model": "mock/claude", "max_tokens": 16, "messages": [{"role": "user", "content": "hello"}]}
LLM_RECORDS = 10
"""One per request but the 405 (streams' once they have ended)."""
VARYING_HEADERS = {"date", "content-length"}  # content-length follows the generated ids in the body


def requests() -> list[tuple[str, str, dict[str, str], Any, bool]]:
    """(method, path, headers, JSON body or raw bytes, whether the mock fails first)"""
    auth = {"authorization": f"Bearer {KEY}"}
    return [
        ("POST", "/v1/chat/completions", auth, CHAT, False),
        ("POST", "/v1/chat/completions", auth, {**CHAT, "stream": True}, False),
        ("POST", "/v1/chat/completions", auth, CHAT, True),
        ("POST", "/v1/chat/completions", {}, CHAT, False),
        ("POST", "/v1/chat/completions", {"authorization": f"Bearer {LIMITED_KEY}"}, CHAT, False),
        ("POST", "/v1/chat/completions", auth, b"{not json", False),
        ("POST", "/v1/chat/completions", auth, {"messages": []}, False),
        ("GET", "/v1/chat/completions", auth, None, False),
        ("POST", "/v1/messages", {"x-api-key": KEY}, MESSAGES, False),
        ("POST", "/v1/messages", {"x-api-key": KEY}, {**MESSAGES, "stream": True}, False),
        ("POST", "/v1/messages", {}, MESSAGES, False),
    ]


def normalized(response: httpx2.Response) -> dict[str, Any]:
    text = response.text
    for field in ('"id":', '"created":'):  # the proxy's own generated ids and timestamps
        while field in text:
            start = text.index(field)
            end = min(i for i in (text.find(",", start), text.find("}", start)) if i >= 0)
            text = text[:start] + text[end:]
    headers = {k: v for k, v in response.headers.items() if k not in VARYING_HEADERS}
    return {"status": response.status_code, "headers": headers, "body": text}


async def answers(tmp_path: Path, direct: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    mock = MockProvider()
    await mock.start()
    providers = {
        "mock": {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-mock"}]},
    }
    settings = settings_for(tmp_path, providers, llm={"max_retries": 0, "breaker_failures": 50})
    got = []
    try:
        async with serve_gateway(settings, direct=direct) as gateway, httpx2.AsyncClient(base_url=gateway.url) as http:
            for number, (method, path, headers, body, fails) in enumerate(requests()):
                if fails:
                    mock.queue(status(503))
                sent = {**headers, "x-request-id": f"req-{number}", "content-type": "application/json"}
                raw = body if isinstance(body, bytes) else None
                json_body = None if raw is not None or body is None else body
                response = await http.request(method, path, headers=sent, json=json_body, content=raw)
                got.append(normalized(response))
            records = await gateway.wait_records(LLM_RECORDS)
    finally:
        await mock.close()
    audit = []
    for record in sorted(records, key=lambda record: record.request_id):
        row = {k: v for k, v in record.as_row().items() if k not in {"latency_ms", "ts", "key_id"}}  # key_id: per store
        row["details"] = {k: v for k, v in row["details"].items() if not k.endswith("_ms")}
        audit.append(row)
    return got, audit


async def test_chat_and_messages_answer_the_same_with_the_direct_dispatch(tmp_path: Path) -> None:
    direct, direct_audit = await answers(tmp_path / "direct", True)
    starlette, starlette_audit = await answers(tmp_path / "starlette", False)
    assert direct == starlette
    assert direct_audit == starlette_audit
    assert [answer["status"] for answer in direct][:4] == [200, 200, 503, 401]
