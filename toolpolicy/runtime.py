"""The governance core's long-lived parts, wired once per process: store, key resolver, governor, audit writer."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

from toolpolicy.audit import AuditWriter
from toolpolicy.governor import Governor
from toolpolicy.keys import KeyResolver
from toolpolicy.settings import GatewaySettings
from toolpolicy.store import Store
from toolpolicy.store.audit_log import AuditLog
from toolpolicy.store.directory import Directory

logger = logging.getLogger(__name__)


class Governance:
    """Everything a request handler of either half needs; `start()` and `stop()` bracket its life."""

    def __init__(self, settings: GatewaySettings, *, store_connect_args: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.store = Store.open(settings.store, connect_args=store_connect_args)
        self.directory = Directory(self.store, mcp_servers=settings.mcp_servers.keys())
        self.audit_log = AuditLog(self.store)
        self.audit = AuditWriter(
            self.audit_log.write,
            batch_size=settings.audit.batch_size,
            flush_interval=settings.audit.flush_interval,
        )
        self.keys = KeyResolver(self.directory.find_key, ttl=settings.key_cache_ttl)
        self.governor = Governor()
        self.started = False

    async def start(self, *, announce: TextIO = sys.stderr) -> None:
        """Migrate the store, seed the config's entities, and start the audit writer."""
        await self.store.migrate()
        for name, secret in await self.directory.seed(self.settings):
            # The only time this secret exists in clear: the store keeps its hash.
            print(f"isthmus: generated key {name!r}: {secret}  (shown once; store it now)", file=announce)
        self.audit.start()
        self.started = True

    async def stop(self) -> None:
        self.started = False
        try:
            await self.audit.aclose()
        finally:
            await self.store.close()

    def changed(self) -> None:
        """Called after this replica changes keys, teams or customers, so it sees the change at once."""
        self.keys.invalidate()
