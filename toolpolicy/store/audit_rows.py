"""A batch of audit records made ready to append in one step: hash-chain bodies and row values, bound for the store.

A record's hash covers the previous hash, its position and its fields. Only the first two depend on where the batch
lands in the chain, so each record's fields are put in canonical form once, before the chain head is read, and
linking the batch to the head is one SHA-256 per record. The values are bound here too, with the column types' own
bind processors (what SQLAlchemy would apply), so the store receives the rows it did through the ORM; `details` is
serialised once, in the canonical form the hash covers, and stored as that text (`AuditRowBinder`), and the body is
written out key by key rather than built as a dict and encoded. Verification recomputes bodies with `canonical_body`
(the reference form, one `json` encoding of every field).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect

from toolpolicy.audit import AuditRecord
from toolpolicy.json_text import compact_encoder
from toolpolicy.store.raw_write import processors, stored_as_utc_text
from toolpolicy.store.schema import AuditRow
from toolpolicy.store.utc_text import UTCText

_COST_PLACES = Decimal("0.0000000001")  # the column's scale, so the hash covers what is read back
_HASHED = (
    "request_id",
    "kind",
    "key_id",
    "key_name",
    "team",
    "customer",
    "target",
    "decision",
    "reason",
    "status",
    "tokens_in",
    "tokens_out",
)
FIELDS = (*_HASHED, "ts", "cost_usd", "latency_ms", "details", "writer_id", "emit_seq")
"""The fields a record's hash covers (besides its position and the previous hash)."""
_CHAIN = ("seq", "prev_hash", "hash")
_RECORD = (
    *("ts", "request_id", "kind", "key_id", "key_name", "team", "customer", "target", "decision", "reason"),
    *("status", "latency_ms", "tokens_in", "tokens_out", "cost_usd", "details", "writer_id", "emit_seq"),
)
COLUMNS = (*_CHAIN, *_RECORD)
"""The inserted columns, in the order of a prepared row's values."""
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)
"""What `json.dumps(..., sort_keys=True, separators=(",", ":"), default=str)` builds on every call."""


def canonical_body(fields: dict[str, Any]) -> str:
    """The record's fields in the canonical JSON its hash covers (independent of its place in the chain)."""
    hashed = {name: fields.get(name) for name in _HASHED}
    return _body(hashed, fields["ts"], fields.get("cost_usd"), fields["latency_ms"], fields.get("details"), fields)


def _body(
    hashed: dict[str, Any], ts: datetime, cost: Any, latency_ms: Any, details: Any, emission: dict[str, Any]
) -> str:
    hashed["ts"] = ts.astimezone(UTC).isoformat(timespec="microseconds")
    hashed["cost_usd"] = str(Decimal(cost).quantize(_COST_PLACES)) if cost is not None else None
    hashed["latency_ms"] = repr(float(latency_ms))
    hashed["details"] = details or {}
    if emission.get("writer_id") is not None:  # records from before emission numbers hash as they always did
        hashed["writer_id"], hashed["emit_seq"] = emission["writer_id"], emission.get("emit_seq")
    return _CANONICAL.encode(hashed)


_sha256 = hashlib.sha256


def chain_hash(prev_hash: str, seq: int, body: str) -> str:
    """SHA-256 over `[prev_hash, seq, canonical fields]` as compact JSON (a hex hash needs no escaping)."""
    return hashlib.sha256(f'["{prev_hash}",{seq},{body}]'.encode()).hexdigest()


def record_hash(prev_hash: str, seq: int, fields: dict[str, Any]) -> str:
    """SHA-256 over the previous hash, the position and the record's fields, in a canonical JSON form."""
    return chain_hash(prev_hash, seq, canonical_body(fields))


class PreparedBatch:
    """Records in canonical form and bound values, waiting for the chain head to be linked to."""

    __slots__ = ("bodies", "values")

    def __init__(self, bodies: list[str], values: list[tuple[Any, ...]]) -> None:
        self.bodies = bodies
        self.values = values
        """Each record's bound values in `COLUMNS` order, without the three chain columns."""

    def __len__(self) -> int:
        return len(self.values)

    @classmethod
    def joined(cls, batches: Sequence[PreparedBatch]) -> PreparedBatch:
        """One batch of `batches`' records, in order (a single batch as it is)."""
        if len(batches) == 1:
            return batches[0]
        return cls(
            [body for batch in batches for body in batch.bodies], [row for batch in batches for row in batch.values]
        )

    def link(
        self, last_seq: int, last_hash: str, start: int = 0, stop: int | None = None
    ) -> tuple[list[tuple[Any, ...]], int, str]:
        """The rows of records `start` to `stop` (all by default) to insert after the head `(last_seq, last_hash)`,
        and the new head: a batch can be linked and inserted a run at a time, each run after the last one's head."""
        rows = []
        seq, previous = last_seq, last_hash
        for body, values in zip(self.bodies[start:stop], self.values[start:stop], strict=True):
            seq += 1
            digest = _sha256(f'["{previous}",{seq},{body}]'.encode()).hexdigest()  # `chain_hash`, without a call
            rows.append((seq, previous, digest, *values))
            previous = digest
        return rows, seq, previous


_DETAILS = compact_encoder(sort_keys=True)
"""`details` in the canonical form, strictly: a value JSON has no form for raises, as the column's own binding does.
Only the writer's task encodes with it (`AuditRowBinder.prepare`)."""
_quote = json.encoder.encode_basestring_ascii
"""A string as `_CANONICAL` encodes it (the same C function: ASCII only, everything else escaped)."""
BODY_KEYS = tuple(sorted((*_HASHED, "ts", "cost_usd", "latency_ms", "details", "writer_id", "emit_seq")))
"""The canonical body's keys in the order `prepare` writes them: sorted, as `_CANONICAL` sorts them."""


def _json(value: Any) -> str:
    """`value` as `_CANONICAL` encodes it: strings, None and plain ints written directly (nearly every field of a
    record), anything else (a bool, a float, a str or int subclass) through the encoder itself."""
    if value.__class__ is str:
        return _quote(value)
    if value is None:
        return "null"
    if value.__class__ is int:
        return int.__repr__(value)
    return _CANONICAL.encode(value)


Party = tuple[Any, Any, Any, Any, Any, Any, Any, Any]
"""An audit record's customer, decision, key id, key name, kind, reason, target and team: the fields that name who
asked for what and how it went (in the canonical body's key order)."""
Segments = tuple[str, str, str, str]


def party_segments(party: Party) -> Segments:
    """The four runs of the canonical body that hold the party's fields, each with the keys around it (the body's
    keys are sorted, so these fields fall in four runs between the fields that change from record to record)."""
    customer, decision, key_id, key_name, kind, reason, target, team = party
    return (
        f',"customer":{_json(customer)},"decision":{_json(decision)},"details":',
        f',"key_id":{_json(key_id)},"key_name":{_json(key_name)},"kind":{_json(kind)},"latency_ms":"',
        f'","reason":{_json(reason)},"request_id":',
        f',"target":{_json(target)},"team":{_json(team)},"tokens_in":',
    )


class PartySegments(dict[Party, Segments]):
    """`party_segments` of parties whose fields are all exact `str` or None, remembered: records repeat the same few
    combinations of key, team, target, kind and decision, and one lookup costs a fraction of quoting eight fields.
    (Only exact `str` is remembered and found: a subclass may be equal to a text it does not hold, and `1`, `1.0`
    and `True` are equal but different JSON.) Holds at most `limit` parties (emptied when full: a caller may name a
    new model every request)."""

    def __init__(self, limit: int = 1024) -> None:
        super().__init__()
        self.limit = limit

    def of(self, party: Party) -> Segments:
        """`party_segments(party)`, from memory when it was remembered (the caller has checked its fields' types)."""
        try:
            found = self.get(party)
        except TypeError:  # an unhashable field: no text, so nothing to remember
            return party_segments(party)
        if found is None:
            found = party_segments(party)
            if all(field is None or field.__class__ is str for field in party):
                if len(self) >= self.limit:
                    self.clear()
                self[party] = found
        return found


class AuditRowBinder:
    """Prepares batches of records for one dialect (its bind processors looked up once).

    Two values are bound here rather than by their columns' processors, from what the hash needed anyway: `ts`
    (on SQLite the hashed ISO string, reshaped as its DATETIME stores it; elsewhere the UTC datetime) and `details`
    (its canonical JSON, which the hashed body holds too: one serialisation, stored with sorted keys and no spaces).
    """

    def __init__(self, dialect: Dialect) -> None:
        skipped = (_RECORD.index("ts"), _RECORD.index("details"))
        found = processors(AuditRow.__table__, _RECORD, dialect)  # type: ignore[arg-type]
        self._processors = [(position, process) for position, process in found if position not in skipped]
        self._ts_as_iso = stored_as_utc_text(AuditRow.__table__.c["ts"], dialect)  # type: ignore[arg-type]
        self._parties = PartySegments()
        self._utc_text = UTCText()

    def prepare(self, records: Sequence[tuple[AuditRecord, int | None]], writer_id: str | None) -> PreparedBatch:
        """Canonical bodies and bound values; a value no column can take raises `StatementError`, as SQLAlchemy's
        own binding would (the writer then isolates and quarantines the record)."""
        bodies, rows = [], []
        ts_as_iso = self._ts_as_iso
        parties = self._parties
        utc_text = self._utc_text.of
        bound_by = self._processors
        # The same for every record of the batch that has an emission number.
        writer_entry = f',"writer_id":{_json(writer_id)}}}' if writer_id is not None else "}"
        for record, number in records:
            writer = writer_id if number is not None else None
            try:
                ts = record.ts
                if ts.tzinfo is None:
                    raise ValueError("naive datetimes are ambiguous; pass an aware datetime")
                utc = ts if ts.tzinfo is UTC else ts.astimezone(UTC)
                ts_json, stored_ts = utc_text(utc) if utc.__class__ is datetime else _subclass_utc_text(utc)
                details = record.details
                details_json = _DETAILS(details) if details else "{}"
                cost = record.cost_usd
                # A Decimal's and a float's text need no escaping: quoted as they are.
                cost_json = (
                    "null"
                    if cost is None
                    else f'"{(cost if cost.__class__ is Decimal else Decimal(cost)).quantize(_COST_PLACES)!s}"'
                )
                # The canonical JSON written out key by key, in the sorted order `_CANONICAL` would put them in
                # (`BODY_KEYS`): what encoding the dict gives, without building and sorting it per record. The
                # party's fields come in four runs, remembered per party when each is an exact `str` or None.
                party = (
                    customer := record.customer,
                    decision := record.decision,
                    key_id := record.key_id,
                    key_name := record.key_name,
                    kind := record.kind,
                    reason := record.reason,
                    target := record.target,
                    team := record.team,
                )
                if (
                    decision.__class__ is str
                    and kind.__class__ is str
                    and target.__class__ is str
                    and (customer is None or customer.__class__ is str)
                    and (key_id is None or key_id.__class__ is str)
                    and (key_name is None or key_name.__class__ is str)
                    and (reason is None or reason.__class__ is str)
                    and (team is None or team.__class__ is str)
                ):
                    around_details, around_kind, around_reason, around_target = parties.of(party)
                else:
                    around_details, around_kind, around_reason, around_target = party_segments(party)
                # What `_json` writes, without a call for the usual types: a plain string quoted, None as null, and
                # an exact int as its own text (which is its JSON).
                request_id, status, tokens_in, tokens_out = (
                    record.request_id,
                    record.status,
                    record.tokens_in,
                    record.tokens_out,
                )
                request_id_json = _quote(request_id) if request_id.__class__ is str else _json(request_id)
                status_json = status if status.__class__ is int else _json(status)
                in_json = "null" if tokens_in is None else tokens_in if tokens_in.__class__ is int else _json(tokens_in)
                out_json = (
                    "null" if tokens_out is None else tokens_out if tokens_out.__class__ is int else _json(tokens_out)
                )
                if writer is None:
                    emission = ""
                else:
                    emission = f',"emit_seq":{number if number.__class__ is int else _json(number)}'
                body = (
                    f'{{"cost_usd":{cost_json}{around_details}{details_json}{emission}{around_kind}'
                    f'{float(record.latency_ms)!r}{around_reason}{request_id_json},"status":{status_json}'
                    f'{around_target}{in_json},"tokens_out":{out_json},"ts":{ts_json}'
                    + (writer_entry if writer is not None else "}")
                )
                values = [
                    stored_ts if ts_as_iso else utc,
                    request_id,
                    kind,
                    key_id,
                    key_name,
                    team,
                    customer,
                    target,
                    decision,
                    reason,
                    status,
                    record.latency_ms,
                    tokens_in,
                    tokens_out,
                    cost,
                    details_json if details else "null" if details is None else _DETAILS(details),
                    writer,
                    number,
                ]
                for position, process in bound_by:
                    values[position] = process(values[position])
            except (TypeError, ValueError) as error:
                why = f"audit record {record.request_id!r} cannot be bound ({error})"
                raise sa_exc.StatementError(why, "INSERT INTO audit_events", None, error) from error
            bodies.append(body)
            rows.append(tuple(values))
        return PreparedBatch(bodies, rows)


def _subclass_utc_text(utc: datetime) -> tuple[str, str]:
    """`UTCText.of` for a datetime subclass, through its own `isoformat` (whose text is quoted as JSON)."""
    # Without `timespec` when there are microseconds to show anyway: the same text, a quarter sooner.
    iso = utc.isoformat() if utc.microsecond else utc.isoformat(timespec="microseconds")
    return _quote(iso), iso[:10] + " " + iso[11:26]
