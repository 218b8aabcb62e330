"""Flow `authorization_code`: each key's owner authorizes once (a browser following redirects: here, an httpx2
client), the hub keeps that key's token set encrypted in the store, refreshes it with rotation, and every call
carries its own key's token."""

from __future__ import annotations

import re
from typing import Any

import httpx2
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError
from sqlalchemy import select

from mcp_hub.upstreams.oauth.hub import UpstreamOAuthConfigError
from tests.mcp_hub.conftest import Gateway
from tests.mcp_hub.upstreams.oauth.conftest import KEY_A, KEY_B, World, oauth_audit, ready
from toolpolicy.store.schema import UpstreamTokenRow

pytestmark = pytest.mark.anyio
LINK = re.compile(r"open (http://\S+/oauth/upstream/secure/start\?ticket=\S+) in a browser")


def personal(**extra: Any) -> dict[str, Any]:
    return {"type": "oauth", "flow": "authorization_code", **extra}


def text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


async def browse(url: str) -> httpx2.Response:
    """What a browser does with the link: follow the redirects through the authorization server and back."""
    async with httpx2.AsyncClient(follow_redirects=True, timeout=15) as browser:
        return await browser.get(url)


async def first_link(gateway: Gateway, key: str) -> str:
    async with gateway.http(key) as http:
        response = await http.get("/oauth/upstream/secure/link")
    assert response.status_code == 200 and response.json()["authorized"] is False
    url: str = response.json()["authorize_url"]
    return url


async def test_each_key_authorizes_once_and_its_calls_carry_its_own_token(world: World) -> None:
    async with world.gateway(personal()) as gateway:  # no client_id: the hub registers itself (RFC 7591)
        upstream = gateway.hub.upstreams["secure"]
        assert upstream.health.state == "down" and "no virtual key has authorized" in (upstream.health.last_error or "")
        page = await browse(await first_link(gateway, KEY_A))
        assert page.status_code == 200 and "Authorized" in page.text
        await ready(gateway)  # the first authorization connects the server at once
        async with gateway.client(KEY_A, "2026-07-28") as alice, gateway.client(KEY_B, "legacy") as bob:
            assert text(await alice.call_tool("secure__whoami", {})) == "alice via " + next(iter(world.auth.clients))
            refused = await bob.call_tool("secure__whoami", {})
            assert refused.is_error
            link = LINK.search(text(refused))
            assert link is not None and "MCP server 'secure'" in text(refused)
            again = await bob.call_tool("secure__whoami", {})  # within the window: no new link
            assert again.is_error and "earlier result" in text(again) and "http" not in text(again)
            world.auth.subject = "bob"
            assert (await browse(link.group(1))).status_code == 200
            assert text(await bob.call_tool("secure__whoami", {})).startswith("bob via ")
            assert text(await alice.call_tool("secure__whoami", {})).startswith("alice via ")
        audit = await oauth_audit(gateway)
    assert world.auth.registrations == 1
    assert all(KEY_A not in seen and KEY_B not in seen for seen in world.upstream.seen_authorizations)
    events = [(r["details"]["event"], r["key_name"]) for r in reversed(audit)]
    assert ("authorization_required", "bob-key") in events
    assert events.count(("authorization_started", "alice-key")) == 1
    assert events.count(("authorization_completed", "bob-key")) == 1
    secrets = [*world.auth.access, *world.auth.refresh]
    assert not any(secret in str(record) for record in audit for secret in secrets)


async def test_a_prompt_for_a_key_without_a_token_set_is_a_json_rpc_error_with_the_link(world: World) -> None:
    world.auth.add_client("hub", "hub-secret")
    async with world.gateway(personal(client_id="hub", client_secret="hub-secret")) as gateway:
        await browse(await first_link(gateway, KEY_A))
        await ready(gateway)
        async with gateway.client(KEY_A, "2026-07-28") as alice, gateway.client(KEY_B, "2026-07-28") as bob:
            prompt = await alice.get_prompt("secure__greeting")
            with pytest.raises(MCPError) as refused:
                await bob.get_prompt("secure__greeting")
    content = prompt.messages[0].content
    assert isinstance(content, types.TextContent) and content.text == "Hello alice"
    assert refused.value.error.code == -32000 and LINK.search(refused.value.error.message) is not None


async def test_token_sets_are_encrypted_at_rest(world: World) -> None:
    world.auth.add_client("hub", "hub-secret")
    async with world.gateway(personal(client_id="hub", client_secret="hub-secret")) as gateway:
        await browse(await first_link(gateway, KEY_A))
        async with gateway.governance.store.session() as session:
            rows = list((await session.execute(select(UpstreamTokenRow))).scalars())
    assert len(rows) == 1 and rows[0].server == "secure"
    access, refresh = next(iter(world.auth.access)), next(iter(world.auth.refresh))
    assert access.encode() not in rows[0].sealed and refresh.encode() not in rows[0].sealed
    assert b"access_token" not in rows[0].sealed


async def test_an_expiring_token_set_is_refreshed_and_the_rotated_refresh_token_kept(world: World) -> None:
    world.auth.add_client("hub", "hub-secret")
    async with world.gateway(personal(client_id="hub", client_secret="hub-secret", refresh_before=60)) as gateway:
        await browse(await first_link(gateway, KEY_A))
        await ready(gateway)
        async with gateway.client(KEY_A, "2026-07-28") as client:
            for _ in range(3):  # three lifetimes: each refresh uses the refresh token the previous one rotated in
                world.clock.advance(3600)
                assert text(await client.call_tool("secure__whoami", {})) == "alice via hub"
        audit = await oauth_audit(gateway)
    grants = [(r["grant"], r["ok"]) for r in world.auth.token_requests]
    assert grants[0] == ("authorization_code", True)
    assert all(ok for grant, ok in grants[1:]) and {grant for grant, _ in grants[1:]} == {"refresh_token"}
    refreshed = [r for r in audit if r["details"]["event"] == "token_refreshed"]
    assert len(refreshed) >= 3 and all(r["target"] == "secure" for r in refreshed)


async def test_a_refused_refresh_asks_the_owner_to_authorize_again(world: World) -> None:
    world.auth.add_client("hub", "hub-secret")
    async with world.gateway(personal(client_id="hub", client_secret="hub-secret")) as gateway:
        await browse(await first_link(gateway, KEY_A))
        await ready(gateway)
        world.auth.refresh.clear()  # the grant was revoked at the authorization server
        world.clock.advance(3600)
        async with gateway.client(KEY_A, "2026-07-28") as client:
            result = await client.call_tool("secure__whoami", {})
    assert result.is_error and LINK.search(text(result)) is not None


async def test_a_forged_or_expired_link_is_refused(world: World) -> None:
    world.auth.add_client("hub", "hub-secret")
    async with world.gateway(personal(client_id="hub", client_secret="hub-secret")) as gateway:
        link = await first_link(gateway, KEY_A)
        async with httpx2.AsyncClient(timeout=15) as browser:
            forged = await browser.get(link[:-6] + "AAAAAA")
            world.clock.advance(601)
            expired = await browser.get(link)
            callback = await browser.get(f"{gateway.base_url}/oauth/upstream/callback?code=x&state=nope")
    assert forged.status_code == 400 and "not one this gateway issued" in forged.text
    assert expired.status_code == 400 and "expired" in expired.text
    assert callback.status_code == 400
    assert world.auth.token_requests == []


async def test_a_key_owner_disconnects_the_server_and_is_asked_to_authorize_again(world: World) -> None:
    world.auth.add_client("hub", "hub-secret")
    async with world.gateway(personal(client_id="hub", client_secret="hub-secret")) as gateway:
        await browse(await first_link(gateway, KEY_A))
        await ready(gateway)
        async with gateway.http(KEY_A) as http:
            assert (await http.get("/oauth/upstream/secure/link")).json()["authorized"] is True
            gone = await http.delete("/oauth/upstream/secure/link")
            assert (
                gone.status_code == 200
                and (await http.get("/oauth/upstream/secure/link")).json()["authorized"] is False
            )
        async with gateway.client(KEY_A, "2026-07-28") as client:
            result = await client.call_tool("secure__whoami", {})
        audit = await oauth_audit(gateway)
    assert result.is_error and LINK.search(text(result)) is not None
    assert any(r["details"]["event"] == "authorization_revoked" and r["key_name"] == "alice-key" for r in audit)


async def test_the_link_route_needs_a_key_that_may_use_the_server(world: World) -> None:
    async with world.gateway(personal(client_id="hub")) as gateway:
        async with gateway.http() as anonymous, gateway.http(KEY_A) as alice:
            missing = await anonymous.get("/oauth/upstream/secure/link")
            other = await alice.get("/oauth/upstream/elsewhere/link")
    assert missing.status_code == 401 and other.status_code == 404


async def test_the_hub_refuses_to_start_without_an_encryption_key(world: World) -> None:
    from mcp_hub import McpHub
    from tests.mcp_hub.conftest import hub_settings
    from toolpolicy.runtime import Governance

    servers = {"secure": {"url": world.mcp_url, "auth": personal()}}
    with pytest.raises(UpstreamOAuthConfigError, match=r"'authorization_code' \(MCP servers: secure\).*ISTHMUS_OAUTH"):
        McpHub(Governance(hub_settings(world.tmp_path, servers)))
    bad = hub_settings(world.tmp_path, servers, upstream_oauth={"encryption_key": "c2hvcnQ="})
    with pytest.raises(UpstreamOAuthConfigError, match="decodes to 5 bytes, not 32"):
        McpHub(Governance(bad))


async def test_an_authorization_response_from_another_issuer_is_refused(world: World) -> None:
    world.auth.add_client("hub", "hub-secret")
    async with world.gateway(personal(client_id="hub", client_secret="hub-secret")) as gateway:
        async with httpx2.AsyncClient(timeout=15) as browser:
            start = await browser.get(await first_link(gateway, KEY_A))
            assert start.status_code == 302 and "code_challenge_method=S256" in start.headers["location"]
            approved = await browser.get(start.headers["location"])
            callback = approved.headers["location"].replace("iss=", "iss=https%3A%2F%2Fevil.example.com&was=")
            refused = await browser.get(callback)
        async with gateway.http(KEY_A) as http:
            status = (await http.get("/oauth/upstream/secure/link")).json()
    assert refused.status_code == 502 and "came from issuer &#x27;https://evil.example.com" in refused.text
    assert status["authorized"] is False and world.auth.token_requests == []


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "sdk-client"])
async def test_a_2025_era_server_gets_a_session_per_key_since_it_binds_sessions_to_their_token(
    world: World, fast_path: bool
) -> None:
    world.auth.add_client("hub", "hub-secret")
    auth = personal(client_id="hub", client_secret="hub-secret")
    async with world.gateway(auth, protocol="legacy", fast_path=fast_path) as gateway:
        await browse(await first_link(gateway, KEY_A))
        await ready(gateway)
        world.auth.subject = "bob"
        await browse(await first_link(gateway, KEY_B))
        async with gateway.client(KEY_A, "2026-07-28") as alice, gateway.client(KEY_B, "legacy") as bob:
            for _ in range(2):
                assert text(await alice.call_tool("secure__whoami", {})) == "alice via hub"
                assert text(await bob.call_tool("secure__whoami", {})) == "bob via hub"
        upstream = gateway.hub.upstreams["secure"]
        assert upstream.health.state == "ready" and upstream.health.protocol_version == "2025-11-25"
        assert upstream._per_key is not None and len(upstream._per_key) == 2
