"""`typed_envelope`: the connection the fast path builds from a 2026-07-28 envelope is the one the SDK builds from
the raw values, with the models made once per distinct envelope."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.server.connection import Connection
from mcp_types import ClientCapabilities, Implementation

from mcp_hub.fastpath import envelopes
from mcp_hub.fastpath.envelopes import typed_envelope

VERSION = "2026-07-28"
INFO = {"name": "client", "version": "1.0"}
CAPABILITIES = {"sampling": {}, "elicitation": {"form": {}}}


def built(info: Any, capabilities: Any) -> Connection:
    return Connection.from_envelope(VERSION, *typed_envelope(info, capabilities))


@pytest.mark.parametrize(
    ("info", "capabilities"),
    [
        (INFO, CAPABILITIES),
        (INFO, {}),
        (None, CAPABILITIES),  # client info is optional: capabilities alone
        (INFO, None),
        ({"name": 3}, CAPABILITIES),  # mis-shaped: not supplied, as the SDK takes it
        (INFO, {"sampling": "yes"}),
        ("text", []),
    ],
)
def test_the_connection_is_the_sdks_own(info: Any, capabilities: Any) -> None:
    ours, sdks = built(info, capabilities), Connection.from_envelope(VERSION, info, capabilities)
    assert ours.client_capabilities == sdks.client_capabilities
    assert ours.client_params == sdks.client_params
    assert ours.initialized.is_set() and ours.protocol_version == VERSION


def test_an_envelope_seen_before_reuses_its_models() -> None:
    first = typed_envelope(dict(INFO), dict(CAPABILITIES))
    again = typed_envelope(dict(INFO), dict(CAPABILITIES))
    assert isinstance(first[0], Implementation) and isinstance(first[1], ClientCapabilities)
    assert again[0] is first[0] and again[1] is first[1]
    # Equal in Python but not as JSON: kept apart.
    counted = typed_envelope(INFO, {"experimental": {"x": {"n": 1}}})[1]
    flagged = typed_envelope(INFO, {"experimental": {"x": {"n": True}}})[1]
    assert counted is not flagged


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envelopes, "KEPT", 4)
    for n in range(10):
        typed_envelope({"name": f"client-{n}", "version": "1"}, {})
        assert len(envelopes._typed) <= 4
