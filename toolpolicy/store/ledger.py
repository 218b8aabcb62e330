"""The spend ledger: one row per settled charge; the durable truth budgets are rebuilt from after a restart."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine.processors import to_float

from toolpolicy.batching import Emitted, WriterMark, in_slices
from toolpolicy.store.engine import Store
from toolpolicy.store.raw_write import RawWriter, Transaction, bind_row, processors, stored_as_utc_text
from toolpolicy.store.schema import SpendRow
from toolpolicy.store.utc_text import UTCText

MAX_COST = Decimal("9999999999.9999999999")
"""The largest amount the ledger's Numeric(20, 10) column holds."""


@dataclass(slots=True)  # not frozen: one per charged request, never changed (a frozen one costs 6x to make)
class SpendEntry:
    request_id: str
    target: str
    cost_usd: Decimal
    key_id: str | None = None
    team_id: str | None = None
    customer_id: str | None = None
    provider: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    """When the charge was settled, on the governor's clock: budget windows are computed on the same clock."""


@dataclass(frozen=True, slots=True)
class SpendScope:
    """Whose spend: every given field must match."""

    key_id: str | None = None
    team_id: str | None = None
    customer_id: str | None = None
    provider: str | None = None


BIND_SLICE = 128
"""Entries bound in one go on the event loop (a few microseconds each; a batch is up to `audit.batch_size`)."""
_COLUMNS = tuple(entry_field.name for entry_field in fields(SpendEntry))
_COST = _COLUMNS.index("cost_usd")
_values = attrgetter(*_COLUMNS)
"""An entry's values in `_COLUMNS` order, as one tuple made in C (every charged request's row is made so)."""


class SpendLedger:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._raw = RawWriter(store)
        dialect = store.engine.dialect
        self._processors = processors(SpendRow.__table__, _COLUMNS, dialect)  # type: ignore[arg-type]
        self._sqlite_text: Callable[[datetime], str] | None = None
        """SQLite's DATETIME text of a UTC datetime, when the columns' processors are the two `write` applies itself
        (the cost's `to_float`, the creation time's UTC text): else None, and every row goes through `bind_row`."""
        created_at: Any = SpendRow.__table__.c["created_at"]
        by_position = dict(self._processors)
        if by_position.get(_COST) is to_float and len(by_position) == 2 and stored_as_utc_text(created_at, dialect):
            self._sqlite_text = UTCText().sqlite

    async def write(self, entries: list[SpendEntry]) -> None:
        """The entries in one transaction: bound here with the columns' own bind processors (`BIND_SLICE` at a time,
        the event loop let go between), inserted in as few statements as the driver allows (`raw_write`), not row by
        row through the session."""
        if not entries:
            return
        sqlite_text = self._sqlite_text
        rows: list[tuple[object, ...]] = []
        async for part in in_slices(entries, BIND_SLICE):
            if sqlite_text is None:
                rows += [self._bound(entry) for entry in part]
                continue
            for entry in part:
                # `_bound`'s usual case on SQLite written out (every charged request's row is made here): a Decimal
                # cost and a UTC datetime bound as their processors bind them; anything else goes through them.
                cost, at = entry.cost_usd, entry.created_at
                if cost.__class__ is Decimal and at.__class__ is datetime and at.tzinfo is UTC:
                    rows.append(
                        (
                            entry.request_id,
                            entry.target,
                            float(cost),
                            entry.key_id,
                            entry.team_id,
                            entry.customer_id,
                            entry.provider,
                            sqlite_text(at),
                        )
                    )
                else:
                    rows.append(self._bound(entry))
        await self._raw.run(_insert, rows)

    def _bound(self, entry: SpendEntry) -> tuple[object, ...]:
        """The entry's values through their columns' bind processors (`bind_row`)."""
        what = f"spend entry {entry.request_id!r}"
        return bind_row(list(_values(entry)), self._processors, what, SpendRow.__tablename__)

    async def write_batch(self, batch: list[Emitted[SpendEntry]], mark: WriterMark) -> None:
        """A writer's batch (the ledger keeps no emission numbers: each entry's cost is what matters)."""
        await self.write([emitted.item for emitted in batch])

    def _filtered(self, statement, scope: SpendScope, since: datetime):  # type: ignore[no-untyped-def]
        for column, value in (
            (SpendRow.key_id, scope.key_id),
            (SpendRow.team_id, scope.team_id),
            (SpendRow.customer_id, scope.customer_id),
            (SpendRow.provider, scope.provider),
        ):
            if value is not None:
                statement = statement.where(column == value)
        # A row that is not a finite amount (PostgreSQL's numeric takes 'NaN') would poison every sum it is in;
        # NaN sorts above every number there, so this range keeps exactly the rows that are amounts.
        statement = statement.where(SpendRow.cost_usd.between(-MAX_COST, MAX_COST))
        return statement.where(SpendRow.created_at >= since)

    async def total(self, scope: SpendScope, since: datetime) -> Decimal:
        statement = self._filtered(select(func.coalesce(func.sum(SpendRow.cost_usd), 0)), scope, since)
        async with self.store.session() as session:
            return Decimal((await session.execute(statement)).scalar_one())

    async def by_bucket(self, scope: SpendScope, since: datetime, bucket_seconds: int) -> dict[int, Decimal]:
        """Spend since `since` summed per bucket (bucket index = epoch seconds // bucket_seconds)."""
        statement = self._filtered(select(SpendRow.created_at, SpendRow.cost_usd), scope, since)
        totals: dict[int, Decimal] = defaultdict(Decimal)
        async with self.store.session() as session:
            for created_at, cost in await session.execute(statement):
                totals[int(created_at.timestamp()) // bucket_seconds] += Decimal(cost)
        return dict(totals)


def _insert(transaction: Transaction, rows: list[tuple[object, ...]]) -> None:
    transaction.insert(SpendRow.__tablename__, _COLUMNS, rows)
