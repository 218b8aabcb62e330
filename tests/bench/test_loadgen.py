"""wrk with the benchmark's Lua script: a real run against the mock, and the parsing of its summary."""

from __future__ import annotations

import json
import shutil

import anyio
import pytest

from bench.httpserver import Request, listen, response
from bench.loadgen import HttpRequest, LoadgenError, parse_summary, run_wrk
from bench.procs import free_port
from bench.scenarios import chat_body

pytestmark = pytest.mark.anyio
needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (make bench installs it)")


def test_the_summary_line_is_read_into_milliseconds_and_rates() -> None:
    out = (
        "Running 1s test\n"
        'BENCH_JSON {"requests":2000,"duration_us":2000000,"bytes":1,"errors":{"connect":0,"read":1,"write":0,'
        '"status":2,"timeout":0,"bad":3},"bad_sample":"status 200, body: {}",'
        '"latency_us":{"min":10,"mean":450.5,"max":9000,"p50":400,"p90":800,"p99":2500,"p999":8000}}\n'
    )
    result = parse_summary(out, connections=4)
    assert result.rps == 1000
    assert (result.p50_ms, result.p90_ms, result.p99_ms) == (0.4, 0.8, 2.5)
    assert result.error_count == 6 and result.bad_sample == "status 200, body: {}"


def test_output_without_a_summary_is_an_error_that_shows_it() -> None:
    with pytest.raises(LoadgenError, match="no summary:\nunable to connect"):
        parse_summary("unable to connect to 127.0.0.1:9", connections=1)


@needs_wrk
async def test_wrk_counts_answers_without_the_expected_text_as_bad(llm_mock: str) -> None:
    url = f"{llm_mock}/v1/chat/completions"
    body = chat_body("m1", stream=False)
    headers = (("Content-Type", "application/json"),)
    good = HttpRequest(url, body=body, headers=headers, expect="word word")
    wrong = HttpRequest(url, body=body, headers=headers, expect="not in the answer")
    missing = HttpRequest(f"{llm_mock}/v1/nothing", body=body, headers=headers)
    with anyio.fail_after(30):
        ok = await anyio.to_thread.run_sync(run_wrk, good, 2, 1)
        bad = await anyio.to_thread.run_sync(run_wrk, wrong, 2, 1)
        not_found = await anyio.to_thread.run_sync(run_wrk, missing, 1, 1)
    assert ok.requests > 100 and ok.error_count == 0
    assert bad.errors["bad"] == bad.requests > 100
    assert bad.bad_sample.startswith('status 200, body: {"id":"chatcmpl-bench"')
    assert not_found.errors["status"] == not_found.requests > 0


@needs_wrk
async def test_each_request_gets_its_own_json_rpc_id() -> None:
    ids: list[int] = []

    def record(request: Request) -> bytes:
        ids.append(json.loads(request.body)["id"])
        return response(200, b'{"result": "ok"}')

    port = free_port()
    server = await listen(record, "127.0.0.1", port)
    body = b'{"jsonrpc": "2.0", "id": __BENCH_ID__, "method": "tools/call"}'
    try:
        with anyio.fail_after(30):
            result = await anyio.to_thread.run_sync(
                run_wrk, HttpRequest(f"http://127.0.0.1:{port}/mcp", body=body, expect="ok"), 4, 1
            )
    finally:
        server.close()
    assert result.error_count == 0 and len(ids) >= result.requests > 100
    assert len(set(ids)) == len(ids)
