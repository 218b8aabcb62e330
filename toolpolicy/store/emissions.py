"""Emission accounting: which records the gateway's audit writers emitted but the store never received.

Each writer (one per gateway process, a fresh id at every start) numbers the records it emits 1, 2, 3... and writes
them in that order, reporting its high-water mark (the highest number handed out) with every batch. What that lets
`verify` tell, soundly:

- a number missing between two written numbers of one writer: that record is lost (dropped from a full buffer,
  or deleted along with its chain position... which the chain reports first);
- numbers above the last written one of a writer that stopped cleanly (`closed_at` set): lost at shutdown;
- numbers above the last written one of a writer that is not marked stopped: *unconfirmed*. A running writer may
  still have them in flight; a crashed one lost them. Records emitted after a writer's last report are invisible.

Retention pruning removes the oldest records, so once the chain was pruned a writer's numbering is only checked from
its oldest kept record on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from toolpolicy.batching import WriterMark
from toolpolicy.store.schema import AuditWriterRow


async def report_writer(session: AsyncSession, mark: WriterMark) -> None:
    """Record a writer's high-water mark (in the transaction of the batch it wrote)."""
    now = datetime.now(UTC)
    values = {"updated_at": now, "emitted": mark.emitted, "dropped": mark.dropped}
    if mark.closed:
        values["closed_at"] = now
    result = await session.execute(
        update(AuditWriterRow).where(AuditWriterRow.writer_id == mark.writer_id).values(**values)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        await session.execute(insert(AuditWriterRow).values(writer_id=mark.writer_id, started_at=now, **values))


@dataclass(frozen=True, slots=True)
class Missing:
    """Emission numbers `first..last` of one writer that are not in the store."""

    writer_id: str
    first: int
    last: int
    why: str

    @property
    def count(self) -> int:
        return self.last - self.first + 1

    def describe(self) -> str:
        numbers = str(self.first) if self.first == self.last else f"{self.first}..{self.last}"
        return f"writer {self.writer_id} emission {numbers} ({self.count} record(s) {self.why})"


@dataclass(frozen=True, slots=True)
class EmissionReport:
    writers: int
    """Writers seen (in records or in their reports)."""
    quarantined: int
    """Records the store rejected, kept in escaped form (they count as written)."""
    duplicates: int
    """Numbers written twice (a batch retried after its commit went through but its answer was lost)."""
    dropped: int
    """Records the writers reported dropping (they also show up as missing)."""
    missing: list[Missing] = field(default_factory=list)
    unconfirmed: list[Missing] = field(default_factory=list)

    def describe_missing(self) -> str:
        total = sum(item.count for item in self.missing)
        shown = "; ".join(item.describe() for item in self.missing[:5])
        more = f"; and {len(self.missing) - 5} more ranges" if len(self.missing) > 5 else ""
        return f"{total} record(s) emitted but never written: {shown}{more}"


@dataclass
class _Tally:
    last: int
    ranges: list[tuple[int, int]] = field(default_factory=list)


class EmissionCheck:
    """Fed every written record in chain order; `finish` compares with what the writers reported."""

    def __init__(self, *, pruned: bool) -> None:
        self._pruned = pruned
        self._tallies: dict[str, _Tally] = {}
        self._quarantined = 0
        self._duplicates = 0

    def see(self, writer_id: str, number: int, *, quarantined: bool) -> None:
        self._quarantined += quarantined
        tally = self._tallies.get(writer_id)
        if tally is None:
            tally = self._tallies[writer_id] = _Tally(last=number)
            if number > 1 and not self._pruned:
                tally.ranges.append((1, number - 1))
            return
        if number > tally.last + 1:
            tally.ranges.append((tally.last + 1, number - 1))
        elif number <= tally.last:
            self._duplicates += 1
        tally.last = max(tally.last, number)

    def finish(self, writers: Sequence[AuditWriterRow]) -> EmissionReport:
        missing = [
            Missing(writer_id, first, last, "emitted but never written")
            for writer_id, tally in self._tallies.items()
            for first, last in tally.ranges
        ]
        unconfirmed: list[Missing] = []
        for writer in writers:
            tally = self._tallies.get(writer.writer_id)
            if tally is None and self._pruned:
                continue  # its records may all have been pruned
            written = tally.last if tally is not None else 0
            if writer.emitted <= written:
                continue
            if writer.closed_at is not None:
                missing.append(Missing(writer.writer_id, written + 1, writer.emitted, "lost before it stopped"))
            else:
                when = writer.updated_at.isoformat(timespec="seconds")
                why = f"not written as of its report at {when}: in flight, or lost if that process died"
                unconfirmed.append(Missing(writer.writer_id, written + 1, writer.emitted, why))
        return EmissionReport(
            writers=len(self._tallies.keys() | {writer.writer_id for writer in writers}),
            quarantined=self._quarantined,
            duplicates=self._duplicates,
            dropped=sum(writer.dropped for writer in writers),
            missing=missing,
            unconfirmed=unconfirmed,
        )
