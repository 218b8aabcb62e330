"""The one record per request: audited in batches, counted in metrics, logged as one line."""

from __future__ import annotations

import logging

from toolpolicy import sanitize
from toolpolicy.audit import AuditRecord
from toolpolicy.batching import BatchWriter
from toolpolicy.telemetry.metrics import Metrics

request_log = logging.getLogger("isthmus.requests")


class RequestRecorder:
    """What the halves call `governance.audit`: `emit` feeds the audit trail, the metrics and the request log."""

    def __init__(
        self, writer: BatchWriter[AuditRecord], metrics: Metrics, rollups: BatchWriter[AuditRecord] | None = None
    ) -> None:
        self.writer = writer
        self.metrics = metrics
        self.rollups = rollups
        """Folds the same records into hourly totals (`toolpolicy.rollups`), in batches of its own."""

    def emit(self, record: AuditRecord) -> None:
        record = sanitize.audit_record(record)  # one bad string must not cost the store the batch around it
        self.writer.emit(record)
        if self.rollups is not None:
            self.rollups.emit(record)
        self.metrics.observe(record)
        if request_log.isEnabledFor(logging.INFO):
            request_log.info(
                "%s %s %s", record.kind, record.target, record.status, extra={"request": log_fields(record)}
            )

    def start(self) -> None:
        self.writer.start()
        if self.rollups is not None:
            self.rollups.start()

    async def flush(self) -> None:
        await self.writer.flush()
        if self.rollups is not None:
            await self.rollups.flush()

    async def aclose(self) -> None:
        try:
            await self.writer.aclose()
        finally:  # the rollups are worth writing even when the audit store refused
            if self.rollups is not None:
                await self.rollups.aclose()

    @property
    def pending(self) -> int:
        return self.writer.pending

    @property
    def dropped(self) -> int:
        return self.writer.dropped


def log_fields(record: AuditRecord) -> dict[str, object]:
    details = record.details
    fields: dict[str, object] = {
        "request_id": record.request_id,
        "kind": record.kind,
        "key": record.key_name,
        "team": record.team,
        "target": record.target,
        "route": details.get("route"),
        "decision": record.decision,
        "status": record.status,
        "latency_ms": record.latency_ms,
    }
    if record.reason:
        fields["reason"] = record.reason
    if record.tokens_in is not None or record.tokens_out is not None:
        fields["tokens_in"], fields["tokens_out"] = record.tokens_in, record.tokens_out
    if record.cost_usd is not None:
        fields["cost_usd"] = float(record.cost_usd)
    for name in ("attempts", "ttfb_ms", "outcome", "via"):
        if name in details:
            fields[name] = details[name]
    return fields
