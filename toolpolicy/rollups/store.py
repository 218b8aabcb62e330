"""The `request_rollups` table: added to once per writer batch, read by the dashboard's overview and key list.

Each read names the grain it needs (`fold.ALL` for the series and totals, `BY_KEY` or `BY_TARGET` for the top lists),
so it scans the rows of that grain in the window through the primary key (grain, bucket, ...), not every key and
target pair.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Select, func, select

from toolpolicy.audit import AuditRecord
from toolpolicy.batching import Emitted, WriterMark, in_slices
from toolpolicy.rollups.fold import ALL, BY_KEY, BY_TARGET, HISTOGRAM_BUCKETS, Pairs, RollupGroup, Totals, grains, tally
from toolpolicy.store.engine import Store
from toolpolicy.store.raw_write import RawWriter, Transaction, bind_row, processors
from toolpolicy.store.schema import RollupRow

HISTOGRAM_COLUMNS = tuple(f"lat_{index:02d}" for index in range(HISTOGRAM_BUCKETS))
_SCALARS = ("requests", "errors", "latency_sum_ms", "tokens_in", "tokens_out", "cost_usd", "cache_hits")
MEASURES = (*_SCALARS, "guardrail_hits", *HISTOGRAM_COLUMNS)
"""Every column a batch adds to."""
FOLD_SLICE = 256
"""Records folded in one go on the event loop (about 1 us each): the rollup writer's batch is every record of a flush
interval, thousands under load."""
TRAFFIC_KINDS = ("llm", "tool_call")
"""Record kinds that are requests served (guardrail and authorize records are about requests, not requests)."""


@dataclass(frozen=True, slots=True)
class Window:
    """Hours `since` (included) to `until` (excluded), both UTC."""

    since: datetime
    until: datetime


_GROUP_COLUMNS = ("grain", "bucket", "kind", "key_name", "target")
_COLUMNS = (*_GROUP_COLUMNS, *MEASURES)
_UPSERT = f" ON CONFLICT ({', '.join(_GROUP_COLUMNS)}) DO UPDATE SET " + ", ".join(
    f"{name} = {RollupRow.__tablename__}.{name} + excluded.{name}" for name in MEASURES
)
"""Adding to the row when it is there already (PostgreSQL and SQLite spell it alike)."""


def _row(group: RollupGroup, totals: Totals) -> list[Any]:
    """The values of one upserted row, in `_COLUMNS` order."""
    return [
        group.grain,
        group.bucket,
        group.kind,
        group.key_name,
        group.target,
        totals.requests,
        totals.errors,
        totals.latency_sum_ms,
        totals.tokens_in,
        totals.tokens_out,
        totals.cost_usd,
        totals.cache_hits,
        totals.guardrail_hits,
        *totals.histogram,
    ]


def _totals(values: Any) -> Totals:
    """A result row of the sums of every measure (in `MEASURES` order) as Totals."""
    sums = dict(zip(MEASURES, values, strict=True))
    return Totals(
        requests=int(sums["requests"] or 0),
        errors=int(sums["errors"] or 0),
        latency_sum_ms=float(sums["latency_sum_ms"] or 0.0),
        histogram=[int(sums[name] or 0) for name in HISTOGRAM_COLUMNS],
        tokens_in=int(sums["tokens_in"] or 0),
        tokens_out=int(sums["tokens_out"] or 0),
        cost_usd=Decimal(sums["cost_usd"] or 0),
        cache_hits=int(sums["cache_hits"] or 0),
        guardrail_hits=int(sums["guardrail_hits"] or 0),
    )


_SUMS = [func.sum(getattr(RollupRow, name)) for name in MEASURES]


class RollupStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._raw = RawWriter(store)
        self._processors = processors(RollupRow.__table__, _COLUMNS, store.engine.dialect)  # type: ignore[arg-type]

    async def write_batch(self, batch: list[Emitted[AuditRecord]], mark: WriterMark) -> None:
        """A writer's batch of records, folded into hourly totals (`FOLD_SLICE` records at a time, the event loop let
        go between) and added in one transaction."""
        pairs: Pairs = {}
        async for part in in_slices(batch, FOLD_SLICE):
            tally(pairs, (emitted.item for emitted in part))
        await self.add(grains(pairs))

    async def add(self, groups: dict[RollupGroup, Totals]) -> None:
        if not groups:
            return
        # Sorted, so two replicas adding to the same rows lock them in the same order (no deadlock).
        table = RollupRow.__tablename__
        rows = [
            bind_row(_row(group, groups[group]), self._processors, f"rollup {group}", table) for group in sorted(groups)
        ]
        # One upsert statement per batch on SQLite (a few on a big batch), one pipelined `executemany` on
        # PostgreSQL, in one hand-over to the driver (`raw_write`).
        await self._raw.run(_upsert, rows)

    def _within(self, statement: Select[Any], window: Window, kinds: Iterable[str] | None, grain: int) -> Select[Any]:
        statement = statement.where(
            RollupRow.grain == grain, RollupRow.bucket >= window.since, RollupRow.bucket < window.until
        )
        if kinds is not None:
            statement = statement.where(RollupRow.kind.in_(list(kinds)))
        return statement

    async def series(self, window: Window, kinds: Iterable[str] | None = TRAFFIC_KINDS) -> dict[datetime, Totals]:
        """Totals per hour within the window (hours with nothing recorded are absent)."""
        statement = self._within(select(RollupRow.bucket, *_SUMS), window, kinds, ALL).group_by(RollupRow.bucket)
        async with self.store.session() as session:
            rows = (await session.execute(statement)).all()
        return {row[0]: _totals(row[1:]) for row in sorted(rows, key=lambda row: row[0])}

    async def total(self, window: Window, kinds: Iterable[str] | None = TRAFFIC_KINDS) -> Totals:
        statement = self._within(select(*_SUMS), window, kinds, ALL)
        async with self.store.session() as session:
            return _totals((await session.execute(statement)).one())

    async def top(
        self,
        by: Literal["key_name", "target"],
        window: Window,
        *,
        kinds: Iterable[str] | None = TRAFFIC_KINDS,
        limit: int = 10,
    ) -> list[tuple[str, Totals]]:
        """The keys or targets with the most requests in the window, most first (ties by name), with their requests,
        errors and spend (the other totals are left at zero)."""
        column = getattr(RollupRow, by)
        requests = func.sum(RollupRow.requests)
        grain = BY_KEY if by == "key_name" else BY_TARGET
        # Only what a top list shows is summed (not the histogram): a month of hours times keys is many rows.
        sums = (requests, func.sum(RollupRow.errors), func.sum(RollupRow.cost_usd))
        statement = self._within(select(column, *sums), window, kinds, grain).group_by(column)
        statement = statement.order_by(requests.desc(), column).limit(limit)
        async with self.store.session() as session:
            rows = (await session.execute(statement)).all()
        return [
            (name, Totals(requests=int(count or 0), errors=int(errors or 0), cost_usd=Decimal(cost or 0)))
            for name, count, errors, cost in rows
        ]

    async def by_key(self, names: Iterable[str], window: Window) -> dict[str, Totals]:
        """Each named key's traffic totals within the window (keys with none are absent)."""
        wanted = list(names)
        if not wanted:
            return {}
        statement = self._within(select(RollupRow.key_name, *_SUMS), window, TRAFFIC_KINDS, BY_KEY)
        statement = statement.where(RollupRow.key_name.in_(wanted)).group_by(RollupRow.key_name)
        async with self.store.session() as session:
            rows = (await session.execute(statement)).all()
        return {row[0]: _totals(row[1:]) for row in rows}


def _upsert(transaction: Transaction, rows: list[tuple[Any, ...]]) -> None:
    transaction.insert(RollupRow.__tablename__, _COLUMNS, rows, _UPSERT)
