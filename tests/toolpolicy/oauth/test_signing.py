from __future__ import annotations

import pytest
from joserfc import jwt

from toolpolicy.oauth.signing import SigningKeys
from toolpolicy.oauth.store import OAuthStore
from toolpolicy.store import Store

pytestmark = pytest.mark.anyio

DAY = 86_400.0


async def test_keys_are_shared_through_the_store_and_rotated_with_the_previous_one_verifying(
    migrated_store: Store,
) -> None:
    now = [1_900_000_000.0]
    store = OAuthStore(migrated_store)
    one = SigningKeys(store, algorithm="ES256", rotate_after=30 * DAY, clock=lambda: now[0])
    two = SigningKeys(store, algorithm="ES256", rotate_after=30 * DAY, clock=lambda: now[0], reload_interval=0)
    first, alg = await one.signer()
    token = jwt.encode({"alg": alg, "kid": first.kid}, {"n": 1}, first)
    assert jwt.decode(token, await two.verifying(first.kid)).claims == {"n": 1}  # another replica verifies it
    now[0] += 31 * DAY
    second, _ = await one.signer()
    assert second.kid != first.kid
    assert jwt.decode(token, await two.verifying(first.kid)).claims == {"n": 1}  # the previous key still verifies
    assert {key["kid"] for key in (await two.jwks())["keys"]} == {first.kid, second.kid}
    await one.rotate()
    assert first.kid not in {key["kid"] for key in (await two.jwks())["keys"]}
    assert len(await store.signing_keys()) == 2


async def test_rs256_keys_are_available_too(migrated_store: Store) -> None:
    keys = SigningKeys(OAuthStore(migrated_store), algorithm="RS256", rotate_after=DAY)
    key, alg = await keys.signer()
    assert alg == "RS256" and (await keys.jwks())["keys"][0]["kty"] == "RSA"
