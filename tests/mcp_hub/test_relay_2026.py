"""2026-07-28 clients through the hub when an upstream asks them something (`mcp_hub/relay/rounds.py`).

The client is the SDK's `Client` at 2026-07-28 with its callbacks (it drives the `InputRequiredResult` rounds
itself), or its session with `allow_input_required=True` to see the rounds raw. Upstreams: the asking server
(tests/servers/asking_server.py) at 2025-11-25, asking through its back channel, over stdio (`ask`) and Streamable
HTTP (`askweb`); and the same server at 2026-07-28 (`ask26`), whose `dual_llm` answers with an input round.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import anyio
import mcp_types as types
import pytest
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError

from tests.mcp_hub.conftest import FULL_KEY, Gateway, fixture_over_http, hub_settings, serving
from tests.mcp_hub.test_relay import ASKING, asking_server, list_roots, sample, text

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
LEGACY_SERVERS = ["ask", "askweb"]


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    async with fixture_over_http(script=ASKING) as url:
        servers = {
            "ask": asking_server(),
            "askweb": {"url": url, "protocol": "legacy"},
            "ask26": {**asking_server(), "protocol": "auto"},
        }
        async with serving(hub_settings(tmp_path_factory.mktemp("relay26"), servers)) as started:
            yield started


async def fill_form(ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
    assert isinstance(params, types.ElicitRequestFormParams)
    return types.ElicitResult(action="accept", content={"name": f"Grace ({params.message})"})


# A legacy upstream asking through its back channel: the call is held, its questions become input rounds.


@pytest.mark.parametrize("server", LEGACY_SERVERS)
async def test_a_legacy_upstreams_sampling_request_is_answered_by_a_2026_client(gateway: Gateway, server: str) -> None:
    async with gateway.client(FULL_KEY, MODERN, server=server, sampling_callback=sample) as client:
        with anyio.fail_after(20):
            result = await client.call_tool("ask_llm", {"prompt": "Ada"})
    assert not result.is_error, text(result)
    assert json.loads(text(result))["content"] == {"type": "text", "text": "the model says hi to Ada"}


async def test_a_legacy_upstreams_elicitation_and_roots_reach_a_2026_client(gateway: Gateway) -> None:
    async with gateway.client(
        FULL_KEY, MODERN, server="ask", elicitation_callback=fill_form, list_roots_callback=list_roots
    ) as client:
        with anyio.fail_after(20):
            form = await client.call_tool("ask_user", {})
            roots = await client.call_tool("client_roots", {})
    assert json.loads(text(form)) == {"action": "accept", "content": {"name": "Grace (Who are you?)"}}
    assert json.loads(text(roots))["roots"] == [{"uri": "file:///work/project", "name": "project"}]


async def test_a_legacy_upstreams_question_arrives_as_an_input_round_and_the_retry_resumes_the_call(
    gateway: Gateway,
) -> None:
    async with gateway.client(FULL_KEY, MODERN, server="ask", sampling_callback=sample) as client:
        with anyio.fail_after(20):
            first = await client.session.call_tool("ask_llm", {"prompt": "Lin"}, allow_input_required=True)
            assert isinstance(first, types.InputRequiredResult)
            assert first.request_state is not None
            [(key, request)] = (first.input_requests or {}).items()
            assert isinstance(request, types.CreateMessageRequest)
            # Without the answer the same question comes back.
            again = await client.session.call_tool(
                "ask_llm", {"prompt": "Lin"}, request_state=first.request_state, allow_input_required=True
            )
            assert isinstance(again, types.InputRequiredResult) and set(again.input_requests or {}) == {key}
            answer = types.CreateMessageResult(
                role="assistant", content=types.TextContent(type="text", text="hello Lin"), model="m"
            )
            done = await client.session.call_tool(
                "ask_llm",
                {"prompt": "Lin"},
                input_responses={key: answer},
                request_state=again.request_state,
                allow_input_required=True,
            )
    assert isinstance(done, types.CallToolResult) and not done.is_error
    assert json.loads(text(done))["content"]["text"] == "hello Lin"
    assert len(gateway.hub.relay.rounds) <= 1  # only the finished call's short linger, if any


# A 2026-07-28 upstream: its input round passes through, its state sealed inside the hub's.


async def test_a_2026_upstreams_input_round_is_answered_by_a_2026_client(gateway: Gateway) -> None:
    assert gateway.hub.upstreams["ask26"].health.protocol_version == MODERN
    async with gateway.client(FULL_KEY, MODERN, server="ask26", sampling_callback=sample) as client:
        with anyio.fail_after(20):
            result = await client.call_tool("dual_llm", {"prompt": "Eve"})
    assert not result.is_error, text(result)
    assert json.loads(text(result))["content"] == {"type": "text", "text": "the model says hi to Eve"}


PROMPT = "Eve the eavesdropper, 7f3a9c"
"""The call's prompt: what a state that was only encoded, not sealed, would show."""


def _decoded_parts(state: str) -> list[bytes]:
    """What base64url decoding makes of each dot-separated part of a sealed state (an encoding is not a seal)."""
    parts = []
    for part in state.split("."):
        try:
            parts.append(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        except ValueError:
            continue
    return parts


async def test_a_tampered_or_rebound_state_is_refused(gateway: Gateway) -> None:
    async with gateway.client(FULL_KEY, MODERN, server="ask26", sampling_callback=sample) as client:
        with anyio.fail_after(20):
            first = await client.session.call_tool("dual_llm", {"prompt": PROMPT}, allow_input_required=True)
            assert isinstance(first, types.InputRequiredResult) and first.request_state
            [(key, request)] = (first.input_requests or {}).items()
            assert isinstance(request, types.CreateMessageRequest)
            answer = types.CreateMessageResult(
                role="assistant", content=types.TextContent(type="text", text="x"), model="m"
            )
            for arguments, state in [
                ({"prompt": PROMPT}, first.request_state + "x"),  # tampered
                ({"prompt": "Mallory"}, first.request_state),  # other arguments
            ]:
                with pytest.raises(MCPError) as refused:
                    await client.session.call_tool(
                        "dual_llm", arguments, input_responses={key: answer}, request_state=state
                    )
                assert refused.value.code == types.INVALID_PARAMS
            # The hub's state is not the upstream's: it cannot be read or replayed upstream directly. A prompt this
            # long (not "Eve") cannot turn up in random ciphertext by chance (1 in 3,000 runs did for "Eve").
            assert PROMPT not in first.request_state
            assert PROMPT.encode() not in b"".join(_decoded_parts(first.request_state))


async def test_a_2026_client_without_sampling_gets_32021_naming_it(gateway: Gateway) -> None:
    async with gateway.client(FULL_KEY, MODERN, server="ask26") as client:
        with anyio.fail_after(20), pytest.raises(MCPError) as refused:
            await client.session.call_tool("dual_llm", {"prompt": "Eve"}, allow_input_required=True)
    assert refused.value.code == types.MISSING_REQUIRED_CLIENT_CAPABILITY
    assert refused.value.error.data == {"requiredCapabilities": {"sampling": {}}}
