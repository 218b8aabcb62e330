"""Heavy request work leaves the event loop free: `/health` answers while a 5 MB `count_tokens` is tokenised, small
requests stay on the loop, and at most `offload.WORKERS` heavy jobs run at once."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx2
import pytest
import tiktoken
from hypothesis import given, settings, strategies as st

from llm_proxy import offload, tokens
from tests.llm_proxy.conftest import KEY, serve_gateway, settings_for

pytestmark = pytest.mark.anyio
ANTHROPIC = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
GATE_SECONDS = 10
"""How long the gated tokeniser waits for the test: only reached when it blocks the loop the test runs on."""


class GatedCounter:
    """Stands in for `tokens.count_text`: notes the thread it runs on, and holds a large count until released."""

    def __init__(self) -> None:
        self.threads: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.released_in_time: bool | None = None

    def __call__(self, enc: tiktoken.Encoding, texts: Iterable[str]) -> int:
        listed = list(texts)
        self.threads.append(threading.get_ident())
        if sum(map(len, listed)) > offload.INLINE_LIMIT:
            self.entered.set()
            self.released_in_time = self.release.wait(GATE_SECONDS)
        return sum(len(enc.encode_ordinary(text)) for text in listed)


async def test_health_answers_while_a_5mb_count_is_tokenised_on_a_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = GatedCounter()
    monkeypatch.setattr(tokens, "count_text", counter)
    big = "lorem ipsum dolor sit amet " * (5 * 1024 * 1024 // 27)
    loop_thread = threading.get_ident()
    order: list[str] = []
    counted: dict[str, Any] = {}
    async with serve_gateway(settings_for(tmp_path, {"echo": {"kind": "echo"}})) as gateway:
        async with httpx2.AsyncClient(base_url=gateway.url, headers=ANTHROPIC, timeout=60) as client:
            small = await client.post(
                "/v1/messages/count_tokens",
                json={"model": "echo/echo-1", "messages": [{"role": "user", "content": "hi"}]},
            )

            async def count_big() -> None:
                body = {"model": "echo/echo-1", "messages": [{"role": "user", "content": big}]}
                response = await client.post("/v1/messages/count_tokens", json=body)
                counted.update(status=response.status_code, **response.json())
                order.append("count")

            async with anyio.create_task_group() as group:
                group.start_soon(count_big)
                await anyio.to_thread.run_sync(counter.entered.wait, 2 * GATE_SECONDS)
                health = await client.get("/health")
                order.append("health")
                counter.release.set()
    assert small.status_code == 200 and counter.threads[0] == loop_thread  # small: on the loop, no thread hop
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert order == ["health", "count"] and counter.released_in_time is True
    assert counter.threads[1] != loop_thread
    enc = await tokens.load("o200k_base")
    assert counted == {"status": 200, "input_tokens": len(enc.encode_ordinary(big)) + 3 + 3}


async def test_small_work_runs_inline_and_large_work_on_a_worker_thread() -> None:
    loop_thread = threading.get_ident()
    assert await offload.run(offload.INLINE_LIMIT, threading.get_ident) == loop_thread
    assert await offload.run(offload.INLINE_LIMIT + 1, threading.get_ident) != loop_thread


async def test_at_most_workers_heavy_jobs_run_at_once() -> None:
    lock = threading.Lock()
    running = peak = 0
    release = threading.Event()

    def job() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(GATE_SECONDS)
        with lock:
            running -= 1

    async with anyio.create_task_group() as group:
        for _ in range(offload.WORKERS + 3):
            group.start_soon(offload.run, offload.INLINE_LIMIT + 1, job)
        with anyio.fail_after(GATE_SECONDS):
            while running < offload.WORKERS or offload.limiter().statistics().tasks_waiting < 3:
                await anyio.sleep(0.01)
        release.set()
    assert peak == offload.WORKERS


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text() | st.sampled_from(["<|endoftext|>", "\ud800", " ", "'s", "\n\n"])).map("".join))
def test_the_packed_count_equals_encode_ordinary(text: str) -> None:
    enc = tokens.encoding("o200k_base")
    assert tokens.count_text(enc, [text]) == len(enc.encode_ordinary(text))


def test_counting_builds_no_list_of_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    # A Python int per token holds the GIL for the whole list; the count must come from tiktoken's packed buffer.
    enc = tokens.encoding("cl100k_base")
    expected = len(enc.encode_ordinary("Hello, world! " * 100))

    def no_list(text: str) -> list[int]:
        raise AssertionError("count_text built a list of tokens")

    monkeypatch.setattr(enc, "encode_ordinary", no_list)
    assert tokens.count_text(enc, ["Hello, world! " * 100]) == expected
