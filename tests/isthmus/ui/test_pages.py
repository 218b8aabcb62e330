"""The dashboard over HTTP (no browser): sign-in, cookie, CSRF, headers, forms and pagination."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx2
import pytest

from tests.isthmus.conftest import ADMIN_KEY, BOT_KEY, GatewayFactory, admin
from toolpolicy.audit import AuditRecord
from toolpolicy.runtime import Governance

pytestmark = pytest.mark.anyio
PAGES = ("overview", "keys", "teams", "customers", "mcp", "logs", "audit", "playground")


async def sign_in(client: httpx2.AsyncClient) -> str:
    """Sign in; returns the CSRF token the pages carry."""
    response = await client.post("/ui/sign-in", data={"admin_key": ADMIN_KEY})
    assert response.status_code == 303
    page = await client.get("/ui/keys")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match
    return match.group(1)


@pytest.fixture
async def ui(gateway_factory: GatewayFactory) -> AsyncIterator[tuple[Governance, httpx2.AsyncClient]]:
    async with gateway_factory(ui={"page_size": 2}) as started:
        yield started


async def test_every_page_sends_a_browser_to_sign_in_first(ui: tuple[Governance, httpx2.AsyncClient]) -> None:
    _, client = ui
    for page in PAGES:
        response = await client.get(f"/ui/{page}")
        assert (response.status_code, response.headers["location"]) == (303, "/ui/sign-in")
    htmx = await client.get("/ui/keys/new", headers={"hx-request": "true"})
    assert (htmx.status_code, htmx.headers["hx-redirect"]) == (401, "/ui/sign-in")


async def test_a_wrong_key_stays_on_the_sign_in_page_with_an_error(ui: tuple[Governance, httpx2.AsyncClient]) -> None:
    _, client = ui
    for wrong in ("nope", BOT_KEY, ""):
        response = await client.post("/ui/sign-in", data={"admin_key": wrong})
        assert response.status_code == 401
        assert 'role="alert"' in response.text and "Admin key" in response.text
        assert "set-cookie" not in response.headers


async def test_the_session_cookie_is_httponly_strict_and_secure_only_over_tls(
    gateway_factory: GatewayFactory,
) -> None:
    async with gateway_factory() as (_, client):
        cookie = (await client.post("/ui/sign-in", data={"admin_key": ADMIN_KEY})).headers["set-cookie"]
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert {"httponly", "samesite", "max-age", "path"} <= attributes
        assert "samesite=strict" in cookie.lower() and "secure" not in attributes
        tls = httpx2.AsyncClient(transport=client._transport, base_url="https://gateway")
        async with tls:
            cookie = (await tls.post("/ui/sign-in", data={"admin_key": ADMIN_KEY})).headers["set-cookie"]
        assert "secure" in {part.strip().lower() for part in cookie.split(";")}


async def test_each_page_renders_with_security_headers_once_signed_in(
    ui: tuple[Governance, httpx2.AsyncClient],
) -> None:
    _, client = ui
    await sign_in(client)
    for page in PAGES:
        response = await client.get(f"/ui/{page}")
        assert response.status_code == 200, page
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "http" not in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
    static = await client.get("/ui/static/htmx.min.js")
    assert static.status_code == 200 and "no-store" not in static.headers.get("cache-control", "")


async def test_a_change_without_the_csrf_token_or_from_another_origin_is_refused(
    ui: tuple[Governance, httpx2.AsyncClient],
) -> None:
    governance, client = ui
    token = await sign_in(client)
    refused = await client.post("/ui/keys", data={"name": "nocsrf"})
    assert refused.status_code == 403
    forged = await client.post("/ui/keys", data={"name": "forged", "csrf_token": "x" * 43})
    assert forged.status_code == 403
    elsewhere = await client.post(
        "/ui/keys", data={"name": "cross", "csrf_token": token}, headers={"origin": "https://evil.example"}
    )
    assert elsewhere.status_code == 403
    assert (await client.get("/admin/keys/nocsrf", headers=admin())).status_code == 404
    created = await client.post("/ui/keys", data={"name": "viaheader"}, headers={"x-csrf-token": token})
    assert created.status_code == 200 and "isk-" in created.text


async def test_a_key_created_in_the_form_is_what_the_admin_api_shows_and_its_secret_works(
    ui: tuple[Governance, httpx2.AsyncClient],
) -> None:
    _, client = ui
    token = await sign_in(client)
    form = {
        "csrf_token": token,
        "name": "ui-made",
        "team": "support",
        "models": "openai/*, echo/*",
        "mcp": "docs: search_*, read",
        "budgets": "25 per 1d\n100",
        "rate_requests": "60/1m",
        "mcp_calls": "10/1m",
        "code_mode": "on",
    }
    response = await client.post("/ui/keys", data=form)
    secret = re.search(r'value="(isk-[^"]+)"', response.text)
    assert response.status_code == 200 and secret
    record = (await client.get("/admin/keys/ui-made", headers=admin())).json()
    assert record["team"] == "support"
    assert record["models"] == ["openai/*", "echo/*"]
    assert record["mcp"] == {"docs": ["search_*", "read"]}
    assert record["budgets"] == [
        {"max_usd": 25.0, "period": "1d", "rolling": False},
        {"max_usd": 100.0, "period": None, "rolling": False},
    ]
    assert record["rate_limit"]["requests"] == "60/1m"
    assert record["mcp_rate_limit"]["calls"] == "10/1m"
    assert record["code_mode"] is True
    decided = await client.post(
        "/v1/authorize", json={"model": "openai/gpt-4o"}, headers={"authorization": f"Bearer {secret.group(1)}"}
    )
    assert decided.status_code == 200


async def test_bad_form_input_comes_back_with_the_problem_named_and_nothing_written(
    ui: tuple[Governance, httpx2.AsyncClient],
) -> None:
    _, client = ui
    token = await sign_in(client)
    response = await client.post("/ui/keys", data={"csrf_token": token, "name": "bad", "budgets": "lots per day"})
    assert response.status_code == 400
    assert "budget" in response.text and 'role="alert"' in response.text
    assert 'value="bad"' in response.text  # what was typed is kept
    assert (await client.get("/admin/keys/bad", headers=admin())).status_code == 404


async def test_edit_revoke_and_rotate_go_through_the_admin_operations(
    ui: tuple[Governance, httpx2.AsyncClient],
) -> None:
    _, client = ui
    token = await sign_in(client)
    saved = await client.post("/ui/keys/bot", data={"csrf_token": token, "team": "support", "models": "echo/*"})
    assert saved.status_code == 303
    assert (await client.get("/admin/keys/bot", headers=admin())).json()["models"] == ["echo/*"]
    rotated = await client.post("/ui/keys/bot/rotate", data={"csrf_token": token})
    assert rotated.status_code == 200
    old = await client.post("/v1/authorize", json={"model": "echo/x"}, headers={"authorization": f"Bearer {BOT_KEY}"})
    assert old.status_code == 401
    assert (await client.post("/ui/keys/bot/revoke", data={"csrf_token": token})).status_code == 303
    assert (await client.get("/admin/keys/bot", headers=admin())).json()["revoked_at"] is not None


async def test_lists_page_by_cursor(ui: tuple[Governance, httpx2.AsyncClient]) -> None:
    _, client = ui
    token = await sign_in(client)
    for name in ("k1", "k2", "k3"):
        await client.post("/ui/keys", data={"csrf_token": token, "name": name})
    first = await client.get("/ui/keys")
    assert ">bot<" in first.text and ">k1<" in first.text and ">k2<" not in first.text
    cursor = re.search(r'href="/ui/keys\?after=([^"]+)" rel="next"', first.text)
    assert cursor
    second = await client.get(f"/ui/keys?after={cursor.group(1)}")
    assert ">k2<" in second.text and ">k3<" in second.text and ">bot<" not in second.text


async def test_the_log_filters_by_status_and_pages_by_cursor(ui: tuple[Governance, httpx2.AsyncClient]) -> None:
    governance, client = ui
    for number, status in enumerate((200, 429, 200, 500, 200)):
        governance.audit.emit(
            AuditRecord(
                request_id=f"req-{number}", kind="llm", target="echo/echo-1", decision="allow", status=status,
                latency_ms=3.0, key_name="bot", details={"route": "echo/echo-1", "attempts": 1},
            )
        )  # fmt: skip
    await governance.audit.flush()
    await sign_in(client)
    errors = await client.get("/ui/logs?status=error")
    assert "req-1" in errors.text and "req-3" in errors.text and "req-0" not in errors.text
    newest = await client.get("/ui/logs")
    assert "req-4" in newest.text and "req-3" in newest.text and "req-2" not in newest.text
    older = re.search(r'href="(/ui/logs\?[^"]*cursor=[^"]+)" rel="next"', newest.text)
    assert older
    page_two = await client.get(older.group(1).replace("&amp;", "&"))
    assert "req-2" in page_two.text and "req-1" in page_two.text and "req-4" not in page_two.text
    detail = await client.get("/ui/logs/req-1")
    assert detail.status_code == 200 and "Attempts" in detail.text and "429" in detail.text
    assert (await client.get("/ui/logs?status=teapot")).status_code == 400


async def test_the_overview_reads_the_rollups_of_recorded_requests(ui: tuple[Governance, httpx2.AsyncClient]) -> None:
    governance, client = ui
    governance.audit.emit(
        AuditRecord(
            request_id="r", kind="llm", target="echo/echo-1", decision="allow", status=200, latency_ms=3.0,
            key_name="bot", tokens_in=11, tokens_out=4, details={"cache": "hit"},
        )
    )  # fmt: skip
    await governance.audit.flush()
    await sign_in(client)
    page = await client.get("/ui/overview")
    assert re.search(r"Requests</span><span class=\"value\">1<", page.text)
    assert "100.0%" in page.text  # the one LLM request was a cache hit
    assert '"tokens_in": [' in page.text


async def test_the_audit_page_reports_the_chain_verified(ui: tuple[Governance, httpx2.AsyncClient]) -> None:
    governance, client = ui
    governance.audit.emit(
        AuditRecord(request_id="a", kind="authorize", target="x", decision="allow", status=200, latency_ms=1.0)
    )
    await sign_in(client)
    verify = await client.get("/ui/audit/verify", headers={"hx-request": "true"})
    assert "verified" in verify.text
    export = await client.get("/ui/audit/export?format=csv&kind=authorize")
    assert export.status_code == 200 and export.text.startswith("id,ts,")
