"""The `tools/call` fast path (`mcp_hub/upstreams/fast_call.py`) answers exactly as the MCP SDK's client does.

Each upstream is configured twice on one gateway, `…fast` (the default, `fast_path: true`) and `…sdk`
(`fast_path: false`), and every call is made to both through the hub: the results, with the server's name taken
out, must be the same. Upstreams: the fixture server over Streamable HTTP in each era, and the asking server (2025
era, answers on an event stream, asks its client, logs and reports progress during calls).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from hypothesis import given, strategies as st
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import encode_header_value

from mcp_hub import pipeline
from mcp_hub.upstreams import fast_call
from mcp_hub.upstreams.fast_call import FastCalls, _decode, encode_message, name_header
from tests.json_fuzz_support import PLAIN_SCALARS, WEIRD_TEXT
from tests.mcp_hub.conftest import FULL_KEY, MODES, Gateway, fixture_over_http, hub_settings, serving
from tests.tracing_support import without_tracer_provider
from toolpolicy.telemetry import tracing

pytestmark = pytest.mark.anyio

ASKING = Path(__file__).parents[1] / "servers" / "asking_server.py"
PAIRS = ("fx26", "fxold", "ask")
"""Each name has a `<name>fast` and a `<name>sdk` server."""


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    async with fixture_over_http() as fixture_url, fixture_over_http(script=ASKING) as asking_url:
        upstreams = {
            "fx26": {"url": fixture_url, "timeout": 2},
            "fxold": {"url": fixture_url, "protocol": "legacy", "timeout": 2},
            "ask": {"url": asking_url, "protocol": "legacy"},
        }
        servers: dict[str, Any] = {}
        for name, settings in upstreams.items():
            servers[f"{name}fast"] = settings
            servers[f"{name}sdk"] = {**settings, "fast_path": False}
        async with serving(hub_settings(tmp_path_factory.mktemp("fast"), servers)) as started:
            yield started


async def test_the_fast_path_is_on_by_default_and_off_when_configured(gateway: Gateway) -> None:
    upstreams = gateway.hub.upstreams
    assert upstreams["fx26fast"].health.protocol_version == "2026-07-28"
    assert upstreams["fxoldfast"].health.protocol_version == "2025-11-25"
    for name in PAIRS:
        assert isinstance(upstreams[f"{name}fast"]._fast, FastCalls)
        assert upstreams[f"{name}sdk"]._fast is None


async def both(
    gateway: Gateway, pair: str, mode: str, tool: str, arguments: dict[str, Any], **callbacks: Any
) -> tuple[Any, Any]:
    """The answer of `tool` through the fast and the SDK server of `pair`, the server's name taken out."""
    answers = []
    for variant in ("fast", "sdk"):
        server = f"{pair}{variant}"
        async with gateway.client(FULL_KEY, mode, server=server, **callbacks) as client:
            with anyio.fail_after(20):
                try:
                    result = await client.call_tool(tool, arguments)
                    answer: Any = result.model_dump(by_alias=True, mode="json", exclude_none=True)
                except MCPError as exc:
                    answer = {"code": exc.code, "message": exc.message, "data": exc.data}
        answers.append(json.loads(json.dumps(answer).replace(server, "<server>")))
    return answers[0], answers[1]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pair", ["fx26", "fxold"])
@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("echo", {"text": "plain"}),  # a plain result
        ("weather", {"city": "Oslo"}),  # structured content with an output schema
        ("fail", {"message": "no luck"}),  # a tool error
        ("add", {"a": "not a number", "b": 1}),  # the upstream refuses the arguments
        ("slow", {"seconds": 10}),  # past the server's 2 s timeout
    ],
)
async def test_a_call_answers_the_same_on_both_paths(
    gateway: Gateway, pair: str, mode: str, tool: str, arguments: dict[str, Any]
) -> None:
    fast, sdk = await both(gateway, pair, mode, tool, arguments)
    assert fast == sdk
    if tool == "slow":
        assert fast["isError"] and "timeout" in fast["content"][0]["text"]


@pytest.mark.parametrize("mode", MODES)
async def test_with_nothing_to_trace_a_call_asks_so_once(
    gateway: Gateway, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline's answer (no span for the call) stands for the upstream request's client span too."""
    without_tracer_provider(monkeypatch)
    asked: list[str] = []

    def counted(where: str) -> Any:
        def nothing_to_trace() -> bool:
            asked.append(where)
            return tracing.nothing_to_trace()

        return nothing_to_trace

    monkeypatch.setattr(pipeline, "nothing_to_trace", counted("pipeline"))
    monkeypatch.setattr(fast_call, "nothing_to_trace", counted("upstream request"))
    fast, sdk = await both(gateway, "fx26", mode, "echo", {"text": "plain"})
    assert fast == sdk
    assert asked == ["pipeline", "pipeline"]  # one per call, the fast one's and the SDK client's


@pytest.mark.parametrize("mode", MODES)
async def test_a_json_rpc_error_the_client_must_see_passes_through_the_same(gateway: Gateway, mode: str) -> None:
    fast, sdk = await both(gateway, "fx26", mode, "needs_capability", {"capability": "x-nope"})
    assert fast == sdk
    assert fast["code"] == types.MISSING_REQUIRED_CLIENT_CAPABILITY


async def test_notices_on_the_calls_event_stream_reach_the_client_on_both_paths(gateway: Gateway) -> None:
    seen: dict[str, list[Any]] = {"fast": [], "sdk": []}
    for variant in ("fast", "sdk"):
        got = seen[variant]

        async def logged(params: types.LoggingMessageNotificationParams) -> None:
            got.append(("log", params.level, params.data))  # noqa: B023

        async def progressed(progress: float, total: float | None, message: str | None) -> None:
            got.append(("progress", progress, total, message))  # noqa: B023

        async with gateway.client(FULL_KEY, "legacy", server=f"ask{variant}", logging_callback=logged) as client:
            with anyio.fail_after(20):
                result = await client.call_tool("busy", {}, progress_callback=progressed)
        got.append(("result", result.content[0].text))  # type: ignore[union-attr]
    # A log notice is relayed through the call's outbox, a progress notice directly: their order varies either way.
    assert sorted(seen["fast"]) == sorted(seen["sdk"])
    expected = [("log", "info", "working"), ("progress", 1.0, 2.0, "half way"), ("result", "busy done")]
    assert sorted(seen["fast"]) == expected


@pytest.mark.parametrize("mode", MODES)
async def test_an_elicitation_on_the_back_channel_is_answered_by_the_client_on_both_paths(
    gateway: Gateway, mode: str
) -> None:
    asked: list[dict[str, Any]] = []

    async def elicit(ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        question = params.model_dump(by_alias=True, mode="json", exclude_none=True)
        # Each call is its own trace when a tracer provider is installed (an earlier test may install one).
        question.get("_meta", {}).pop("traceparent", None)
        asked.append(question)
        return types.ElicitResult(action="accept", content={"name": "Grace"})

    fast, sdk = await both(gateway, "ask", mode, "ask_user", {}, elicitation_callback=elicit)
    assert fast == sdk
    assert not fast.get("isError") and "Grace" in fast["content"][0]["text"]
    assert len(asked) == 2 and asked[0] == asked[1]


async def test_an_upstream_that_went_away_is_the_same_tool_error_on_both_paths(tmp_path: Path) -> None:
    upstream = AsyncExitStack()
    url = await upstream.enter_async_context(fixture_over_http())
    try:
        servers = {"gonefast": {"url": url}, "gonesdk": {"url": url, "fast_path": False}}
        async with serving(hub_settings(tmp_path, servers)) as gateway:
            up = await both(gateway, "gone", "2026-07-28", "echo", {"text": "up"})
            assert up[0] == up[1] and not up[0].get("isError")
            await upstream.aclose()  # the server's process is killed; the hub's connections to it look fine
            fast, sdk = await both(gateway, "gone", "2026-07-28", "echo", {"text": "up"})
    finally:
        await upstream.aclose()
    # The last error is how the hub's reconnection attempt failed, in the HTTP client's words: left out. Each server
    # retries on its own, so either may be between attempts ("down") or in one ("connecting") when its call comes.
    for answer in (fast, sdk):
        text = answer["content"][0]["text"].split(" (last error")[0]
        assert text in ("MCP server '<server>': is down", "MCP server '<server>': is connecting"), text
        answer["content"][0]["text"] = text.rpartition(" is ")[0]
    assert fast == sdk
    assert fast["isError"]


_json_text = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
).map(json.dumps)


@given(
    text=_json_text
    | st.text(max_size=12)
    | st.sampled_from(['{"a":"\\ud800"}', "[1,]", "NaN", '{"a":-Infinity}', "1e999", "{} x", ""])
)
def test_an_answer_decodes_as_json_loads_decodes_it(text: str) -> None:
    raw = text.encode(errors="surrogatepass")
    try:
        expected: Any = json.loads(raw)
    except ValueError as exc:
        with pytest.raises(ValueError, match=re.escape(str(exc))):
            _decode(raw)
        return
    decoded = _decode(raw)
    # NaN is not equal to itself: compare the JSON both give back.
    assert json.dumps(decoded) == json.dumps(expected)


_argument_values = st.recursive(
    st.one_of(PLAIN_SCALARS, WEIRD_TEXT, st.floats()),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.one_of(WEIRD_TEXT, st.text(max_size=6)), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(value=_argument_values)
def test_a_message_to_an_upstream_reads_back_as_the_value_it_encodes(value: Any) -> None:
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t", "arguments": {"v": value}}}
    encoded = encode_message(message)
    # What the json module reads back from it is what it reads back from its own encoding (NaN compared as JSON).
    assert json.dumps(json.loads(encoded)) == json.dumps(json.loads(json.dumps(message)))


def test_a_message_to_an_upstream_is_utf_8_as_the_sdks_client_sends_it() -> None:
    message = {"text": "é ☃", "n": [1, 2.5, 10**30, math.nan, -math.inf], "lone": "\ud800"}
    assert encode_message({"text": "é ☃"}) == '{"text":"é ☃"}'.encode()
    # A lone surrogate cannot be UTF-8: escaped, as json writes it; non-finite numbers as json writes them.
    assert encode_message(message) == json.dumps(message, separators=(",", ":")).encode()
    assert encode_message({"n": [math.nan, math.inf]}) == b'{"n":[NaN,Infinity]}'


@given(names=st.lists(st.text(st.characters(exclude_categories=["Cs"]), max_size=8) | st.just("echo"), max_size=8))
def test_a_calls_name_header_is_the_sdks_encoding_every_time(names: list[str]) -> None:
    for name in [*names, *names]:  # each name a second time, when it is remembered
        assert name_header(name) == encode_header_value(name)


def test_remembered_name_headers_are_bounded() -> None:
    names = [f"tool {number}" for number in range(fast_call.NAME_HEADERS_KEPT + 1)]
    for name in names:
        assert name_header(name) == name
    assert name_header.cache_info().currsize == fast_call.NAME_HEADERS_KEPT
    assert name_header("ünïcode") == encode_header_value("ünïcode") != "ünïcode"
