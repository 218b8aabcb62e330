"""`connection_for`: the connection the fast path builds from a 2026-07-28 envelope is the one the SDK builds from
the raw values, with the models made once per distinct envelope."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.server.connection import Connection
from mcp_types import ClientCapabilities, Implementation

from mcp_hub.fastpath import envelopes
from mcp_hub.fastpath.envelopes import connection_for, typed_envelope

VERSION = "2026-07-28"
INFO = {"name": "client", "version": "1.0"}
CAPABILITIES = {"sampling": {}, "elicitation": {"form": {}}}


def built(info: Any, capabilities: Any) -> Connection:
    return connection_for(VERSION, info, capabilities)


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
    assert ours.outbound is sdks.outbound and not ours.has_standalone_channel and ours.session_id is None
    assert ours.initialize_accepted and sdks.initialize_accepted


def test_an_envelope_seen_before_reuses_its_models() -> None:
    first = typed_envelope(VERSION, dict(INFO), dict(CAPABILITIES))
    again = typed_envelope(VERSION, dict(INFO), dict(CAPABILITIES))
    assert isinstance(first.client_info, Implementation) and isinstance(first.capabilities, ClientCapabilities)
    assert again is first
    assert connection_for(VERSION, INFO, CAPABILITIES).client_params is first.client_params
    # Equal in Python but not as JSON: kept apart; and per protocol version (the params name it).
    counted = typed_envelope(VERSION, INFO, {"experimental": {"x": {"n": 1}}})
    flagged = typed_envelope(VERSION, INFO, {"experimental": {"x": {"n": True}}})
    assert counted is not flagged
    assert typed_envelope("2026-07-29", INFO, CAPABILITIES) is not first


@pytest.mark.parametrize(
    ("one", "other"),
    [(1, 1.0), (1, True), (0.0, -0.0), ("1", 1), ([1], {"0": 1}), ({"a": 1, "b": 2}, {"b": 2, "a": 1}), (None, "")],
)
def test_envelopes_with_values_json_tells_apart_get_models_of_their_own(one: Any, other: Any) -> None:
    first = typed_envelope(VERSION, INFO, {"experimental": {"x": {"n": one}}})
    second = typed_envelope(VERSION, INFO, {"experimental": {"x": {"n": other}}})
    assert first is not second
    assert first.capabilities == ClientCapabilities.model_validate({"experimental": {"x": {"n": one}}})
    assert typed_envelope(VERSION, INFO, {"experimental": {"x": {"n": one}}}) is first


def test_a_lone_surrogate_in_an_envelope_is_kept_apart_too() -> None:
    lone = typed_envelope(VERSION, {"name": "\ud800", "version": "1"}, {})
    assert typed_envelope(VERSION, {"name": "\ud800", "version": "1"}, {}) is lone
    assert typed_envelope(VERSION, {"name": "\ud801", "version": "1"}, {}) is not lone


def test_an_envelope_nested_too_deep_to_key_is_typed_each_time() -> None:
    deep: Any = {}
    for _ in range(100_000):
        deep = {"x": deep}
    capabilities = {"experimental": {"deep": deep}}
    first = typed_envelope(VERSION, INFO, capabilities)
    again = typed_envelope(VERSION, INFO, capabilities)
    assert again is not first and first.client_info == again.client_info
    sdks = Connection.from_envelope(VERSION, INFO, capabilities)
    assert connection_for(VERSION, INFO, capabilities).client_capabilities == sdks.client_capabilities


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envelopes, "KEPT", 4)
    for n in range(10):
        typed_envelope(VERSION, {"name": f"client-{n}", "version": "1"}, {})
        assert len(envelopes._typed) <= 4


def test_a_copy_has_the_sdks_attributes_and_its_own_state() -> None:
    """The copy is made attribute by attribute: an SDK that adds, drops or renames one fails here first."""
    sdks = Connection.from_envelope(VERSION, INFO, CAPABILITIES)
    assert set(vars(sdks)) == envelopes.SHARED | envelopes.FRESH
    first, second = built(INFO, CAPABILITIES), built(INFO, CAPABILITIES)
    assert set(vars(first)) == set(vars(sdks))
    assert first is not second and first.state is not second.state and first.exit_stack is not second.exit_stack
    assert first.state == {} and not first.exit_stack._exit_callbacks
    first.state["seen"] = True
    first.exit_stack.callback(lambda: None)
    first.protocol_version = "changed"
    again = built(INFO, CAPABILITIES)
    assert again.state == {} and not again.exit_stack._exit_callbacks and again.protocol_version == VERSION
    assert again.initialized.is_set() and again.initialize_accepted
