"""Whatever a client sends, the values reaching an audit record or a spend entry are ones every store takes."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from sqlalchemy import func, select

from tests.conftest import StoreTarget
from tests.toolpolicy.limits_support import running, settings
from toolpolicy import sanitize
from toolpolicy.audit import AuditRecord
from toolpolicy.runtime import Governance
from toolpolicy.store.ledger import MAX_COST, SpendEntry
from toolpolicy.store.schema import AuditRow

pytestmark = pytest.mark.anyio
TS = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

# Every code point, lone surrogates and NUL included.
anything = st.text(st.characters(codec=None, min_codepoint=0), max_size=700)
json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | anything,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(anything, children, max_size=4),
    max_leaves=12,
)


def storable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no store takes it
        return False
    return "\x00" not in value


@given(value=anything, limit=st.integers(min_value=1, max_value=600))
def test_text_is_storable_bounded_and_stable(value: str, limit: int) -> None:
    cleaned = sanitize.text(value, limit)
    assert storable(cleaned) and len(cleaned) <= limit
    assert sanitize.text(cleaned, limit) == cleaned
    if storable(value) and len(value) <= limit:
        assert cleaned is value


@given(presented=st.none() | anything)
def test_request_ids_are_kept_only_when_plain(presented: str | None) -> None:
    result = sanitize.request_id(presented, lambda: "fresh")
    plain = presented is not None and re.fullmatch(r"[!-~]{1,64}", presented) is not None
    assert result == (presented if plain else "fresh")


@given(value=st.dictionaries(anything, json_like, max_size=6))
def test_details_become_bounded_json(value: dict[str, Any]) -> None:
    cleaned = sanitize.details(value)
    encoded = json.dumps(cleaned, allow_nan=False, ensure_ascii=False)  # no NaN/Infinity: PostgreSQL's json rejects
    assert storable(encoded) and len(encoded) <= sanitize.MAX_DETAILS_CHARS
    assert sanitize.details(cleaned) == cleaned


def test_oversized_details_keep_their_small_entries() -> None:
    cleaned = sanitize.details({"route": "openai/gpt-4o", "arguments": {"blob": ["y" * 8000] * 20}})
    assert cleaned["route"] == "openai/gpt-4o" and cleaned["arguments"].startswith(sanitize.TRUNCATED)


def test_details_keys_found_clean_are_remembered_and_still_each_value_is_checked() -> None:
    plain = {"api": "openai", "stream": False, "attempts": 1, "ttfb_ms": 0.5}
    assert sanitize.details(plain) is plain
    assert (*plain,) in sanitize._clean_keys  # the key sequence remembered
    again = {"api": "anthropic", "stream": True, "attempts": 2, "ttfb_ms": 1.25}
    assert sanitize.details(again) is again  # the keys found, the new values checked
    for unclean in (
        {"api": "open\x00ai", "stream": False, "attempts": 1, "ttfb_ms": 0.5},
        {"api": "caf\u00e9", "stream": False, "attempts": 1, "ttfb_ms": 0.5},
        {"api": "openai", "stream": False, "attempts": 2**63, "ttfb_ms": 0.5},
        {"api": "openai", "stream": False, "attempts": 1, "ttfb_ms": float("nan")},
        {"api": "openai", "stream": [False], "attempts": 1, "ttfb_ms": 0.5},
        {"api": "x" * (sanitize.MAX_DETAIL_STRING + 1), "stream": False, "attempts": 1, "ttfb_ms": 0.5},
    ):
        assert not sanitize._flat_and_clean(unclean)
        assert sanitize.details(unclean) is not unclean
    assert not sanitize._flat_and_clean({"api\x00": "openai"})
    assert ("api\x00",) not in sanitize._clean_keys  # a sequence with a key to clean is never remembered


def test_a_spend_entry_with_a_cost_that_is_not_a_number_is_charged_zero() -> None:
    entry = sanitize.spend_entry(SpendEntry("r" * 90, "m", Decimal("NaN"), created_at=TS))
    assert entry.cost_usd == 0 and len(entry.request_id) == 64 and entry.request_id.endswith(sanitize.TRUNCATED)
    huge = sanitize.spend_entry(SpendEntry("r", "m", Decimal("1e20"), created_at=TS))
    assert huge.cost_usd == MAX_COST


def test_a_clean_record_is_passed_through_untouched() -> None:
    record = AuditRecord("r1", "llm", "openai/gpt-4o", "allow", 200, 1.0, details={"route": "openai/gpt-4o"}, ts=TS)
    assert sanitize.audit_record(record) is record


plain_text = st.text(st.characters(min_codepoint=0, max_codepoint=127), max_size=70)
"""Mostly what the shortcut takes (ASCII, NUL now and then, sometimes longer than a column)."""
edge_record = st.builds(
    AuditRecord,
    request_id=plain_text,
    kind=plain_text,
    target=plain_text | anything,
    decision=plain_text,
    status=st.integers(-(2**40), 2**40) | st.booleans(),
    latency_ms=st.floats() | st.integers(-5, 5),
    key_id=st.none() | plain_text,
    key_name=st.none() | plain_text,
    team=st.none() | plain_text | anything,
    customer=st.none() | plain_text,
    reason=st.none() | plain_text,
    tokens_in=st.none() | st.integers(-(2**40), 2**40),
    tokens_out=st.none() | st.integers(-5, 2**33),
    cost_usd=st.none()
    | st.decimals(places=12)
    | st.decimals()
    | st.sampled_from([Decimal(0), Decimal("0E-11"), Decimal("0E+2"), Decimal(-3)]),
    details=st.dictionaries(plain_text, st.none() | st.booleans() | st.integers() | st.floats() | plain_text)
    | st.dictionaries(anything, json_like, max_size=3),
    ts=st.just(TS) | st.just(TS.replace(tzinfo=None)),
)


def test_a_plain_record_takes_the_shortcut_and_an_unplain_one_the_full_path() -> None:
    record = AuditRecord("r1", "llm", "openai/gpt-4o", "allow", 200, 1.5, tokens_in=3, cost_usd=Decimal("0.01"), ts=TS)
    assert sanitize._storable(record)
    for cost in (Decimal(0), Decimal(12), Decimal("0E+2"), Decimal("0.0000000001")):  # an unpriced request: 0
        assert sanitize._storable(AuditRecord("r1", "llm", "x", "allow", 200, 1.0, cost_usd=cost, ts=TS))
    for unplain in (
        AuditRecord("r1", "llm", "x", "allow", 200, -0.0, ts=TS),
        AuditRecord("r1", "llm", "x", "allow", 200, 1.0, cost_usd=Decimal("0E-11"), ts=TS),
        AuditRecord("r1", "llm", "x", "allow", 200, 1.0, cost_usd=Decimal("-0"), ts=TS),
        AuditRecord("r1", "llm", "x", "allow", 200, 1.0, cost_usd=Decimal("1e-12"), ts=TS),
        AuditRecord("r1", "llm", "x\x00", "allow", 200, 1.0, ts=TS),
        AuditRecord("r1", "llm", "x", "allow", True, 1.0, ts=TS),
        AuditRecord("r1", "llm", "x", "allow", 200, 1, ts=TS),
    ):
        assert not sanitize._storable(unplain)
        assert sanitize.audit_record(unplain) is not unplain


edge_entry = st.builds(
    SpendEntry,
    request_id=plain_text,
    target=plain_text | anything,
    cost_usd=st.decimals(places=12) | st.decimals() | st.sampled_from([Decimal(0), Decimal("-0"), Decimal("0E-3")]),
    key_id=st.none() | plain_text,
    team_id=st.none() | plain_text | anything,
    customer_id=st.none() | plain_text,
    provider=st.none() | plain_text,
    created_at=st.just(TS) | st.just(TS.replace(tzinfo=None)),
)


@pytest.mark.parametrize(
    ("edge", "shortcut", "normalised"),
    [
        (edge_record, sanitize.audit_record, sanitize.normalised_audit_record),
        (edge_entry, sanitize.spend_entry, sanitize.normalised_spend_entry),
    ],
    ids=["audit record", "spend entry"],
)
@hypothesis_settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_the_shortcut_passes_through_only_values_the_full_normalisation_leaves_alone(
    data: st.DataObject, edge: st.SearchStrategy[Any], shortcut: Callable[[Any], Any], normalised: Callable[[Any], Any]
) -> None:
    value = data.draw(edge)
    full = normalised(value)
    assert shortcut(value) == full
    if shortcut(value) is value:
        assert full is value
    assert shortcut(full) == full


def test_a_plain_spend_entry_takes_the_shortcut_and_an_unplain_one_the_full_path() -> None:
    entry = SpendEntry("r1", "openai/gpt-4o", Decimal("0.0000375"), "k1", "t1", "c1", "openai", created_at=TS)
    assert sanitize._spend_storable(entry)
    assert sanitize.spend_entry(entry) is entry
    for unplain in (
        SpendEntry("r1", "m", Decimal("0E-3"), created_at=TS),
        SpendEntry("r1", "m", Decimal("-0"), created_at=TS),
        SpendEntry("r1", "m", Decimal("1e-12"), created_at=TS),
        SpendEntry("r1", "m", Decimal("1e20"), created_at=TS),
        SpendEntry("r1", "m\x00", Decimal(1), created_at=TS),
        SpendEntry("r1", "m", Decimal(1), team_id="t" * 33, created_at=TS),
        SpendEntry("r1", "m", Decimal(1), created_at=TS.replace(tzinfo=None)),
    ):
        assert not sanitize._spend_storable(unplain)
        assert sanitize.spend_entry(unplain) is not unplain


def test_a_payer_found_plain_is_remembered_and_still_each_entry_is_checked() -> None:
    class Text(str):
        """Equal to the plain text, and not a `str`: the shortcut leaves it to the full path, as before."""

    plain = SpendEntry("r1", "openai/gpt-4o", Decimal("0.5"), "k1", "t1", "c1", "openai", created_at=TS)
    assert sanitize.spend_entry(plain) is plain
    assert sanitize.spend_entry(plain) is plain  # the payer remembered
    subclassed = SpendEntry("r2", "openai/gpt-4o", Decimal("0.5"), Text("k1"), "t1", "c1", "openai", created_at=TS)
    assert not sanitize._spend_storable(subclassed)
    assert sanitize.spend_entry(subclassed) == sanitize.normalised_spend_entry(subclassed)
    long_id = SpendEntry("r" * 300, "openai/gpt-4o", Decimal("0.5"), "k1", "t1", "c1", "openai", created_at=TS)
    assert not sanitize._spend_storable(long_id)  # the request id is checked every time
    unhashable: Any = ["k1"]
    listed = SpendEntry("r3", "openai/gpt-4o", Decimal("0.5"), unhashable, "t1", "c1", "openai", created_at=TS)
    assert not sanitize._spend_storable(listed)


@pytest.fixture
async def governance(store_target: StoreTarget) -> AsyncIterator[Governance]:
    async with running(settings(store_target.url), store_target.connect_args) as started:
        yield started


fields = st.fixed_dictionaries(
    {
        "request_id": anything,
        "kind": anything,
        "target": anything,
        "decision": anything,
        "status": st.integers(),
        "latency_ms": st.floats(),
        "key_name": st.none() | anything,
        "team": st.none() | anything,
        "reason": st.none() | anything,
        "tokens_in": st.none() | st.integers(),
        "cost_usd": st.none() | st.decimals(),
        "details": st.dictionaries(anything, json_like, max_size=4),
    }
)


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(fields, min_size=1, max_size=8))
async def test_any_record_from_the_edge_is_written_as_it_was_cleaned(
    governance: Governance, batch: list[dict[str, Any]]
) -> None:
    recorder, writer = governance.audit, governance.audit.writer
    before = writer.written + writer.pending
    for values in batch:
        recorder.emit(AuditRecord(**values, ts=TS))
    await recorder.flush()
    assert writer.pending == 0 and writer.quarantined == 0 and writer.dropped == 0
    assert writer.written == before + len(batch)
    async with governance.store.session() as session:
        count = (await session.execute(select(func.count()).select_from(AuditRow))).scalar_one()
    assert count == writer.written
    report = await governance.audit_log.verify()
    assert report.ok, report.problem


def test_a_party_found_plain_is_remembered_and_still_each_record_is_checked() -> None:
    class Text(str):
        """Equal to the plain text, and not a `str`: the shortcut leaves it to the full path, as before."""

    def made(**changes: Any) -> AuditRecord:
        values: dict[str, Any] = {"request_id": "r1", "kind": "llm", "target": "openai/gpt-4o", "decision": "allow"}
        values |= {"status": 200, "latency_ms": 1.5, "key_id": "k1", "key_name": "key", "team": "t1", "ts": TS}
        return AuditRecord(**(values | changes))

    plain = made()
    assert sanitize.audit_record(plain) is plain
    again = made(request_id="r2")
    assert sanitize.audit_record(again) is again  # the party remembered, the new request id checked
    for unplain in (
        made(key_name=Text("key")),
        made(target=Text("openai/gpt-4o")),
        made(request_id="r" * 300),  # the request id is checked every time
        made(request_id="r\x00"),
        made(team=["t1"]),  # unhashable, so not text
    ):
        assert not sanitize._storable(unplain)
        assert sanitize.audit_record(unplain) == sanitize.normalised_audit_record(unplain)


@given(
    amount=st.decimals(allow_nan=False, allow_infinity=False)
    | st.decimals(places=14, allow_nan=False, allow_infinity=False)
)
def test_the_places_a_cost_keeps_are_told_from_its_text_as_its_exponent_tells_them(amount: Decimal) -> None:
    assert sanitize._at_most_ten_places(amount) == (int(amount.as_tuple().exponent) >= -10)
