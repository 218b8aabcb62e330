"""The stdio mock answers both eras like the HTTP one, in order and in one block; the driver measures it."""

from __future__ import annotations

import json
import subprocess
import sys

from bench.loadgen import LoadResult
from bench.mock_mcp_stdio import handle
from bench.procs import child_environment
from bench.scenarios import MODERN_META


def _lines(block: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in block.splitlines()]


def test_requests_are_answered_in_order_and_notifications_not_at_all() -> None:
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hi"}}},
        {"jsonrpc": "2.0", "id": 3, "method": "resources/list"},
    ]
    answers = _lines(handle([json.dumps(m).encode() for m in messages]))
    assert [a["id"] for a in answers] == [1, 2, 3]
    assert answers[0]["result"]["protocolVersion"] == "2025-06-18"  # type: ignore[index]
    assert answers[1]["result"]["structuredContent"] == {"result": "hi"}  # type: ignore[index]
    assert answers[2]["error"]["code"] == -32601  # type: ignore[index]


def test_2026_requests_get_the_envelope() -> None:
    discover = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": MODERN_META}}
    listed = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": MODERN_META}}
    first, second = _lines(handle([json.dumps(discover).encode(), json.dumps(listed).encode(), b"not json"]))[:2]
    assert first["result"]["supportedVersions"] == ["2026-07-28"]  # type: ignore[index]
    assert second["result"]["resultType"] == "complete"  # type: ignore[index]
    assert [tool["name"] for tool in second["result"]["tools"]] == ["echo", "add"]  # type: ignore[index]


def test_the_driver_keeps_calls_in_flight_and_checks_every_answer() -> None:
    argv = [sys.executable, "-m", "bench.stdio_driver", "--connections", "4", "--duration", "0.3", "--warmup", "0.1"]
    argv += ["--", sys.executable, "-m", "bench.mock_mcp_stdio"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, env=child_environment(None))
    assert done.returncode == 0, done.stderr
    result = LoadResult(**json.loads(done.stdout))
    assert result.connections == 4
    assert result.requests > 4
    assert result.errors == {"bad": 0}
    assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms
