"""Two replicas behind nginx round-robin: every leg goes through nginx unless it names a replica on purpose.

The legs share one cluster (`conftest.cluster`) and each uses keys of its own. What the issue asks of replicas:
stateless MCP works on any replica, 2025-era sessions and 2026-07-28 held calls too, limits and budgets hold exactly
however requests spread, a revocation on one replica reaches the other within the key cache's TTL, an open breaker on
one is seen by the other, and a rolling restart under load fails no client request.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client

from tests.replicas.conftest import (
    ACCEPT,
    ADMIN_KEY,
    Cluster,
    initialize_params,
    legacy_request,
    modern_request,
    rpc_reply,
)

pytestmark = pytest.mark.anyio

CHAT = {"model": "echo/echo-1", "messages": [{"role": "user", "content": "hello"}]}
POLL_INTERVAL = 0.1
POLLS = 100
"""Polls before a leg that waits for a change across replicas gives up (the TTL is 0.5 s: ample either way)."""


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def call_tool(client: httpx2.AsyncClient, url: str, key: str, name: str, arguments: dict[str, Any]) -> Any:
    body, headers = modern_request("tools/call", {"name": name, "arguments": arguments})
    response = await client.post(f"{url}/mcp", json=body, headers={**headers, **bearer(key)})
    return response.status_code, rpc_reply(response.headers.get("content-type", ""), response.text)


async def test_stateless_mcp_requests_are_answered_by_either_replica(cluster: Cluster) -> None:
    async with httpx2.AsyncClient(timeout=30) as client:
        body, headers = modern_request("tools/list")
        listed = await client.post(f"{cluster.url}/mcp", json=body, headers={**headers, **bearer("isk-replicas-mcp")})
        assert listed.status_code == 200
        names = {tool["name"] for tool in listed.json()["result"]["tools"]}
        assert {"demo__echo", "demo__add"} <= names
        for number in range(8):
            status, reply = await call_tool(client, cluster.url, "isk-replicas-mcp", "demo__add", {"a": number, "b": 1})
            assert status == 200 and not reply["result"].get("isError"), reply
            assert reply["result"]["content"][0]["text"] == str(number + 1)
    served = cluster.served_by("/mcp")
    assert sorted(served) == sorted(f"127.0.0.1:{replica.port}" for replica in cluster.replicas), served


async def _burst(count: int, request: Any) -> list[Any]:
    results: list[Any] = []

    async def one() -> None:
        results.append(await request())

    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(one)
    return results


async def test_a_key_rate_limit_holds_exactly_when_concurrent_requests_spread_over_both_replicas(
    cluster: Cluster,
) -> None:
    async with httpx2.AsyncClient(timeout=30) as client:

        async def chat() -> int:
            response = await client.post(
                f"{cluster.url}/v1/chat/completions", json=CHAT, headers=bearer("isk-replicas-limited")
            )
            return response.status_code

        statuses = Counter(await _burst(30, chat))
    assert statuses == {200: 10, 429: 20}


async def test_a_key_budget_holds_exactly_when_concurrent_tool_calls_spread_over_both_replicas(
    cluster: Cluster,
) -> None:
    async with httpx2.AsyncClient(timeout=30) as client:

        async def paid_call() -> bool:
            _, reply = await call_tool(client, cluster.url, "isk-replicas-metered", "paid__echo", {"text": "x"})
            return "result" in reply and not reply["result"].get("isError")

        outcomes = Counter(await _burst(25, paid_call))
    # $1.00 at $0.10 a call: exactly ten calls, however the 25 spread over the replicas.
    assert outcomes == {True: 10, False: 15}


async def test_a_revocation_on_one_replica_reaches_the_other_within_the_key_cache_ttl(cluster: Cluster) -> None:
    first, second = (replica.url for replica in cluster.replicas)
    key = bearer("isk-replicas-revocable")
    async with httpx2.AsyncClient(timeout=30) as client:
        assert (await client.post(f"{second}/v1/chat/completions", json=CHAT, headers=key)).status_code == 200
        revoked = await client.post(f"{first}/admin/keys/revocable/revoke", headers=bearer(ADMIN_KEY))
        assert revoked.status_code == 200, revoked.text
        for _ in range(POLLS):
            status = (await client.post(f"{second}/v1/chat/completions", json=CHAT, headers=key)).status_code
            if status == 401:
                break
            assert status == 200
            await anyio.sleep(POLL_INTERVAL)
        assert status == 401
        assert (await client.post(f"{cluster.url}/v1/chat/completions", json=CHAT, headers=key)).status_code == 401


async def test_a_provider_breaker_opened_on_one_replica_is_seen_by_the_other(cluster: Cluster) -> None:
    first, second = (replica.url for replica in cluster.replicas)
    chat = {**CHAT, "model": "flaky/m"}
    key = bearer("isk-replicas-breaker")
    async with httpx2.AsyncClient(timeout=30) as client:
        failed = await client.post(f"{first}/v1/chat/completions", json=chat, headers=key)
        assert failed.status_code >= 500 and cluster.provider.hits == [1]
        for _ in range(POLLS):
            skipped = (await client.get(f"{second}/ready")).json()["llm_proxy"]["skipped"]
            if skipped.get("flaky") == "circuit open":
                break
            await anyio.sleep(POLL_INTERVAL)
        assert skipped.get("flaky") == "circuit open"
        refused = await client.post(f"{second}/v1/chat/completions", json=chat, headers=key)
    assert refused.status_code == 503 and "circuit open" in refused.json()["error"]["message"]
    assert cluster.provider.hits == [1]  # the second replica never sent it to the failing provider


async def test_a_rolling_restart_under_load_fails_no_client_request(cluster: Cluster) -> None:
    key = bearer("isk-replicas-load")
    failures: list[str] = []
    done = {"chat": 0, "mcp": 0}
    stop = anyio.Event()

    async def load(client: httpx2.AsyncClient, kind: str) -> None:
        while not stop.is_set():
            try:
                if kind == "chat":
                    response = await client.post(f"{cluster.url}/v1/chat/completions", json=CHAT, headers=key)
                    ok = response.status_code == 200
                else:
                    body, headers = modern_request("tools/call", {"name": "demo__echo", "arguments": {"text": "hi"}})
                    response = await client.post(f"{cluster.url}/mcp", json=body, headers={**headers, **key})
                    ok = response.status_code == 200 and not response.json()["result"].get("isError")
            except (httpx2.HTTPError, ValueError, KeyError) as exc:
                failures.append(f"{kind}: {type(exc).__name__}: {exc}")
                continue
            if ok:
                done[kind] += 1
            else:
                failures.append(f"{kind}: {response.status_code} {response.text[:200]}")

    async with httpx2.AsyncClient(timeout=30) as client, anyio.create_task_group() as group:
        for kind in ("chat", "mcp") * 2:
            group.start_soon(load, client, kind)
        for index in range(len(cluster.replicas)):
            await anyio.to_thread.run_sync(cluster.restart, index)
        stop.set()
    assert failures == [], cluster.diagnostics()
    assert done["chat"] > 0 and done["mcp"] > 0


async def test_a_legacy_session_keeps_working_when_its_requests_alternate_between_replicas(cluster: Cluster) -> None:
    key = bearer("isk-replicas-legacy")
    async with httpx2.AsyncClient(timeout=30) as client:
        opened = await client.post(
            f"{cluster.url}/mcp", json=legacy_request("initialize", initialize_params()), headers={**ACCEPT, **key}
        )
        assert opened.status_code == 200, opened.text
        session = {
            **ACCEPT,
            **key,
            "mcp-session-id": opened.headers["mcp-session-id"],
            "mcp-protocol-version": "2025-06-18",
        }
        initialized = await client.post(
            f"{cluster.url}/mcp", json=legacy_request("notifications/initialized", id=None), headers=session
        )
        assert initialized.status_code == 202, initialized.text
        for number in range(4):  # round-robin: consecutive requests land on alternate replicas
            call = legacy_request(
                "tools/call", {"name": "demo__add", "arguments": {"a": number, "b": 1}}, id=2 + number
            )
            response = await client.post(f"{cluster.url}/mcp", json=call, headers=session)
            assert response.status_code == 200, response.text
            reply = rpc_reply(response.headers.get("content-type", ""), response.text)
            assert reply["result"]["content"][0]["text"] == str(number + 1)


async def test_a_2026_clients_held_call_answers_on_whichever_replica_its_retry_reaches(cluster: Cluster) -> None:
    """A 2025-era upstream's tool asks its 2026-07-28 client mid-call: each retry may land on the other replica."""

    async def fill_form(ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async def sample(ctx: ClientRequestContext, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        asked = params.messages[0].content
        assert isinstance(asked, types.TextContent)
        reply = types.TextContent(type="text", text=f"hello {asked.text}")
        return types.CreateMessageResult(role="assistant", content=reply, model="m")

    http = httpx2.AsyncClient(headers=bearer("isk-replicas-held"), timeout=30)
    transport = streamable_http_client(f"{cluster.url}/mcp/asking", http_client=http)
    callbacks: dict[str, Any] = {"elicitation_callback": fill_form, "sampling_callback": sample}
    async with http, Client(transport, mode="2026-07-28", cache=None, **callbacks) as client:
        with anyio.fail_after(60):
            for _ in range(3):  # two POSTs, then three: under round-robin each loop starts on the other replica
                form = await client.call_tool("ask_user", {})
                assert not form.is_error, form
                assert json.loads(form.content[0].text) == {"action": "accept", "content": {"name": "Ada"}}  # type: ignore[union-attr]
                twice = await client.call_tool("ask_twice", {})
                assert not twice.is_error, twice
                assert json.loads(twice.content[0].text)["greeting"]["content"]["text"] == "hello {'name': 'Ada'}"  # type: ignore[union-attr]
    served = cluster.served_by("/mcp/asking")
    assert sorted(served) == sorted(f"127.0.0.1:{replica.port}" for replica in cluster.replicas), served
