"""`mcp_servers.<name>.auth` and `upstream_oauth:`: what each flow needs, said at load time."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from toolpolicy.settings import GatewaySettings, McpServerSettings
from toolpolicy.upstream_oauth import HeadersAuth, OAuthAuth


def server(auth: dict[str, Any], **extra: Any) -> McpServerSettings:
    return McpServerSettings.model_validate({"url": "https://mcp.example.com/mcp", "auth": auth, **extra})


def test_the_issues_shapes_load() -> None:
    service = server(
        {
            "type": "oauth",
            "flow": "client_credentials",
            "token_url": "https://idp.example.com/token",
            "client_id": "isthmus",
            "client_secret": "s",
            "scopes": ["reports.read"],
        }
    ).auth
    assert isinstance(service, OAuthAuth) and service.auth_method == "client_secret_basic"
    personal = server({"type": "oauth", "flow": "authorization_code"}).auth
    assert isinstance(personal, OAuthAuth) and personal.auth_method == "none" and personal.client_id is None
    static = server({"type": "headers", "headers": {"Authorization": "Bearer t"}}).auth
    assert isinstance(static, HeadersAuth) and static.headers["Authorization"].get_secret_value() == "Bearer t"


@pytest.mark.parametrize(
    ("auth", "extra", "message"),
    [
        ({"type": "oauth", "flow": "client_credentials"}, {}, "needs a 'client_id'"),
        ({"type": "oauth", "flow": "authorization_code", "token_url": "ftp://x"}, {}, "token_url must be an http"),
        (
            {
                "type": "oauth",
                "flow": "client_credentials",
                "client_id": "c",
                "token_auth_method": "client_secret_post",
            },
            {},
            "needs a 'client_secret'",
        ),
        ({"type": "oauth", "flow": "authorization_code"}, {"transport": "sse"}, "needs transport 'streamable-http'"),
        ({"type": "oauth", "flow": "password"}, {}, "flow"),
        ({"type": "basic"}, {}, "type"),
    ],
)
def test_an_auth_block_a_flow_cannot_use_is_refused_naming_the_problem(
    auth: dict[str, Any], extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        server(auth, **extra)


def test_auth_is_for_remote_servers_only() -> None:
    with pytest.raises(ValidationError, match="remote servers"):
        McpServerSettings.model_validate({"command": "srv", "auth": {"type": "headers", "headers": {}}})


def test_the_public_url_must_be_http() -> None:
    with pytest.raises(ValidationError, match="public_url must be an http"):
        GatewaySettings.model_validate({"upstream_oauth": {"public_url": "gateway.example.com"}})
