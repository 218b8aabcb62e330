"""Preparing a batch: the hash chain it links to is the one every chain so far was built with, record by record."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.dialects.sqlite import aiosqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import StatementError

from toolpolicy.audit import AuditRecord
from toolpolicy.store.audit_rows import (
    BODY_KEYS,
    COLUMNS,
    AuditRowBinder,
    PartySegments,
    party_segments,
    record_hash,
)
from toolpolicy.store.faults import is_record_fault

START = datetime(2026, 11, 1, tzinfo=UTC)
HASHED = ("request_id", "kind", "key_id", "key_name", "team", "customer", "target", "decision", "reason", "status")


def reference_hash(prev_hash: str, seq: int, fields: dict[str, Any]) -> str:
    """The chain's hash as first defined: the whole `[prev, seq, canonical]` through one `json.dumps`."""
    cost = fields.get("cost_usd")
    canonical = {
        **{name: fields.get(name) for name in (*HASHED, "tokens_in", "tokens_out")},
        "ts": fields["ts"].astimezone(UTC).isoformat(timespec="microseconds"),
        "cost_usd": str(Decimal(cost).quantize(Decimal("0.0000000001"))) if cost is not None else None,
        "latency_ms": repr(float(fields["latency_ms"])),
        "details": fields.get("details") or {},
    }
    if fields.get("writer_id") is not None:
        canonical["writer_id"], canonical["emit_seq"] = fields["writer_id"], fields.get("emit_seq")
    body = json.dumps([prev_hash, seq, canonical], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def varied(index: int) -> AuditRecord:
    """Records that exercise every field: absent ones, unicode, nested details, other time zones, odd costs."""
    return AuditRecord(
        request_id=f"r{index}",
        kind=("llm", "tool_call", "authorize")[index % 3],
        target="docs/søk" if index % 2 else "openai/gpt-4o",
        decision="allow" if index % 4 else "deny",
        status=200 + index,
        latency_ms=index / 7,
        key_id=f"k{index}" if index % 3 else None,
        key_name="bot" if index % 2 else None,
        team="ops" if index % 5 else None,
        customer="acme" if index % 6 else None,
        reason=None if index % 4 else "over budget",
        tokens_in=index * 3 if index % 2 else None,
        tokens_out=index if index % 2 else None,
        cost_usd=Decimal("0.0000375") * index if index % 3 else None,
        details={} if index % 5 == 0 else {"route": "a/b", "nested": {"z": [1, 2.5, "é"], "a": None}, "n": index},
        ts=(START + timedelta(minutes=index)).astimezone(timezone(timedelta(hours=index % 5))),
    )


@pytest.mark.parametrize("dialect", [aiosqlite.dialect(), asyncpg.dialect()], ids=["sqlite", "postgresql"])
@pytest.mark.parametrize("writer_id", ["w" * 32, None], ids=["emitted", "direct"])
def test_a_linked_batch_is_the_chain_built_record_by_record(dialect: Dialect, writer_id: str | None) -> None:
    records = [varied(index) for index in range(1, 40)]
    numbers = [index if writer_id is not None else None for index in range(1, 40)]
    prepared = AuditRowBinder(dialect).prepare(list(zip(records, numbers, strict=True)), writer_id)
    rows, last_seq, last_hash = prepared.link(41, "ab" * 32)

    previous = "ab" * 32
    for seq, (record, number, row) in enumerate(zip(records, numbers, rows, strict=True), start=42):
        fields = {**record.as_row(), "writer_id": writer_id, "emit_seq": number}
        expected = reference_hash(previous, seq, fields)
        assert row[:3] == (seq, previous, expected)
        assert record_hash(previous, seq, fields) == expected
        previous = expected
    assert (last_seq, last_hash) == (41 + len(records), previous)


def test_an_empty_batch_leaves_the_head_where_it_is() -> None:
    prepared = AuditRowBinder(aiosqlite.dialect()).prepare([], "w" * 32)
    assert prepared.link(7, "cd" * 32) == ([], 7, "cd" * 32)


def test_a_value_no_column_takes_is_a_record_fault_before_any_io() -> None:
    unbindable = AuditRecord("r1", "llm", "x", "allow", 200, 1.0, details={"x": object()}, ts=START)
    with pytest.raises(StatementError) as caught:
        AuditRowBinder(aiosqlite.dialect()).prepare([(varied(1), 1), (unbindable, 2)], "w" * 32)
    assert isinstance(caught.value.orig, TypeError) and is_record_fault(caught.value)


@pytest.mark.parametrize("dialect", [aiosqlite.dialect(), asyncpg.dialect()], ids=["sqlite", "postgresql"])
def test_values_that_look_like_the_details_entry_hash_as_the_reference_says(dialect: Dialect) -> None:
    """The body is encoded once with a placeholder for `details`, then the details' own JSON put in its place: text
    that imitates the placeholder or the entry, in the fields before it or inside `details`, must not move it."""
    lookalikes = ["\x00details\x00", '"details":"\x00details\x00"', '","details":"\\u0000details\\u0000"', "details"]
    records = [
        AuditRecord(
            request_id=f"r{index}",
            kind="llm",
            target=text,
            decision=text,
            status=200,
            latency_ms=1.0,
            customer=text,
            cost_usd=Decimal("1.5"),
            details={"details": text, text: [text, {"details": None}], "a": "\x00details\x00"},
            ts=START,
        )
        for index, text in enumerate(lookalikes)
    ]
    numbers = list(range(1, len(records) + 1))
    prepared = AuditRowBinder(dialect).prepare(list(zip(records, numbers, strict=True)), "w" * 32)
    rows, _, _ = prepared.link(0, "0" * 64)
    previous = "0" * 64
    for seq, (record, row) in enumerate(zip(records, rows, strict=True), start=1):
        expected = reference_hash(previous, seq, {**record.as_row(), "writer_id": "w" * 32, "emit_seq": seq})
        assert row[:3] == (seq, previous, expected)
        stored = row[3 + 15]
        assert json.loads(stored) == record.details
        previous = expected


class Label(str):
    """A str subclass: JSON encodes it as a string, and the body must too."""


@pytest.mark.parametrize("writer_id", ["w" * 32, None], ids=["emitted", "direct"])
def test_values_of_unusual_types_hash_as_the_reference_says(writer_id: str | None) -> None:
    """The body is written field by field, with plain strings, ints and None written directly: anything else (a bool,
    a float, a subclass, a non-ASCII or escaped string) must still come out as the encoder writes it."""
    records = [
        AuditRecord(
            request_id=Label("r1"),
            kind="llm",
            target='quote " backslash \\ tab \t nul \x00 é 😀',
            decision="allow",
            status=True,
            latency_ms=float("inf"),
            key_name=Label("bot"),
            tokens_in=12.0,  # type: ignore[arg-type]
            tokens_out=2**70,
            cost_usd=Decimal("0"),
            details={"b": 1, "a": [True, None, 1.5]},
            ts=datetime(2026, 11, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=-3))),
        ),
        AuditRecord("r2", "tool_call", "s/t", "deny", 403, 0, reason="", cost_usd=Decimal("NaN"), details={}, ts=START),
    ]
    numbers = [7, 8] if writer_id is not None else [None, None]
    prepared = AuditRowBinder(aiosqlite.dialect()).prepare(list(zip(records, numbers, strict=True)), writer_id)
    rows, _, _ = prepared.link(0, "0" * 64)
    previous = "0" * 64
    for seq, (record, number, row, body) in enumerate(zip(records, numbers, rows, prepared.bodies, strict=True), 1):
        fields = {**record.as_row(), "writer_id": writer_id, "emit_seq": number}
        assert row[:3] == (seq, previous, reference_hash(previous, seq, fields))
        emitted = writer_id is not None
        assert list(json.loads(body)) == [key for key in BODY_KEYS if emitted or key not in ("writer_id", "emit_seq")]
        previous = row[2]


@pytest.mark.parametrize("microsecond", [0, 1, 999_999])
def test_a_time_with_or_without_microseconds_hashes_and_stores_as_the_reference_says(microsecond: int) -> None:
    ts = START.replace(second=5, microsecond=microsecond)
    record = AuditRecord("r1", "llm", "openai/gpt-4o", "allow", 200, 1.5, details={"route": "a/b"}, ts=ts)
    rows, _, _ = AuditRowBinder(aiosqlite.dialect()).prepare([(record, 1)], "w" * 32).link(0, "00" * 32)
    fields = {**record.as_row(), "writer_id": "w" * 32, "emit_seq": 1}
    assert rows[0][2] == reference_hash("00" * 32, 1, fields)
    assert rows[0][3] == f"2026-11-01 00:00:05.{microsecond:06d}"  # SQLite's DATETIME text of the UTC time


def test_a_record_refused_for_circular_details_leaves_the_next_batch_unaffected() -> None:
    """The details encoder is built once and keeps its cycle markers: a failed encoding must not leave one behind
    for the same objects, once fixed, to be refused as circular."""
    binder = AuditRowBinder(aiosqlite.dialect())
    inner: dict[str, Any] = {"n": 1}
    inner["self"] = inner
    looped = AuditRecord("r1", "llm", "x", "allow", 200, 1.0, details={"inner": inner}, ts=START)
    with pytest.raises(StatementError) as caught:
        binder.prepare([(looped, 1)], "w" * 32)
    assert isinstance(caught.value.orig, ValueError) and is_record_fault(caught.value)
    del inner["self"]
    rows, _, _ = binder.prepare([(looped, 2)], "w" * 32).link(0, "00" * 32)
    fields = {**looped.as_row(), "writer_id": "w" * 32, "emit_seq": 2}
    assert rows[0][2] == reference_hash("00" * 32, 1, fields)
    assert json.loads(rows[0][COLUMNS.index("details")]) == {"inner": {"n": 1}}


class Stamp(datetime):
    """A datetime subclass with its own ISO text: written through its own `isoformat`, as before."""

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        return "stamp " + super().isoformat(sep, timespec)


def test_a_datetime_subclass_is_hashed_and_stored_through_its_own_isoformat() -> None:
    ts = Stamp(2026, 11, 1, 12, 0, 5, 42, tzinfo=UTC)
    record = AuditRecord("r1", "llm", "openai/gpt-4o", "allow", 200, 1.5, ts=ts)
    prepared = AuditRowBinder(aiosqlite.dialect()).prepare([(record, 1)], "w" * 32)
    iso = "stamp 2026-11-01T12:00:05.000042+00:00"
    assert json.loads(prepared.bodies[0])["ts"] == iso
    assert prepared.values[0][0] == iso[:10] + " " + iso[11:26]


class Impostor(str):
    """Equal to (and hashed as) the text "bot", holding another: JSON writes what it holds."""

    def __eq__(self, other: object) -> bool:
        return other == "bot"

    def __hash__(self) -> int:
        return hash("bot")


@pytest.mark.parametrize(
    "value", ["llm", "", 'é\x00"\\', Label("bot"), Impostor("evil"), None, 0, 1, True, False, 2**70, 1.0, float("nan")]
)
@pytest.mark.parametrize("field", ["customer", "decision", "key_id", "key_name", "kind", "reason", "target", "team"])
def test_remembered_parties_are_written_as_the_encoder_writes_them(field: str, value: Any) -> None:
    """A party's fields come from memory only when each is an exact `str` or None: `1`, `1.0` and `True` are equal
    keys but different JSON, and a subclass may be equal to a remembered text it does not hold."""
    binder = AuditRowBinder(aiosqlite.dialect())
    plain = {"customer": "1", "decision": "True", "key_id": "bot", "key_name": "bot", "kind": "llm", "reason": None}
    plain |= {"target": "bot", "team": "1.0"}
    records = [
        AuditRecord(request_id=f"r{index}", status=200, latency_ms=1.5, ts=START, **(plain | changed))
        for index, changed in enumerate([{}, {field: value}, {field: value}, {}])
    ]
    numbers = [1, 2, 3, 4]
    rows, _, _ = binder.prepare(list(zip(records, numbers, strict=True)), "w" * 32).link(0, "00" * 32)
    previous = "00" * 32
    for seq, (record, number, row) in enumerate(zip(records, numbers, rows, strict=True), 1):
        fields = {**record.as_row(), "writer_id": "w" * 32, "emit_seq": number}
        assert row[2] == reference_hash(previous, seq, fields)
        previous = row[2]


def test_remembered_parties_are_bounded() -> None:
    parties = PartySegments(limit=8)
    for index in range(50):
        party = ("acme", "allow", f"k{index}", "bot", "llm", None, "openai/gpt-4o", "ops")
        assert parties.of(party) == party_segments(party)
        assert len(parties) <= 8
