"""`ModelTarget.parse` (one object per name for the names requests repeat) and `Principal.governed`."""

from __future__ import annotations

import dataclasses

import pytest

from toolpolicy import types
from toolpolicy.types import ModelTarget, Principal


def test_parse_splits_provider_and_model_at_the_first_slash() -> None:
    assert ModelTarget.parse("openai/gpt-4o") == ModelTarget("openai", "gpt-4o")
    assert ModelTarget.parse("org/team/model") == ModelTarget("org", "team/model")
    assert ModelTarget.parse("fast") == ModelTarget("", "fast")
    assert ModelTarget.parse("fast").name == "fast"


def test_a_targets_name_is_made_with_it_and_compares_hashes_and_prints_as_before() -> None:
    target = ModelTarget("openai", "gpt-4o")
    assert target.name == "openai/gpt-4o"
    assert dataclasses.replace(target, model="gpt-4.1").name == "openai/gpt-4.1"
    assert ModelTarget("", "fast").name == "fast"
    assert repr(target) == "ModelTarget(provider='openai', model='gpt-4o')"
    assert hash(target) == hash(ModelTarget("openai", "gpt-4o"))
    assert {target: 1}[ModelTarget.parse("openai/gpt-4o")] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        target.name = "other"  # type: ignore[misc]


def test_a_name_parsed_again_is_the_same_target() -> None:
    first = ModelTarget.parse("mock/repeated-model")
    assert ModelTarget.parse("mock/repeated-model") is first


def test_names_past_the_bound_are_parsed_but_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(types, "_PARSED", {})
    monkeypatch.setattr(types, "MAX_PARSED_TARGETS", 2)
    for index in range(5):
        assert ModelTarget.parse(f"p/m{index}") == ModelTarget("p", f"m{index}")
    assert set(types._PARSED) == {"p/m0", "p/m1"}
    assert ModelTarget.parse("p/m4") is not ModelTarget.parse("p/m4")


def test_a_principal_is_governed_when_any_limit_is_set_and_stays_so_through_replace() -> None:
    plain = Principal(key_id="k1", key_name="bench", limits={"budgets": [], "rate_limit": None})
    assert not plain.governed
    budgeted = dataclasses.replace(plain, limits={"budgets": [{"max_usd": 1}], "rate_limit": None})
    assert budgeted.governed
    assert not dataclasses.replace(budgeted, limits={}).governed
    assert budgeted == dataclasses.replace(plain, limits=budgeted.limits)  # not a field that compares
