"""The built-in authorization server over HTTP: discovery, consent, codes, refresh rotation, revocation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.isthmus.oauth.conftest import ECHO_KEY, FULL_KEY, serving
from tests.isthmus.oauth.flow import (
    REDIRECT,
    authorize_url,
    consent,
    consent_state,
    mcp_status,
    pkce,
    query_of,
    refresh,
    register,
    sign_in,
    tool_names,
)

pytestmark = pytest.mark.anyio


async def test_an_unauthenticated_mcp_request_points_to_the_resource_metadata(tmp_path: Path) -> None:
    async with serving(tmp_path) as gateway, gateway.http() as http:
        base = gateway.base_url
        for path, suffix in (("/mcp", "/mcp"), ("/mcp/demo", "/mcp/demo")):
            answer = await mcp_status(http, None, path)
            assert answer.status_code == 401
            expected = f'resource_metadata="{base}/.well-known/oauth-protected-resource{suffix}"'
            assert expected in answer.headers["www-authenticate"]
        metadata = (await http.get("/.well-known/oauth-protected-resource/mcp")).json()
        assert metadata["resource"] == f"{base}/mcp"
        assert metadata["authorization_servers"] == [base]
        assert (await http.get("/.well-known/oauth-protected-resource")).json()["resource"] == f"{base}/mcp"
        assert (await http.get("/.well-known/oauth-protected-resource/mcp/demo")).json()[
            "resource"
        ] == f"{base}/mcp/demo"
        server = (await http.get("/.well-known/oauth-authorization-server")).json()
        assert server["issuer"] == base
        assert server["code_challenge_methods_supported"] == ["S256"]
        assert server["authorization_response_iss_parameter_supported"] is True
        assert (await http.get("/.well-known/openid-configuration")).json() == server
        jwks = (await http.get("/oauth/jwks")).json()
        assert [key["kty"] for key in jwks["keys"]] == ["EC"] and "d" not in jwks["keys"][0]
        bad = await mcp_status(http, "eyJhbGciOiJFUzI1NiJ9.e30.c2ln")
        assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]
        # Virtual keys keep working unchanged.
        assert await tool_names(base, ECHO_KEY) == ["demo__echo"]


async def test_bad_authorization_requests_get_the_rfc_error_codes(tmp_path: Path) -> None:
    async with serving(tmp_path) as gateway, gateway.http() as http:
        bad = await http.post("/oauth/register", json={"redirect_uris": ["https://evil.example/cb"]})
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_redirect_uri"
        fragment = await http.post("/oauth/register", json={"redirect_uris": ["http://127.0.0.1:9/cb#x"]})
        assert fragment.json()["error"] == "invalid_redirect_uri"
        client = await register(http)
        client_id = client["client_id"]
        verifier, challenge = pkce()
        unregistered = await http.get(authorize_url(client_id, challenge, redirect_uri="http://127.0.0.1:9/other"))
        assert unregistered.status_code == 400 and "location" not in unregistered.headers
        for params, error in (
            ({"code_challenge": None}, "invalid_request"),
            ({"code_challenge_method": "plain"}, "invalid_request"),
            ({"response_type": "token"}, "unsupported_response_type"),
            ({"resource": "https://elsewhere.example/mcp"}, "invalid_target"),
            ({"scope": "admin"}, "invalid_scope"),
        ):
            answer = await http.get(authorize_url(client_id, challenge, **params))  # type: ignore[arg-type]
            assert answer.status_code == 302, (params, answer.text)
            query = query_of(answer.headers["location"])
            assert answer.headers["location"].startswith(REDIRECT)
            assert (query["error"], query["state"], query["iss"]) == (error, "st-1", gateway.base_url)
        unknown = await http.get(authorize_url("no-such-client", challenge))
        assert unknown.status_code == 400 and "invalid_client" in unknown.text
        allowed = await consent(http, authorize_url(client_id, challenge), ECHO_KEY)
        code = query_of(allowed.headers["location"])["code"]
        exchange = {"grant_type": "authorization_code", "code": code, "client_id": client_id, "redirect_uri": REDIRECT}
        wrong = await http.post("/oauth/token", data={**exchange, "code_verifier": pkce()[0]})
        assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
        # The code was spent by the failed attempt: the right verifier cannot use it now.
        again = await http.post("/oauth/token", data={**exchange, "code_verifier": verifier})
        assert again.json()["error"] == "invalid_grant"
        missing = await http.post("/oauth/token", data={**exchange, "code_verifier": ""})
        assert missing.json()["error"] in ("invalid_grant", "invalid_request")
        grant = await http.post("/oauth/token", data={"grant_type": "password", "client_id": client_id})
        assert grant.json()["error"] == "unsupported_grant_type"
        twice = await http.post(
            "/oauth/token",
            content=f"client_id={client_id}&client_id=x",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert twice.json()["error"] == "invalid_request"
        events = [row["details"]["event"] for row in await gateway.records()]
        assert "denied" in events


async def test_the_consent_page_shows_the_client_and_the_keys_tools_and_refuses_a_wrong_key(tmp_path: Path) -> None:
    async with serving(tmp_path) as gateway, gateway.http() as http:
        client = await register(http, client_name="Claude")
        url = authorize_url(client["client_id"], pkce()[1])
        page = await http.get(url)
        assert "Claude" in page.text and REDIRECT in page.text and 'name="api_key"' in page.text
        assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
        state = consent_state(page.text)
        wrong = await http.post(url, data={"api_key": "isk-not-a-key", "consent": state})
        assert wrong.status_code == 401 and "cannot be used" in wrong.text and 'name="api_key"' in wrong.text
        preview = await http.post(url, data={"api_key": ECHO_KEY, "consent": state, "action": "preview"})
        assert preview.status_code == 200 and "<code>echo</code>" in preview.text and "echo-only" in preview.text
        forged = await http.post(url, data={"api_key": ECHO_KEY, "consent": state[:-4] + "AAAA"})
        assert forged.status_code == 400 and "location" not in forged.headers
        denied = await http.post(url, data={"consent": state, "action": "deny"})
        assert denied.status_code == 303 and query_of(denied.headers["location"])["error"] == "access_denied"


async def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(tmp_path: Path) -> None:
    async with serving(tmp_path) as gateway, gateway.http() as http:
        client, first = await sign_in(http, ECHO_KEY)
        client_id = client["client_id"]
        assert await tool_names(gateway.base_url, first["access_token"]) == ["demo__echo"]
        second = await refresh(http, client_id, first["refresh_token"])
        assert second.status_code == 200 and second.json()["refresh_token"] != first["refresh_token"]
        reused = await refresh(http, client_id, first["refresh_token"])
        assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
        # The thief's replay revoked the family: the legitimate newer tokens stop working too.
        assert (await refresh(http, client_id, second.json()["refresh_token"])).json()["error"] == "invalid_grant"
        assert (await mcp_status(http, second.json()["access_token"])).status_code == 401
        events = [row["details"]["event"] for row in await gateway.records()]
        assert "reuse_detected" in events and "refreshed" in events


async def test_revoking_or_rotating_the_key_revokes_its_tokens(tmp_path: Path) -> None:
    async with serving(tmp_path) as gateway, gateway.http() as http:
        _, echo = await sign_in(http, ECHO_KEY)
        client, full = await sign_in(http, FULL_KEY)
        assert len(await tool_names(gateway.base_url, full["access_token"])) > 1
        await gateway.governance.directory.revoke_key("echo-only")
        gateway.governance.changed()
        refused = await mcp_status(http, echo["access_token"])
        assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
        await gateway.governance.directory.rotate_key("full")
        gateway.governance.changed()
        assert (await mcp_status(http, full["access_token"])).status_code == 401
        assert (await refresh(http, client["client_id"], full["refresh_token"])).json()["error"] == "invalid_grant"


async def test_the_revocation_endpoint_revokes_a_refresh_tokens_family(tmp_path: Path) -> None:
    async with serving(tmp_path) as gateway, gateway.http() as http:
        client, tokens = await sign_in(http, ECHO_KEY)
        form = {"token": tokens["refresh_token"], "client_id": client["client_id"]}
        assert (await http.post("/oauth/revoke", data=form)).status_code == 200
        assert (await refresh(http, client["client_id"], tokens["refresh_token"])).json()["error"] == "invalid_grant"
        assert (await mcp_status(http, tokens["access_token"])).status_code == 401
        unknown = await http.post("/oauth/revoke", data={**form, "token": "nothing"})
        assert unknown.status_code == 200  # RFC 7009: an unknown token is not an error
        assert "revoked" in [row["details"]["event"] for row in await gateway.records()]


async def test_an_access_token_expires_on_the_injected_clock(tmp_path: Path) -> None:
    now = [1_900_000_000.0]
    async with serving(tmp_path, clock=lambda: now[0], access_token_ttl=60) as gateway, gateway.http() as http:
        _, tokens = await sign_in(http, ECHO_KEY)
        assert await tool_names(gateway.base_url, tokens["access_token"]) == ["demo__echo"]
        now[0] += 61
        answer = await mcp_status(http, tokens["access_token"])
        assert answer.status_code == 401 and "expired" in answer.json()["error"]["message"]
