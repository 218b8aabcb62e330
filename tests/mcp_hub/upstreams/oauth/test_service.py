"""Flow `client_credentials`: one token for the server, shared by every key, renewed before expiry and on a 401."""

from __future__ import annotations

import anyio
import mcp_types as types
import pytest

from tests.mcp_hub.upstreams.oauth.conftest import KEY_A, KEY_B, World, oauth_audit, ready

pytestmark = pytest.mark.anyio


def service(world: World, **extra: object) -> dict[str, object]:
    return {
        "type": "oauth",
        "flow": "client_credentials",
        "token_url": f"{world.auth_url}/token",
        "client_id": "svc",
        "client_secret": "svc-secret",
        **extra,
    }


def text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "sdk-client"])
async def test_every_key_is_served_with_the_one_service_token_and_no_client_token_goes_upstream(
    world: World, fast_path: bool
) -> None:
    world.auth.add_client("svc", "svc-secret")
    async with world.gateway(service(world), fast_path=fast_path) as gateway:
        await ready(gateway)
        for key, mode in ((KEY_A, "2026-07-28"), (KEY_B, "legacy")):
            async with gateway.client(key, mode) as client:
                result = await client.call_tool("secure__whoami", {})
                assert not result.is_error and text(result) == "service:svc via svc"
        audit = await oauth_audit(gateway)
    granted = [r for r in world.auth.token_requests if r["ok"]]
    assert [(r["grant"], r["method"], r["resource"]) for r in granted] == [
        ("client_credentials", "client_secret_basic", world.mcp_url)
    ]
    token = next(iter(world.auth.access))
    seen = set(world.upstream.seen_authorizations)
    assert seen == {f"Bearer {token}"}  # never a virtual key, never anything else
    assert [r["details"]["event"] for r in audit] == ["token_fetched"]
    assert all(token not in str(record) and "svc-secret" not in str(record) for record in audit)


async def test_client_secret_post_and_a_token_url_discovered_from_the_servers_401(world: World) -> None:
    world.auth.add_client("svc", "svc-secret")
    auth = service(world, token_auth_method="client_secret_post")
    del auth["token_url"]
    async with world.gateway(auth) as gateway:
        await ready(gateway)
        async with gateway.client(KEY_A, "2026-07-28") as client:
            assert text(await client.call_tool("secure__whoami", {})) == "service:svc via svc"
    assert [(r["grant"], r["method"]) for r in world.auth.token_requests] == [
        ("client_credentials", "client_secret_post")
    ]


async def test_a_token_is_renewed_before_it_expires(world: World) -> None:
    world.auth.add_client("svc", "svc-secret")
    async with world.gateway(service(world, refresh_before=60)) as gateway:
        await ready(gateway)
        async with gateway.client(KEY_A, "2026-07-28") as client:
            await client.call_tool("secure__whoami", {})
            world.clock.advance(3600 - 59)  # within `refresh_before` of expiry: renewed before use
            assert text(await client.call_tool("secure__whoami", {})) == "service:svc via svc"
        audit = await oauth_audit(gateway)
    assert sum(r["ok"] for r in world.auth.token_requests) == 2
    assert sorted(r["details"]["event"] for r in audit) == ["token_fetched", "token_refreshed"]


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "sdk-client"])
async def test_a_401_from_the_server_gets_a_new_token_and_one_retry(world: World, fast_path: bool) -> None:
    world.auth.add_client("svc", "svc-secret")
    async with world.gateway(service(world), fast_path=fast_path) as gateway:
        await ready(gateway)
        world.auth.revoke_all()  # the server now refuses the cached token
        async with gateway.client(KEY_A, "2026-07-28") as client:
            result = await client.call_tool("secure__whoami", {})
    assert not result.is_error and text(result) == "service:svc via svc"
    assert sum(r["ok"] for r in world.auth.token_requests) == 2


async def test_a_wrong_client_secret_is_a_clear_error_naming_the_server(world: World) -> None:
    world.auth.add_client("svc", "the-real-secret")
    async with world.gateway(service(world)) as gateway:
        upstream = gateway.hub.upstreams["secure"]
        with anyio.fail_after(15):
            while upstream.health.failures == 0:
                await anyio.sleep(0.02)
        assert upstream.health.state == "down"
        assert upstream.health.last_error == (
            "MCP server 'secure': OAuth: client_credentials token request refused: "
            "HTTP 401 invalid_client (client authentication failed)"
        )
        async with gateway.client(KEY_A, "2026-07-28") as client:
            result = await client.call_tool("secure__whoami", {})
        audit = await oauth_audit(gateway)
    assert result.is_error and "MCP server 'secure'" in text(result) and "invalid_client" in text(result)
    assert audit and {r["details"]["event"] for r in audit} == {"token_failed"}
    assert all(r["decision"] == "deny" for r in audit)
