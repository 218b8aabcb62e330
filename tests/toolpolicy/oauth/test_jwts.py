from __future__ import annotations

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey

from toolpolicy.oauth.errors import InvalidToken
from toolpolicy.oauth.external import claim_values, mapped_key
from toolpolicy.oauth.jwts import looks_like_jwt, verify
from toolpolicy.oauth.settings import KeysByClaim

NOW = 1_900_000_000


def _key() -> ECKey:
    key = ECKey.generate_key("P-256")
    key.ensure_kid()
    return key


def _token(key: ECKey, **claims: object) -> str:
    body = {"iss": "https://idp.example", "aud": "https://gw.example/mcp", "exp": NOW + 60, **claims}
    return jwt.encode({"alg": "ES256", "kid": key.kid}, body, key, algorithms=["ES256"])


def _verify(token: str, key: ECKey, **overrides: object) -> dict[str, object]:
    options: dict[str, object] = {
        "algorithms": ["ES256"],
        "issuer": "https://idp.example",
        "audience": "https://gw.example/mcp",
        "now": NOW,
        "leeway": 0,
        **overrides,
    }
    return verify(token, KeySet([key]), **options)  # type: ignore[arg-type]


def test_a_good_token_verifies_and_virtual_keys_do_not_look_like_jwts() -> None:
    key = _key()
    token = _token(key, sub="alice")
    assert _verify(token, key)["sub"] == "alice"
    assert looks_like_jwt(token)
    assert not looks_like_jwt("isk-abc.def.ghi")
    assert not looks_like_jwt("isk-quickstart-demo-key")


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"aud": "https://gw.example/other"}, "not for this resource"),
        ({"iss": "https://else.example"}, "issuer"),
        ({"exp": NOW - 1}, "expired"),
        ({"nbf": NOW + 5}, "not valid yet"),
        ({"exp": None}, "no expiry"),
    ],
)
def test_claims_are_checked(claims: dict[str, object], message: str) -> None:
    key = _key()
    with pytest.raises(InvalidToken, match=message):
        _verify(_token(key, **claims), key)


def test_leeway_tolerates_small_skew() -> None:
    key = _key()
    assert _verify(_token(key, exp=NOW - 5), key, leeway=10)


def test_none_hmac_unlisted_algorithms_and_other_keys_are_refused() -> None:
    key = _key()
    secret = OctKey.generate_key(256)
    hmac = jwt.encode({"alg": "HS256"}, {"iss": "https://idp.example", "exp": NOW + 60}, secret)
    with pytest.raises(InvalidToken, match="algorithm"):
        _verify(hmac, key, algorithms=["ES256", "HS256"])
    unsigned = _token(key).rsplit(".", 1)[0].split(".", 1)[1]
    none = "eyJhbGciOiJub25lIn0." + unsigned + "."
    with pytest.raises(InvalidToken, match="algorithm"):
        _verify(none, key, algorithms=["ES256", "none"])
    with pytest.raises(InvalidToken, match="algorithm"):
        _verify(_token(key), key, algorithms=["RS256"])
    with pytest.raises(InvalidToken):
        _verify(_token(_key()), key)


def test_keys_by_claim_takes_the_first_matching_value_of_a_string_list_or_nested_claim() -> None:
    mapping = KeysByClaim(claim="groups", map={"support": "support-bot", "eng": "eng-bot"})
    assert mapped_key({"groups": ["x", "eng", "support"]}, mapping) == "eng-bot"
    assert mapped_key({"groups": "support"}, mapping) == "support-bot"
    assert mapped_key({"groups": ["x"]}, mapping) is None
    assert mapped_key({}, mapping) is None
    assert claim_values({"realm_access": {"roles": ["a", 3, "b"]}}, "realm_access.roles") == ["a", "b"]
