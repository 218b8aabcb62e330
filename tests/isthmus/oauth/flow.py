"""A client's side of the built-in authorization server, by hand: register, consent, exchange."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

REDIRECT = "http://127.0.0.1:9/cb"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def register(http: httpx2.AsyncClient, **metadata: Any) -> dict[str, Any]:
    body = {"client_name": "flow test", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none", **metadata}
    answer = await http.post("/oauth/register", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def authorize_url(client_id: str, challenge: str, **params: str) -> str:
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "state": "st-1"}
    query |= {"code_challenge": challenge, "code_challenge_method": "S256", **params}
    return "/oauth/authorize?" + urlencode({k: v for k, v in query.items() if v is not None})


def consent_state(page: str) -> str:
    found = re.search(r'name="consent" value="([^"]+)"', page)
    assert found is not None, page
    return found.group(1)


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def consent(http: httpx2.AsyncClient, url: str, key: str, action: str = "allow") -> httpx2.Response:
    page = await http.get(url)
    assert page.status_code == 200, page.text
    return await http.post(url, data={"api_key": key, "consent": consent_state(page.text), "action": action})


async def sign_in(http: httpx2.AsyncClient, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the registered client, the token response)."""
    client = await register(http)
    verifier, challenge = pkce()
    answer = await consent(http, authorize_url(client["client_id"], challenge), key)
    assert answer.status_code == 303, answer.text
    code = query_of(answer.headers["location"])["code"]
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "redirect_uri": REDIRECT}
    tokens = await http.post("/oauth/token", data={**form, "client_id": client["client_id"]})
    assert tokens.status_code == 200, tokens.text
    return client, dict(tokens.json())


async def refresh(http: httpx2.AsyncClient, client_id: str, refresh_token: str) -> httpx2.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    return await http.post("/oauth/token", data=form)


async def tool_names(base_url: str, bearer: str, path: str = "/mcp") -> list[str]:
    """The tools `bearer` sees, through the SDK's client (2026-07-28)."""
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {bearer}"}, timeout=30)
    transport = streamable_http_client(f"{base_url}{path}", http_client=http)
    async with http, Client(transport, mode="2026-07-28", cache=None) as client:
        return [tool.name for tool in (await client.list_tools()).tools]


async def mcp_status(http: httpx2.AsyncClient, bearer: str | None, path: str = "/mcp") -> httpx2.Response:
    """A raw POST to `/mcp`: what authentication answers before anything else."""
    headers = {"accept": "application/json, text/event-stream"}
    if bearer is not None:
        headers["authorization"] = f"Bearer {bearer}"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    return await http.post(path, json=body, headers=headers)
