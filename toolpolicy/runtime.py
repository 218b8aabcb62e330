"""The governance core's long-lived parts, wired once per process: store, keys, governor, counters, writers."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any, TextIO

from toolpolicy import quarantine
from toolpolicy.audit import AuditRecord
from toolpolicy.batching import BatchWriter
from toolpolicy.counters.base import CounterStore
from toolpolicy.counters.journaled import JournaledCounterStore
from toolpolicy.counters.memory import MemoryCounterStore
from toolpolicy.governor import Governor
from toolpolicy.guardrails import Guardrails
from toolpolicy.keys import KeyResolver
from toolpolicy.rollups import RollupStore
from toolpolicy.settings import GatewaySettings
from toolpolicy.store import Store
from toolpolicy.store.audit_log import AuditLog
from toolpolicy.store.directory import Directory
from toolpolicy.store.faults import is_record_fault
from toolpolicy.store.ledger import SpendEntry, SpendLedger
from toolpolicy.store.rate_journal import RateJournal
from toolpolicy.telemetry.labels import RouteLabels
from toolpolicy.telemetry.loop_lag import LoopLag
from toolpolicy.telemetry.metrics import Metrics
from toolpolicy.telemetry.recorder import RequestRecorder

logger = logging.getLogger(__name__)

ROLLUP_BATCH_SIZE = 10_000
"""Records folded into one rollup upsert at most (at the audit flush interval, whatever the rate up to 20,000/s)."""


def counter_store(settings: GatewaySettings) -> CounterStore:
    if settings.redis:
        from toolpolicy.counters.redis import RedisCounterStore

        return RedisCounterStore(settings.redis, prefix=settings.redis_prefix)
    return MemoryCounterStore()


class Governance:
    """Everything a request handler of either half needs; `start()` and `stop()` bracket its life."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        store_connect_args: dict[str, Any] | None = None,
        counters: CounterStore | None = None,
    ) -> None:
        self.settings = settings
        self.store = Store.open(settings.store, connect_args=store_connect_args)
        self.directory = Directory(
            self.store, mcp_servers=settings.mcp_servers.keys(), guardrails=[rule.name for rule in settings.guardrails]
        )
        self.audit_log = AuditLog(self.store)
        self.metrics = Metrics(RouteLabels(settings))
        lag_interval = settings.telemetry.loop_lag_interval
        self.loop_lag = LoopLag(self.metrics.loop_lag, interval=lag_interval) if lag_interval else None
        """Probes the event loop's lag while started (`telemetry.loop_lag_interval`; None when that is 0)."""
        writer = BatchWriter[AuditRecord](
            self.audit_log.write_batch,
            name="audit",
            batch_size=settings.audit.batch_size,
            flush_interval=settings.audit.flush_interval,
            is_record_fault=is_record_fault,
            quarantine=quarantine.audit_record,
            on_quarantine=self.metrics.writer_quarantined.labels("audit").inc,
            on_drop=self.metrics.writer_dropped.labels("audit").inc,
        )
        self.rollups = RollupStore(self.store)
        rollup_writer = BatchWriter[AuditRecord](
            self.rollups.write_batch,
            name="rollups",
            # A batch is folded into a few rows however many records it holds: the interval, not a batch size,
            # paces these writes (one upsert per interval instead of one per `audit.batch_size` records).
            batch_size=ROLLUP_BATCH_SIZE,
            flush_interval=settings.audit.flush_interval,
            is_record_fault=is_record_fault,
            on_drop=self.metrics.writer_dropped.labels("rollups").inc,
        )
        self.audit = RequestRecorder(writer, self.metrics, rollups=rollup_writer)
        servers = {name: server.guardrails for name, server in settings.mcp_servers.items()}
        # Looked up per record, not bound now: whatever `self.audit` is when a rule hits receives it.
        self.guardrails = Guardrails(settings.guardrails, servers=servers, emit=lambda record: self.audit.emit(record))
        """Content rules on model and tool traffic; `guardrails.active` is false when none are configured."""
        self.ledger = SpendLedger(self.store)
        self.spend = BatchWriter[SpendEntry](
            self.ledger.write_batch,
            name="spend",
            batch_size=settings.audit.batch_size,
            flush_interval=settings.audit.spend_flush_interval,
            is_record_fault=is_record_fault,
            quarantine=quarantine.spend_entry,
            on_quarantine=self.metrics.writer_quarantined.labels("spend").inc,
            on_drop=self.metrics.writer_dropped.labels("spend").inc,
        )
        self.keys = KeyResolver(self.directory.find_key, ttl=settings.key_cache_ttl)
        # Rate-limit usage is journaled in the store, so counters that come back empty are re-seeded, not reset.
        self.rate_journal = RateJournal(self.store, flush_interval=settings.audit.rate_journal_flush_interval)
        self.counters: CounterStore = JournaledCounterStore(counters or counter_store(settings), self.rate_journal)
        fallback = (
            JournaledCounterStore(MemoryCounterStore(), self.rate_journal)
            if settings.redis and settings.on_counter_store_error == "allow"
            else None
        )
        self.governor = Governor(
            settings,
            self.counters,
            self.ledger,
            self.spend,
            fallback=fallback,
            metrics=self.metrics,
            journal=self.rate_journal,
        )
        self.change_listeners: list[Callable[[], None]] = []
        """Called by `changed()` too: caches derived from keys (OAuth tokens bound to them) forget them at once."""
        self.started = False
        self._pruner: asyncio.Task[None] | None = None

    RESTART_REQUIRED = (
        "listen",
        "store",
        "redis",
        "redis_prefix",
        "on_counter_store_error",
        "key_cache_ttl",
        "audit",
        "telemetry",
        "server",
    )
    """Settings fixed for the life of the process: the store, the counters, the writers, tracing and the HTTP server
    are opened once at start. A reload that changes one of them keeps the running value and says a restart is
    required."""

    def derive(self, settings: GatewaySettings) -> Governance:
        """A governance for reloaded `settings` that shares this one's store, counters, writers, key cache and
        metrics (so limits, spend and the audit chain carry on) and rebuilds what depends on the rest of the config:
        the directory's known names, the governor and the guardrails. `settings` must keep this one's
        `RESTART_REQUIRED` fields; nothing changes here until the caller installs the new governance."""
        fixed = [name for name in self.RESTART_REQUIRED if getattr(settings, name) != getattr(self.settings, name)]
        if fixed:
            raise ValueError(f"derive() cannot change {', '.join(fixed)}: they need a restart")
        derived = object.__new__(Governance)
        derived.__dict__.update(self.__dict__)
        derived.settings = settings
        derived.directory = Directory(
            self.store, mcp_servers=settings.mcp_servers.keys(), guardrails=[rule.name for rule in settings.guardrails]
        )
        servers = {name: server.guardrails for name, server in settings.mcp_servers.items()}
        derived.guardrails = Guardrails(
            settings.guardrails, servers=servers, emit=lambda record: derived.audit.emit(record)
        )
        derived.governor = Governor(
            settings,
            self.counters,
            self.ledger,
            self.spend,
            fallback=self.governor.fallback,
            metrics=self.metrics,
            journal=self.rate_journal,
        )
        derived._pruner = None  # the pruner belongs to the governance that started the writers
        return derived

    async def start(self, *, announce: TextIO = sys.stderr) -> None:
        """Migrate the store, seed the config's entities, and start the writers."""
        await self.store.migrate()
        for name, secret in await self.directory.seed(self.settings):
            # The only time this secret exists in clear: the store keeps its hash.
            print(f"isthmus: generated key {name!r}: {secret}  (shown once; store it now)", file=announce)
        self.audit.start()
        self.spend.start()
        self.rate_journal.start()
        if self.loop_lag is not None:
            self.loop_lag.start(asyncio.get_running_loop())
        if self.settings.audit.retention_days is not None:
            self._pruner = asyncio.create_task(self._prune_forever(self.settings.audit.retention_days))
        self.started = True

    async def _prune_forever(self, retention_days: float) -> None:
        while True:
            try:
                pruned = await self.audit_log.prune(retention_days)
                if pruned:
                    logger.info("audit retention: pruned %d records older than %s days", pruned, retention_days)
            except Exception:
                logger.exception("audit retention pruning failed; retrying in an hour")
            await asyncio.sleep(3600)

    async def stop(self) -> None:
        self.started = False
        if self.loop_lag is not None:
            self.loop_lag.stop()
        if self._pruner is not None:
            self._pruner.cancel()
            self._pruner = None
        try:
            try:
                await self.spend.aclose()
                await self.rate_journal.aclose()
            finally:  # a store refusing spend entries must not keep the audit writer from trying too
                await self.audit.aclose()
        finally:
            await self.counters.aclose()
            await self.store.close()

    def writer_backlog(self) -> dict[str, dict[str, Any]]:
        """Each writer's counts, and whether its backlog is past `audit.max_backlog` (the replica is then unready)."""
        bound = self.settings.audit.max_backlog
        return {
            writer.name: {**writer.stats(), "over_bound": writer.pending > bound}
            for writer in (self.audit.writer, self.audit.rollups, self.spend, self.rate_journal.writer)
            if writer is not None
        }

    def changed(self) -> None:
        """Called after this replica changes keys, teams or customers, so it sees the change at once."""
        self.keys.invalidate()
        for listener in self.change_listeners:
            listener()
