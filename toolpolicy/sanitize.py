"""Values bound for an audit record or a spend entry, made storable at the edge.

Every store takes these without complaint: strings are valid Unicode without NUL (lone surrogates and NUL become
U+FFFD) and fit their column (longer ones are cut and end in `…`); numbers are finite and fit their column; `details`
is JSON of bounded depth and size. A request id a client sent is kept only when it is short and plain; otherwise the
request gets a fresh one, so the id echoed back and the id stored are the same.

Normalising is idempotent and returns the same object when nothing needed changing (the common case, on the hot path).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import String

from toolpolicy.audit import AuditRecord
from toolpolicy.request_ids import fresh_request_id
from toolpolicy.store.ledger import MAX_COST, SpendEntry
from toolpolicy.store.schema import AuditRow, SpendRow

TRUNCATED = "…"
"""Ends a string that was cut to fit its column."""
REPLACEMENT = "\ufffd"
MAX_DETAIL_STRING = 8192
"""Characters kept of one string inside `details`."""
MAX_DETAILS_CHARS = 64 * 1024
"""Serialized size of `details` past which its largest entries are replaced by a note of their size."""
MAX_DETAILS_DEPTH = 16
MAX_DETAIL_ITEMS = 1000
"""Entries kept of one list or object inside `details`."""
MAX_INT32 = 2**31 - 1
AUDIT_COST_LIMIT = Decimal("99999.9999999999")
"""The largest cost an audit record keeps. SQLite holds a Numeric as a double, which reads back to the same 10
decimals (as the record's hash needs) only below about $450,000; the spend ledger keeps larger charges whole."""
_COST_PLACES = Decimal("0.0000000001")
_ONE = Decimal(1)

_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def _lengths(table: Any) -> dict[str, int]:
    """Each string column's length, read from the schema so the two never disagree."""
    return {
        column.name: column.type.length
        for column in table.columns
        if isinstance(column.type, String) and column.type.length is not None
    }


AUDIT_LENGTHS = _lengths(AuditRow.__table__)
SPEND_LENGTHS = _lengths(SpendRow.__table__)
REQUEST_ID_LENGTH = AUDIT_LENGTHS["request_id"]
# Visible ASCII only: safe in a response header, a log line and the column alike.
_REQUEST_ID = re.compile(rf"[!-~]{{1,{REQUEST_ID_LENGTH}}}")


def request_id(presented: str | None, fresh: Callable[[], str] = fresh_request_id) -> str:
    """The client's `x-request-id` when it is 1-64 visible ASCII characters, else a fresh id (never a cut one)."""
    if presented and _REQUEST_ID.fullmatch(presented):
        return presented
    return fresh()


def text(value: str, limit: int | None = None) -> str:
    """`value` as valid Unicode without NUL, cut to `limit` characters (ending in `…`) when longer."""
    if not value.isascii() or "\x00" in value:
        value = _UNSTORABLE.sub(REPLACEMENT, value)
    if limit is not None and len(value) > limit:
        value = value[: limit - len(TRUNCATED)] + TRUNCATED
    return value


def _optional_text(value: str | None, limit: int) -> str | None:
    return None if value is None else text(value if isinstance(value, str) else str(value), limit)


def int32(value: int | None) -> int | None:
    if value is None:
        return None
    return max(-MAX_INT32 - 1, min(MAX_INT32, int(value)))


def count(value: int | None) -> int | None:
    """A token count: an int32 that is not negative."""
    return None if value is None else max(0, min(MAX_INT32, int(value)))


def finite(value: float) -> float:
    """A finite float, and 0.0 rather than -0.0 (SQLite reads a stored -0.0 back as 0.0, so the hash would differ)."""
    value = float(value)
    return value + 0.0 if math.isfinite(value) else 0.0


def cost(value: Decimal | None, limit: Decimal = AUDIT_COST_LIMIT) -> Decimal | None:
    """A cost the columns hold: None when it is not a number, else clamped to `limit` and quantized to 10 places."""
    if value is None:
        return None
    value = value if isinstance(value, Decimal) else Decimal(str(value))
    if value.is_nan():
        return None
    value = max(-limit, min(limit, value))
    if int(value.as_tuple().exponent) < -10:  # more decimals than the columns keep
        value = value.quantize(_COST_PLACES)
    return Decimal(0) if value.is_zero() and value.is_signed() else value  # -0 reads back as 0


def aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def details(value: Mapping[str, Any]) -> dict[str, Any]:
    """`value` as a JSON object every store takes: cleaned strings, finite numbers, bounded depth, items and size."""
    if isinstance(value, dict) and _flat_and_clean(value):
        return value  # the common case: a few scalars the halves set themselves
    cleaned = _json_value(value, 0)
    assert isinstance(cleaned, dict)
    if len(json.dumps(cleaned, separators=(",", ":"), ensure_ascii=False)) <= MAX_DETAILS_CHARS:
        return cleaned
    # Too big: replace the largest entries by a note of their size, so the small ones (route, outcome...) stay.
    sizes = {key: len(json.dumps(item, ensure_ascii=False)) for key, item in cleaned.items()}
    total = sum(sizes.values())
    for key in sorted(sizes, key=sizes.__getitem__, reverse=True):
        if total <= MAX_DETAILS_CHARS // 2:
            break
        cleaned[key] = f"{TRUNCATED} omitted: {sizes[key]} characters"
        total -= sizes[key]
    return cleaned


CLEAN_KEY_RUNS = 256
"""Sequences of `details` keys remembered as clean (see `_flat_and_clean`); the memory starts over when full."""
_clean_keys: dict[tuple[object, ...], int] = {}


def _flat_and_clean(value: dict[str, Any]) -> bool:
    """Whether `details` would leave `value` alone: at most `MAX_DETAIL_ITEMS` entries, keys plain strings (ASCII,
    no NUL), values flat and storable as they are, their JSON well within `MAX_DETAIL_STRING`.

    A record's details have the same few sequences of keys request after request (the literals of the half that
    made them), so a sequence found clean is remembered with its share of the size, found by equality, and its keys
    are not checked again; the values are checked each time. A `str` subclass key equal to a remembered one is taken
    as it is rather than copied to a `str`: its text, what the store is given, is the same. With a chat record's six
    entries: ~8,000 instructions where checking every key took ~12,400 (`bench.instructions`' callgrind, alone)."""
    if len(value) > MAX_DETAIL_ITEMS:
        return False
    keys = tuple(value)
    try:
        size = _clean_keys.get(keys)
    except Exception:  # a key of another type whose comparison raised: not a plain string
        return False
    if size is None:
        size = _clean_key_size(keys)
        if size is None:
            return False
    for item in value.values():
        kind = type(item)
        if kind is str:
            if not item.isascii() or "\x00" in item:
                return False
            size += len(item)
        elif kind is float:
            if not math.isfinite(item):
                return False
        elif kind is int:
            if not -(2**63) <= item < 2**63:
                return False
        elif item is not None and kind is not bool:
            return False
    return size <= MAX_DETAIL_STRING


def _clean_key_size(keys: tuple[object, ...]) -> int | None:
    """The keys' share of `_flat_and_clean`'s size estimate (each key's length and room for a number's or literal's
    JSON, at most about 24 characters), remembered; None when a key is not a plain string."""
    size = 0
    for key in keys:
        if type(key) is not str or not key.isascii() or "\x00" in key:
            return None
        size += len(key) + 24
    if len(_clean_keys) >= CLEAN_KEY_RUNS:
        _clean_keys.clear()
    _clean_keys[keys] = size
    return size


def _json_value(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return text(value, MAX_DETAIL_STRING)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return str(value)
    if depth >= MAX_DETAILS_DEPTH:
        return f"{TRUNCATED} nested too deep"
    if isinstance(value, Mapping):
        items = list(value.items())[:MAX_DETAIL_ITEMS]
        return {text(str(key), MAX_DETAIL_STRING): _json_value(item, depth + 1) for key, item in items}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_value(item, depth + 1) for item in list(value)[:MAX_DETAIL_ITEMS]]
    return text(repr(value), MAX_DETAIL_STRING)


def audit_record(record: AuditRecord) -> AuditRecord:
    """The record with every field storable (the same object when it already was)."""
    return record if _storable(record) else normalised_audit_record(record)


def normalised_audit_record(record: AuditRecord) -> AuditRecord:
    """`audit_record` without the shortcut for a record that is storable already (every field normalised)."""
    lengths = AUDIT_LENGTHS
    changes: dict[str, Any] = {
        "request_id": text(str(record.request_id), lengths["request_id"]),
        "kind": text(str(record.kind), lengths["kind"]),
        "target": text(str(record.target), lengths["target"]),
        "decision": text(str(record.decision), lengths["decision"]),
        "key_id": _optional_text(record.key_id, lengths["key_id"]),
        "key_name": _optional_text(record.key_name, lengths["key_name"]),
        "team": _optional_text(record.team, lengths["team"]),
        "customer": _optional_text(record.customer, lengths["customer"]),
        "reason": _optional_text(record.reason, lengths["reason"]),
        "status": int32(record.status),
        "latency_ms": finite(record.latency_ms),
        "tokens_in": count(record.tokens_in),
        "tokens_out": count(record.tokens_out),
        "cost_usd": cost(record.cost_usd),
        "details": details(record.details or {}),
        "ts": aware(record.ts),
    }
    return _changed(record, changes)


_AUDIT_TEXT = (
    *(("request_id", False), ("kind", False), ("target", False), ("decision", False)),
    *(("key_id", True), ("key_name", True), ("team", True), ("customer", True), ("reason", True)),
)
"""Each text field of an audit record, and whether it may be None (its column's length is in `AUDIT_LENGTHS`)."""


_SPEND_TEXT = (
    *(("request_id", False), ("target", False)),
    *(("key_id", True), ("team_id", True), ("customer_id", True), ("provider", True)),
)
"""Each text field of a spend entry, and whether it may be None (its column's length is in `SPEND_LENGTHS`)."""


_Texts = tuple[tuple[str, bool], ...]


def _plain_texts(value: AuditRecord | SpendEntry, texts: _Texts, lengths: dict[str, int]) -> bool:
    """Whether each of these text fields is one `text` leaves alone: ASCII, no NUL, within its column."""
    for name, optional in texts:
        text_value = getattr(value, name)
        if text_value is None and optional:
            continue
        if (
            type(text_value) is not str
            or not text_value.isascii()
            or "\x00" in text_value
            or len(text_value) > lengths[name]
        ):
            return False
    return True


PLAIN_PARTIES = 1024
"""Combinations of the text fields that name who and what a record or a spend entry is about, remembered as plain
(see `_plain_audit_texts`, `_plain_spend_texts`); each set starts over when full."""
_plain_parties: set[tuple[object, ...]] = set()
_plain_payers: set[tuple[object, ...]] = set()
_PARTY_TEXT = _AUDIT_TEXT[1:]
_PAYER_TEXT = _SPEND_TEXT[1:]
_AUDIT_REQUEST_ID_LENGTH = AUDIT_LENGTHS["request_id"]
_SPEND_REQUEST_ID_LENGTH = SPEND_LENGTHS["request_id"]


def _plain_id(request_id: object, limit: int) -> bool:
    """Whether `text` leaves this request id alone (checked for every record: a request's id is its own)."""
    return type(request_id) is str and request_id.isascii() and "\x00" not in request_id and len(request_id) <= limit


def _known_plain(
    known: set[tuple[object, ...]],
    party: tuple[object, ...],
    value: AuditRecord | SpendEntry,
    texts: _Texts,
    lengths: dict[str, int],
) -> bool:
    """`_plain_texts(value, texts, lengths)`, where `party` holds those fields' values: found in `known` when found
    plain before and each field is an exact `str` or None (a `str` subclass equal to a remembered text is checked
    anew; a field that may not be None never is in `known` as None), else checked and remembered when plain."""
    try:
        found = party in known
    except TypeError:  # an unhashable value, so not text: the full check says no
        return _plain_texts(value, texts, lengths)
    if found:
        for field in party:
            if field is not None and type(field) is not str:
                break
        else:
            return True
    if not _plain_texts(value, texts, lengths):
        return False
    if len(known) >= PLAIN_PARTIES:
        known.clear()
    known.add(party)
    return True


def _plain_audit_texts(record: AuditRecord) -> bool:
    """`_plain_texts` of an audit record. Its request id is checked each time; the rest (kind, target, decision,
    key, team, customer, reason) names who asked for what and how it went, the same few combinations request after
    request: a combination found plain is remembered (`_known_plain`)."""
    if not _plain_id(record.request_id, _AUDIT_REQUEST_ID_LENGTH):
        return False
    party = (
        record.kind,
        record.target,
        record.decision,
        record.key_id,
        record.key_name,
        record.team,
        record.customer,
        record.reason,
    )
    return _known_plain(_plain_parties, party, record, _PARTY_TEXT, AUDIT_LENGTHS)


def _plain_spend_texts(entry: SpendEntry) -> bool:
    """`_plain_texts` of a spend entry. Its request id is checked each time; the rest (target, key, team, customer,
    provider) names whom it charges, the same few values request after request: a combination found plain is
    remembered (`_known_plain`)."""
    if not _plain_id(entry.request_id, _SPEND_REQUEST_ID_LENGTH):
        return False
    payer = (entry.target, entry.key_id, entry.team_id, entry.customer_id, entry.provider)
    return _known_plain(_plain_payers, payer, entry, _PAYER_TEXT, SPEND_LENGTHS)


def _plain_cost(amount: object, limit: Decimal) -> bool:
    """Whether `cost(amount, limit)` leaves the Decimal `amount` alone: finite, in range, at most 10 places, not -0."""
    return (
        type(amount) is Decimal
        and amount.is_finite()
        and -limit <= amount <= limit
        # An exponent of 0 (`Decimal(0)`, the cost of every unpriced request) is told without `as_tuple`, which
        # builds a named tuple of every digit, and so is any other written without an exponent (`_at_most_ten_places`).
        and (amount.same_quantum(_ONE) or _at_most_ten_places(amount))
        and not (amount.is_zero() and amount.is_signed())
    )


def _at_most_ten_places(amount: Decimal) -> bool:
    """Whether a finite Decimal's exponent is at least -10. Its text shows the exponent as the digits after the point
    unless it is written with one (`1.5E-7`: below 1e-6, or a positive exponent); then `as_tuple` says."""
    written = str(amount)
    if "E" in written:
        return int(amount.as_tuple().exponent) >= -10
    point = written.find(".")
    return point < 0 or len(written) - point <= 11


def _spend_storable(entry: SpendEntry) -> bool:
    """True when `normalised_spend_entry` would change nothing, checked without building its values (every charged
    request's entry goes through here). A zero cost takes the full path: `Decimal(0)` replaces any other zero."""
    amount = entry.cost_usd
    return (
        _plain_spend_texts(entry)
        and _plain_cost(amount, MAX_COST)
        and not amount.is_zero()
        and entry.created_at.tzinfo is not None
    )


def _storable(record: AuditRecord) -> bool:
    """True when `audit_record` would change nothing: the same checks as its normalisers, without building the
    normalised values (every request's record goes through here). Anything unusual answers False, and the full
    path decides."""
    if not _plain_audit_texts(record):
        return False
    status, latency = record.status, record.latency_ms
    if type(status) is not int or not -MAX_INT32 - 1 <= status <= MAX_INT32:
        return False
    if type(latency) is not float or not math.isfinite(latency) or (latency == 0.0 and math.copysign(1, latency) < 0):
        return False
    for tokens in (record.tokens_in, record.tokens_out):
        if tokens is not None and (type(tokens) is not int or not 0 <= tokens <= MAX_INT32):
            return False
    if record.cost_usd is not None and not _plain_cost(record.cost_usd, AUDIT_COST_LIMIT):
        return False
    return type(record.details) is dict and _flat_and_clean(record.details) and record.ts.tzinfo is not None


def spend_entry(entry: SpendEntry) -> SpendEntry:
    """The entry with every field storable; a cost that is not a number is charged as 0 (budgets cannot use it)."""
    return entry if _spend_storable(entry) else normalised_spend_entry(entry)


def normalised_spend_entry(entry: SpendEntry) -> SpendEntry:
    """`spend_entry` without the shortcut for an entry that is storable already (every field normalised)."""
    lengths = SPEND_LENGTHS
    changes: dict[str, Any] = {
        "request_id": text(str(entry.request_id), lengths["request_id"]),
        "target": text(str(entry.target), lengths["target"]),
        "key_id": _optional_text(entry.key_id, lengths["key_id"]),
        "team_id": _optional_text(entry.team_id, lengths["team_id"]),
        "customer_id": _optional_text(entry.customer_id, lengths["customer_id"]),
        "provider": _optional_text(entry.provider, lengths["provider"]),
        "cost_usd": cost(entry.cost_usd, MAX_COST) or Decimal(0),
        "created_at": aware(entry.created_at),
    }
    return _changed(entry, changes)


_Normalised = TypeVar("_Normalised", AuditRecord, SpendEntry)


def _changed(original: _Normalised, changes: dict[str, Any]) -> _Normalised:
    different = {name: value for name, value in changes.items() if not _same(value, getattr(original, name))}
    return replace(original, **different) if different else original


def _same(new: Any, old: Any) -> bool:
    if new is old:
        return True
    if type(new) is not type(old):
        return False
    # -0.0 == 0.0 and Decimal("0.1") == Decimal("0.1000000000"), but they are stored and hashed differently.
    return repr(new) == repr(old) if isinstance(new, float | Decimal) else bool(new == old)
