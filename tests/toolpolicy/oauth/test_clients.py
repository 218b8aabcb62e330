from __future__ import annotations

import pytest

from toolpolicy.oauth.clients import redirect_allowed
from toolpolicy.oauth.settings import OAuthSettings

SETTINGS = OAuthSettings(issuer="https://gw.example.com")


@pytest.mark.parametrize(
    "uri",
    [
        "https://claude.ai/api/mcp/auth_callback",
        "https://claude.com/api/mcp/auth_callback",
        "cursor://anysphere.cursor-mcp/oauth/callback",
        "cursor://anysphere.cursor-retrieval/oauth/user-anysphere.cursor-mcp-isthmus/callback",
        "http://127.0.0.1:53682/callback",
        "http://localhost:3000/oauth/callback",
        "http://[::1]:9/cb",
    ],
)
def test_claude_cursor_and_loopback_redirects_are_allowed(uri: str) -> None:
    assert redirect_allowed(SETTINGS, uri)


@pytest.mark.parametrize(
    "uri",
    [
        "https://evil.example/api/mcp/auth_callback",
        "https://claude.ai/api/mcp/auth_callback/../x",
        "https://claude.ai/api/mcp/auth_callback#frag",
        "http://127.0.0.1:9/cb#x",
        "http://gw.example.com/cb",
        "javascript:alert(1)",
        "cursor://anysphere.cursor-mcp/oauth/other",
        "",
    ],
)
def test_other_redirects_are_refused(uri: str) -> None:
    assert not redirect_allowed(SETTINGS, uri)


def test_loopback_redirects_can_be_turned_off_and_the_list_replaced() -> None:
    settings = OAuthSettings(issuer="https://gw.example.com", loopback_redirects=False, redirect_uris=["myapp://cb"])
    assert not redirect_allowed(settings, "http://127.0.0.1:9/cb")
    assert not redirect_allowed(settings, "https://claude.ai/api/mcp/auth_callback")
    assert redirect_allowed(settings, "myapp://cb")


def test_a_metadata_document_client_may_redirect_to_its_own_https_origin() -> None:
    assert redirect_allowed(SETTINGS, "https://app.example/cb", origin="https://app.example")
    assert not redirect_allowed(SETTINGS, "https://elsewhere.example/cb", origin="https://app.example")
