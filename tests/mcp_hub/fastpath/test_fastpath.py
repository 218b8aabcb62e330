"""The fast path (`mcp_hub/fastpath`) answers as the SDK does: each request is sent with it off, then on, against one
gateway, and the two answers (status, headers, body) and audit records must be the same, while the fast path must
have served exactly the requests it takes (2026-07-28 `tools/call` and `tools/list`) and the SDK all the others.

Servers: `fx` (the fixture server over stdio, `weather` renamed `forecast`) and `web` (over Streamable HTTP); the
bundle `support` (`fx__add`, and `fx__echo` renamed `parrot`). The key `rl` may call `fx` once a day.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import mcp_types as types
import pytest
from mcp.server import streamable_http_manager

import mcp_hub.fastpath
import mcp_hub.fastpath.kernel
from mcp_hub.fastpath.hub_chain import hub_chain
from tests.mcp_hub.conftest import FULL_KEY, LIMITED_KEY, Gateway, fixture_server, hub_settings, serving
from tests.tracing_support import without_tracer_provider
from toolpolicy.settings import GatewaySettings

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
LOG_LEVEL = "io.modelcontextprotocol/logLevel"
RL_KEY = "isk-fast-rl"
SUPPORT_KEY = "isk-fast-support"
VOLATILE_AUDIT = {"id", "request_id", "latency_ms", "ts", "created_at", "timestamp", "prev_hash", "hash"}
_ids = itertools.count(1)


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory, fixture_http_url: str) -> AsyncIterator[Gateway]:
    servers = {
        "fx": fixture_server(timeout=5, overrides={"weather": {"rename": "forecast"}}),
        "web": {"url": fixture_http_url, "cost_per_call_usd": 0.002},
    }
    bundle = {"tools": ["fx__add", "fx__echo"], "overrides": {"fx__echo": {"rename": "parrot"}}}
    keys = (
        {"name": "rl", "value": RL_KEY, "mcp": {"fx": ["*"]}, "mcp_rate_limit": {"per_server": {"fx": "1/1d"}}},
        {"name": "support", "value": SUPPORT_KEY, "mcp": {"fx": ["*"]}},
    )
    settings = hub_settings(
        tmp_path_factory.mktemp("fastpath"),
        servers,
        keys=keys,
        mcp_bundles={"support": bundle},
        audit={"record_arguments": True},
    )
    async with serving(settings) as started:
        yield started


class Served:
    """Counts of requests the fast path served and the SDK's 2026-07-28 entry served."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fast = 0
        self.sdk = 0
        fast, sdk = mcp_hub.fastpath._serve, streamable_http_manager.handle_modern_request

        async def counted_fast(*args: Any) -> None:
            self.fast += 1
            await fast(*args)

        async def counted_sdk(*args: Any) -> None:
            self.sdk += 1
            await sdk(*args)

        monkeypatch.setattr(mcp_hub.fastpath, "_serve", counted_fast)
        monkeypatch.setattr(streamable_http_manager, "handle_modern_request", counted_sdk)


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    yield Served(monkeypatch)


def set_fast(gateway: Gateway, on: bool) -> None:
    gateway.hub.endpoint.fast_path.enabled = on


async def both_ways(
    gateway: Gateway, served: Served, send: Callable[[], Awaitable[Any]], *, taken: bool = True
) -> tuple[Any, Any]:
    """`send()` with the fast path off, then on: both answers, after checking who served each."""
    set_fast(gateway, False)
    try:
        before = served.fast
        off = await send()
        assert served.fast == before
    finally:
        set_fast(gateway, True)
    fast, sdk = served.fast, served.sdk
    on = await send()
    assert served.fast - fast == (1 if taken else 0)
    assert served.sdk - sdk == (0 if taken else 1)
    return off, on


def headers(method: str, name: str | None = None, **extra: str) -> dict[str, str]:
    found = {
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": MODERN,
        "mcp-method": method,
        **extra,
    }
    if name is not None:
        found["mcp-name"] = name
    return found


def answer_of(response: Any) -> dict[str, Any]:
    """Status, headers and body, less what depends on the clock (the date; a limit's seconds until it resets)."""
    kept = {k: v for k, v in response.headers.items() if k not in ("date", "x-request-id", "content-length")}
    body = re.sub(r"try again in \d+s", "try again in Ns", response.text)
    return {"status": response.status_code, "headers": kept, "body": body}


async def post(
    gateway: Gateway, key: str, body: Any, head: dict[str, str], path: str = "/mcp", request_id: str | None = None
) -> dict[str, Any]:
    extra = {"x-request-id": request_id} if request_id else {}
    async with gateway.http(key) as http:
        return answer_of(await http.post(path, content=json.dumps(body), headers={**head, **extra}))


def call_body(name: str, arguments: Any = None, *, meta: dict[str, Any] | None = None, **params: Any) -> Any:
    found: dict[str, Any] = {"name": name, "_meta": META if meta is None else meta, **params}
    if arguments is not None:
        found["arguments"] = arguments
    return {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": found}


async def audit_of(gateway: Gateway, request_id: str) -> dict[str, Any]:
    rows = [row for row in await gateway.audit(limit=500) if row["request_id"] == request_id]
    assert len(rows) == 1, rows
    row = {k: v for k, v in rows[0].items() if k not in VOLATILE_AUDIT}
    row["details"] = {k: v for k, v in (row.get("details") or {}).items() if k != "upstream_ms"}
    return row


async def same_call(
    gateway: Gateway,
    served: Served,
    key: str,
    body: Any,
    head: dict[str, str],
    *,
    path: str = "/mcp",
    audited: bool = True,
    taken: bool = True,
) -> dict[str, Any]:
    """The answers and audit records of one call made both ways must be equal; returns the answer."""
    ids: list[str] = []

    async def send() -> dict[str, Any]:
        ids.append(f"fast-{next(_ids)}")
        return await post(gateway, key, body, head, path, ids[-1])

    off, on = await both_ways(gateway, served, send, taken=taken)
    assert on == off
    if audited:
        assert await audit_of(gateway, ids[1]) == await audit_of(gateway, ids[0])
    return on


async def test_a_call_is_served_by_the_fast_path_as_by_the_sdk(gateway: Gateway, served: Served) -> None:
    answer = await same_call(
        gateway, served, FULL_KEY, call_body("fx__add", {"a": 2, "b": 3}), headers("tools/call", "fx__add")
    )
    assert answer["status"] == 200 and answer["headers"]["content-type"] == "application/json"
    assert "mcp-session-id" not in answer["headers"]
    assert json.loads(answer["body"])["result"]["structuredContent"] == {"result": 5}


async def test_an_http_upstream_call_with_its_cost_is_the_same(gateway: Gateway, served: Served) -> None:
    answer = await same_call(
        gateway, served, FULL_KEY, call_body("web__echo", {"text": "hi"}), headers("tools/call", "web__echo")
    )
    assert "hi" in answer["body"]


async def test_unknown_and_denied_tools_get_the_same_error(gateway: Gateway, served: Served) -> None:
    unknown = await same_call(gateway, served, FULL_KEY, call_body("fx__nope", {}), headers("tools/call", "fx__nope"))
    denied = await same_call(gateway, served, LIMITED_KEY, call_body("fx__fail", {}), headers("tools/call", "fx__fail"))
    assert json.loads(unknown["body"])["error"]["code"] == json.loads(denied["body"])["error"]["code"]


async def test_a_tool_error_and_a_rate_limited_call_are_the_same(gateway: Gateway, served: Served) -> None:
    await same_call(gateway, served, FULL_KEY, call_body("fx__fail", {}), headers("tools/call", "fx__fail"))
    await post(gateway, RL_KEY, call_body("fx__add", {"a": 1, "b": 1}), headers("tools/call", "fx__add"))
    limited = await same_call(
        gateway, served, RL_KEY, call_body("fx__add", {"a": 1, "b": 1}), headers("tools/call", "fx__add")
    )
    result = json.loads(limited["body"])["result"]
    assert result["isError"] and "refused" in result["content"][0]["text"]


@pytest.mark.parametrize(
    ("params", "name", "taken", "code"),
    [
        # No name, or arguments not an object: the SDK's params validation refuses them, on either path.
        ({"_meta": META}, None, True, types.INVALID_PARAMS),
        ({"name": "fx__add", "arguments": [1, 2], "_meta": META}, "fx__add", True, types.INVALID_PARAMS),
        # Params the handler's model takes and the version's schema refuses (the kernel must still check it).
        ({"name": "fx__add", "_meta": {**META, LOG_LEVEL: "loud"}}, "fx__add", True, types.INVALID_PARAMS),
        # A name `Mcp-Name` cannot match: the SDK's header ladder refuses it first, so it is left to the SDK.
        ({"name": 3, "_meta": META}, None, False, types.HEADER_MISMATCH),
    ],
)
async def test_bad_params_get_the_sdks_error(
    gateway: Gateway, served: Served, params: dict[str, Any], name: str | None, taken: bool, code: int
) -> None:
    body = {"jsonrpc": "2.0", "id": "x", "method": "tools/call", "params": params}
    head = headers("tools/call", name)
    answer = await same_call(gateway, served, FULL_KEY, body, head, audited=False, taken=taken)
    assert answer["status"] == 400
    assert json.loads(answer["body"])["error"]["code"] == code


async def test_bad_arguments_the_ladder_lets_through_get_the_same_error(gateway: Gateway, served: Served) -> None:
    body = call_body("fx__add", {"a": "two", "b": 3})
    answer = await same_call(gateway, served, FULL_KEY, body, headers("tools/call", "fx__add"))
    assert json.loads(answer["body"])["result"]["isError"]


async def test_a_bundle_and_a_renamed_tool_are_served_alike(gateway: Gateway, served: Served) -> None:
    parrot = await same_call(
        gateway,
        served,
        SUPPORT_KEY,
        call_body("fx__parrot", {"text": "polly"}),
        headers("tools/call", "fx__parrot"),
        path="/mcp/support",
    )
    assert "polly" in parrot["body"]
    forecast = await same_call(
        gateway, served, FULL_KEY, call_body("fx__forecast", {"city": "Oslo"}), headers("tools/call", "fx__forecast")
    )
    assert "Oslo" in forecast["body"]


async def test_tools_list_is_the_same(gateway: Gateway, served: Served) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": META}}
    for key, path in [(FULL_KEY, "/mcp"), (SUPPORT_KEY, "/mcp/support"), (LIMITED_KEY, "/mcp/fx")]:
        answer = await same_call(gateway, served, key, body, headers("tools/list"), path=path, audited=False)
        assert json.loads(answer["body"])["result"]["tools"]


async def test_progress_turns_the_answer_into_the_same_event_stream(gateway: Gateway, served: Served) -> None:
    body = call_body("fx__progress", {"steps": 2}, meta={**META, "progressToken": "p1"})
    answer = await same_call(gateway, served, FULL_KEY, body, headers("tools/call", "fx__progress"))
    assert answer["headers"]["content-type"] == "text/event-stream"
    events = [json.loads(line[6:]) for line in answer["body"].splitlines() if line.startswith("data: ")]
    assert [event.get("method") for event in events] == ["notifications/progress"] * 2 + [None]
    assert events[0]["params"] == {"progressToken": "p1", "progress": 1.0, "total": 2.0, "message": "step 1 of 2"}
    assert events[-1]["result"]["content"][0]["text"] == "done after 2 steps"


async def test_an_mcp_param_mismatch_is_refused_the_same(gateway: Gateway, served: Served) -> None:
    body = call_body("fx__region", {"region": "eu-west-1"})
    head = headers("tools/call", "fx__region", **{"mcp-param-region": "us-east-1"})
    answer = await same_call(gateway, served, FULL_KEY, body, head, audited=False, taken=False)
    assert answer["status"] == 400
    assert json.loads(answer["body"])["error"]["code"] == types.HEADER_MISMATCH
    ok = await same_call(
        gateway, served, FULL_KEY, body, headers("tools/call", "fx__region", **{"mcp-param-region": "eu-west-1"})
    )
    assert "region=eu-west-1" in ok["body"]


async def test_a_header_mismatch_and_a_missing_envelope_stay_the_sdks(gateway: Gateway, served: Served) -> None:
    mismatch = await same_call(
        gateway,
        served,
        FULL_KEY,
        call_body("fx__add", {}),
        headers("tools/call", "fx__echo"),
        audited=False,
        taken=False,
    )
    assert json.loads(mismatch["body"])["error"]["code"] == types.HEADER_MISMATCH
    bare = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "fx__add"}}
    await same_call(gateway, served, FULL_KEY, bare, headers("tools/call", "fx__add"), audited=False, taken=False)


async def test_sdk_clients_of_both_eras_get_the_same_results(gateway: Gateway, served: Served) -> None:
    for mode, taken in [("legacy", False), (MODERN, True)]:

        async def call(mode: str = mode) -> Any:
            async with gateway.client(FULL_KEY, mode) as client:
                result = await client.call_tool("fx__add", {"a": 20, "b": 22})
                return result.model_dump(by_alias=True, exclude_none=True)

        set_fast(gateway, False)
        off = await call()
        set_fast(gateway, True)
        fast = served.fast
        on = await call()
        assert on == off and on["structuredContent"] == {"result": 42}
        assert (served.fast > fast) is taken  # a session's call is the session fast path's (test_session_call.py)


def test_the_fast_path_is_on_unless_configured_off() -> None:
    base = {"admin_key": "k", "store": "sqlite+aiosqlite:///:memory:"}
    assert GatewaySettings.model_validate(base).mcp.fast_path
    assert not GatewaySettings.model_validate({**base, "mcp": {"fast_path": False}}).mcp.fast_path


async def test_the_hub_servers_middleware_runs_straight_through_for_a_plain_call(
    gateway: Gateway, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_tracer_provider(monkeypatch)  # with tracing on, the tracing link acts on every request
    assert hub_chain(gateway.hub.server.middleware) is not None  # `build_server`'s chain is the one `hub_chain` knows
    straight = 0
    run = mcp_hub.fastpath.kernel.run_straight

    async def counted(*args: Any) -> Any:
        nonlocal straight
        straight += 1
        return await run(*args)

    monkeypatch.setattr(mcp_hub.fastpath.kernel, "run_straight", counted)
    answer = await same_call(
        gateway, served, FULL_KEY, call_body("fx__add", {"a": 2, "b": 3}), headers("tools/call", "fx__add")
    )
    assert json.loads(answer["body"])["result"]["structuredContent"] == {"result": 5}
    assert straight == 1  # the fast path's call; the SDK's own entry composes its chain
