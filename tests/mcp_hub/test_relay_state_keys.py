"""The keys sealing the hub's `requestState` (`mcp_hub/relay/state_keys.py`): own, then shared, rotated safely."""

from __future__ import annotations

import os

import pytest
from mcp.server.request_state import InvalidRequestState

from mcp_hub.relay.state_keys import StateKeys


def test_a_state_sealed_by_one_replica_opens_on_another_once_both_share_the_key() -> None:
    one, two = StateKeys(), StateKeys()
    sealed = one.seal(b"held on one")
    with pytest.raises(InvalidRequestState):
        two.unseal(sealed)  # each process's own key: nobody else opens it
    shared = os.urandom(32)
    one.share(shared)
    two.share(shared)
    assert one.shared and two.shared
    assert two.unseal(one.seal(b"held on one")) == b"held on one"
    assert one.unseal(sealed) == b"held on one"  # sealed before sharing: still opens where it was sealed


def test_a_new_shared_key_still_opens_the_states_sealed_under_the_previous_one() -> None:
    keys = StateKeys()
    keys.share(os.urandom(32))
    before = keys.seal(b"round one")
    keys.share(os.urandom(32))  # Redis came back without the key and a replica made another
    assert keys.unseal(before) == b"round one"
    assert keys.unseal(keys.seal(b"round two")) == b"round two"


def test_a_short_key_is_refused_naming_its_length() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes, this one has 16"):
        StateKeys().share(os.urandom(16))
