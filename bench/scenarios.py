"""What is measured: the paths to the upstreams, and the request each scenario repeats on each path.

A path is one way to reach the mocks: `direct`, the `floor` pass-through, an Isthmus variant, or a peer. Scenarios:

- `chat`: a non-streamed chat completion;
- `stream`: the same, streamed (wrk measures throughput; `bench.streamclient` first-byte and inter-chunk timing);
- `stream-one`: the same stream with one content chunk (the mock's `-one` model), for `bench.instructions` only:
  its count is nearly all a stream's fixed cost (what is done before its first event, and its end), which the
  relay of `stream`'s sixteen chunks dilutes; a path that serves `stream` serves it;
- `mcp-modern`: `tools/call` of the echo tool, 2026-07-28 era (`MCP-Protocol-Version` header, `_meta` envelope);
- `mcp-legacy`: the same in a 2025-era session opened once with `initialize` (or without a session, when the
  server is stateless and gives no `Mcp-Session-Id`);
- `mcp-stdio`: the `mcp-modern` request to a gateway whose upstream is the mock MCP server over stdio
  (`bench.mock_mcp_stdio`); its `direct` figures come from `bench.stdio_driver`, the server driven over its pipes.

MCP requests are prepared through the path itself: the tool's name is looked up with `tools/list` (gateways
rename tools), and a legacy session is opened before the load starts.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.loadgen import HttpRequest
from bench.mock_llm import ONE_SUFFIX
from bench.procs import Proc

Scenario = Literal["chat", "stream", "stream-one", "mcp-modern", "mcp-legacy", "mcp-stdio"]
HTTP_SCENARIOS: tuple[Scenario, ...] = ("chat", "stream", "mcp-modern", "mcp-legacy")
"""What a path over HTTP to the HTTP mocks serves (every path but the stdio gateway)."""
SCENARIOS: tuple[Scenario, ...] = (*HTTP_SCENARIOS, "mcp-stdio")
LLM_SCENARIOS = frozenset({"chat", "stream", "stream-one"})
MODERN = "2026-07-28"
LEGACY = "2025-11-25"
ECHO_TEXT = "bench-echo-ok"
ID_PLACEHOLDER = "__BENCH_ID__"
"""Stands for the JSON-RPC id in an MCP request body; the load generator numbers each request there."""
CHAT_EXPECT = "word word"
STREAM_EXPECT = "[DONE]"
MESSAGES = [{"role": "user", "content": "Say eight words."}]
CLIENT_INFO = {"name": "isthmus-bench", "version": "1.0"}
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
    "io.modelcontextprotocol/clientCapabilities": {},
}


class SetupError(RuntimeError):
    """A scenario cannot run on a path; the message says why (it goes into the results)."""


@dataclass(frozen=True)
class Path:
    name: str
    kind: Literal["direct", "floor", "gateway", "peer"]
    base: str
    model: str = "mock-gpt"
    paced_model: str = "mock-gpt-paced"
    chat_path: str = "/v1/chat/completions"
    mcp_path: str | None = "/mcp"
    mcp_base: str | None = None
    """Where the MCP endpoint lives when not at `base` (the direct path has two mocks)."""
    llm_headers: tuple[tuple[str, str], ...] = ()
    mcp_headers: tuple[tuple[str, str], ...] = ()
    scenarios: frozenset[str] = frozenset(HTTP_SCENARIOS)
    proc: Proc | None = field(default=None, compare=False)
    note: str = ""
    metrics_token: str | None = None
    """An Isthmus gateway's `/metrics` token: its event-loop lag is scraped around each point (`bench.loop_lag`)."""


def chat_body(model: str, *, stream: bool) -> bytes:
    body: dict[str, Any] = {"model": model, "messages": MESSAGES, "max_tokens": 16}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


def llm_request(path: Path, scenario: Scenario) -> HttpRequest:
    stream = scenario != "chat"
    model = path.model + ONE_SUFFIX if scenario == "stream-one" else path.model
    return HttpRequest(
        url=path.base + path.chat_path,
        body=chat_body(model, stream=stream),
        headers=(("Content-Type", "application/json"), *path.llm_headers),
        expect=STREAM_EXPECT if stream else CHAT_EXPECT,
    )


def exchange(url: str, message: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
    """POST one JSON-RPC message; the status, the headers, and the JSON answer (from JSON or an event stream)."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname != "127.0.0.1":
        raise SetupError(f"the benchmark only targets 127.0.0.1, not {parts.hostname!r}")
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", target, body=json.dumps(message).encode(), headers=headers)
        answer = connection.getresponse()
        raw = answer.read()
        fields = {name.lower(): value for name, value in answer.getheaders()}
    except OSError as exc:
        raise SetupError(f"{url}: {exc}") from exc
    finally:
        connection.close()
    if not raw.strip():
        return answer.status, fields, None
    text = raw.decode("utf-8", "replace")
    if fields.get("content-type", "").startswith("text/event-stream"):
        datas = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
        text = next((d for d in reversed(datas) if d), "")
    try:
        return answer.status, fields, json.loads(text)
    except ValueError:
        return answer.status, fields, text[:300]


def _rpc(url: str, method: str, params: dict[str, Any], headers: dict[str, str], rid: int = 1) -> Any:
    status, fields, answer = exchange(url, {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}, headers)
    if status != 200 or not isinstance(answer, dict) or "result" not in answer:
        raise SetupError(f"{method} answered {status}: {str(answer)[:300]}")
    return answer["result"], fields


def _echo_tool(result: Any) -> str:
    names = [tool.get("name", "") for tool in result.get("tools", []) if isinstance(tool, dict)]
    for name in names:
        if name == "echo" or name.endswith(("__echo", "-echo", "_echo", ".echo")):
            return str(name)
    raise SetupError(f"no echo tool among {names}")


def mcp_request(path: Path, scenario: Scenario) -> HttpRequest:
    """The tools/call request of an MCP scenario, after looking the tool up (and opening a session) via `path`."""
    if path.mcp_path is None:
        raise SetupError(f"{path.name} has no MCP endpoint")
    url = (path.mcp_base or path.base) + path.mcp_path
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    headers.update(path.mcp_headers)
    if scenario in ("mcp-modern", "mcp-stdio"):
        modern = {**headers, "MCP-Protocol-Version": MODERN}
        listed, _ = _rpc(url, "tools/list", {"_meta": MODERN_META}, {**modern, "Mcp-Method": "tools/list"})
        tool = _echo_tool(listed)
        headers = {**modern, "Mcp-Method": "tools/call", "Mcp-Name": tool}
        params: dict[str, Any] = {"name": tool, "arguments": {"text": ECHO_TEXT}, "_meta": MODERN_META}
    else:
        init = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": CLIENT_INFO}
        _, fields = _rpc(url, "initialize", init, headers)
        headers = {**headers, "MCP-Protocol-Version": LEGACY}
        session = fields.get("mcp-session-id")
        if session:  # a stateless server (ContextForge's default) gives none, and takes every request on its own
            headers["Mcp-Session-Id"] = session
        status, _, answer = exchange(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, headers)
        if status >= 300:
            raise SetupError(f"notifications/initialized answered {status}: {str(answer)[:200]}")
        listed, _ = _rpc(url, "tools/list", {}, headers, rid=2)
        tool = _echo_tool(listed)
        params = {"name": tool, "arguments": {"text": ECHO_TEXT}}
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}
    status, _, answer = exchange(url, call, headers)
    result = answer.get("result") if isinstance(answer, dict) else None
    if status != 200 or not isinstance(result, dict) or result.get("isError") or ECHO_TEXT not in json.dumps(result):
        raise SetupError(f"tools/call {tool} answered {status}: {str(answer)[:300]}")
    body = json.dumps({**call, "id": ID_PLACEHOLDER}).replace(f'"{ID_PLACEHOLDER}"', ID_PLACEHOLDER).encode()
    return HttpRequest(url=url, body=body, headers=tuple(headers.items()), expect=ECHO_TEXT)


def request_for(path: Path, scenario: Scenario) -> HttpRequest:
    if scenario not in path.scenarios and not (scenario == "stream-one" and "stream" in path.scenarios):
        raise SetupError(f"{path.name} does not serve {scenario}")
    if scenario in LLM_SCENARIOS:
        return llm_request(path, scenario)
    return mcp_request(path, scenario)
