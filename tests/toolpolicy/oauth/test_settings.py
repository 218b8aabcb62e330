from __future__ import annotations

import pytest
from pydantic import ValidationError

from toolpolicy.oauth.settings import OAuthSettings
from toolpolicy.settings import GatewaySettings


def test_the_issues_configuration_shape_is_accepted() -> None:
    settings = GatewaySettings.model_validate(
        {
            "oauth": {
                "issuer": "https://gateway.example.com/",
                "access_token_ttl": 600,
                "trusted_issuers": [
                    {
                        "issuer": "https://idp.example.com",
                        "jwks_uri": "https://idp.example.com/.well-known/jwks.json",
                        "audience": "https://gateway.example.com/mcp",
                        "keys_by_claim": {"claim": "groups", "map": {"support": "support-bot"}},
                    }
                ],
            }
        }
    )
    assert settings.oauth is not None
    assert settings.oauth.issuer == "https://gateway.example.com"
    assert settings.oauth.resource == "https://gateway.example.com/mcp"
    assert "https://claude.ai/api/mcp/auth_callback" in settings.oauth.redirect_uris


@pytest.mark.parametrize(
    ("oauth", "problem"),
    [
        ({"issuer": "http://gateway.example.com"}, "https"),
        ({"issuer": "gateway.example.com"}, "absolute"),
        ({"issuer": "https://gw.example.com?x=1"}, "query"),
        ({"issuer": "https://gw.example.com", "access_token_ttl": 5}, "access_token_ttl"),
        (
            {
                "issuer": "https://gw.example.com",
                "trusted_issuers": [
                    {
                        "issuer": "https://idp.example.com",
                        "jwks_uri": "https://idp.example.com/jwks",
                        "audience": "https://other.example.com/mcp",
                        "keys_by_claim": {"claim": "groups", "map": {"a": "b"}},
                    }
                ],
            },
            "audience",
        ),
        (
            {
                "issuer": "https://gw.example.com",
                "trusted_issuers": [
                    {
                        "issuer": "https://idp.example.com",
                        "jwks_uri": "https://idp.example.com/jwks",
                        "audience": "https://gw.example.com/mcp",
                        "keys_by_claim": {"claim": "groups", "map": {"a": "b"}},
                        "algorithms": ["HS256"],
                    }
                ],
            },
            "algorithms",
        ),
    ],
)
def test_bad_oauth_settings_are_refused_naming_the_problem(oauth: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        OAuthSettings.model_validate(oauth)


def test_plain_http_is_accepted_on_a_loopback_issuer_for_local_testing() -> None:
    assert OAuthSettings(issuer="http://127.0.0.1:8080").resource == "http://127.0.0.1:8080/mcp"
