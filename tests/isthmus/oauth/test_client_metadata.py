"""Client ID metadata documents: a client known by the URL of its metadata, fetched and checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.isthmus.oauth.conftest import ECHO_KEY, serving
from tests.isthmus.oauth.flow import REDIRECT, authorize_url, consent, pkce, query_of, tool_names
from tests.isthmus.oauth.idp import idp

pytestmark = pytest.mark.anyio


async def test_a_client_known_by_its_metadata_document_signs_in(tmp_path: Path) -> None:
    async with idp() as site, serving(tmp_path, insecure_client_metadata=True) as gateway, gateway.http() as http:
        client_id = f"{site.issuer}/clients/app"
        site.documents["app"] = {"client_id": client_id, "client_name": "Doc App", "redirect_uris": [REDIRECT]}
        verifier, challenge = pkce()
        page = await http.get(authorize_url(client_id, challenge))
        assert page.status_code == 200 and "Doc App" in page.text
        answer = await consent(http, authorize_url(client_id, challenge), ECHO_KEY)
        code = query_of(answer.headers["location"])["code"]
        form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "client_id": client_id}
        tokens = await http.post("/oauth/token", data={**form, "redirect_uri": REDIRECT})
        assert tokens.status_code == 200, tokens.text
        assert await tool_names(gateway.base_url, tokens.json()["access_token"]) == ["demo__echo"]


async def test_a_metadata_document_that_does_not_name_itself_or_is_missing_is_refused(tmp_path: Path) -> None:
    async with idp() as site, serving(tmp_path, insecure_client_metadata=True) as gateway, gateway.http() as http:
        site.documents["liar"] = {"client_id": "https://other.example/app", "redirect_uris": [REDIRECT]}
        site.documents["evil"] = {
            "client_id": f"{site.issuer}/clients/evil",
            "redirect_uris": ["https://attacker.example/cb"],
        }
        for name in ("liar", "missing", "evil"):
            page = await http.get(authorize_url(f"{site.issuer}/clients/{name}", pkce()[1]))
            assert page.status_code == 400 and "invalid_client" in page.text, name
            assert "location" not in page.headers


async def test_plain_http_metadata_urls_are_refused_unless_configured_for_tests(tmp_path: Path) -> None:
    async with idp() as site, serving(tmp_path) as gateway, gateway.http() as http:
        site.documents["app"] = {"client_id": f"{site.issuer}/clients/app", "redirect_uris": [REDIRECT]}
        page = await http.get(authorize_url(f"{site.issuer}/clients/app", pkce()[1]))
        assert page.status_code == 400 and "https URL" in page.text
