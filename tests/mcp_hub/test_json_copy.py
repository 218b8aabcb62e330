"""`json_copy`, the copy of the `serverInfo` stamp each 2026-07-28 result gets: what `copy.deepcopy` makes of JSON
data, equal and sharing no dict or list with the original."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given

from mcp_hub.server import json_copy
from tests.json_fuzz_support import plain_values


def containers(value: Any) -> list[Any]:
    """Every dict and list in `value`, itself included."""
    found: list[Any] = []
    if isinstance(value, dict):
        found.append(value)
        for item in value.values():
            found.extend(containers(item))
    elif isinstance(value, list):
        found.append(value)
        for item in value:
            found.extend(containers(item))
    return found


@given(plain_values())
def test_a_copy_is_what_deepcopy_makes_and_shares_no_container(value: Any) -> None:
    copied = json_copy(value)
    assert copied == copy.deepcopy(value)
    assert repr(copied) == repr(value)  # the same types too (True stays True, 1.0 stays 1.0)
    originals = {id(found) for found in containers(value)}
    assert not originals & {id(found) for found in containers(copied)}


def test_the_stamp_of_a_flat_info_dict_is_a_fresh_dict() -> None:
    source = {"name": "isthmus", "version": "1.0", "icons": [{"src": "a.png"}]}
    stamp = json_copy(source)
    stamp["name"] = "changed"
    stamp["icons"][0]["src"] = "changed"
    assert source == {"name": "isthmus", "version": "1.0", "icons": [{"src": "a.png"}]}
