"""Resource-server mode: an external IdP's JWTs on `/mcp`, mapped to a key by a claim."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey

from tests.isthmus.oauth.conftest import OAuthServing, serving
from tests.isthmus.oauth.flow import mcp_status, tool_names
from tests.isthmus.oauth.idp import TestIdp, idp
from tests.mcp_hub.conftest import free_port

pytestmark = pytest.mark.anyio

NOW = 1_900_000_000.0


def trusted(provider: TestIdp, port: int) -> dict[str, Any]:
    return {
        "issuer": provider.issuer,
        "jwks_uri": provider.jwks_uri,
        "audience": f"http://127.0.0.1:{port}/mcp",
        "keys_by_claim": {"claim": "groups", "map": {"support": "echo-only", "eng": "full"}},
    }


@asynccontextmanager
async def behind_idp(
    tmp_path: Path, **oauth: Any
) -> AsyncIterator[tuple[TestIdp, OAuthServing, httpx2.AsyncClient, int]]:
    """The in-test IdP, and the gateway trusting it (its clock at NOW unless given)."""
    port = free_port()
    oauth.setdefault("clock", lambda: NOW)
    async with idp() as provider:
        async with serving(tmp_path, port=port, trusted_issuers=[trusted(provider, port)], **oauth) as gateway:
            async with gateway.http() as http:
                yield provider, gateway, http, port


def claims(port: int, **extra: Any) -> dict[str, Any]:
    base = {"sub": "alice@example.com", "aud": f"http://127.0.0.1:{port}/mcp", "azp": "idp-client"}
    return {**base, "iat": int(NOW), "exp": int(NOW) + 300, "groups": ["sales", "support", "eng"], **extra}


async def test_an_idp_token_maps_to_the_first_matching_key_and_is_audited_with_its_subject(tmp_path: Path) -> None:
    async with behind_idp(tmp_path) as (provider, gateway, _, port):
        token = provider.token(claims(port))
        assert await tool_names(gateway.base_url, token) == ["demo__echo"]  # `support` comes before `eng`
        rows = await gateway.records()
        accepted = [row for row in rows if row["details"]["event"] == "external_accepted"]
        assert len(accepted) == 1 and accepted[0]["key_name"] == "echo-only"
        assert accepted[0]["details"]["subject"] == "alice@example.com"
        single = provider.token(claims(port, groups="eng"))  # a string claim is one value
        assert len(await tool_names(gateway.base_url, single)) > 1


async def test_idp_tokens_are_refused_for_audience_expiry_signer_algorithm_and_mapping(tmp_path: Path) -> None:
    async with behind_idp(tmp_path) as (provider, gateway, http, port):
        stranger = TestIdp.new_key()
        refused = {
            "wrong audience": provider.token(claims(port, aud="https://other.example/mcp")),
            "expired": provider.token(claims(port, exp=int(NOW) - 60)),
            "not yet valid": provider.token(claims(port, nbf=int(NOW) + 600)),
            "unknown signer": provider.token(claims(port), key=stranger),
            "unknown issuer": provider.token(claims(port, iss="https://impostor.example")),
            "hmac": jwt.encode({"alg": "HS256"}, {"iss": provider.issuer, **claims(port)}, OctKey.generate_key(256)),
        }
        for reason, token in refused.items():
            answer = await mcp_status(http, token)
            assert answer.status_code == 401, reason
            assert 'error="invalid_token"' in answer.headers["www-authenticate"], reason
        unmapped = await mcp_status(http, provider.token(claims(port, groups=["sales"])))
        assert unmapped.status_code == 403 and "keys_by_claim" in unmapped.json()["error"]["message"]
        within_leeway = provider.token(claims(port, exp=int(NOW) - 10))  # 30 s leeway by default
        assert (await mcp_status(http, within_leeway)).status_code != 401
        rows = await gateway.records()
        assert sum(row["details"]["event"] == "external_refused" for row in rows) >= len(refused)


async def test_a_rotated_idp_key_is_fetched_once_on_its_unknown_kid(tmp_path: Path) -> None:
    async with behind_idp(tmp_path, jwks_refresh_interval=0) as (provider, gateway, http, port):
        assert (await mcp_status(http, provider.token(claims(port)))).status_code != 401
        fetched = provider.fetches
        provider.rotate()
        assert await tool_names(gateway.base_url, provider.token(claims(port))) == ["demo__echo"]
        assert provider.fetches == fetched + 1


async def test_unknown_kids_do_not_refetch_the_jwks_more_than_the_rate_limit_allows(tmp_path: Path) -> None:
    async with behind_idp(tmp_path, jwks_refresh_interval=60) as (provider, _, http, port):
        assert (await mcp_status(http, provider.token(claims(port)))).status_code != 401
        fetched = provider.fetches
        for _ in range(5):
            made_up = provider.token(claims(port), key=TestIdp.new_key())
            assert (await mcp_status(http, made_up)).status_code == 401
        assert provider.fetches == fetched
