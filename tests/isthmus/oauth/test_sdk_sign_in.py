"""The MCP SDK's own OAuth client signs in to `/mcp` with nothing but the URL and a key pasted on the consent page."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from tests.isthmus.oauth.conftest import ECHO_KEY, OAuthServing, serving

pytestmark = pytest.mark.anyio

REDIRECT = "http://127.0.0.1:9/callback"


class MemoryStorage(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class Person:
    """Opens the authorization URL, pastes the key into the consent form, and catches the redirect."""

    def __init__(self, gateway: OAuthServing, key: str) -> None:
        self.gateway, self.key = gateway, key
        self.result: AuthorizationCodeResult | None = None
        self.page = ""

    async def redirect(self, url: str) -> None:
        async with self.gateway.http() as http:
            page = await http.get(url)
            assert page.status_code == 200, page.text
            self.page = page.text
            consent = re.search(r'name="consent" value="([^"]+)"', page.text)
            assert consent is not None
            answer = await http.post(url, data={"api_key": self.key, "consent": consent.group(1), "action": "allow"})
        assert answer.status_code == 303, answer.text
        query = parse_qs(urlsplit(answer.headers["location"]).query)
        self.result = AuthorizationCodeResult(code=query["code"][0], state=query["state"][0], iss=query["iss"][0])

    async def callback(self) -> AuthorizationCodeResult:
        assert self.result is not None
        return self.result


def provider(gateway: OAuthServing, person: Person, storage: MemoryStorage) -> OAuthClientProvider:
    metadata = OAuthClientMetadata(client_name="sdk test client", redirect_uris=[REDIRECT], scope="mcp")
    return OAuthClientProvider(f"{gateway.base_url}/mcp", metadata, storage, person.redirect, person.callback)


async def test_the_sdk_client_signs_in_and_gets_exactly_the_keys_tools(tmp_path: Path) -> None:
    async with serving(tmp_path) as gateway:
        person, storage = Person(gateway, ECHO_KEY), MemoryStorage()
        http = httpx2.AsyncClient(auth=provider(gateway, person, storage), timeout=30)
        async with http, Client(streamable_http_client(f"{gateway.base_url}/mcp", http_client=http), cache=None) as c:
            tools = await c.list_tools()
            assert [tool.name for tool in tools.tools] == ["demo__echo"]
            result = await c.call_tool("demo__echo", {"text": "hi"})
            assert not result.is_error
        assert "sdk test client" in person.page
        assert storage.tokens is not None and storage.tokens.refresh_token
        assert storage.client is not None and storage.client.redirect_uris is not None
        calls = await gateway.records("tool_call")
        echo = next(row for row in calls if row["target"] == "demo/echo")
        assert echo["key_name"] == "echo-only"
        assert echo["details"]["oauth_client"] == storage.client.client_id
        assert echo["details"]["subject"] == "echo-only"
        events = [row["details"]["event"] for row in await gateway.records()]
        assert "registered" in events and "issued" in events


async def test_the_sdk_client_refreshes_an_expired_token(tmp_path: Path) -> None:
    async with serving(tmp_path) as gateway:
        person, storage = Person(gateway, ECHO_KEY), MemoryStorage()
        auth = provider(gateway, person, storage)
        http = httpx2.AsyncClient(auth=auth, timeout=30)
        async with http, Client(streamable_http_client(f"{gateway.base_url}/mcp", http_client=http), cache=None) as c:
            await c.list_tools()
        first = storage.tokens
        assert first is not None and first.refresh_token
        # The client believes its token expired: it refreshes (rotating the refresh token), no second consent.
        person.result = None
        auth.context.token_expiry_time = 1.0
        http = httpx2.AsyncClient(auth=auth, timeout=30)
        async with http, Client(streamable_http_client(f"{gateway.base_url}/mcp", http_client=http), cache=None) as c:
            assert [tool.name for tool in (await c.list_tools()).tools] == ["demo__echo"]
        assert storage.tokens is not None and storage.tokens.refresh_token != first.refresh_token
        assert person.result is None
        events = [row["details"]["event"] for row in await gateway.records()]
        assert "refreshed" in events
